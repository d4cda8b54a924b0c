"""Checkers for chapter 03's exercises: each runs your function on small random inputs and compares it with PyTorch
or with ``vitlib.transformer`` (which is itself verified against PyTorch and transformers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attention import scaled_dot_product_attention
from ..transformer import Block
from . import Case, check


def _randn(*shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def check_layer_norm(layer_norm) -> bool:
    """``layer_norm(x, gamma, beta, eps=1e-5)``: normalise the last dimension of x to mean 0 and variance 1
    (the biased variance, eps inside the square root), then scale by gamma and shift by beta."""
    cases = []
    for i, (shape, scale) in enumerate((((4,), 1.0), ((2, 3, 8), 3.0), ((5, 16), 0.01), ((1, 2, 6), 100.0))):
        x, D = _randn(*shape, seed=i, scale=scale) + 0.5 * scale, shape[-1]  # rows with a mean to remove
        gamma, beta = _randn(D, seed=10 + i) + 1, _randn(D, seed=20 + i)
        cases.append(Case(args=(x, gamma, beta), expected=F.layer_norm(x, (D,), gamma, beta, eps=1e-5),
                          label=f"x {tuple(shape)} with spread {scale}"))
    x = torch.full((2, 5), 3.0)
    cases.append(Case(args=(x, torch.ones(5), torch.arange(5.0)), expected=torch.arange(5.0).expand(2, 5),
                      label="constant rows: zero variance, so the output is beta"))
    return check(layer_norm, cases, name="layer_norm")


def check_feed_forward(feed_forward) -> bool:
    """``feed_forward(x, W1, b1, W2, b2)``: FFN(x) = max(0, x W1 + b1) W2 + b2 with W1 (d_model, d_ff) and
    W2 (d_ff, d_model), applied to every position of x (..., d_model)."""
    cases = []
    for i, (shape, d_ff) in enumerate((((3, 4), 8), ((2, 5, 6), 24), ((1, 1, 8), 2))):
        d = shape[-1]
        args = (_randn(*shape, seed=i), _randn(d, d_ff, seed=10 + i), _randn(d_ff, seed=20 + i),
                _randn(d_ff, d, seed=30 + i), _randn(d, seed=40 + i))
        x, W1, b1, W2, b2 = args
        cases.append(Case(args=args, expected=F.relu(x @ W1 + b1) @ W2 + b2, label=f"x {shape}, d_ff={d_ff}"))
    return check(feed_forward, cases, name="feed_forward")


def check_block_forward(block_forward) -> bool:
    """``block_forward(block, x)``: the pre-LN causal block from its parts ``block.norm1``, ``block.attn``
    (call it with ``is_causal=True``), ``block.norm2`` and ``block.ffn``: x + attn(norm1(x)), then + ffn(norm2(.))."""
    cases = []
    for i, (B, T, D, H) in enumerate(((1, 4, 8, 2), (2, 6, 16, 4), (3, 1, 8, 1))):
        torch.manual_seed(i)
        block = Block(D, H, causal=True).eval()
        with torch.no_grad():  # LayerNorm parameters away from 1 and 0, so that forgetting a norm shows
            for norm in (block.norm1, block.norm2):
                norm.weight.add_(torch.randn(D) * 0.5)
                norm.bias.add_(torch.randn(D) * 0.5)
            x = _randn(B, T, D, seed=100 + i, scale=2.0)
            cases.append(Case(args=(block, x), expected=block(x), label=f"x {(B, T, D)}, {H} heads"))
    with torch.no_grad():
        return check(torch.no_grad()(block_forward), cases, name="block_forward")


def check_cached_attention(cached_attention) -> bool:
    """``cached_attention(q, k, v, past_k, past_v) -> (out, (k_all, v_all))``: one decoding step with a KV cache.

    q, k, v (B, H, 1, Dh) belong to the newest token; past_k, past_v (B, H, P, Dh) to the P tokens before it.
    Append the new key and value to the cache (along the length), attend from q to all P + 1 of them, and return
    the output (B, H, 1, Dh) with the grown cache.
    """
    cases = []
    for i, (B, H, P, Dh) in enumerate(((1, 1, 3, 4), (2, 4, 5, 8), (1, 2, 1, 16))):
        q, k, v = (_randn(B, H, 1, Dh, seed=10 * i + j) for j in range(3))
        past_k, past_v = _randn(B, H, P, Dh, seed=10 * i + 5), _randn(B, H, P, Dh, seed=10 * i + 6)
        k_all, v_all = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        out = scaled_dot_product_attention(q, k_all, v_all)
        cases.append(Case(args=(q, k, v, past_k, past_v), expected=(out, (k_all, v_all)),
                          label=f"B={B}, H={H}, {P} cached tokens, Dh={Dh}"))
    return check(cached_attention, cases, name="cached_attention")
