"""Checkers for chapter 03's exercises: GPT-2's parameter count, the post-LN block, how much a GPT's last prediction
depends on word order, and one decoding step with a KV cache. Each runs your function on small inputs, compares
it with ``vitlib`` and names the likely mistake."""

from __future__ import annotations

import torch
from torch import nn

from ..attention import scaled_dot_product_attention
from ..transformer import Block
from . import Case, check, function_name, hint_on_error, kind


def _randn(*shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def gpt_parameter_count(vocab_size: int, max_len: int, d_model: int, n_layers: int) -> int:
    """Parameters of a GPT-2-style model with d_ff = 4 d_model: token and position tables, per block LN_1, attention
    (W_q, W_k, W_v, W_o with biases), LN_2 and the FFN (with biases), a final LayerNorm, and a head tied to E."""
    d = d_model
    return vocab_size * d + max_len * d + n_layers * (12 * d * d + 13 * d) + 2 * d


def check_gpt_parameter_count(count) -> bool:
    """``count(vocab_size, max_len, d_model, n_layers) -> int``: the parameters of a GPT-2-style model (d_ff = 4
    d_model, biases everywhere, LayerNorms with a scale and a shift, the output head tied to the token table)."""
    cases = []
    for V, T, d, L, label in ((50257, 1024, 768, 12, "GPT-2 small"), (80, 64, 128, 3, "the course GPT"),
                              (100, 32, 64, 2, "a smaller GPT")):
        right = gpt_parameter_count(V, T, d, L)
        cases.append(Case(args=(V, T, d, L), expected=right, label=label, mistakes={
            "forgot the position table P (max_len x d_model)": right - T * d,
            "counted the output head separately: it is tied to the token table E": right + V * d,
            "forgot the biases (4 d in attention, 4 d + d in the FFN, per block)": right - L * 9 * d,
            "forgot the LayerNorms (2 d each: two per block and a final one)": right - (2 * L + 1) * 2 * d}))
    return check(count, cases, name=function_name(count, "count"))


def check_post_ln_forward(post_ln_forward) -> bool:
    """``post_ln_forward(block, x)``: the original transformer's post-LN order from a block's parts,
    h = LN_1(x + attn(x)), then LN_2(h + ffn(h)), with causal attention."""
    cases = []
    for i, (B, T, D, H) in enumerate(((1, 4, 8, 2), (2, 6, 16, 4), (3, 1, 8, 1))):
        torch.manual_seed(i)
        block = Block(D, H, causal=True).eval()
        with torch.no_grad():
            for norm in (block.norm1, block.norm2):
                norm.weight.add_(torch.randn(D) * 0.5)
                norm.bias.add_(torch.randn(D) * 0.5)
            x = _randn(B, T, D, seed=100 + i, scale=2.0)
            attn, ffn, norm1, norm2 = block.attn, block.ffn, block.norm1, block.norm2
            h = norm1(x + attn(x, is_causal=True))
            cases.append(Case(args=(BlockParts(block), x), expected=norm2(h + ffn(h)),
                              label=f"x {(B, T, D)}, {H} heads", mistakes={
                                  "pre-LN, the course's block: post-LN normalises the sum, LN(x + f(x))": block(x),
                                  "the LayerNorm inside the residual too: attn(norm1(x)), not attn(x)":
                                      (lambda g: norm2(g + ffn(g)))(norm1(x + attn(norm1(x), is_causal=True))),
                                  "forgot the second LayerNorm: return norm2(h + ffn(h))": h + ffn(h)}))
    with torch.no_grad():
        return check(post_ln_forward, cases, name=function_name(post_ln_forward, "post_ln_forward"))


def _last_logits(model, ids):
    return model(ids)[:, -1]                                                    # (B, V)


def check_order_gap(order_gap) -> bool:
    """``order_gap(model, ids) -> float``: reverse the order of every token but the last, and return the largest
    absolute change of the logits at the last position, max |f(reversed)[:, -1] - f(ids)[:, -1]|."""
    from ..position_variants import gpt_with_positions
    from ..transformer import GPTConfig

    cases = []
    for mode, n_layers in (("none", 1), ("none", 2), ("learned", 1)):
        torch.manual_seed(0)
        model = gpt_with_positions(GPTConfig(vocab_size=20, d_model=16, n_layers=n_layers, n_heads=2, max_len=12),
                                   mode).eval()
        with torch.no_grad():
            if mode == "learned":   # a trained-looking table, not the tiny initial one
                model.transformer.pos_emb.weight.normal_()
            ids = torch.randint(0, 20, (2, 7), generator=torch.Generator().manual_seed(n_layers))
            rev = torch.cat([ids[:, :-1].flip(1), ids[:, -1:]], dim=1)
            gap = (_last_logits(model, rev) - _last_logits(model, ids)).abs().max().item()
            everything = (model(ids.flip(1))[:, -1] - _last_logits(model, ids)).abs().max().item()
            all_positions = (model(rev) - model(ids)).abs().max().item()
        cases.append(Case(args=(model, ids), expected=gap, label=f"{mode} positions, {n_layers} layer(s)", mistakes={
            "reversed the last token too: keep ids[:, -1] in place": everything,
            "compared every position: only the last prediction, [:, -1]": all_positions}))

    def close(got, expected):
        if not isinstance(got, float):
            raise AssertionError(f"expected a float, got {kind(got)}")
        return abs(got - expected) <= 1e-4 + 1e-3 * abs(expected)
    with torch.no_grad():
        return check(order_gap, cases, name=function_name(order_gap, "order_gap"), compare=close)


class BlockParts(nn.Module):
    """What ``block_forward`` is given: a block's parts ``norm1``, ``attn``, ``norm2`` and ``ffn``, but no forward
    of its own (the exercise is to write that forward)."""

    def __init__(self, block: Block):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.ffn = block.norm1, block.attn, block.norm2, block.ffn

    def __repr__(self) -> str:  # one line in the feedback, not the module tree
        return f"BlockParts(d_model={self.norm1.normalized_shape[0]})"

    def forward(self, *args, **kwargs):
        raise RuntimeError("use the sub-modules: build the forward from block.norm1, "
                           "block.attn, block.norm2 and block.ffn; block(x) itself is what you are writing")


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
