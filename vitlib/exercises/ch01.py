"""Checkers for chapter 01's exercises: a BPE merge step, the shift of the sinusoidal table, the fraction of
unseen bigrams that sets how add-alpha perplexity grows as alpha -> 0, and the unigram's perplexity as exp of its
entropy. Each compares your function with the course's own answer and names the usual mistakes."""

from __future__ import annotations

import math

import torch

from ..data import ShapesWorld
from ..data.bpe import merge
from ..lm import BigramCounts, bigram_pairs
from ..positional import frequencies, sinusoidal_encoding
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


def unseen_fraction(counts: torch.Tensor, sequences) -> float:
    """The fraction f of the transitions a -> b in ``sequences`` whose training count C[a, b] is 0."""
    prev, nxt = bigram_pairs(sequences)                                          # (N,), (N,)
    return (counts[prev, nxt] == 0).double().mean().item()


def check_unseen_fraction(unseen_fraction_fn) -> bool:
    """``unseen_fraction(counts, sequences) -> float``: the fraction of the transitions a -> b in the sequences
    (every neighbouring pair, each time it occurs) whose count counts[a, b] in the training table is 0."""
    world = ShapesWorld(seed=5)
    tok = world.tokenizer

    def captions(n, split):
        return [tok.encode(world.caption(s), add_bos=True, add_eos=True) for s in world.scenes(n, split)]
    train = captions(300, "train")
    counts = BigramCounts(tok.vocab_size).fit(train).counts                      # (V, V) float64
    tiny = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    raw = [(counts, captions(60, "heldout"), "60 held-out captions"), (counts, captions(60, "val"), "60 val captions"),
           (counts, train[:20], "20 training captions: all seen"),
           (tiny, [[0, 1, 0, 1], [2, 2, 1, 1]], "3 tokens: 2 of the 6 transitions unseen")]
    cases = []
    for table, sequences, label in raw:
        prev, nxt = bigram_pairs(sequences)
        pairs = set(zip(prev.tolist(), nxt.tolist()))
        f = unseen_fraction(table, sequences)
        cases.append(Case(args=(table, sequences), expected=f, label=label, mistakes={
            "counted distinct bigrams: a transition counts each time it occurs":
                sum(table[a, b].item() == 0 for a, b in pairs) / len(pairs),
            "read counts[b, a]: the row is the previous token, counts[a, b]": unseen_fraction(table.T, sequences),
            "the fraction of seen transitions: f counts those whose count is 0": 1 - f,
            "the fraction of zero entries in the whole table: count the transitions of the sequences":
                (table == 0).double().mean().item()}))
    return check(unseen_fraction_fn, cases, name=function_name(unseen_fraction_fn, "unseen_fraction"))


def unigram_perplexity(counts: torch.Tensor) -> float:
    """exp(H(p)) with p = counts / sum(counts) and 0 log 0 = 0: the perplexity of the unigram fitted to a text,
    on that same text."""
    p = counts.double() / counts.sum()
    return math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())


def check_unigram_perplexity(unigram_perplexity_fn) -> bool:
    """``unigram_perplexity(counts) -> float``: the perplexity that the unigram p = counts / sum(counts) gives the
    very text it was counted on, from the counts alone."""
    world = ShapesWorld(seed=5)
    tok = world.tokenizer
    ids = torch.tensor([i for s in world.scenes(200) for i in tok.encode(world.caption(s), add_eos=True)])
    counts = torch.bincount(ids, minlength=tok.vocab_size)                      # (V,) int64
    raw = [(torch.tensor([5, 5, 5, 5]), "4 tokens, equally frequent"), (torch.tensor([0, 7, 0]), "one token only"),
           (torch.tensor([1.0, 0.0, 3.0]), "counts 1, 0, 3"), (counts, "ShapesWorld captions (int64 counts)"),
           (counts.double(), "the same counts as float64")]
    cases = []
    for c, label in raw:
        p = c.double() / c.sum()
        h = -(p[p > 0] * p[p > 0].log()).sum().item()                          # entropy in nats
        cases.append(Case(args=(c,), expected=unigram_perplexity(c), label=label, mistakes={
            "exp of the entropy in bits: with log2 the perplexity is 2 ** H": math.exp(h / math.log(2)),
            "NaN: a token of count 0 adds 0 * log 0, which is 0 by continuity; leave it out": math.nan,
            "the number of tokens that occur: that is the perplexity only when they are equally frequent":
                float((c > 0).sum()),
            "no exp: that is the entropy (the mean negative log-likelihood), not the perplexity": h}))
    return check(unigram_perplexity_fn, cases, name=function_name(unigram_perplexity_fn, "unigram_perplexity"))
