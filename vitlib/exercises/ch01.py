"""Checkers for chapter 01's exercises: a BPE merge step, the sinusoidal table, perplexity from log-probabilities
and the rotation at the heart of RoPE. Each compares your function with the course's own implementation."""

from __future__ import annotations

import math

import torch

from ..data.bpe import merge
from ..positional import apply_rope, sinusoidal_encoding
from . import Case, check, mismatch


def check_merge(merge_fn) -> bool:
    """``merge(ids, pair, new_id) -> list``: replace each (a, b), left to right and without overlap, by new_id."""
    raw = [
        (list(b"hello hello"), (108, 108), 256, "'ll' twice"),
        ([1, 2, 3, 1, 2], (1, 2), 9, "pair at both ends"),
        ([5, 5, 5], (5, 5), 9, "three in a row: left to right, no overlap"),
        ([5, 5, 5, 5], (5, 5), 9, "four in a row"),
        ([1, 2, 3], (3, 1), 9, "pair absent"),
        ([7], (7, 7), 9, "a single token"),
        ([], (1, 2), 9, "empty"),
        ([2, 1, 2, 1, 2], (1, 2), 300, "interleaved"),
    ]
    cases = [Case(args=(ids, pair, new), expected=merge(ids, pair, new), label=label) for ids, pair, new, label in raw]

    def same(got, expected):
        if not isinstance(got, list):
            raise AssertionError(f"expected a list of ids, got a {type(got).__name__}")
        return got == expected
    return check(merge_fn, cases, name="merge", compare=same)


def check_sinusoidal(sinusoidal) -> bool:
    """``sinusoidal(max_len, d_model) -> tensor (max_len, d_model)``: PE[p, 2i] = sin(p / 10000^(2i/d)),
    PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    cases = [Case(args=(T, d), expected=sinusoidal_encoding(T, d), label=f"{T} positions, d_model={d}")
             for T, d in ((1, 2), (4, 4), (16, 8), (50, 64))]

    def close(got, expected):
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"expected a tensor, got a {type(got).__name__}")
        problem = mismatch(got.float(), expected, rtol=1e-4, atol=1e-5)
        if problem:
            raise AssertionError(problem)
    return check(sinusoidal, cases, name="sinusoidal", compare=close)


def check_perplexity_from_log_probs(perplexity_from_log_probs) -> bool:
    """``perplexity_from_log_probs(log_probs) -> float``: log_probs (N,) holds log p(x_t | x_<t) of each token."""
    g = torch.Generator().manual_seed(1)
    cases = [Case(args=(torch.full((10,), -math.log(80.0)),), expected=80.0, label="uniform over 80 tokens"),
             Case(args=(torch.zeros(3),), expected=1.0, label="certain of every token")]
    for n in (1, 5, 40):
        lp = -torch.rand(n, generator=g, dtype=torch.float64) * 4
        cases.append(Case(args=(lp,), expected=math.exp(-lp.mean().item()), label=f"{n} random log-probs"))
    return check(perplexity_from_log_probs, cases, name="perplexity_from_log_probs")


def check_rotate_pair(rotate_pair) -> bool:
    """``rotate_pair(x, y, m, theta) -> (x', y')``: rotate the point (x, y) by the angle m * theta."""
    cases = []
    for x, y, m, theta in ((1.0, 0.0, 1, math.pi / 2), (1.0, 0.0, 2, math.pi / 4), (0.3, -1.2, 0, 0.7),
                           (0.5, 2.0, 7, 0.1), (-1.5, 0.25, 3, 0.01), (2.0, 1.0, 100, 0.01)):
        pair = torch.tensor([[x, y]], dtype=torch.float64)        # (T=1, d=2): one pair, whose theta_0 = base^0 = 1
        rotated = apply_rope(pair, torch.tensor([m * theta], dtype=torch.float64))[0]   # so "position" m theta
        cases.append(Case(args=(x, y, m, theta), expected=(rotated[0].item(), rotated[1].item()),
                          label=f"angle {m} x {theta:.3g}"))
    return check(rotate_pair, cases, name="rotate_pair")
