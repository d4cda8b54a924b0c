"""A small UNet: the denoiser eps_theta(x_t, t) of chapter 08 (DDPM), with cross-attention to text for chapter 09.

Time embedding (Ho et al., 2020): the Transformer sinusoid PE of chapter 01, read at position t:
    emb(t)[2i]   = sin(t * theta_i),   emb(t)[2i+1] = cos(t * theta_i),   theta_i = 10000^(-2i / d)
then an MLP, e(t) = W_2 SiLU(W_1 emb(t)), added to every residual block:
    h = Conv(SiLU(GN(x))) + W_t SiLU(e(t));   ResBlock(x, t) = skip(x) + Conv(SiLU(GN(h)))
Self-attention (chapter 02) runs over the H*W positions where ``UNetConfig.attention_levels`` asks (by default
the lowest resolution); with ``cond_dim`` set, the same blocks also cross-attend to context tokens c (B, S, cond_dim),
e.g. a text encoder's hidden states (chapter 09): x <- x + CrossAttn(LN(x), c). Skip connections carry each level's
features from the down path to the up path, where they are concatenated.

diffusers' ``get_timestep_embedding`` puts all sines before all cosines (UNet2DModel flips them, cosines first):
the same features in another order. ``DDPMPipeline`` calls ``unet(x, t).sample``: set ``unet.return_dict = True`` (the
``return_dict`` pattern of transformers' models), or pass ``return_dict=True``, to get a ``UNetOutput``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import MultiHeadAttention
from .checks import check_divisible, check_int, check_like, check_positive_ints, describe
from .positional import frequencies
from .zoo import register_model

__all__ = ["UNetConfig", "UNet", "UNetOutput", "timestep_embedding", "parameter_count_by_part"]


def timestep_embedding(t: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """emb(t) (B, dim) for integer timesteps t (B,): sin(t theta_i) in even features, cos(t theta_i) in odd ones,
    computed in float64 (float32 on MPS) and returned as float32. Row t equals ``sinusoidal_encoding(T, dim)[t]``."""
    wide = torch.float32 if t.device.type == "mps" else torch.float64
    angle = t.to(wide)[:, None] * frequencies(dim, base).to(wide).to(t.device)   # (B, dim/2)
    emb = torch.stack([angle.sin(), angle.cos()], dim=-1)                        # (B, dim/2, 2)
    return rearrange(emb, "b i two -> b (i two)").float()                         # (B, dim): sin, cos, sin, ...


@dataclass
class UNetConfig:
    """Sizes of the UNet. ``channels[i]`` is the width of level i, whose images are sample_size / 2^i pixels wide;
    ``attention_levels`` lists the levels (0 = full resolution) whose blocks attend, and the middle block attends
    when the lowest level is among them. ``cond_dim``: width of context tokens for cross-attention (None: none)."""

    in_channels: int = 1
    out_channels: int = 1
    sample_size: int = 16
    channels: tuple[int, ...] = (32, 64)
    layers_per_level: int = 1
    attention_levels: tuple[int, ...] = (1,)
    n_heads: int = 4
    time_dim: int = 128
    norm_groups: int = 8
    num_timesteps: int = 1000
    cond_dim: int | None = None

    def __post_init__(self):
        self.channels, self.attention_levels = tuple(self.channels), tuple(self.attention_levels)
        check_positive_ints(self, ["in_channels", "out_channels", "sample_size", "layers_per_level", "n_heads",
                                   "time_dim", "norm_groups", "num_timesteps"])
        if not self.channels:
            raise ValueError("channels must list the width of at least one level, got ()")
        for i, c in enumerate(self.channels):
            check_int(c, f"channels[{i}]")
            check_divisible(c, f"channels[{i}]", self.norm_groups, "norm_groups")   # GroupNorm splits C
            check_divisible(c, f"channels[{i}]", self.n_heads, "n_heads")
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (sin and cos come in pairs), got {self.time_dim}")
        for level in self.attention_levels:
            if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(self.channels):
                raise ValueError(f"attention_levels must hold levels in [0, {len(self.channels)}), got "
                                 f"{self.attention_levels}")
        check_divisible(self.sample_size, "sample_size", self.factor, "2^(levels - 1)")
        if self.cond_dim is not None:
            check_int(self.cond_dim, "cond_dim")

    @property
    def factor(self) -> int:
        """How much the lowest level shrinks an image: 2^(number of levels - 1)."""
        return 2 ** (len(self.channels) - 1)


@dataclass
class UNetOutput:
    """What diffusers' pipelines read: ``unet(x, t).sample``."""

    sample: torch.Tensor


