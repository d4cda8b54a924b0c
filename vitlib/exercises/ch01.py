"""Checkers for chapter 01's exercises: a BPE merge step, the shift of the sinusoidal table, the perplexity of a
caption under a bigram model, and the rotation at the heart of RoPE. Each compares your function with the
course's own implementation."""

from __future__ import annotations

import math

import torch

from ..data import ShapesWorld
from ..data.bpe import merge
from ..lm import BigramCounts, bigram_pairs
from ..metrics import perplexity
from ..positional import apply_rope, frequencies, sinusoidal_encoding
from . import Case, check, function_name, kind, mismatch


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


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
    cases = [Case(args=(ids, pair, new), expected=merge(ids, pair, new), label=label, mistakes={
        "merged only the first occurrence: keep going to the end": _merge_first_only(ids, pair, new),
        "merged right to left: scan left to right, and skip both tokens of a merged pair":
            merge(ids[::-1], pair[::-1], new)[::-1]}) for ids, pair, new, label in raw]

    def same(got, expected):
        if not isinstance(got, list):
            raise AssertionError(f"expected a list of ids, got {kind(got)}")
        if (why := mismatch(got, expected)) is not None:
            raise AssertionError(why)
    return check(merge_fn, cases, name=function_name(merge_fn, "merge"), compare=same)


def sinusoidal_shift(k: int, d_model: int) -> torch.Tensor:
    """The (d_model, d_model) matrix M with PE[t + k] = M @ PE[t] for every position t: one 2x2 block per
    frequency w_i, [[cos k w_i, sin k w_i], [-sin k w_i, cos k w_i]] (sin and cos of a sum)."""
    angle = k * frequencies(d_model)                                              # (d/2,)
    blocks = [torch.tensor([[c, s], [-s, c]]) for c, s in zip(angle.cos().tolist(), angle.sin().tolist())]
    return torch.block_diag(*blocks).float()                                     # (d, d)


def check_sinusoidal_shift(shift_matrix) -> bool:
    """``shift_matrix(k, d_model) -> tensor (d_model, d_model)`` with PE[t + k] = M @ PE[t] for all t."""
    cases = [Case(args=(k, d), expected=sinusoidal_shift(k, d), label=f"k={k}, d_model={d}", mistakes={
        "M is transposed, so it shifts by -k: the sin k w_i entries sit above the diagonal": sinusoidal_shift(-k, d),
        "forgot k: this is the shift by one position": sinusoidal_shift(1, d)})
             for k, d in ((1, 2), (0, 4), (3, 4), (5, 16), (-2, 8), (10, 64))]

    def close(got, expected):
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"expected a torch.Tensor, got {kind(got)}")
        problem = mismatch(got, expected, rtol=1e-4, atol=1e-5)
        if problem and got.shape == expected.shape and got.dtype == expected.dtype:
            pe = sinusoidal_encoding(20, expected.shape[0])                       # (T, d)
            worst = (pe @ got.T - pe @ expected.T).abs().max().item()
            problem += f"; M @ PE[t] misses PE[t + k] by up to {worst:.3g}"
        if problem:
            raise AssertionError(problem)
    return check(shift_matrix, cases, name=function_name(shift_matrix, "shift_matrix"), compare=close)


def check_caption_perplexity(caption_perplexity) -> bool:
    """``caption_perplexity(log_probs, ids) -> float``: exp of the mean of -log p(x_t | x_{t-1}) over t = 1 .. T-1,
    with log_probs[a, b] = log p(b | a) and ids running from <bos> to <eos>."""
    world = ShapesWorld(seed=5)
    tok = world.tokenizer
    sequences = [tok.encode(world.caption(s), add_bos=True, add_eos=True) for s in world.scenes(300)]
    table = BigramCounts(tok.vocab_size, alpha=0.1).fit(sequences).log_probs             # (V, V)
    uniform = torch.full((4, 4), -math.log(4.0))
    cases = []
    for log_probs, ids, label in [(table, ids, repr(tok.decode(ids)) if len(ids) > 2 else "the empty caption")
                                  for ids in sequences[:4] + [[tok.bos_id, tok.eos_id]]] + \
                                 [(uniform, [0, 3, 2, 1], "uniform over 4 tokens")]:
        prev, nxt = bigram_pairs([ids])
        nll = -log_probs[prev, nxt]                                                    # (T - 1,)
        cases.append(Case(args=(log_probs, ids), expected=perplexity(nll), label=label, mistakes={
            "exp of the sum of -log p: take the mean over the T - 1 transitions": nll.double().sum().exp().item(),
            "read log p(a | b): log_probs[a, b] is log p(b | a), the row is the previous token":
                perplexity(-log_probs[nxt, prev]),
            "forgot the exp: that is the mean negative log-likelihood, not the perplexity":
                nll.double().mean().item()}))
    return check(caption_perplexity, cases, name=function_name(caption_perplexity, "caption_perplexity"))


def _rotate(x: float, y: float, angle: float) -> tuple[float, float]:
    return x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)


def check_rotate_pair(rotate_pair) -> bool:
    """``rotate_pair(x, y, m, theta) -> (x', y')``: rotate the point (x, y) by the angle m * theta."""
    cases = []
    for x, y, m, theta in ((1.0, 0.0, 1, math.pi / 2), (1.0, 0.0, 2, math.pi / 4), (0.3, -1.2, 0, 0.7),
                           (0.5, 2.0, 7, 0.1), (-1.5, 0.25, 3, 0.01), (2.0, 1.0, 100, 0.01)):
        pair = torch.tensor([[x, y]], dtype=torch.float64)        # (T=1, d=2): one pair, whose theta_0 = base^0 = 1
        rotated = apply_rope(pair, torch.tensor([m * theta], dtype=torch.float64))[0]   # so "position" m theta
        cases.append(Case(args=(x, y, m, theta), expected=(rotated[0].item(), rotated[1].item()),
                          label=f"angle {m} x {theta:.3g}", mistakes={
                              "rotated by theta, not by m * theta: the angle grows with the position":
                                  _rotate(x, y, theta),
                              "rotated clockwise: x' = x cos - y sin, y' = x sin + y cos": _rotate(x, y, -m * theta)}))
    return check(rotate_pair, cases, name=function_name(rotate_pair, "rotate_pair"))
