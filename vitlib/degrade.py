"""Degraded renders: what generated images look like, so that a judge can be tested on them (chapter 09).

A generator's images are not clean renders: an L2 decoder blurs, a diffusion sampler leaves some noise, colours
drift, and a 24x24 image is scaled up to the judge's 32x32. Each degradation is a function of a float image batch
(B, 3, H, W) in [0, 1] that returns the same shape in [0, 1]; the random ones take a ``torch.Generator`` and draw
on the CPU, so the same generator gives the same pixels on every device.

    blur       x * G_sigma                        separable Gaussian kernel, radius ceil(3 sigma), edges reflected
    noise      clip(x + sigma eps), eps ~ N(0, I)
    jitter     clip(bg + g_c (x - bg) + o_c)      per image and channel: gain g_c ~ U[1 - s, 1 + s] (contrast to the
                                                  background bg), offset o_c ~ U[-s/10, s/10] (the background drifts)
    resample   down to ``size`` and back up (bilinear, antialiased): the blur of a smaller generator's output

``LEVELS`` names the strengths chapter 09 measures a judge at; ``degrade(images, name, generator)`` applies one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import check_int, check_number, describe
from .data.render import BACKGROUND

__all__ = ["gaussian_kernel", "blur", "noise", "jitter", "resample", "degrade", "LEVELS", "random_degrade"]

# name -> list of (degradation, strength) applied in order; "clean" leaves the images as they are.
LEVELS: dict[str, tuple[tuple[str, float], ...]] = {
    "clean": (),
    "blur 0.5": (("blur", 0.5),), "blur 1.0": (("blur", 1.0),), "blur 1.5": (("blur", 1.5),),
    "noise 0.05": (("noise", 0.05),), "noise 0.1": (("noise", 0.1),), "noise 0.2": (("noise", 0.2),),
    "jitter 0.1": (("jitter", 0.1),), "jitter 0.2": (("jitter", 0.2),), "jitter 0.3": (("jitter", 0.3),),
    "resample 16": (("resample", 16),), "resample 24": (("resample", 24),),
    "all": (("resample", 24), ("blur", 1.0), ("jitter", 0.2), ("noise", 0.1)),
}


def check_batch(images) -> None:
    """Raise unless ``images`` is a float tensor (B, 3, H, W)."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (B, 3, H, W) in [0, 1], got {describe(images)}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")


def _rand(shape, generator, like: torch.Tensor, normal: bool = False) -> torch.Tensor:
    """Draw on the CPU (same numbers on every device), then move to the images' device and dtype."""
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator).to(like.device, like.dtype)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The 1-D kernel G_sigma(k) = exp(-k^2 / 2 sigma^2) / Z for k = -r..r, r = ceil(3 sigma): shape (2r + 1,)."""
    check_number(sigma, "sigma", low=0, high=8)
    r = max(1, math.ceil(3 * sigma)) if sigma > 0 else 0
    k = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-k**2 / (2 * sigma**2)) if sigma > 0 else torch.ones(1)
    return g / g.sum()


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur x * G_sigma, separable (rows, then columns), edges reflected; sigma = 0 returns a copy."""
    check_batch(images)
    g = gaussian_kernel(sigma).to(images.device, images.dtype)
    r = len(g) // 2
    if r == 0:
        return images.clone()
    if r >= min(images.shape[-2:]):
        raise ValueError(f"sigma={sigma} needs a kernel radius {r} smaller than the image, got "
                         f"{images.shape[-2]}x{images.shape[-1]}")
    B, C, H, W = images.shape
    x = images.reshape(B * C, 1, H, W)                                        # (B C, 1, H, W): one channel each
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))  # along rows
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))  # along columns
    return x.reshape(B, C, H, W).clamp(0, 1)


def noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """clip(x + sigma eps, 0, 1), eps ~ N(0, I) drawn from ``generator``."""
    check_batch(images)
    check_number(sigma, "sigma", low=0, high=1)
    _check_generator(generator)
    return (images + sigma * _rand(images.shape, generator, images, normal=True)).clamp(0, 1)


def jitter(images: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """clip(bg + g (x - bg) + o): per image and channel a gain g ~ U[1 - s, 1 + s] of the contrast to the
    background and an offset o ~ U[-s/10, s/10]. Up to s = 0.15 every palette colour stays nearest to its own
    name at every corner of the box; at s = 0.2 the darkest corner of yellow is nearer orange, at 0.3 orange,
    yellow and purple have corners nearer a neighbour (so a judge may rightly miss a few colours there)."""
    check_batch(images)
    check_number(strength, "strength", low=0, high=1)
    _check_generator(generator)
    B = images.shape[0]
    bg = torch.tensor(BACKGROUND, dtype=images.dtype, device=images.device).view(1, 3, 1, 1) / 255
    gain = 1 + strength * (2 * _rand((B, 3, 1, 1), generator, images) - 1)             # (B, 3, 1, 1)
    offset = strength / 10 * (2 * _rand((B, 3, 1, 1), generator, images) - 1)         # (B, 3, 1, 1)
    return (bg + gain * (images - bg) + offset).clamp(0, 1)


def resample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Down to size x size and back to the images' own size, bilinear with antialiasing."""
    check_batch(images)
    check_int(size, "size", minimum=2, maximum=images.shape[-1])
    small = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)


DEGRADATIONS = {"blur": blur, "noise": noise, "jitter": jitter, "resample": resample}
RANDOM = ("noise", "jitter")   # the ones that draw


def degrade(images: torch.Tensor, level: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the degradations of ``LEVELS[level]`` in order."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; allowed: {', '.join(LEVELS)}")
    check_batch(images)
    out = images
    for name, strength in LEVELS[level]:
        out = DEGRADATIONS[name](out, strength, generator) if name in RANDOM else DEGRADATIONS[name](out, strength)
    return out


def random_degrade(images: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.8,
                   max_blur: float = 1.5, max_noise: float = 0.2, max_jitter: float = 0.3,
                   sizes: tuple[int, ...] = (16, 24)) -> torch.Tensor:
    """A training augmentation: with probability ``p`` each image gets each degradation at a strength drawn
    uniformly up to its maximum (resample: to one of ``sizes``, with probability p / 2); the rest stay clean.
    Images are degraded one strength at a time, so a batch mixes clean and degraded images."""
    check_batch(images)
    check_number(p, "p", low=0, high=1)
    _check_generator(generator)
    out = []
    for x in images.split(1):                                                   # (1, 3, H, W) each
        u = torch.rand(5, generator=generator).tolist()
        if u[0] < p / 2 and sizes:
            x = resample(x, sizes[int(u[1] * len(sizes)) % len(sizes)])
        if u[0] < p:
            x = blur(x, round(max_blur * u[2], 2))
            x = jitter(x, max_jitter * u[3], generator)
            x = noise(x, max_noise * u[4], generator)
        out.append(x)
    return torch.cat(out)
