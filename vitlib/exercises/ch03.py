"""Checkers for chapter 03's exercises: each runs your function on small random inputs and compares it with PyTorch
or with ``vitlib.transformer`` (which is itself verified against PyTorch and transformers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import scaled_dot_product_attention
from ..transformer import Block
from . import Case, check, function_name, hint_on_error


def _randn(*shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def check_layer_norm(layer_norm) -> bool:
    """``layer_norm(x, gamma, beta, eps=1e-5)``: normalise the last dimension of x to mean 0 and variance 1
    (the biased variance, eps inside the square root), then scale by gamma and shift by beta."""
    inputs = []
    for i, (shape, scale) in enumerate((((4,), 1.0), ((2, 3, 8), 3.0), ((5, 16), 0.01), ((1, 2, 6), 100.0))):
        x, D = _randn(*shape, seed=i, scale=scale) + 0.5 * scale, shape[-1]  # rows with a mean to remove
        inputs.append((x, _randn(D, seed=10 + i) + 1, _randn(D, seed=20 + i), f"x {tuple(shape)} with spread {scale}"))
    inputs.append((torch.full((2, 5), 3.0), torch.ones(5), torch.arange(5.0),
                   "constant rows: zero variance, so the output is beta"))
    cases = []
    for x, gamma, beta, label in inputs:
        centred = x - x.mean(-1, keepdim=True)
        cases.append(Case(args=(x, gamma, beta), expected=F.layer_norm(x, x.shape[-1:], gamma, beta, eps=1e-5),
                          label=label, mistakes={
                              "the unbiased variance (divided by d - 1): LayerNorm divides by d":
                                  centred / (x.var(-1, keepdim=True) + 1e-5).sqrt() * gamma + beta,
                              "eps added outside the square root: sqrt(var + eps)":
                                  centred / (x.std(-1, correction=0, keepdim=True) + 1e-5) * gamma + beta,
                              "forgot gamma and beta": F.layer_norm(x, x.shape[-1:], eps=1e-5)}))
    return check(layer_norm, cases, name=function_name(layer_norm, "layer_norm"))


def check_feed_forward(feed_forward) -> bool:
    """``feed_forward(x, W1, b1, W2, b2)``: max(0, x W1 + b1) W2 + b2, for x of any shape (..., d_model)."""
    cases = []
    for i, (shape, d_ff) in enumerate((((3, 4), 8), ((2, 5, 6), 24), ((1, 1, 8), 2))):
        d = shape[-1]
        args = (_randn(*shape, seed=i), _randn(d, d_ff, seed=10 + i), _randn(d_ff, seed=20 + i),
                _randn(d_ff, d, seed=30 + i), _randn(d, seed=40 + i))
        x, W1, b1, W2, b2 = args
        cases.append(Case(args=args, expected=F.relu(x @ W1 + b1) @ W2 + b2, label=f"x {shape}, d_ff={d_ff}",
                          mistakes={"no ReLU between the two layers": (x @ W1 + b1) @ W2 + b2,
                                    "a ReLU after the second layer too: only the hidden layer has one":
                                        F.relu(F.relu(x @ W1 + b1) @ W2 + b2)}))
    return check(feed_forward, cases, name=function_name(feed_forward, "feed_forward"), explain=hint_on_error({
        "cannot be multiplied": "x is (..., d_model) and W1 (d_model, d_ff): multiply x @ W1, then the hidden @ W2"}))


class BlockParts(nn.Module):
    """What ``block_forward`` is given: a block's parts ``norm1``, ``attn``, ``norm2`` and ``ffn``, but no forward
    of its own (the exercise is to write that forward)."""

    def __init__(self, block: Block):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.ffn = block.norm1, block.attn, block.norm2, block.ffn

    def __repr__(self) -> str:  # one line in the feedback, not the module tree
        return f"BlockParts(d_model={self.norm1.normalized_shape[0]})"

    def forward(self, *args, **kwargs):
        raise RuntimeError("use the sub-modules: block_forward builds the block's forward from block.norm1, "
                           "block.attn, block.norm2 and block.ffn; block(x) itself is what you are writing")


def check_block_forward(block_forward) -> bool:
    """``block_forward(block, x)``: the pre-LN causal block from its parts ``block.norm1``, ``block.attn``
    (call it with ``is_causal=True``), ``block.norm2`` and ``block.ffn``: x + attn(norm1(x)), then + ffn(norm2(.)).

    ``block`` is a ``BlockParts``: those four sub-modules of a ``vitlib.transformer.Block``, without the block's own
    forward (calling ``block(x)`` raises)."""
    cases = []
    for i, (B, T, D, H) in enumerate(((1, 4, 8, 2), (2, 6, 16, 4), (3, 1, 8, 1))):
        torch.manual_seed(i)
        block = Block(D, H, causal=True).eval()
        with torch.no_grad():  # LayerNorm parameters away from 1 and 0, so that forgetting a norm shows
            for norm in (block.norm1, block.norm2):
                norm.weight.add_(torch.randn(D) * 0.5)
                norm.bias.add_(torch.randn(D) * 0.5)
            x = _randn(B, T, D, seed=100 + i, scale=2.0)
            attn, ffn, norm1, norm2 = block.attn, block.ffn, block.norm1, block.norm2
            h = x + attn(norm1(x), is_causal=True)
            post = norm1(x + attn(x, is_causal=True))
            cases.append(Case(args=(BlockParts(block), x), expected=block(x), label=f"x {(B, T, D)}, {H} heads",
                              mistakes={
                                  "attention without is_causal=True: each token sees the ones after it":
                                      (lambda h: h + ffn(norm2(h)))(x + attn(norm1(x))),
                                  "post-LN: normalise each sub-layer's input (x + attn(norm1(x))), not the sum":
                                      norm2(post + ffn(post)),
                                  "forgot the residual around the FFN: return h + ffn(norm2(h))": ffn(norm2(h)),
                                  "forgot the residual around attention: h = x + attn(norm1(x))":
                                      (lambda a: a + ffn(norm2(a)))(attn(norm1(x), is_causal=True))}))
    with torch.no_grad():
        return check(block_forward, cases, name=function_name(block_forward, "block_forward"),
                     explain=hint_on_error({"unexpected keyword argument": "block.attn is a MultiHeadAttention: "
                                            "call it as block.attn(h, is_causal=True)"}))


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
        k_all, v_all = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)      # (B, H, P + 1, Dh)
        out = scaled_dot_product_attention(q, k_all, v_all)                               # (B, H, 1, Dh)
        cases.append(Case(args=(q, k, v, past_k, past_v), expected=(out, (k_all, v_all)),
                          label=f"B={B}, H={H}, {P} cached tokens, Dh={Dh}", mistakes={
                              "attended to the cached tokens only: append the new k and v first":
                                  (scaled_dot_product_attention(q, past_k, past_v), (past_k, past_v)),
                              "returned only the output: return (out, (k_all, v_all)), the cache too": out,
                              "cache grown at the front: the newest token goes last, torch.cat([past_k, k], dim=2)":
                                  (out, (torch.cat([k, past_k], dim=2), torch.cat([v, past_v], dim=2)))}))
    along_length = ("the cache grows along the length: torch.cat([past_k, k], dim=2) gives k_all of shape "
                    "(B, H, P + 1, Dh)")
    return check(cached_attention, cases, name=function_name(cached_attention, "cached_attention"),
                 explain=hint_on_error({"Sizes of tensors must match": along_length,
                                        "cannot be multiplied": along_length,
                                        "must match the size of tensor": along_length,
                                        "Expected size for first two dimensions": along_length}))
