"""Checkers for chapter 09's exercises: the classifier-free guidance combination, CLIPScore, where SDEdit starts,
and how much of the image survives there. Each compares your answer with ``vitlib.diffusion`` / ``vitlib.t2i`` and
names the usual mistakes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion import NoiseSchedule
from . import Case, check, function_name, mismatch


def _close(got, expected) -> bool:
    why = mismatch(got, expected, rtol=1e-5, atol=1e-5)
    if why is not None:
        raise AssertionError(why)
    return True


def check_cfg(cfg) -> bool:
    """``cfg(eps_uncond, eps_cond, s)``: the guided prediction eps_uncond + s (eps_cond - eps_uncond) for tensors
    (B, C, H, W) and a float guidance scale s (s = 1: the conditional model, s = 0: the unconditional one)."""
    cases = []
    for i, s in enumerate((0.0, 1.0, 3.0, 7.5)):
        g = torch.Generator().manual_seed(90 + i)
        u, c = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        mistakes = {
            "conditional and unconditional swapped: guidance moves away from the unconditional prediction, "
            "towards the conditional one": c + s * (u - c),
            "the unconditional term dropped: s eps_cond only scales the prediction": s * c,
            "(1 + s) eps_cond - s eps_uncond is Ho & Salimans' convention, in which their w = s - 1; with the "
            "scale s used here (and in diffusers) s = 1 must give the conditional model": (1 + s) * c - s * u,
            "an average of the two predictions: guidance extrapolates, it does not interpolate": (u + c) / 2}
        cases.append(Case(args=(u, c, s), expected=u + s * (c - u), label=f"s={s}",
                          mistakes={k: v for k, v in mistakes.items() if not torch.allclose(v, u + s * (c - u))}))
    return check(cfg, cases, name=function_name(cfg, "cfg"))


def check_clip_score(clip_score) -> bool:
    """``clip_score(image_emb, text_emb)``: CLIPScore (B,) = 2.5 max(cos(v_i, t_i), 0) for matching rows of
    image and text embeddings (B, d), not normalised."""
    cases = []
    for i in range(3):
        g = torch.Generator().manual_seed(70 + i)
        v, t = torch.randn(5, 8, generator=g) * 3, torch.randn(5, 8, generator=g)
        t[:2] = v[:2] * 0.5 + t[:2] * 0.2                                               # two rows that agree
        cos = F.cosine_similarity(v, t, dim=-1)
        cases.append(Case(args=(v, t), expected=2.5 * cos.clamp(min=0), label=f"batch {i}", mistakes={
            "no max(., 0): a negative cosine scores 0": 2.5 * cos,
            "the embeddings not normalised: CLIPScore uses the cosine, not the dot product":
                2.5 * (v * t).sum(-1).clamp(min=0),
            "w = 100 is torchmetrics' scale; Hessel et al.'s CLIPScore uses w = 2.5": 100 * cos.clamp(min=0),
            "the full matrix of cosines: CLIPScore pairs row i with row i only":
                2.5 * (F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T).clamp(min=0)}))
    return check(clip_score, cases, name=function_name(clip_score, "clip_score"), compare=_close)


def _start(strength: float, steps: int, T: int) -> int:
    ratio = T // steps
    return (max(1, int(steps * strength)) - 1) * ratio


def check_sdedit_start(sdedit_start) -> bool:
    """``sdedit_start(strength, steps, T)``: the timestep SDEdit noises the image to, as an int: the first of the
    last int(strength * steps) of the sampler's timesteps k (T // steps), k = steps - 1 ... 0."""
    cases = []
    for strength, steps, T in ((0.6, 20, 1000), (0.5, 50, 1000), (0.3, 10, 1000), (1.0, 20, 1000), (0.75, 8, 100)):
        ratio, kept = T // steps, int(steps * strength)
        cases.append(Case(args=(strength, steps, T), expected=_start(strength, steps, T),
                          label=f"strength {strength}, {steps} steps, T={T}", mistakes={
                              "strength * T: the sampler only visits multiples of T // steps":
                                  int(strength * T),
                              "off by one: the last int(strength * steps) timesteps start at "
                              "(int(strength * steps) - 1) * (T // steps), since the last one is 0":
                                  kept * ratio,
                              "(1 - strength) counts the steps skipped, not the steps run":
                                  (int(steps * (1 - strength)) - 1) * ratio}))
    return check(sdedit_start, cases, name=function_name(sdedit_start, "sdedit_start"))


def check_signal_left(signal_left) -> bool:
    """``signal_left(t)``: sqrt(alpha_bar_t) of the cosine schedule ("squaredcos_cap_v2", T = 1000) at an int t:
    how much of the original image x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps still holds, as a
    float."""
    ab = NoiseSchedule(beta_schedule="squaredcos_cap_v2").alphas_cumprod
    lin = NoiseSchedule(beta_schedule="linear").alphas_cumprod
    cases = [Case(args=(t,), expected=float(ab[t].sqrt()), label=f"t={t}", mistakes={
        "alpha_bar_t without the sqrt: that is the share of the variance, not the scale of x_0": float(ab[t]),
        "sqrt(1 - alpha_bar_t): that is the noise's scale": float((1 - ab[t]).sqrt()),
        "the linear schedule: the chapter's models use the cosine one": float(lin[t].sqrt())})
        for t in (50, 250, 450, 700, 950)]
    return check(signal_left, cases, name=function_name(signal_left, "signal_left"), compare=_close)
