"""Checkers for chapter 01's exercises: a BPE merge step, the shift of the sinusoidal table, the perplexity of a
caption under a bigram model, and the rotation at the heart of RoPE. Each compares your function with the
course's own implementation."""

from __future__ import annotations

import math

import torch

from ..data import ShapesWorld
from ..data.bpe import merge
from ..lm import BigramCounts, bigram_pairs, perplexity
from ..positional import apply_rope, frequencies, sinusoidal_encoding
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


def sinusoidal_shift(k: int, d_model: int) -> torch.Tensor:
    """The (d_model, d_model) matrix M with PE[t + k] = M @ PE[t] for every position t: one 2x2 block per
    frequency w_i, [[cos k w_i, sin k w_i], [-sin k w_i, cos k w_i]] (sin and cos of a sum)."""
    angle = k * frequencies(d_model)                                              # (d/2,)
    blocks = [torch.tensor([[c, s], [-s, c]]) for c, s in zip(angle.cos().tolist(), angle.sin().tolist())]
    return torch.block_diag(*blocks).float()                                     # (d, d)


def check_sinusoidal_shift(shift_matrix) -> bool:
    """``shift_matrix(k, d_model) -> tensor (d_model, d_model)`` with PE[t + k] = M @ PE[t] for all t."""
    cases = [Case(args=(k, d), expected=sinusoidal_shift(k, d), label=f"k={k}, d_model={d}")
             for k, d in ((1, 2), (0, 4), (3, 4), (5, 16), (-2, 8), (10, 64))]

    def close(got, expected):
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"expected a tensor, got a {type(got).__name__}")
        problem = mismatch(got.float(), expected, rtol=1e-4, atol=1e-5)
        if problem and got.shape == expected.shape:
            pe = sinusoidal_encoding(20, expected.shape[0])                       # (T, d)
            worst = (pe @ got.float().T - pe @ expected.T).abs().max().item()
            problem += f"; M @ PE[t] misses PE[t + k] by up to {worst:.3g}"
        if problem:
            raise AssertionError(problem)
    return check(shift_matrix, cases, name="shift_matrix", compare=close)


def check_caption_perplexity(caption_perplexity) -> bool:
    """``caption_perplexity(log_probs, ids) -> float``: exp of the mean of -log p(x_t | x_{t-1}) over t = 1 .. T-1,
    with log_probs[a, b] = log p(b | a) and ids running from <bos> to <eos>."""
    world = ShapesWorld(seed=5)
    tok = world.tokenizer
    sequences = [tok.encode(world.caption(s), add_bos=True, add_eos=True) for s in world.scenes(300)]
    table = BigramCounts(tok.vocab_size, alpha=0.1).fit(sequences).log_probs             # (V, V)
    cases = []
    for ids in sequences[:4] + [[tok.bos_id, tok.eos_id]]:
        prev, nxt = bigram_pairs([ids])
        cases.append(Case(args=(table, ids), expected=perplexity(-table[prev, nxt]),
                          label=repr(tok.decode(ids)) if len(ids) > 2 else "the empty caption"))
    uniform = torch.full((4, 4), -math.log(4.0))
    cases.append(Case(args=(uniform, [0, 3, 2, 1]), expected=4.0, label="uniform over 4 tokens"))
    return check(caption_perplexity, cases, name="caption_perplexity")


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
