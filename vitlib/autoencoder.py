"""A small convolutional autoencoder: the latent space of latent diffusion (chapter 09; Rombach et al. 2022).

    z = s * E(x)          encoder, x (B, 3, H, W) in [0, 1] -> scaled latent z (B, c_z, H/f, W/f)
    x_hat = D(z / s)      decoder, z -> image (B, 3, H, W) in [0, 1] (a sigmoid, so any latent decodes)
    L = mean (x - x_hat)^2 + lambda * mean E(x)^2        reconstruction, and a tiny L2 penalty on the latent

The encoder halves the resolution once per entry of ``channels`` (f = 2^len(channels)); a diffusion model then
works on z instead of x. At chapter 09's 32x32 with f = 4 and c_z = 4 that is 8x8x4 = 256 numbers instead of
32x32x3 = 3072: 12x fewer, and each UNet layer runs on a 16x smaller map. The L2 penalty fixes the scale that
encoder and decoder could otherwise trade freely (the decoder's first convolution can undo any rescaling of z), much as
Stable Diffusion's autoencoder keeps a tiny KL term. ``scaling_factor`` s (Stable Diffusion's is 0.18215) is
1 / std of E(x) over the training renders, measured after training, so that z has about unit variance, the scale
the noise schedule of chapter 08 assumes.

Blocks: a residual block is GroupNorm -> SiLU -> 3x3 conv, twice, plus a skip (1x1 conv when the width changes).
Down: a stride-2 3x3 conv. Up: nearest upsampling and a 3x3 conv.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .checks import check_int, check_like, check_number, check_positive_ints, describe
from .zoo import register_model

__all__ = ["AutoencoderConfig", "Autoencoder", "ResBlock"]


@dataclass
class AutoencoderConfig:
    """in_channels, image_size: the images (square); latent_channels: c_z; channels: the width at each resolution,
    one halving per entry (f = 2^len(channels)); n_res_blocks: residual blocks per resolution; groups: GroupNorm
    groups (dividing every width); scaling_factor: s, z = s * E(x)."""

    in_channels: int = 3
    image_size: int = 32
    latent_channels: int = 4
    channels: tuple[int, ...] = (32, 64)
    n_res_blocks: int = 1
    groups: int = 8
    scaling_factor: float = 1.0

    def __post_init__(self):
        check_positive_ints(self, ["in_channels", "image_size", "latent_channels", "n_res_blocks", "groups"])
        if not isinstance(self.channels, (tuple, list)) or not self.channels:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels!r}")
        self.channels = tuple(self.channels)
        for i, c in enumerate(self.channels):
            check_int(c, f"channels[{i}]")
            if c % self.groups:
                raise ValueError(f"every entry of channels must be divisible by groups={self.groups}, "
                                 f"got channels={self.channels}")
        if self.image_size % self.factor:
            raise ValueError(f"image_size must be divisible by f = 2^len(channels) = {self.factor}, "
                             f"got image_size={self.image_size}")
        check_number(self.scaling_factor, "scaling_factor", low=0.0, low_open=True)

    @property
    def factor(self) -> int:
        """f: how many pixels along a side one latent position stands for."""
        return 2 ** len(self.channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c_z, H/f, W/f): one latent's shape."""
        side = self.image_size // self.factor
        return (self.latent_channels, side, side)


class ResBlock(nn.Module):
    """h = x' + conv(SiLU(GN(conv(SiLU(GN(x)))))), x' = x or a 1x1 conv of x when the width changes."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


@register_model(config_cls=AutoencoderConfig)
class Autoencoder(nn.Module):
    """E and D. ``encode``: images in [0, 1] -> scaled latents z; ``decode``: z -> images in [0, 1]; the call is
    D(E(x)). ``encode_unscaled`` / ``decode_unscaled`` work on E(x) itself (training, and measuring s)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if not isinstance(config, AutoencoderConfig):
            raise TypeError(f"Autoencoder expects an AutoencoderConfig, got {describe(config)}")
        c = self.config = config
        g, widths = c.groups, c.channels
        encoder = [nn.Conv2d(c.in_channels, widths[0], 3, padding=1)]
        c_prev = widths[0]
        for width in widths:                                       # H -> H/2 -> ... -> H/f
            for _ in range(c.n_res_blocks):
                encoder.append(ResBlock(c_prev, width, g))
                c_prev = width
            encoder.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        encoder += [ResBlock(c_prev, c_prev, g), nn.GroupNorm(g, c_prev), nn.SiLU(),
                    nn.Conv2d(c_prev, c.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*encoder)
        decoder = [nn.Conv2d(c.latent_channels, c_prev, 3, padding=1), ResBlock(c_prev, c_prev, g)]
        for width in reversed(widths):                             # H/f -> ... -> H/2 -> H
            for _ in range(c.n_res_blocks):
                decoder.append(ResBlock(c_prev, width, g))
                c_prev = width
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1)]
        decoder += [nn.GroupNorm(g, c_prev), nn.SiLU(), nn.Conv2d(c_prev, c.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)

    def _check(self, x, name: str, shape: tuple[int, ...], what: str) -> None:
        """x must be a float tensor (B, *shape) with B >= 1, finite, on the model's device and dtype."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (B, {', '.join(map(str, shape))}) of {what}, "
                            f"got {describe(x)}")
        if x.dim() != 1 + len(shape) or tuple(x.shape[1:]) != shape or len(x) == 0:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}) with B >= 1 ({what}), "
                             f"got {tuple(x.shape)}")
        check_like(x, name, self.encoder[0].weight)
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or infinite values")

    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        """E(x): images (B, 3, H, W) in [0, 1] -> (B, c_z, H/f, W/f), before the scaling factor."""
        c = self.config
        self._check(x, "x", (c.in_channels, c.image_size, c.image_size), "images in [0, 1]")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"x must hold images in [0, 1], got values in [{x.min().item():.3g}, "
                             f"{x.max().item():.3g}] (images in [-1, 1]? pass (x + 1) / 2)")
        return self.encoder(x)                                     # (B, c_z, H/f, W/f)

    def decode_unscaled(self, h: torch.Tensor) -> torch.Tensor:
        """D(h): unscaled latents (B, c_z, H/f, W/f) -> images (B, 3, H, W) in [0, 1]."""
        self._check(h, "z", self.config.latent_shape, "latents")
        return torch.sigmoid(self.decoder(h))                      # (B, 3, H, W) in (0, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = s * E(x): images (B, 3, H, W) in [0, 1] -> scaled latents (B, c_z, H/f, W/f)."""
        return self.encode_unscaled(x) * self.config.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = D(z / s): scaled latents (B, c_z, H/f, W/f), on the data manifold or off it (what a diffusion
        model samples) -> images (B, 3, H, W) in [0, 1]."""
        self._check(z, "z", self.config.latent_shape, "scaled latents")
        return self.decode_unscaled(z / self.config.scaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x_hat = D(E(x))."""
        return self.decode(self.encode(x))
