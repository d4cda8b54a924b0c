"""A convolutional decoder from a text embedding to an image: seed 000's simplest text-to-image model (chapter 09).

    x_hat = D(t),  t = CLIP text embedding (frozen),   L2 = mean ||x_hat - x||^2 over pixels

D maps t to a small feature map (a linear layer), then doubles its resolution stage by stage (nearest upsampling,
3x3 convolution, GroupNorm, SiLU) and ends in a 3x3 convolution and a sigmoid (pixels in [0, 1]):

    t (B, text_dim) -> (B, C_0, s, s) -> (B, C_1, 2s, 2s) -> ... -> (B, 3, s 2^L, s 2^L)

It is deterministic: one prompt, one image. Trained with L2 on a prompt that leaves size or position open, its
best answer is the mean of every image the prompt allows: a blurred average, never one of them (chapter 09 shows
it and measures it; conditional diffusion then samples instead of averaging).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_positive_ints, describe
from .zoo import register_model

__all__ = ["TextDecoderConfig", "TextDecoder"]


@dataclass
class TextDecoderConfig:
    """text_dim: width of the text embedding; channels: feature channels from the first (smallest) map to the
    last; base_size: side of the first map. The image side is base_size * 2^(len(channels) - 1)."""

    text_dim: int = 64
    channels: tuple[int, ...] = (128, 64, 32, 32)
    base_size: int = 3
    out_channels: int = 3

    def __post_init__(self):
        check_positive_ints(self, ["text_dim", "base_size", "out_channels"])
        if not isinstance(self.channels, (tuple, list)) or not self.channels or not all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels!r}")
        self.channels = tuple(self.channels)

    @property
    def image_size(self) -> int:
        return self.base_size * 2 ** (len(self.channels) - 1)


def _groups(c: int) -> int:
    """GroupNorm groups: 8 when they divide the channels, else 1."""
    return 8 if c % 8 == 0 else 1


@register_model(config_cls=TextDecoderConfig)
class TextDecoder(nn.Module):
    """D(t): text embedding (B, text_dim) -> image (B, out_channels, image_size, image_size) in [0, 1]."""

    def __init__(self, config: TextDecoderConfig):
        super().__init__()
        if not isinstance(config, TextDecoderConfig):
            raise TypeError(f"TextDecoder expects a TextDecoderConfig, got {describe(config)}")
        c = self.config = config
        self.project = nn.Linear(c.text_dim, c.channels[0] * c.base_size**2)
        stages = []
        for c_in, c_out in zip(c.channels[:-1], c.channels[1:]):
            stages += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                       nn.GroupNorm(_groups(c_out), c_out), nn.SiLU()]
        self.stages = nn.Sequential(*stages)
        self.to_image = nn.Conv2d(c.channels[-1], c.out_channels, 3, padding=1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"t must be a float tensor (B, {c.text_dim}), got {describe(t)}")
        if t.dim() != 2 or t.shape[1] != c.text_dim:
            raise ValueError(f"t must have shape (B, {c.text_dim}), got {tuple(t.shape)}")
        h = self.project(t).view(len(t), c.channels[0], c.base_size, c.base_size)    # (B, C_0, s, s)
        h = self.stages(h)                                                           # (B, C_L, S, S)
        return torch.sigmoid(self.to_image(h))                                       # (B, 3, S, S) in [0, 1]
