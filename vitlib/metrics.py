"""What the course measures, in one place: accuracy with its interval, perplexity, parse rate, recall@k and
re-ranking (chapters 01, 03, 05, 06; chapters 10-11 add BLEU, CLIPScore and CHAIR).

    Wilson 95% interval of an accuracy p on n trials (z = 1.96):
        (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    perplexity  PPL = exp(mean NLL per token)
    recall@k    share of queries whose target is among the k highest-scoring candidates
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .checks import check_int, describe

__all__ = ["accuracy_with_interval", "wilson_interval", "perplexity", "parse_rate", "recall_at_k", "rerank"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for z = 1.96): unlike p +- z sqrt(p(1-p)/n), it stays in
    [0, 1] and is not empty at p = 0 or 1."""
    check_int(n, "n")
    check_int(successes, "successes", minimum=0, maximum=n)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_with_interval(correct) -> tuple[float, tuple[float, float]]:
    """(accuracy, Wilson 95% interval) of a bool tensor or sequence of per-example outcomes."""
    outcomes = torch.as_tensor(correct) if not isinstance(correct, torch.Tensor) else correct
    if outcomes.dtype != torch.bool or outcomes.numel() == 0:
        raise ValueError(f"correct must be a non-empty bool tensor or sequence of bools, got {describe(correct)}")
    k, n = int(outcomes.sum()), outcomes.numel()
    return k / n, wilson_interval(k, n)


def perplexity(nll) -> float:
    """exp(mean NLL) from per-token negative log-likelihoods (a tensor, in nats) or their mean (a number).

    A mean NLL too large for a float (above ~709.8 nats) gives inf, as an infinite one does.
    """
    if isinstance(nll, torch.Tensor):
        if nll.numel() == 0 or nll.dtype == torch.bool or nll.is_complex():
            raise ValueError(f"nll must be a non-empty real tensor, got {describe(nll)}")
        mean = nll.double().mean().item()
    elif isinstance(nll, numbers.Real) and not isinstance(nll, bool):
        mean = float(nll)
    else:
        raise TypeError(f"nll must be a tensor of per-token NLLs or a number, got {describe(nll)}")
    if math.isnan(mean):
        raise ValueError("nll is NaN: some token's probability was NaN (check the model's outputs)")
    if mean < 0:
        raise ValueError(f"a mean NLL is >= 0 (probabilities are <= 1), got {mean}")
    try:
        return math.exp(mean)
    except OverflowError:
        return math.inf


def parse_rate(texts, parse: Callable[[str], object]) -> float:
    """Share of ``texts`` that ``parse`` accepts (returns without raising ValueError), e.g.
    ``parse_rate(captions, world.parse_caption)``."""
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"texts must be a non-empty list of strings, got {describe(texts)}")
    if not callable(parse):
        raise TypeError(f"parse must be callable, got {describe(parse)}")
    ok = 0
    for text in texts:
        try:
            parse(text)
            ok += 1
        except ValueError:
            pass
    return ok / len(texts)


def recall_at_k(similarities: torch.Tensor, k: int, targets: torch.Tensor | None = None) -> float:
    """R@k: the fraction of queries (rows) with a relevant candidate (column) among their k most similar.

    ``targets``: None (query i's one relevant candidate is column i, as for paired images and texts), a LongTensor
    (Q,) of column indices, or a BoolTensor (Q, C) marking every relevant candidate of each query.
    """
    if not isinstance(similarities, torch.Tensor) or similarities.dim() != 2:
        raise ValueError(f"similarities must be (queries, candidates), got {tuple(getattr(similarities, 'shape', ()))}")
    Q, C = similarities.shape
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= C:
        raise ValueError(f"k must be in 1..{C} (the number of candidates), got {k!r}")
    if Q == 0:
        raise ValueError("similarities has no queries (rows): recall over none is undefined")
    if similarities.isnan().any():   # topk ranks NaN above every number: the recall would be silently wrong
        raise ValueError("similarities holds NaN")
    if targets is not None and not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be None, a LongTensor (Q,) or a BoolTensor (Q, C), got {describe(targets)}")
    if targets is None:
        if Q > C:
            raise ValueError(f"without targets query i must match candidate i, but there are {Q} queries and {C} "
                             f"candidates")
        targets = torch.arange(Q, device=similarities.device)
    if targets.dtype == torch.bool:
        if targets.shape != (Q, C):
            raise ValueError(f"a relevance mask must have the shape of similarities {(Q, C)}, got {tuple(targets.shape)}")
        relevant = targets.to(similarities.device)
    else:
        if targets.shape != (Q,) or targets.dtype != torch.long:
            raise ValueError(f"targets must be (queries,) = ({Q},) column indices (long), got {describe(targets)}")
        if targets.min() < 0 or targets.max() >= C:
            raise ValueError(f"targets must be column indices in [0, {C}), got values in "
                             f"[{targets.min().item()}, {targets.max().item()}]")
        relevant = F.one_hot(targets.to(similarities.device), C).bool()  # (Q, C)
    top = similarities.topk(k, dim=1).indices                            # (Q, k)
    return relevant.gather(1, top).any(dim=1).float().mean().item()


@torch.no_grad()
def rerank(sim: torch.Tensor, k: int, score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Re-rank each query's top-k candidates of ``sim`` (Q, N) by ``score_fn(query_idx (M,), cand_idx (M,)) -> (M,)``.
    Returns scores (Q, N): each row's top-k carry their new scores; the rest keep ITC's order, below all of them."""
    if sim.dim() != 2 or not 1 <= k <= sim.shape[1]:
        raise ValueError(f"need sim (queries, candidates) and 1 <= k <= candidates, got {tuple(sim.shape)}, k={k}")
    top = sim.topk(k, dim=1).indices                                                  # (Q, k)
    query = torch.arange(len(sim), device=sim.device)[:, None].expand_as(top)         # (Q, k)
    scores = score_fn(query.flatten(), top.flatten()).view(top.shape).to(sim.dtype)   # (Q, k)
    rest = sim - sim.max(dim=1, keepdim=True).values + scores.min(dim=1, keepdim=True).values - 1
    return rest.scatter(1, top, scores)
