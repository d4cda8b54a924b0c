"""Seeing: a small CNN encoder, patch embedding and the Vision Transformer (chapter 04).

    v = CNN(I)                       conv-norm-ReLU stages, then global average pooling v_d = mean_ij F_dij
    patches:  x_p = rearrange(I, "c (h p1) (w p2) -> (h w) (p1 p2 c)")       N = HW / P^2 patches of P^2 C values
    ViT:      z_0 = [x_cls; x_p E] + E_pos,   z_L = Encoder(z_0),   v = z_L[0]      (Dosovitskiy et al., 2021)

A patch embedding (flatten each patch, then one Linear) is the same map as a Conv2d with kernel = stride = P; the
tests prove it. ``vitlib.classifier`` puts attribute heads on either encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from .checks import (MAX_SIZE, check_divisible, check_int, check_like, check_number, check_one_of,
                     check_positive_ints, check_probability, describe)
from .transformer import ACTIVATIONS, Encoder
from .zoo import register_model

NORMS = ("batch", "group")
PADDING_MODES = ("zeros", "circular")


def check_images(images, in_channels: int, image_size: int | None = None) -> None:
    """Raise TypeError/ValueError unless ``images`` is a float tensor (B, in_channels, H, W) (H = W = image_size)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a float tensor (B, {in_channels}, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor with values in [0, 1], got dtype {images.dtype}")
    if images.dim() != 4 or images.shape[1] != in_channels:
        raise ValueError(f"images must have shape (B, {in_channels}, H, W), got {tuple(images.shape)}")
    if 0 in images.shape[-2:]:
        raise ValueError(f"images must have at least one pixel in each direction, got {tuple(images.shape)}")
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"images must be {image_size}x{image_size}, got {images.shape[-2]}x{images.shape[-1]}")


# ----- v = CNN(I) ------------------------------------------------------------------------------------------------
@dataclass
class CNNConfig:
    """A small CNN: one conv-norm-ReLU stage per entry of ``channels``; every stage after the first halves the
    resolution (3x3 convolutions, stride 1 then 2, one pixel of padding). Its receptive field is
    r = 1 + sum_l (k_l - 1) prod_{i<l} s_i: 17 pixels for four stages."""

    in_channels: int = 3
    channels: tuple[int, ...] = (16, 32, 64, 64)
    norm: str = "batch"   # "batch" (BatchNorm2d) or "group" (GroupNorm, gcd(8, channels) groups)
    padding_mode: str = "zeros"   # "zeros", or "circular": the image wraps around, so no border can be seen

    def __post_init__(self):
        iterable = hasattr(self.channels, "__iter__") and not isinstance(self.channels, str)
        if not (channels := tuple(self.channels) if iterable else ()):
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels!r}")
        self.channels = channels
        check_positive_ints(self, ["in_channels"])
        for i, c in enumerate(self.channels):
            check_int(c, f"channels[{i}]")
        check_one_of(self.norm, "norm", NORMS)
        check_one_of(self.padding_mode, "padding_mode", PADDING_MODES)


@register_model(config_cls=CNNConfig)
class CNNEncoder(nn.Module):
    """v = CNN(I): images (B, C, H, W) -> feature vectors (B, channels[-1]); the feature map on request."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        if not isinstance(config, CNNConfig):
            raise TypeError(f"CNNEncoder expects a CNNConfig, got {type(config).__name__}")
        self.config = config
        self.feature_dim = config.channels[-1]
        stages, c_in = [], config.in_channels
        for i, c_out in enumerate(config.channels):
            conv = nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1, padding_mode=config.padding_mode,
                             bias=False)   # the norm has the bias
            norm = nn.BatchNorm2d(c_out) if config.norm == "batch" else nn.GroupNorm(math.gcd(8, c_out), c_out)
            stages += [conv, norm, nn.ReLU(inplace=True)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)

    def forward(self, images: torch.Tensor, return_feature_map: bool = False):
        """images (B, C, H, W) in [0, 1] -> v (B, D); with ``return_feature_map`` also F (B, D, h, w), where
        h = H / 2^(S-1) for S stages."""
        check_images(images, self.config.in_channels)
        check_like(images, "images", self.stages[0].weight)
        fmap = self.stages(images)     # (B, D, h, w): every stage after the first halves H and W
        v = fmap.mean(dim=(2, 3))      # global average pooling: (B, D)
        return (v, fmap) if return_feature_map else v


# ----- patches -----------------------------------------------------------------------------------------------------
def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C): non-overlapping P x P patches, row by row, each flattened (p1, p2, c)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (B, C, H, W), got {describe(images)}")
    check_int(patch_size, "patch_size")   # before einops, which would cache a pattern built from a bad size
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f"image size {H}x{W} is not divisible by patch_size={patch_size}")
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


class PatchEmbedding(nn.Module):
    """x_p E: cut the image into N = (image_size / P)^2 patches, flatten each, project to d_model with one Linear."""

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int):
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("in_channels", in_channels),
                            ("d_model", d_model)):
            check_int(value, name)
        check_divisible(image_size, "image_size", patch_size, "patch_size")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Linear(patch_size * patch_size * in_channels, d_model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.in_channels, self.image_size)
        check_like(images, "images", self.proj.weight)
        return self.proj(patchify(images, self.patch_size))   # (B, N, d_model)

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, image_size: int) -> PatchEmbedding:
        """The PatchEmbedding computing the same map as ``conv`` (kernel_size = stride = P, no padding)."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"expected nn.Conv2d, got {type(conv).__name__}")
        P = conv.kernel_size[0]
        if conv.kernel_size != (P, P) or conv.stride != (P, P) or conv.padding != (0, 0) or conv.bias is None:
            raise ValueError(f"need a square conv with kernel_size = stride, no padding and a bias; got "
                             f"kernel_size={conv.kernel_size}, stride={conv.stride}, padding={conv.padding}")
        ours = cls(image_size, P, conv.in_channels, conv.out_channels).to(conv.weight.device, conv.weight.dtype)
        with torch.no_grad():   # conv weight (D, C, P, P) -> linear weight (D, P*P*C), flattened like the patches
            ours.proj.weight.copy_(rearrange(conv.weight, "d c p1 p2 -> d (p1 p2 c)"))
            ours.proj.bias.copy_(conv.bias)
        return ours


