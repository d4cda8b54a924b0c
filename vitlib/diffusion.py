"""Diffusion: noise schedules, the forward process in closed form, DDPM's and DDIM's reverse steps and a
model-agnostic sampling loop with classifier-free guidance (chapter 08; chapter 09 adds the guidance).

With alpha_t = 1 - beta_t and alpha_bar_t = prod_{s <= t} alpha_s (Ho et al. 2020):

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)                         (q_sample)

The posterior of a step back from t to s < t (s = t - 1 in DDPM), with beta_ts = 1 - alpha_bar_t / alpha_bar_s
(= beta_t when s = t - 1) and alpha_bar_{-1} = 1 (the clean end of the chain):

    q(x_s | x_t, x_0) = N(mu~, beta~ I)
    mu~   = sqrt(alpha_bar_s) beta_ts / (1 - alpha_bar_t) x_0
            + sqrt(1 - beta_ts) (1 - alpha_bar_s) / (1 - alpha_bar_t) x_t                        (posterior_mean)
    beta~ = (1 - alpha_bar_s) / (1 - alpha_bar_t) beta_ts                                     (posterior_variance)

The model predicts eps ("epsilon"), x_0 ("sample") or v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0
("v_prediction"); each gives both x0_hat and eps_hat, since x_t = sqrt(alpha_bar_t) x0_hat + sqrt(1 - alpha_bar_t)
eps_hat (predict_x0_eps). DDPM's ancestral step draws x_s ~ N(mu~(x0_hat, x_t), sigma^2 I), sigma^2 = beta~
("fixed_small") or beta_ts ("fixed_large"), and adds no noise at t = 0. DDIM (Song et al. 2021):

    x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s - sigma^2) eps_hat + sigma z,   sigma = eta sqrt(beta~)

deterministic at eta = 0, DDPM's fixed_small step at eta = 1. Classifier-free guidance (Ho & Salimans 2022) mixes
two predictions: out = out_uncond + s (out_cond - out_uncond).

Every formula is evaluated in the order diffusers' DDPMScheduler and DDIMScheduler evaluate it, and noise is drawn
with the same generator calls, so the same seed gives the same images (tests/test_diffusion_vs_diffusers.py).
diffusers clips x0_hat to [-1, 1] by default (clip_sample=True); here clipping is off unless asked for.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from .checks import check_int, check_number, check_one_of, describe

__all__ = ["NoiseSchedule", "sample", "cosine_betas", "SCHEDULES", "VARIANCE_TYPES", "PREDICTION_TYPES", "METHODS"]

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
VARIANCE_TYPES = ("fixed_small", "fixed_large")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
METHODS = ("ddpm", "ddim")


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule ("squaredcos_cap_v2"): alpha_bar(u) = cos^2((u + 0.008) / 1.008 * pi/2)
    for u = t / T, and beta_t = min(1 - alpha_bar((t + 1) / T) / alpha_bar(t / T), max_beta) in float64, then fp32."""
    def alpha_bar(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    T = num_train_timesteps
    return torch.tensor([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)],
                        dtype=torch.float32)


