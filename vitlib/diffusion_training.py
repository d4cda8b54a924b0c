"""Training a denoiser: the noise-prediction loss, classifier-free guidance's condition dropout and an exponential
moving average of the weights (chapter 08 derives the loss; chapter 09 adds the dropout).

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   t ~ U{0..T-1},  eps ~ N(0, I)
    L_simple = E || eps - eps_theta(x_t, t, c) ||^2                          (Ho et al. 2020, eq. 14)

With ``prediction_type="v_prediction"`` the target is v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0, with
"sample" it is x_0. Classifier-free guidance (Ho & Salimans 2022) trains one network for both p(x | c) and p(x):
each condition is replaced by the null condition (zeros, the ``uncond`` default of ``vitlib.diffusion.sample``)
with probability p_uncond. The EMA keeps theta_ema <- decay theta_ema + (1 - decay) theta after every step; samples
are drawn from theta_ema.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .checks import check_number, check_one_of, describe
from .diffusion import PREDICTION_TYPES, NoiseSchedule

__all__ = ["denoising_loss", "drop_condition", "EMA"]


def drop_condition(cond: torch.Tensor, p_uncond: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """cond (B, ...) with each row zeroed with probability ``p_uncond`` (one Bernoulli draw per row, on the CPU
    ``generator`` when given): the null condition the guided sampler subtracts."""
    if not isinstance(cond, torch.Tensor) or not cond.is_floating_point() or cond.dim() < 1 or len(cond) == 0:
        raise ValueError(f"cond must be a non-empty floating-point tensor (B, ...), got {describe(cond)}")
    check_number(p_uncond, "p_uncond", 0.0, 1.0)
    keep = torch.rand(len(cond), generator=generator) >= p_uncond                 # (B,) True = keep the text
    return cond * keep.to(cond.device, cond.dtype).view(-1, *[1] * (cond.dim() - 1))


def denoising_loss(model, schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   cond: torch.Tensor | None = None, prediction_type: str = "epsilon") -> torch.Tensor:
    """mean || target - model(x_t, t[, cond]) ||^2 with x_t = q_sample(x0, t, noise); target eps, v or x0.

    ``model`` returns a tensor or an object with ``.sample`` (a diffusers UNet), as in ``vitlib.diffusion.sample``;
    t is a LongTensor (B,) of training timesteps."""
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t[, cond]), got {describe(model)}")
    check_one_of(prediction_type, "prediction_type", PREDICTION_TYPES)
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 2 or len(x0) == 0:
        raise ValueError(f"x0 must be a non-empty floating-point batch (B, ...), got {describe(x0)}")
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {describe(noise)}")
    if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.shape != (len(x0),):
        raise ValueError(f"t must be an integer tensor of shape ({len(x0)},), got {describe(t)}")
    if t.min() < 0 or t.max() >= schedule.num_train_timesteps:
        raise ValueError(f"t must lie in [0, {schedule.num_train_timesteps}), got [{t.min()}, {t.max()}]")
    a = schedule.alphas_cumprod.to(x0.device)[t.to(x0.device)].view(-1, *[1] * (x0.dim() - 1))   # (B, 1, ...)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise                                 # q(x_t | x_0)
    target = {"epsilon": noise, "sample": x0, "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * x0}[prediction_type]
    out = model(x_t, t) if cond is None else model(x_t, t, cond)
    out = out if isinstance(out, torch.Tensor) else getattr(out, "sample", out)
    if not isinstance(out, torch.Tensor) or out.shape != x0.shape:
        raise ValueError(f"the model must return a tensor (or .sample) shaped like x0 {tuple(x0.shape)}, "
                         f"got {describe(out)}")
    return (out - target).pow(2).mean()


class EMA:
    """theta_ema <- decay theta_ema + (1 - decay) theta: ``ema = EMA(model, 0.999)``; ``ema.update(model)`` after each
    optimiser step; ``ema.model`` is a frozen copy in eval mode."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EMA needs an nn.Module, got {describe(model)}")
        check_number(decay, "decay", 0.0, 1.0)
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p, 1 - self.decay)
