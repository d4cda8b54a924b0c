"""Checkers for chapter 02's exercises: each runs your function on small random inputs and compares it with
``vitlib.attention`` (which is itself verified against PyTorch)."""

from __future__ import annotations

import torch
from einops import rearrange

from ..attention import causal_mask, scaled_dot_product_attention
from . import Case, check, function_name, hint_on_error, kind, mismatch


def _bool_tensor_equal(got, expected):
    """Same shape, dtype torch.bool, same values; raises AssertionError saying what differs."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"expected a torch.Tensor of dtype torch.bool, got {kind(got)}")
    if got.dtype != torch.bool:
        raise AssertionError(f"expected dtype torch.bool (True = may attend), got {got.dtype}")
    problem = mismatch(got, expected)
    if problem:
        raise AssertionError(problem)


def check_causal_mask(make_causal_mask) -> bool:
    """``make_causal_mask(T) -> (T, T) bool``: True where query i may see key j, i.e. j <= i."""
    cases = []
    for T in (1, 2, 4, 7):
        mask = causal_mask(T, T)                                                  # (T, T)
        cases.append(Case(args=(T,), expected=mask, label=f"T={T}", mistakes={
            "the upper triangle: query i would see the future keys j > i (use tril, not triu)": mask.T,
            "the diagonal is missing: a token may attend to itself (tril(), not tril(-1))": mask.tril(-1)}))

    def same(got, expected):
        _bool_tensor_equal(got, expected)
    return check(make_causal_mask, cases, name=function_name(make_causal_mask, "make_causal_mask"), compare=same)


def check_attend_one(attend_one) -> bool:
    """``attend_one(q, K, V) -> (d_v,)``: softmax(K q / sqrt(d_k)) weighted sum of the rows of V."""
    g = torch.Generator().manual_seed(2)
    cases = []
    for S, d_k, d_v in ((1, 4, 3), (5, 4, 4), (7, 16, 2), (3, 64, 5)):
        q, K = torch.randn(d_k, generator=g) * 2, torch.randn(S, d_k, generator=g) * 2     # (d_k,), (S, d_k)
        V = torch.randn(S, d_v, generator=g)                                                 # (S, d_v)
        expected = scaled_dot_product_attention(q[None], K, V)[0]  # (1, d_k) query -> (1, d_v)
        scores = K @ q                                             # (S,)
        cases.append(Case(args=(q, K, V), expected=expected, label=f"{S} keys, d_k={d_k}, d_v={d_v}", mistakes={
            "no 1/sqrt(d_k) scaling of the scores": scores.softmax(0) @ V,
            "no softmax: the weights must be positive and sum to 1": (scores / d_k ** 0.5) @ V}))
    return check(attend_one, cases, name=function_name(attend_one, "attend_one"))


def _x(B: int, T: int, D: int, seed: int) -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed))


_NOT_CONTIGUOUS = hint_on_error({"view size is not compatible": "after a transpose the tensor is not contiguous, "
                                 "so .view cannot regroup it: use .reshape (or .contiguous().view)"})


def check_split_heads(split_heads) -> bool:
    """``split_heads(x, n_heads)``: (B, T, H * Dh) -> (B, H, T, Dh), head h owning features h*Dh .. (h+1)*Dh - 1."""
    cases = []
    for i, (B, T, D, H) in enumerate(((1, 3, 4, 2), (2, 5, 12, 3), (2, 4, 8, 1), (3, 2, 16, 4))):
        x = _x(B, T, D, i)
        cases.append(Case(args=(x, H), expected=rearrange(x, "b t (h d) -> b h t d", h=H),
                          label=f"x {(B, T, D)}, {H} heads", mistakes={
                              "features split as (d h): head h must own the neighbouring features h*Dh .. (h+1)*Dh - 1":
                                  rearrange(x, "b t (d h) -> b h t d", h=H),
                              "reshaped straight to (B, H, T, Dh): view as (B, T, H, Dh), then transpose(1, 2)":
                                  x.reshape(B, H, T, D // H)}))
    return check(split_heads, cases, name=function_name(split_heads, "split_heads"), explain=_NOT_CONTIGUOUS)


def check_merge_heads(merge_heads) -> bool:
    """``merge_heads(x)``: (B, H, T, Dh) -> (B, T, H * Dh), the inverse of split_heads."""
    cases = []
    for i, (B, H, T, Dh) in enumerate(((1, 2, 3, 2), (2, 3, 5, 4), (2, 1, 4, 8), (3, 4, 2, 4))):
        x = _x(B * H, T, Dh, 10 + i).reshape(B, H, T, Dh)
        cases.append(Case(args=(x,), expected=rearrange(x, "b h t d -> b t (h d)"), label=f"x {(B, H, T, Dh)}",
                          mistakes={"reshaped without transpose(1, 2) first: heads and time steps get mixed":
                                    x.reshape(B, T, H * Dh),
                                    "features merged as (d h): head h's features must stay together":
                                    rearrange(x, "b h t d -> b t (d h)")}))
    return check(merge_heads, cases, name=function_name(merge_heads, "merge_heads"), explain=_NOT_CONTIGUOUS)


def check_padding_mask(padding_mask) -> bool:
    """``padding_mask(lengths, S) -> (B, S) bool``: True at the first lengths[b] positions of row b (real tokens)."""
    cases = []
    for lengths, S in (([3], 3), ([1, 4, 2], 4), ([2, 5, 0], 6), ([7, 7], 9)):
        positions, n = torch.arange(S)[None, :], torch.tensor(lengths)[:, None]  # (1, S), (B, 1)
        cases.append(Case(args=(torch.tensor(lengths), S), expected=positions < n, label=f"lengths={lengths}, S={S}",
                          mistakes={"True on the padding: True marks the real tokens": positions >= n,
                                    "off by one: position lengths[b] is already padding (use <, not <=)":
                                        positions <= n}))

    def same(got, expected):
        _bool_tensor_equal(got, expected)
    return check(padding_mask, cases, name=function_name(padding_mask, "padding_mask"), compare=same)