def _check_image(x, name: str, like: torch.Tensor | None = None, like_name: str = "sample") -> None:
    """A floating-point tensor (batch >= 1, ...) without NaN, with the shape, dtype and device of ``like``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (batch, ...), got {describe(x)}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (batch >= 1, ...), got {tuple(x.shape)}")
    if like is not None:
        if x.shape != like.shape:
            raise ValueError(f"{name} must have the shape of {like_name} {tuple(like.shape)}, got {tuple(x.shape)}")
        if x.dtype != like.dtype:
            raise TypeError(f"{name} must have the dtype of {like_name} {like.dtype}, got {x.dtype}")
        if x.device != like.device:
            raise ValueError(f"{name} is on {x.device} but {like_name} is on {like.device}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values")


def _check_generator(generator, device: torch.device) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    if generator is not None and generator.device.type not in ("cpu", device.type):
        raise ValueError(f"a {generator.device.type} generator cannot draw noise for {device}; use a cpu one")


def _randn(shape, generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """N(0, I) noise drawn as diffusers' ``randn_tensor`` draws it: on the generator's device (a cpu generator for
    a cuda sample draws on the cpu), then moved."""
    on = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=on, dtype=dtype).to(device)


@dataclass
class NoiseSchedule:
    """The betas of the forward process, as diffusers' schedulers compute them; the dataclass fields are its config.

    ``betas``, ``alphas`` = 1 - betas and ``alphas_cumprod`` (alpha_bar) are fp32 tensors (T,) on the cpu. Timestep
    arguments are ints in [0, T) (or integer tensors); a previous timestep below 0 means the clean end, alpha_bar = 1.
    """
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4      # beta_0 (linear, scaled_linear; the cosine schedule does not read it)
    beta_end: float = 0.02        # beta_{T-1}

    def __post_init__(self):
        check_int(self.num_train_timesteps, "num_train_timesteps")
        check_one_of(self.beta_schedule, "beta_schedule", SCHEDULES)
        check_number(self.beta_start, "beta_start", 0.0, 1.0, low_open=True, high_open=True)
        check_number(self.beta_end, "beta_end", 0.0, 1.0, low_open=True, high_open=True)
        if self.beta_start > self.beta_end:
            raise ValueError(f"beta_start must be <= beta_end, got {self.beta_start} > {self.beta_end}")
        T = self.num_train_timesteps
        if self.beta_schedule == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, T, dtype=torch.float32)
        elif self.beta_schedule == "scaled_linear":   # linear in sqrt(beta): latent diffusion's schedule
            betas = torch.linspace(self.beta_start ** 0.5, self.beta_end ** 0.5, T, dtype=torch.float32) ** 2
        else:
            betas = cosine_betas(T)
        self.betas = betas                                    # (T,) plain attributes, not config fields
        self.alphas = 1.0 - betas                             # (T,)
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)   # (T,) alpha_bar_t

    # ------------------------------------------------------------------ checks
    def _timestep(self, t, name: str = "t", low: int = 0, high: int | None = None) -> int:
        """An int timestep (or a one-element integer tensor) in [low, high), high = T by default."""
        high = self.num_train_timesteps if high is None else high
        if isinstance(t, torch.Tensor) and t.numel() == 1 and not (t.is_floating_point() or t.dtype == torch.bool):
            t = int(t.item())
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"{name} must be an int timestep, got {describe(t)}")
        if not low <= t < high:
            raise ValueError(f"{name} must be in [{low}, {high}), got {t}")
        return int(t)

    def _check_step(self, model_output, t, sample, generator, prediction_type, prev_t):
        check_one_of(prediction_type, "prediction_type", PREDICTION_TYPES)
        _check_image(sample, "sample")
        _check_image(model_output, "model_output", like=sample)
        _check_generator(generator, sample.device)
        t = self._timestep(t)
        return t, (t - 1 if prev_t is None else self._timestep(prev_t, "prev_t", -self.num_train_timesteps, t))

    # ------------------------------------------------------------------ the forward process and its posterior
    def alpha_bar(self, t: int) -> torch.Tensor:
        """alpha_bar_t, a 0-d tensor; alpha_bar_t = 1 for t < 0 (the clean end of the chain)."""
        return self.alphas_cumprod[t] if t >= 0 else torch.tensor(1.0)

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, for x0 and noise (B, ...) and t an int or an
        integer tensor (B,): diffusers' ``add_noise``."""
        _check_image(x0, "x0")
        _check_image(noise, "noise", like=x0, like_name="x0")
        if isinstance(t, torch.Tensor) and t.dim() == 1:
            if t.is_floating_point() or t.dtype == torch.bool:
                raise TypeError(f"t must be an integer tensor (batch,), got {describe(t)}")
            if t.shape[0] != x0.shape[0]:
                raise ValueError(f"t must have shape ({x0.shape[0]},) (one timestep per image), got {tuple(t.shape)}")
            if t.min() < 0 or t.max() >= self.num_train_timesteps:
                raise ValueError(f"t must be in [0, {self.num_train_timesteps}), got values in "
                                 f"[{t.min().item()}, {t.max().item()}]")
            t = t.to(x0.device)
        else:
            t = torch.full((x0.shape[0],), self._timestep(t), device=x0.device)   # (B,)
        alpha_bar = self.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t]    # (B,)
        shape = (-1,) + (1,) * (x0.dim() - 1)                                      # (B, 1, ..., 1)
        return (alpha_bar ** 0.5).view(shape) * x0 + ((1 - alpha_bar) ** 0.5).view(shape) * noise

    def velocity(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """The v-prediction target v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (diffusers' get_velocity):
        q_sample with the roles of x_0 and eps exchanged and eps's sign flipped."""
        return self.q_sample(noise, t, -x0)

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: int, prev_t: int | None = None) -> torch.Tensor:
        """mu~ of q(x_s | x_t, x_0), s = prev_t (default t - 1); the coefficients of Ho et al.'s eq. (7)."""
        s = t - 1 if prev_t is None else prev_t
        alpha_bar_t, alpha_bar_s = self.alpha_bar(t), self.alpha_bar(s)
        alpha_ts = alpha_bar_t / alpha_bar_s                  # 1 - beta_ts
        beta_ts = 1 - alpha_ts
        x0_coef = (alpha_bar_s ** 0.5 * beta_ts) / (1 - alpha_bar_t)
        x_t_coef = alpha_ts ** 0.5 * (1 - alpha_bar_s) / (1 - alpha_bar_t)
        return x0_coef * x0 + x_t_coef * x_t

    def posterior_variance(self, t: int, prev_t: int | None = None) -> torch.Tensor:
        """beta~ = (1 - alpha_bar_s) / (1 - alpha_bar_t) beta_ts of q(x_s | x_t, x_0), a 0-d tensor."""
        s = t - 1 if prev_t is None else prev_t
        alpha_bar_t, alpha_bar_s = self.alpha_bar(t), self.alpha_bar(s)
        return (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)

    def predict_x0_eps(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor, prediction_type: str = "epsilon"):
        """(x0_hat, eps_hat) from what the model predicts at x_t: eps, x_0 or v (see the module docstring)."""
        a, b = self.alphas_cumprod[t], 1 - self.alphas_cumprod[t]   # alpha_bar_t, 1 - alpha_bar_t
        if prediction_type == "epsilon":
            return (x_t - b ** 0.5 * model_output) / a ** 0.5, model_output
        if prediction_type == "sample":
            return model_output, (x_t - a ** 0.5 * model_output) / b ** 0.5
        if prediction_type == "v_prediction":
            return a ** 0.5 * x_t - b ** 0.5 * model_output, a ** 0.5 * model_output + b ** 0.5 * x_t
        raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(PREDICTION_TYPES)}")

    # ------------------------------------------------------------------ one reverse step
    def ddpm_step(self, model_output, t, sample, generator=None, variance_type="fixed_small",
                  prediction_type="epsilon", clip_sample=False, prev_t=None) -> torch.Tensor:
        """x_{t-1} ~ N(mu~(x0_hat, x_t), sigma^2 I): DDPMScheduler.step with the same noise draw (none at t = 0).
        ``prev_t`` (default t - 1) is the next timestep of a strided schedule."""
        check_one_of(variance_type, "variance_type", VARIANCE_TYPES)
        t, prev_t = self._check_step(model_output, t, sample, generator, prediction_type, prev_t)
        return self._ddpm_step(model_output, t, sample, generator, variance_type, prediction_type, clip_sample, prev_t)

    def _ddpm_step(self, model_output, t, sample, generator, variance_type, prediction_type, clip_sample, prev_t):
        x0_hat, _ = self.predict_x0_eps(model_output, t, sample, prediction_type)
        if clip_sample:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        x_prev = self.posterior_mean(x0_hat, sample, t, prev_t)
        if t > 0:
            z = _randn(model_output.shape, generator, model_output.device, model_output.dtype)
            if variance_type == "fixed_small":
                sigma2 = torch.clamp(self.posterior_variance(t, prev_t), min=1e-20)   # beta~
            else:
                sigma2 = 1 - self.alpha_bar(t) / self.alpha_bar(prev_t)               # beta_ts
            x_prev = x_prev + sigma2 ** 0.5 * z
        return x_prev

    def ddim_step(self, model_output, t, prev_t, sample, eta=0.0, generator=None, prediction_type="epsilon",
                  clip_sample=False) -> torch.Tensor:
        """x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s - sigma^2) eps_hat + sigma z, s = prev_t < t:
        DDIMScheduler.step (noise drawn only when eta > 0, as there)."""
        check_number(eta, "eta", 0.0, 1.0)
        t, prev_t = self._check_step(model_output, t, sample, generator, prediction_type, prev_t)
        return self._ddim_step(model_output, t, prev_t, sample, eta, generator, prediction_type, clip_sample)

    def _ddim_step(self, model_output, t, prev_t, sample, eta, generator, prediction_type, clip_sample):
        alpha_bar_s = self.alpha_bar(prev_t)
        x0_hat, eps_hat = self.predict_x0_eps(model_output, t, sample, prediction_type)
        if clip_sample:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        sigma = eta * self.posterior_variance(t, prev_t) ** 0.5
        x_prev = alpha_bar_s ** 0.5 * x0_hat + (1 - alpha_bar_s - sigma ** 2) ** 0.5 * eps_hat
        if eta > 0:
            x_prev = x_prev + sigma * _randn(model_output.shape, generator, model_output.device, model_output.dtype)
        return x_prev

    def timesteps(self, steps: int | None = None) -> list[int]:
        """diffusers' default "leading" spacing: k * (T // steps) for k = steps - 1, ..., 0 (all T when None)."""
        steps = self.num_train_timesteps if steps is None else steps
        check_int(steps, "steps", 1, self.num_train_timesteps)
        ratio = self.num_train_timesteps // steps
        return [k * ratio for k in reversed(range(steps))]