# ----- the Vision Transformer -----------------------------------------------------------------------------------------
@dataclass
class ViTConfig:
    """Sizes of a ViT. ``d_ff`` defaults to 4 * d_model; N = (image_size / patch_size)^2 patches + 1 class token."""

    image_size: int = 32
    patch_size: int = 4
    in_channels: int = 3
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    norm_eps: float = 1e-5
    pre_norm: bool = False   # a LayerNorm on z_0 before the encoder, as CLIP's vision tower has (chapter 05)
    activation: str = "gelu"   # the FFN's, one of vitlib.activations.ACTIVATIONS (OpenAI's CLIP: "quick_gelu")

    def __post_init__(self):
        check_positive_ints(self, ["image_size", "patch_size", "in_channels", "d_model", "n_layers", "n_heads"])
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_positive_ints(self, ["d_ff"], maximum=4 * MAX_SIZE)
        check_divisible(self.image_size, "image_size", self.patch_size, "patch_size")
        check_divisible(self.d_model, "d_model", self.n_heads, "n_heads")
        if self.n_patches > MAX_SIZE:   # the position table alone would hold (1 + N) * d_model numbers
            raise ValueError(f"image_size={self.image_size} with patch_size={self.patch_size} gives {self.n_patches} "
                             f"patches; at most {MAX_SIZE} are allowed")
        check_probability(self.dropout, "dropout")
        check_number(self.norm_eps, "norm_eps", 0.0, low_open=True)
        if not isinstance(self.pre_norm, bool):
            raise TypeError(f"pre_norm must be a bool, got {self.pre_norm!r}")
        check_one_of(self.activation, "activation", ACTIVATIONS)

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@register_model(config_cls=ViTConfig)
class ViT(nn.Module):
    """Vision Transformer: images (B, C, H, W) in [0, 1] -> the class token's final state (B, d_model)."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"ViT expects a ViTConfig, got {type(config).__name__}")
        c = self.config = config
        self.feature_dim = c.d_model
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, c.in_channels, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_emb = nn.Parameter(torch.randn(1, 1 + c.n_patches, c.d_model) * 0.02)
        self.pre_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if c.pre_norm else nn.Identity()
        self.drop = nn.Dropout(c.dropout)
        self.encoder = Encoder(c.d_model, c.n_heads, c.n_layers, c.d_ff, c.dropout, c.activation, c.norm_eps)

    def forward(self, images: torch.Tensor, return_tokens: bool = False):
        """images (B, C, H, W) -> v = z_L[:, 0] (B, d_model); with ``return_tokens`` also z_L (B, 1 + N, d_model)."""
        x = self.patch_embed(images)                          # (B, N, d_model); checks the images
        cls = self.cls_token.expand(x.shape[0], -1, -1)       # (B, 1, d_model)
        z = self.drop(self.pre_norm(torch.cat([cls, x], dim=1) + self.pos_emb))   # (B, 1 + N, d_model)
        z = self.encoder(z)                                   # (B, 1 + N, d_model), after the final LayerNorm
        return (z[:, 0], z) if return_tokens else z[:, 0]

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Head-averaged self-attention weights of every layer: (n_layers, B, 1 + N, 1 + N); token 0 is CLS.

        A forward hook keeps each block's LayerNorm'd input; its attention module is then run again on it with
        ``need_weights=True``.
        """
        inputs = []
        hooks = [b.norm1.register_forward_hook(lambda m, args, out: inputs.append(out)) for b in self.encoder.blocks]
        try:
            self(images)
        finally:
            for h in hooks:
                h.remove()
        return torch.stack([b.attn(x, need_weights=True)[1] for b, x in zip(self.encoder.blocks, inputs)])
