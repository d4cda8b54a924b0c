"""Checkers for chapter 04's exercises: each runs your function on cases whose answer PyTorch or vitlib.vision
computes (a receptive field by a gradient, a padding by F.pad, a parameter count by counting), says which case
differs and how, and names the likely mistake."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import count_parameters
from ..vision import ViT, ViTConfig, patchify
from . import Case, check, function_name, mismatch


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


def _measured_receptive_field(kernel_sizes, strides) -> int:
    """How many input positions move output 0 of a stack of 1-D convolutions (all weights 1): measured with a
    gradient, as the chapter measures its CNN's."""
    layers = [nn.Conv1d(1, 1, k, stride=s, bias=False) for k, s in zip(kernel_sizes, strides)]
    for layer in layers:
        nn.init.ones_(layer.weight)
    x = torch.zeros(1, 1, 256, requires_grad=True)
    nn.Sequential(*layers)(x)[0, 0, 0].backward()
    return int((x.grad[0, 0] != 0).sum())


def check_receptive_field(fn) -> bool:
    """``fn(kernel_sizes, strides) -> int``: the receptive field r = 1 + sum_l (k_l - 1) prod_{i<l} s_i of a stack
    of convolutions (or poolings), in input pixels along one side."""
    cases = []
    for ks, ss, what in (((3, 3, 3, 3), (1, 2, 2, 2), "the chapter's CNN"), ((3, 3), (1, 1), "two 3x3 convolutions"),
                         ((7, 3), (2, 2), "ResNet's stem: 7x7 conv, 3x3 max-pool, both stride 2"),
                         ((7, 3, 3, 3, 3, 3), (2, 2, 1, 1, 1, 1), "ResNet-18 to the end of its first stage"),
                         ((16,), (16,), "a 16x16 patch embedding"), ((4, 2), (4, 2), "4x4 patches, then 2x2")):
        def rf(inclusive=False, strided=True, plus_one=True, kernel=lambda k: k - 1):
            total, jump = int(plus_one), 1
            for k, s in zip(ks, ss):
                jump_here = jump * s if inclusive else jump
                total += kernel(k) * (jump_here if strided else 1)
                jump *= s
            return total
        cases.append(Case(args=(list(ks), list(ss)), expected=_measured_receptive_field(ks, ss), label=what,
                          mistakes={"multiplied in the layer's own stride: only the strides of the layers before "
                                    "it, prod_{i<l} s_i, space out its window": rf(inclusive=True),
                                    "ignored the strides: after a stride-s layer every later step spans s pixels":
                                        rf(strided=False),
                                    "forgot the 1: a stack of 1x1 kernels still sees one pixel": rf(plus_one=False),
                                    "added k_l instead of k_l - 1: a k-wide window adds k - 1 pixels to what one "
                                    "position sees": rf(kernel=lambda k: k)}))
    return check(fn, cases, name=function_name(fn, "receptive_field"))


def check_circular_pad(fn) -> bool:
    """``fn(x (B, C, H, W), p) -> (B, C, H + 2p, W + 2p)``: the image wrapped around, as F.pad(mode="circular")."""
    cases = []
    for shape, p in (((1, 1, 4, 4), 1), ((2, 3, 5, 6), 2), ((1, 2, 3, 3), 1)):
        x = _rand(*shape, seed=sum(shape))
        wrong_side = torch.cat([x[..., :p, :], x, x[..., -p:, :]], dim=-2)      # (B, C, H + 2p, W)
        wrong_side = torch.cat([wrong_side[..., :p], wrong_side, wrong_side[..., -p:]], dim=-1)
        cases.append(Case(args=(x, p), expected=F.pad(x, (p, p, p, p), mode="circular"),
                          label=f"{shape} padded by {p}", mistakes={
                              "padded with zeros: circular padding repeats the far side of the image":
                                  F.pad(x, (p, p, p, p)),
                              "repeated the edge pixels (replicate padding): take the rows and columns of the far "
                              "side": F.pad(x, (p, p, p, p), mode="replicate"),
                              "wrapped from the wrong side: the rows added on top are the image's last p rows":
                                  wrong_side}))
    return check(fn, cases, name=function_name(fn, "circular_pad"))


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