def _model_device_dtype(model):
    p = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return (p.device, p.dtype) if p is not None and p.is_floating_point() else (torch.device("cpu"), torch.float32)


@torch.no_grad()
def sample(model, schedule: NoiseSchedule, shape, steps=None, method="ddpm", eta=0.0, generator=None, cond=None,
           guidance_scale=1.0, *, uncond=None, variance_type="fixed_small", prediction_type="epsilon",
           clip_sample=False, device=None, dtype=None, init=None, strength=1.0) -> torch.Tensor:
    """Draw images (shape) from x_T ~ N(0, I) by ``steps`` reverse steps (all T when None) of DDPM or DDIM.

    SDEdit (Meng et al. 2022; chapter 09), with ``init`` x_0 (shape) and 0 < ``strength`` <= 1: only the last
    int(strength * steps) (at least one) reverse steps run, from x_t = q_sample(init, t, eps) at the first of
    them, as diffusers' image-to-image pipelines do (eps is the generator's first draw).

    ``model(x, t)``, or ``model(x, t, cond)`` when ``cond`` is given, with x (B, ...) and t a LongTensor (B,),
    returns a tensor like x or an object with ``.sample`` (diffusers' UNets). Classifier-free guidance, when
    ``guidance_scale`` s != 1 and ``cond`` is given: one call on the doubled batch [x, x] with conditions
    [uncond, cond], then out = out_uncond + s (out_cond - out_uncond). ``uncond`` is the condition the model saw when
    its text was dropped in training (an empty prompt's embedding, a null label); by default ``zeros_like(cond)``,
    so drop a condition by zeroing it. A batch-1 ``uncond`` is broadcast. Noise comes from ``generator`` as in
    diffusers' DDPMPipeline / DDIMPipeline; device and dtype default to the model's parameters'.
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x, t[, cond]), got {describe(model)}")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {describe(schedule)}")
    check_one_of(method, "method", METHODS)
    check_one_of(variance_type, "variance_type", VARIANCE_TYPES)
    check_one_of(prediction_type, "prediction_type", PREDICTION_TYPES)
    check_number(eta, "eta", 0.0, 1.0)
    check_number(guidance_scale, "guidance_scale", 0.0)
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 1 or \
            not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError(f"shape must be a tuple of positive ints (batch >= 1, ...), got {shape!r}")
    timesteps = schedule.timesteps(steps)
    check_number(strength, "strength", 0.0, 1.0, low_open=True)
    if init is not None:
        if not isinstance(init, torch.Tensor) or tuple(init.shape) != tuple(shape) or not init.is_floating_point():
            raise ValueError(f"init must be a float tensor of shape {tuple(shape)}, got {describe(init)}")
        timesteps = timesteps[len(timesteps) - max(1, int(len(timesteps) * strength)):]
    model_device, model_dtype = _model_device_dtype(model)
    device, dtype = torch.device(device or model_device), dtype or model_dtype
    _check_generator(generator, device)
    guided = cond is not None and guidance_scale != 1.0
    if cond is None and guidance_scale != 1.0:
        raise ValueError(f"guidance_scale={guidance_scale} needs a cond to guide towards; got cond=None")
    if cond is not None:
        if not isinstance(cond, torch.Tensor) or cond.dim() < 1 or cond.shape[0] != shape[0]:
            raise ValueError(f"cond must be a tensor with batch {shape[0]} first, got {describe(cond)}")
        uncond = torch.zeros_like(cond) if uncond is None else uncond
        if not isinstance(uncond, torch.Tensor) or uncond.shape[1:] != cond.shape[1:] or \
                uncond.shape[0] not in (1, cond.shape[0]) or uncond.dtype != cond.dtype:
            raise ValueError(f"uncond must be like cond {describe(cond)} (or its batch 1), got {describe(uncond)}")
        uncond = uncond.expand_as(cond)                                         # (B, ...) like cond
    ratio = schedule.num_train_timesteps // (steps or schedule.num_train_timesteps)   # the gap t - prev_t

    x = _randn(tuple(shape), generator, device, dtype)                        # x_T, (B, ...)
    if init is not None:                                                      # x_t of the first step run
        x = schedule.q_sample(init.to(device, dtype), timesteps[0], x)
    for t in timesteps:
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)   # (B,)
        if guided:
            out = model(torch.cat([x, x]), t_batch.repeat(2), torch.cat([uncond, cond]))   # (2B, ...)
        else:
            out = model(x, t_batch) if cond is None else model(x, t_batch, cond)
        out = out if isinstance(out, torch.Tensor) else getattr(out, "sample", out)
        if not isinstance(out, torch.Tensor) or out.shape != (2 * x.shape[0] if guided else x.shape[0], *x.shape[1:]):
            raise ValueError(f"the model must return a tensor (or .sample) shaped like its input x {tuple(x.shape)}, "
                             f"got {describe(out)}")
        if guided:
            out_uncond, out_cond = out.chunk(2)                                 # (B, ...) each
            out = out_uncond + guidance_scale * (out_cond - out_uncond)
        if method == "ddpm":
            x = schedule._ddpm_step(out, t, x, generator, variance_type, prediction_type, clip_sample, t - ratio)
        else:
            x = schedule._ddim_step(out, t, t - ratio, x, eta, generator, prediction_type, clip_sample)
    return x