class ResBlock(nn.Module):
    """skip(x) + Conv(SiLU(GN(Conv(SiLU(GN(x))) + W_t SiLU(e(t))))): the time embedding shifts every channel."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                                      # (B, C_out, H, W)
        h = h + self.time_proj(F.silu(temb))[:, :, None, None]                     # (B, C_out, 1, 1) over H, W
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class AttentionBlock(nn.Module):
    """x + SelfAttn(GN(x)) over the H*W positions; with ``cond_dim``, then + CrossAttn(LN(x), context)."""

    def __init__(self, channels: int, n_heads: int, groups: int, cond_dim: int | None = None):
        super().__init__()
        self.norm, self.attn = nn.GroupNorm(groups, channels), MultiHeadAttention(channels, n_heads)
        self.cross_norm = nn.LayerNorm(channels) if cond_dim else None
        self.cross = MultiHeadAttention(channels, n_heads, d_context=cond_dim) if cond_dim else None

    def forward(self, x, cond=None, cond_mask=None) -> torch.Tensor:
        H, W = x.shape[-2:]
        h = rearrange(x, "b c h w -> b (h w) c") + \
            self.attn(rearrange(self.norm(x), "b c h w -> b (h w) c"))              # (B, HW, C)
        if cond is not None and self.cross is not None:
            a = self.cross(self.cross_norm(h), context=cond, attention_mask=cond_mask)  # (B, HW, C)
            if cond_mask is not None:   # a row with no real token attends to nothing: 0, not NaN (older torch)
                a = a.masked_fill(~cond_mask.any(dim=1)[:, None, None], 0.0)       # mask (B, 1, 1)
            h = h + a
        return rearrange(h, "b (h w) c -> b c h w", h=H, w=W)                      # (B, C, H, W)


class Level(nn.Module):
    """``layers_per_level`` residual blocks (each followed by attention where asked), then ``resample``."""

    def __init__(self, c_in: int, c_out: int, c: UNetConfig, attention: bool, resample: nn.Module, n_layers=None):
        super().__init__()
        n = c.layers_per_level if n_layers is None else n_layers
        self.res = nn.ModuleList(ResBlock(c_in if i == 0 else c_out, c_out, c.time_dim, c.norm_groups)
                                 for i in range(n))
        self.attn = nn.ModuleList(AttentionBlock(c_out, c.n_heads, c.norm_groups, c.cond_dim)
                                  for _ in range(n)) if attention else None
        self.resample = resample

    def forward(self, x, temb, cond=None, cond_mask=None) -> torch.Tensor:
        for i, res in enumerate(self.res):
            x = res(x, temb)
            if self.attn is not None:
                x = self.attn[i](x, cond, cond_mask)
        return x


def _down(ch: int) -> nn.Module:
    return nn.Conv2d(ch, ch, 3, stride=2, padding=1)                               # (B, C, H/2, W/2)


def _up(ch: int) -> nn.Module:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1))  # (2H, 2W)


@register_model(config_cls=UNetConfig)
class UNet(nn.Module):
    """eps_theta(x_t, t[, c]): forward(x (B, C_in, H, W), t int (B,) or scalar, cond (B, S, cond_dim) or None,
    cond_mask bool (B, S), True = real token) -> (B, C_out, H, W); H and W divisible by 2^(levels - 1)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"UNet expects a UNetConfig, got {type(config).__name__}")
        c = self.config = config
        self.return_dict = False   # True: return UNetOutput, as diffusers' pipelines expect
        ch, last = c.channels, len(c.channels) - 1
        self.time_embed = nn.Sequential(nn.Linear(c.time_dim, c.time_dim), nn.SiLU(), nn.Linear(c.time_dim, c.time_dim))
        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(Level(ch[max(i - 1, 0)], ch[i], c, i in c.attention_levels,
                                        _down(ch[i]) if i < last else nn.Identity()) for i in range(len(ch)))
        self.middle = Level(ch[-1], ch[-1], c, last in c.attention_levels, nn.Identity(), n_layers=1)
        self.middle_res = ResBlock(ch[-1], ch[-1], c.time_dim, c.norm_groups)
        self.up = nn.ModuleList(Level(ch[min(i + 1, last)] + ch[i], ch[i], c, i in c.attention_levels,
                                      _up(ch[i]) if i > 0 else nn.Identity()) for i in reversed(range(len(ch))))
        self.out = nn.Sequential(nn.GroupNorm(c.norm_groups, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], c.out_channels, 3,
                                                                                          padding=1))

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.conv_in.weight.device

    def forward(self, x, t, cond=None, cond_mask=None, return_dict: bool | None = None):
        t, cond, cond_mask = self._check(x, t, cond, cond_mask)
        temb = self.time_embed(timestep_embedding(t, self.config.time_dim).to(x.dtype))   # e(t) (B, time_dim)
        h, skips = self.conv_in(x), []                                                   # (B, ch[0], H, W)
        for level in self.down:
            h = level(h, temb, cond, cond_mask)
            skips.append(h)                                                              # (B, ch[i], H_i, W_i)
            h = level.resample(h)                                                        # (B, ch[i], H_i/2, W_i/2)
        h = self.middle_res(self.middle(h, temb, cond, cond_mask), temb)                # Res, Attn, Res
        for level in self.up:
            h = torch.cat([h, skips.pop()], dim=1)                                       # (B, ch[i+1] + ch[i], ..)
            h = level.resample(level(h, temb, cond, cond_mask))                          # (B, ch[i], 2H_i, 2W_i)
        out = self.out(h)                                                                # (B, C_out, H, W)
        return UNetOutput(out) if (self.return_dict if return_dict is None else return_dict) else out

    def _check(self, x, t, cond, cond_mask):
        """Check every input (before any large allocation); return t as a (B,) long tensor on x's device."""
        c = self.config
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (B, {c.in_channels}, H, W), got {describe(x)}")
        check_like(x, "x", self.conv_in.weight)
        if x.dim() != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"x must have shape (B, {c.in_channels}, H, W), got {tuple(x.shape)}")
        B, _, H, W = x.shape
        if B == 0:
            raise ValueError(f"x is an empty batch: expected (B >= 1, {c.in_channels}, H, W), got {tuple(x.shape)}")
        if H == 0 or W == 0 or H % c.factor or W % c.factor:
            raise ValueError(f"x's height and width must be positive multiples of 2^(levels - 1) = {c.factor} "
                             f"(the down path halves them {len(c.channels) - 1} times), got {H}x{W}")
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            t = torch.tensor(t)
        if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must be integer timesteps (an int or an int tensor of shape () or ({B},)), "
                            f"got {describe(t)}")
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != B):
            raise ValueError(f"t must have shape () or ({B},), got {tuple(t.shape)}")
        if t.min() < 0 or t.max() >= c.num_timesteps:
            raise ValueError(f"t must lie in [0, {c.num_timesteps}), got values in [{t.min().item()}, "
                             f"{t.max().item()}]")
        if not torch.isfinite(x).all():
            raise ValueError("x holds NaN or infinite values")
        if cond is None:
            if cond_mask is not None:
                raise ValueError("cond_mask was given without cond")
        else:
            if c.cond_dim is None:
                raise ValueError("this UNet has no cross-attention (UNetConfig.cond_dim is None) but got cond")
            check_like(cond, "cond", self.conv_in.weight)
            if cond.dim() != 3 or cond.shape[0] != B or cond.shape[2] != c.cond_dim or cond.shape[1] == 0:
                raise ValueError(f"cond must have shape ({B}, S >= 1, {c.cond_dim}), got {tuple(cond.shape)}")
            if cond_mask is not None and (not isinstance(cond_mask, torch.Tensor) or cond_mask.dtype != torch.bool
                                          or tuple(cond_mask.shape) != tuple(cond.shape[:2])
                                          or cond_mask.device != x.device):
                raise ValueError(f"cond_mask must be a bool tensor of shape {tuple(cond.shape[:2])} "
                                 f"(True = real token) on {x.device}, got {describe(cond_mask)}")
        return t.to(x.device).long().expand(B), cond, cond_mask                          # (B,)


def parameter_count_by_part(model: UNet) -> dict[str, int]:
    """Scalar parameters per part: time embedding, input conv, down path, middle, up path, output."""
    if not isinstance(model, UNet):
        raise TypeError(f"parameter_count_by_part expects a UNet, got {type(model).__name__}")
    parts = {"time embedding": [model.time_embed], "input": [model.conv_in], "down path": [model.down],
             "middle": [model.middle, model.middle_res], "up path": [model.up], "output": [model.out]}
    return {name: sum(p.numel() for m in mods for p in m.parameters()) for name, mods in parts.items()}
