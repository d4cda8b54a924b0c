"""Checkers for chapter 02's exercises: the causal mask of a KV cache, the score scale that keeps Var(q.k) at 1,
splitting and merging heads, and which outputs the padding mask protects. Each compares your function with
``vitlib.attention`` (itself verified against PyTorch) or with the derived answer, and names the usual mistakes."""

from __future__ import annotations

import math

import torch
from einops import rearrange

from ..attention import causal_mask
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


def check_cached_causal_mask(cached_causal_mask) -> bool:
    """``cached_causal_mask(L, S) -> (L, S) bool``: the L queries are the last L of S positions (S - L keys are
    cached), so query i sits at position S - L + i and may see key j when j <= S - L + i."""
    cases = []
    for L, S in ((1, 1), (3, 3), (1, 5), (2, 6), (3, 7), (4, 4)):
        mask = causal_mask(L, S, offset=S - L)                                   # (L, S)
        ones = torch.ones(L, S, dtype=torch.bool)
        cases.append(Case(args=(L, S), expected=mask, label=f"L={L} new queries, S={S} keys", mistakes={
            "aligned to the top left (PyTorch's is_causal): the newest query must see every key, shift the "
            "triangle by S - L": causal_mask(L, S),
            "the upper triangle (triu, not tril): query i would see the keys after its position": ones.triu(S - L),
            "the diagonal is missing: a token may attend to itself (tril(S - L), not tril(S - L - 1))":
                ones.tril(S - L - 1)}))

    def same(got, expected):
        _bool_tensor_equal(got, expected)
    return check(cached_causal_mask, cases, name=function_name(cached_causal_mask, "cached_causal_mask"),
                 compare=same)


def check_score_scale(score_scale) -> bool:
    """``score_scale(d_k, var_q, var_k) -> float``: the factor c with Var(c q.k) = 1 when the d_k entries of q and
    k are independent, with mean 0 and variances var_q and var_k."""
    cases = []
    for d_k, var_q, var_k in ((64, 1.0, 1.0), (16, 4.0, 1.0), (256, 0.25, 0.25), (1, 2.0, 8.0), (100, 9.0, 1.0)):
        cases.append(Case(args=(d_k, var_q, var_k), expected=1 / math.sqrt(d_k * var_q * var_k),
                          label=f"d_k={d_k}, Var(q_m)={var_q}, Var(k_m)={var_k}", mistakes={
                              "only 1/sqrt(d_k): right when the entries have variance 1, not here":
                                  1 / math.sqrt(d_k),
                              "divided by the variance: the scale multiplies the score, so it must divide its "
                              "standard deviation, the square root": 1 / (d_k * var_q * var_k),
                              "no 1/sqrt(d_k): q.k sums d_k products, so its variance is d_k times theirs":
                                  1 / math.sqrt(var_q * var_k),
                              "added the variances: for independent zero-mean factors Var(q_m k_m) = "
                              "Var(q_m) Var(k_m)": 1 / math.sqrt(d_k * (var_q + var_k))}))
    return check(score_scale, cases, name=function_name(score_scale, "score_scale"))


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


def _reaches_padding(keep: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, S) bool: every query, real or padding, that may attend to a padding key when only ``causal`` masks."""
    S = keep.shape[1]
    visible = causal_mask(S, S) if causal else torch.ones(S, S, dtype=torch.bool)   # (S, S): query i, key j
    return (visible[None] & ~keep[:, None, :]).any(dim=-1)                            # (B, S)


def sees_padding(keep: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, S) bool: the real tokens whose query would reach a padding key if the padding mask were left out."""
    return keep & _reaches_padding(keep, causal)


def check_sees_padding(sees_padding_fn) -> bool:
    """``sees_padding(keep, causal) -> (B, S) bool``: keep (B, S) is True at real tokens; True at each real token
    whose query would attend to at least one padding key if the padding mask were left out (with the causal mask
    when ``causal``) - exactly the outputs that leaving the mask out changes."""
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    left = right.flip(1)                                                        # the same rows, padded on the left
    middle = torch.tensor([[1, 1, 0, 1, 1, 0]], dtype=torch.bool)               # padding between real tokens
    cases = []
    for keep, side in ((right, "right padding"), (left, "left padding"), (middle, "padding in the middle")):
        S = keep.shape[1]
        future = torch.ones(S, S, dtype=torch.bool).triu(1)                     # (S, S): keys after the query
        for causal in (True, False):
            expected = sees_padding(keep, causal)
            cases.append(Case(args=(keep, causal), expected=expected, label=f"{side}, causal={causal}", mistakes={
                "ignored the causal mask: with it query i sees only the keys j <= i": sees_padding(keep, False),
                "marked padding queries too: only the real tokens' outputs are used": _reaches_padding(keep, causal),
                "looked at the keys after the query (triu): the causal mask keeps j <= i":
                    keep & (future[None] & ~keep[:, None, :]).any(-1)}))

    def same(got, expected):
        _bool_tensor_equal(got, expected)
    return check(sees_padding_fn, cases, name=function_name(sees_padding_fn, "sees_padding"), compare=same)
