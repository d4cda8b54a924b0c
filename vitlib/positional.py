"""Positional encodings: sinusoidal, learned and rotary (chapter 01).

Attention treats its input as a set; these tell a model where each token is.

Sinusoidal (Vaswani et al., 2017), added to the token embeddings:
    PE[pos, 2i]   = sin(pos / base^(2i / d))
    PE[pos, 2i+1] = cos(pos / base^(2i / d))

Learned: a table P in R^(max_len x d), one trained row per position, added the same way.

Rotary, RoPE (Su et al., 2021), applied to queries and keys inside attention: each pair of features
(x_2i, x_2i+1) of the vector at position m is rotated by the angle m * theta_i, theta_i = base^(-2i / d):
    [y_2i  ]   [cos m theta_i   -sin m theta_i] [x_2i  ]
    [y_2i+1] = [sin m theta_i    cos m theta_i] [x_2i+1]
so <RoPE(q, m), RoPE(k, n)> depends on m - n only. This module pairs neighbouring features as the paper does;
Llama's ``rotate_half`` pairs feature i with feature i + d/2, which is the same rotation after a fixed permutation
of the features.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .checks import check_int, check_number, describe

__all__ = ["sinusoidal_encoding", "LearnedPositionalEmbedding", "frequencies", "apply_rope"]


def _check_even(d: int, name: str) -> None:
    check_int(d, name)
    if d % 2:
        raise ValueError(f"{name} must be a positive even int (features come in pairs), got {d!r}")


def _check_base(base) -> None:   # base <= 0 gives NaN angles (0^-x, or a negative number to a fractional power)
    check_number(base, "base", 0.0, low_open=True)


def frequencies(d: int, base: float = 10000.0) -> torch.Tensor:
    """theta_i = base^(-2i / d) = 1 / base^(2i / d), i = 0 .. d/2 - 1 (float64): the angle per position step of
    feature pair i, in the sinusoidal table and in RoPE alike."""
    _check_even(d, "the feature size")
    _check_base(base)
    return base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)   # (d/2,)


def sinusoidal_encoding(max_len: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The (max_len, d_model) table PE of Vaswani et al.: sines in even features, cosines in odd ones."""
    check_int(max_len, "max_len")
    _check_even(d_model, "d_model")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]                       # (T, 1)
    angle = pos * frequencies(d_model, base)                                        # (T, d/2)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1)                            # (T, d/2, 2)
    return rearrange(pe, "t i two -> t (i two)").float()                           # (T, d): sin, cos, sin, ...


class LearnedPositionalEmbedding(nn.Module):
    """x + P[offset : offset + T] for x of shape (B, T, d_model); P is a trained (max_len, d_model) table.

    ``offset`` is the position of the first token (non-zero when decoding one token at a time with a KV cache).
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        check_int(max_len, "max_len")
        check_int(d_model, "d_model")
        self.max_len, self.d_model = max_len, d_model
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (..., T, {self.d_model}), got {describe(x)}")
        if x.dim() < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected x of shape (..., T, {self.d_model}), got {tuple(x.shape)}")
        check_int(offset, "offset", minimum=0, maximum=None)
        T = x.shape[-2]
        if offset + T > self.max_len:
            raise ValueError(f"positions {offset}..{offset + T - 1} fall outside the table of {self.max_len} positions")
        return x + self.weight[offset:offset + T]                                 # (..., T, d) + (T, d)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate each feature pair (x_2i, x_2i+1) of x (..., T, d) by positions * theta_i.

    ``positions`` (integers or floats) has shape (T,) or any shape that broadcasts against x.shape[:-1], e.g.
    (B, 1, T) for x of shape (B, H, T, d). The angles are computed in float64 (float32 on MPS), then cast
    to x's dtype.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if not isinstance(positions, torch.Tensor) or positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be a tensor of integers or floats, got {describe(positions)}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., T, d), got {tuple(x.shape)}")
    d = x.shape[-1]
    _check_even(d, "the last dimension of x")
    _check_base(base)
    try:
        fits = torch.broadcast_shapes(positions.shape, x.shape[:-1]) == x.shape[:-1]
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"positions of shape {tuple(positions.shape)} do not broadcast to x.shape[:-1] = "
                         f"{tuple(x.shape[:-1])}")
    wide = torch.float32 if x.device.type == "mps" else torch.float64                     # MPS has no float64
    theta = frequencies(d, base).to(wide).to(x.device)                                     # (d/2,)
    angle = positions.to(wide).to(x.device)[..., None] * theta                             # (..., T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    pairs = rearrange(x, "... (i two) -> ... i two", two=2)                                # (..., T, d/2, 2)
    x_even, x_odd = pairs[..., 0], pairs[..., 1]                                           # (..., T, d/2) each
    rotated = torch.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], dim=-1)  # (..., T, d/2, 2)
    return rearrange(rotated, "... i two -> ... (i two)")                                  # (..., T, d)
