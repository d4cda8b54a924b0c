"""Checkers for chapter 05's exercises: each runs your function on small random similarity matrices or embeddings
and compares it with ``vitlib.contrastive`` (itself verified against transformers' CLIP and SigLIP losses)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..contrastive import clip_loss, hinge_loss, recall_at_k, similarity
from . import Case, check


def _embeddings(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired embeddings of unequal lengths: t_i is v_i plus noise, so the diagonal tends to win (but not always)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g) * (1 + torch.rand(n, 1, generator=g) * 3)
    t = v + torch.randn(n, d, generator=g) * 1.5
    return v, t


def check_info_nce(info_nce) -> bool:
    """``info_nce(s, tau)``: the symmetric InfoNCE of a cosine-similarity matrix s (N, N), pairs on the diagonal."""
    cases = []
    for i, (n, tau) in enumerate(((2, 1.0), (4, 0.07), (8, 0.5), (16, 0.01))):
        v, t = _embeddings(n, 8, i)
        expected = clip_loss(v, t, torch.tensor(1 / tau).log()).item()
        cases.append(Case(args=(similarity(v, t), tau), expected=expected, label=f"N={n}, tau={tau}"))
    return check(info_nce, cases, name="info_nce")


def check_match_probabilities(match_probabilities) -> bool:
    """``match_probabilities(s, tau)``: p(text j | image i) = softmax_j(s_ij / tau), each row summing to 1."""
    cases = []
    for i, (n, tau) in enumerate(((3, 1.0), (5, 0.07), (5, 10.0), (4, 0.001))):
        v, t = _embeddings(n, 8, 10 + i)
        s = similarity(v, t)
        cases.append(Case(args=(s, tau), expected=F.softmax(s / tau, dim=1), label=f"N={n}, tau={tau}"))
    return check(match_probabilities, cases, name="match_probabilities")


def check_recall_at_k(recall) -> bool:
    """``recall(s, k)``: the share of rows i whose column i is among the k largest entries of row i (a float)."""
    cases = []
    for i, (q, k) in enumerate(((4, 1), (6, 2), (10, 3), (10, 10), (7, 1))):
        v, t = _embeddings(q, 4, 20 + i)
        s = similarity(v, t)
        cases.append(Case(args=(s, k), expected=recall_at_k(s, k), label=f"{q} queries, k={k}"))
    s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.1, 0.2, 0.3]])
    cases.append(Case(args=(s, 1), expected=2 / 3, label="rows are queries: row 1 ranks column 0 first"))
    return check(recall, cases, name="recall")


def check_hinge_from_similarity(hinge) -> bool:
    """``hinge(s, margin)``: 1/N sum_i sum_{j != i} ([m - s_ii + s_ij]_+ + [m - s_ii + s_ji]_+) for s (N, N)."""
    cases = []
    for i, (n, m) in enumerate(((2, 0.0), (4, 0.2), (6, 0.5), (8, 1.0))):
        v, t = _embeddings(n, 8, 30 + i)
        cases.append(Case(args=(similarity(v, t), m), expected=hinge_loss(v, t, m).item(), label=f"N={n}, margin={m}"))
    return check(hinge, cases, name="hinge")
