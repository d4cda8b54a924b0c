"""Checkers for chapter 04's exercises: each runs your function on cases whose answer PyTorch or vitlib.vision
computes, and says which case differs and how."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..utils import count_parameters
from ..vision import ViT, ViTConfig, patchify
from . import Case, check, function_name, hint_on_error, mismatch


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _patchify_channels_first(x: torch.Tensor, p: int) -> torch.Tensor:
    """Patches flattened (c, p1, p2), the order of a Conv2d weight: the common mistake."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p)                          # (B, C, h, p1, w, p2)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), p * p * C)


def _column_by_column(x: torch.Tensor, p: int) -> torch.Tensor:
    """The right patches in the wrong sequence: column by column (w outer, h inner)."""
    B, C, H, W = x.shape
    grid = patchify(x, p).reshape(B, H // p, W // p, p * p * C)         # (B, h, w, P*P*C)
    return grid.transpose(1, 2).reshape(B, (H // p) * (W // p), p * p * C)


def check_patchify(fn) -> bool:
    """``fn(images (B, C, H, W), patch_size) -> (B, N, P*P*C)``: patches row by row, each flattened (p1, p2, c)."""
    cases = [Case(args=(x, p), expected=patchify(x, p), label=f"{tuple(x.shape)} in {p}x{p} patches", mistakes={
        "flattened (c, p1, p2), the conv weight's order: flatten (p1, p2, c), channel fastest":
            _patchify_channels_first(x, p),
        "patches numbered column by column: go row by row (h outer, w inner)": _column_by_column(x, p)})
             for x, p in ((_rand(1, 3, 4, 4), 2), (_rand(2, 3, 8, 12, seed=1), 4), (_rand(3, 1, 6, 6, seed=2), 3),
                          (_rand(2, 3, 32, 32, seed=3), 4))]

    def same(got, expected):
        problem = mismatch(got, expected)
        if problem and isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype \
                and torch.allclose(got.sort(dim=-1).values, expected.sort(dim=-1).values):
            problem += " — each patch holds the right values in the wrong order: flatten (p1, p2, c), channel fastest"
        if problem:
            raise AssertionError(problem)

    return check(fn, cases, name=function_name(fn, "patchify"), compare=same)


def check_conv_output_size(fn) -> bool:
    """``fn(size, kernel_size, stride, padding) -> int``: the side of a Conv2d's output for a square input."""
    cases = []
    for n, k, s, p, what in ((32, 3, 1, 1, "the CNN's first stage"), (32, 3, 2, 1, "a stride-2 stage"),
                             (16, 3, 2, 1, "the next stage"), (32, 4, 4, 0, "a 4x4 patch embedding"),
                             (7, 3, 2, 0, "no padding, odd size"), (5, 5, 1, 2, "'same' padding"),
                             (224, 16, 16, 0, "ViT-B/16 on ImageNet"), (28, 5, 1, 0, "LeNet's first layer"),
                             (8, 3, 2, 0, "the last window does not fit")):
        side = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
        cases.append(Case(args=(n, k, s, p), expected=side, label=what, mistakes={
            "padding counted once: it is added on both sides, n + 2 * padding": (n + p - k) // s + 1,
            "forgot the + 1: the first window already fits at position 0": (n + 2 * p - k) // s,
            "rounded up: a window that does not fit whole is dropped, so round down (//)":
                math.ceil((n + 2 * p - k) / s) + 1}))
    return check(fn, cases, name=function_name(fn, "conv_output_size"))


def check_prepend_class_token(fn) -> bool:
    """``fn(x (B, N, D), cls_token (1, 1, D)) -> (B, 1 + N, D)``: the class token first, then the patches."""
    cases = []
    for B, N, D in ((1, 4, 3), (3, 16, 8), (2, 1, 5)):
        x, cls = _rand(B, N, D, seed=N), _rand(1, 1, D, seed=D + 100)
        cases.append(Case(args=(x, cls), expected=torch.cat([cls.expand(B, 1, D), x], dim=1),
                          label=f"batch {B}, {N} patches, width {D}", mistakes={
                              "class token appended last: it comes first, position 0":
                                  torch.cat([x, cls.expand(B, 1, D)], dim=1),
                              "class token added to every patch: concatenate it as one more token": x + cls}))
    return check(fn, cases, name=function_name(fn, "prepend_class_token"), explain=hint_on_error({
        "Sizes of tensors must match": "cls_token is (1, 1, D), one for the whole batch: expand it to "
                                       "(B, 1, D) first, cls_token.expand(B, -1, -1)"}))


def check_count_vit_parameters(fn) -> bool:
    """``fn(config: ViTConfig) -> int``: the number of parameters of ``ViT(config)``, from the sizes alone."""
    configs = [ViTConfig(image_size=32, patch_size=4, d_model=64, n_layers=2, n_heads=4),
               ViTConfig(image_size=16, patch_size=8, in_channels=1, d_model=32, n_layers=1, n_heads=2, d_ff=40),
               ViTConfig(image_size=224, patch_size=16, d_model=768, n_layers=12, n_heads=12)]
    with torch.device("meta"):   # shapes only: ViT-B/16's 86 million parameters take no memory
        counts = [count_parameters(ViT(c)) for c in configs]
    cases = []
    for c, n in zip(configs, counts):
        D, N = c.d_model, c.n_patches
        cases.append(Case(args=(c,), expected=n,
                          label=f"{c.image_size}px/{c.patch_size}, d_model={D}, {c.n_layers} layers, d_ff={c.d_ff}",
                          mistakes={"forgot the position embedding, (N + 1) x d_model": n - (N + 1) * D,
                                    "off by d_model: forgot the class token, or gave it no position (N + 1 positions)":
                                        n - D,
                                    "forgot the final LayerNorm, 2 x d_model": n - 2 * D,
                                    "forgot the two LayerNorms in each layer, 4 x d_model per layer":
                                        n - 4 * D * c.n_layers,
                                    "forgot the biases of the linear layers":
                                        n - D - c.n_layers * (4 * D + c.d_ff + D)}))
    return check(fn, cases, name=function_name(fn, "count_vit_parameters"))
