"""Checkers for chapter 08's exercises: the forward process in closed form, the posterior mean, one DDIM step and
alpha_bar at the end of the linear schedule. Each compares your answer with the formulas of ``vitlib.diffusion``
(itself verified against diffusers' schedulers) and names the usual mistakes."""

from __future__ import annotations

import math

import torch

from ..diffusion import NoiseSchedule
from . import Case, check, function_name, mismatch


def _near(got, expected) -> bool:
    """Tensors to 1e-4: 1 - alpha_bar_t is small at small t, and fp32 formulas that compute beta_t as
    1 - alpha_bar_t / alpha_bar_{t-1} (as diffusers does) differ from beta_t itself by more than 1e-6."""
    why = mismatch(got, expected, rtol=1e-4, atol=1e-4)
    if why is not None:
        raise AssertionError(why)
    return True


def _alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), (T,)."""
    return torch.cumprod(1 - betas, dim=0)


def _shaped(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return a.view((-1,) + (1,) * (like.dim() - 1))                                    # (B, 1, ..., 1)


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 1, 4, 4, generator=g) * 2 - 1                                 # (B, 1, 4, 4) in [-1, 1]
    return x0, torch.randn(n, 1, 4, 4, generator=g)


def check_q_sample(q_sample) -> bool:
    """``q_sample(x0, t, noise, betas)``: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for x0 and noise
    (B, C, H, W), t a LongTensor (B,) and betas (T,), with alpha_bar_t = prod_{s <= t} (1 - beta_s)."""
    cases = []
    for i, schedule in enumerate(("linear", "squaredcos_cap_v2")):
        betas = NoiseSchedule(beta_schedule=schedule).betas
        ab = _alpha_bar(betas)
        ab_before = torch.cat([torch.ones(1), ab[:-1]])                                 # alpha_bar_{t-1}
        x0, eps = _images(4, 80 + i)
        t = torch.tensor([0, 10, 500, 999])
        a, a_prev, b = _shaped(ab[t], x0), _shaped(ab_before[t], x0), _shaped(betas[t], x0)
        expected = a.sqrt() * x0 + (1 - a).sqrt() * eps
        cases.append(Case(args=(x0, t, eps, betas), expected=expected, label=f"{schedule} schedule", mistakes={
            "sqrt missing on alpha_bar: the signal is scaled by sqrt(alpha_bar_t)": a * x0 + (1 - a).sqrt() * eps,
            "beta_t used instead of alpha_bar_t: that is one step, q(x_t | x_{t-1}); the closed form "
            "multiplies all the steps up to t": (1 - b).sqrt() * x0 + b.sqrt() * eps,
            "noise scale 1 - alpha_bar_t without the sqrt: the variance is 1 - alpha_bar_t, "
            "the standard deviation its square root": a.sqrt() * x0 + (1 - a) * eps,
            "alpha_bar off by one: alpha_bar_t includes step t itself (cumprod, not a shifted one)":
                a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps}))
    return check(q_sample, cases, name=function_name(q_sample, "q_sample"))


def check_posterior_mean(posterior_mean) -> bool:
    """``posterior_mean(x0, x_t, t, betas)``: the mean of q(x_{t-1} | x_t, x_0) for an int t >= 1,
    sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t."""
    betas = NoiseSchedule().betas
    ab = _alpha_bar(betas)
    cases = []
    for i, t in enumerate((5, 50, 500, 999)):
        x0, x_t = _images(3, 90 + i)
        a_t, a_s, beta, alpha = ab[t], ab[t - 1], betas[t], 1 - betas[t]
        c0 = a_s.sqrt() * beta / (1 - a_t)                                             # coefficient of x_0
        ct = alpha.sqrt() * (1 - a_s) / (1 - a_t)                                      # coefficient of x_t
        cases.append(Case(args=(x0, x_t, t, betas), expected=c0 * x0 + ct * x_t, label=f"t={t}", mistakes={
            "the two coefficients swapped: sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) multiplies x_0, "
            "sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) multiplies x_t": ct * x0 + c0 * x_t,
            "alpha_bar_t where alpha_bar_{t-1} belongs": a_t.sqrt() * beta / (1 - a_t) * x0 + alpha.sqrt() * x_t,
            "sqrt missing on alpha_t in the x_t coefficient": c0 * x0 + alpha * (1 - a_s) / (1 - a_t) * x_t,
            "sqrt missing on alpha_bar_{t-1} in the x_0 coefficient": a_s * beta / (1 - a_t) * x0 + ct * x_t}))
    return check(posterior_mean, cases, name=function_name(posterior_mean, "posterior_mean"), compare=_near)


def check_ddim_step(ddim_step) -> bool:
    """``ddim_step(eps_hat, x_t, alpha_bar_t, alpha_bar_s)``: DDIM's deterministic step (eta = 0) from t to s < t,
    x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s) eps_hat, x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat)
    / sqrt(alpha_bar_t); the alpha_bars are floats."""
    ab = _alpha_bar(NoiseSchedule().betas)
    cases = []
    for i, (t, s) in enumerate(((999, 979), (500, 480), (100, 0), (20, -1))):
        eps_hat, x_t = _images(3, 70 + i)
        a_t, a_s = float(ab[t]), float(ab[s]) if s >= 0 else 1.0
        x0_hat = (x_t - math.sqrt(1 - a_t) * eps_hat) / math.sqrt(a_t)
        expected = math.sqrt(a_s) * x0_hat + math.sqrt(1 - a_s) * eps_hat
        cases.append(Case(args=(eps_hat, x_t, a_t, a_s), expected=expected, label=f"t={t} -> s={s}", mistakes={
            "x0_hat not divided by sqrt(alpha_bar_t)": math.sqrt(a_s) * (x_t - math.sqrt(1 - a_t) * eps_hat)
            + math.sqrt(1 - a_s) * eps_hat,
            "the noise kept at the current level sqrt(1 - alpha_bar_t): x_s carries sqrt(1 - alpha_bar_s) of it":
                math.sqrt(a_s) * x0_hat + math.sqrt(1 - a_t) * eps_hat,
            "sqrt missing on alpha_bar_s": a_s * x0_hat + math.sqrt(1 - a_s) * eps_hat,
            "returned x0_hat, the predicted clean image, not x_s": x0_hat}))
    return check(ddim_step, cases, name=function_name(ddim_step, "ddim_step"))


def _close(got, expected) -> bool:
    """Floats to a relative 1e-4 (an fp32 product of 1000 factors is good to about 1e-6)."""
    why = mismatch(got, expected, rtol=1e-4, atol=0.0)
    if why is not None:
        raise AssertionError(why)
    return True


def check_alpha_bar_last(alpha_bar_last) -> bool:
    """``alpha_bar_last(beta_start, beta_end, T)``: alpha_bar_{T-1}, the last of the linear schedule's
    prod (1 - beta_t) with beta_t evenly spaced from beta_start to beta_end over T steps, as a float."""
    cases = []
    for start, end, T in ((1e-4, 0.02, 1000), (1e-4, 0.02, 100), (8.5e-4, 0.012, 1000), (1e-3, 0.05, 50)):
        betas = torch.linspace(start, end, T, dtype=torch.float64)
        expected = float(torch.prod(1 - betas))
        cases.append(Case(args=(start, end, T), expected=expected, label=f"T={T}, beta {start}..{end}", mistakes={
            "1 - beta_T: one step's alpha, not the product over all steps": 1 - end,
            "the sum of the betas: that is -log alpha_bar to first order": float(betas.sum()),
            "exp(-sum of betas): the first-order estimate; compute the product": math.exp(-float(betas.sum())),
            "the product of the betas, not of 1 - beta": float(torch.prod(betas))}))
    return check(alpha_bar_last, cases, name=function_name(alpha_bar_last, "alpha_bar_last"), compare=_close)
