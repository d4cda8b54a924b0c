"""Checkers for chapter 05's exercises: each runs your function on small random similarity matrices or embeddings
and compares it with ``vitlib.contrastive`` (itself verified against transformers' CLIP and SigLIP losses)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..contrastive import clip_loss, hinge_loss, similarity
from ..metrics import recall_at_k
from . import Case, check, function_name


def _embeddings(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired embeddings of unequal lengths: t_i is v_i plus noise, so the diagonal tends to win (but not always)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g) * (1 + torch.rand(n, 1, generator=g) * 3)
    t = v + torch.randn(n, d, generator=g) * 1.5
    return v, t


def _infonce_directions(s: torch.Tensor, tau: float) -> tuple[float, float]:
    """Cross-entropy of rows (image -> text) and of columns (text -> image) of s / tau, pairs on the diagonal."""
    targets = torch.arange(len(s))
    return F.cross_entropy(s / tau, targets).item(), F.cross_entropy(s.T / tau, targets).item()


def check_info_nce(info_nce) -> bool:
    """``info_nce(s, tau)``: the symmetric InfoNCE of a cosine-similarity matrix s (N, N), pairs on the diagonal."""
    cases = []
    for i, (n, tau) in enumerate(((2, 1.0), (4, 0.07), (8, 0.5), (16, 0.01))):
        v, t = _embeddings(n, 8, i)
        s = similarity(v, t)                                                      # (N, N)
        rows, cols = _infonce_directions(s, tau)
        cases.append(Case(args=(s, tau), expected=clip_loss(v, t, torch.tensor(1 / tau).log()).item(),
                          label=f"N={n}, tau={tau}", mistakes={
                              "one direction only: average image->text (rows) and text->image (columns)": rows,
                              "summed the two directions: InfoNCE is their mean": rows + cols,
                              "multiplied by tau: the logits are s / tau": sum(_infonce_directions(s * tau, 1.0)) / 2,
                              "forgot the temperature: the logits are s / tau": sum(_infonce_directions(s, 1.0)) / 2}))
    return check(info_nce, cases, name=function_name(info_nce, "info_nce"))


def check_match_probabilities(match_probabilities) -> bool:
    """``match_probabilities(s, tau)``: p(text j | image i) = softmax_j(s_ij / tau), each row summing to 1."""
    cases = []
    for i, (n, tau) in enumerate(((3, 1.0), (5, 0.07), (5, 10.0), (4, 0.001))):
        v, t = _embeddings(n, 8, 10 + i)
        s = similarity(v, t)
        cases.append(Case(args=(s, tau), expected=F.softmax(s / tau, dim=1), label=f"N={n}, tau={tau}", mistakes={
            "softmax over the columns (dim=0): each row, one image, must sum to 1": F.softmax(s / tau, dim=0),
            "forgot the temperature: softmax(s / tau)": F.softmax(s, dim=1),
            "softmax over the whole matrix: normalise each row on its own":
                F.softmax((s / tau).flatten(), dim=0).reshape(s.shape)}))
    return check(match_probabilities, cases, name=function_name(match_probabilities, "match_probabilities"))


def check_recall_at_k(recall) -> bool:
    """``recall(s, k)``: the share of rows i whose column i is among the k largest entries of row i (a float)."""
    inputs = []
    for i, (q, k) in enumerate(((4, 1), (6, 2), (10, 3), (10, 10), (7, 1))):
        v, t = _embeddings(q, 4, 20 + i)
        inputs.append((similarity(v, t), k, f"{q} queries, k={k}"))
    inputs.append((torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.1, 0.2, 0.3]]), 1,
                   "rows are queries: row 1 ranks column 0 first"))
    cases = []
    for s, k, label in inputs:
        mistakes = {"columns as queries: each row is a query, its target the diagonal entry": recall_at_k(s.T, k)}
        if k > 1:
            mistakes["off by one: the top k includes the k-th largest (top k - 1 counted)"] = recall_at_k(s, k - 1)
        cases.append(Case(args=(s, k), expected=recall_at_k(s, k), label=label, mistakes=mistakes))
    return check(recall, cases, name=function_name(recall, "recall"))


def check_hinge_from_similarity(hinge) -> bool:
    """``hinge(s, margin)``: 1/N sum_i sum_{j != i} ([m - s_ii + s_ij]_+ + [m - s_ii + s_ji]_+) for s (N, N)."""
    cases = []
    for i, (n, m) in enumerate(((2, 0.0), (4, 0.2), (6, 0.5), (8, 1.0))):
        v, t = _embeddings(n, 8, 30 + i)
        s = similarity(v, t)
        positive, off = s.diag()[:, None], ~torch.eye(n, dtype=torch.bool)             # (N, 1), (N, N)
        rows = (m - positive + s).clamp(min=0)[off].sum().item() / n                     # image -> text
        cols = (m - positive + s.T).clamp(min=0)[off].sum().item() / n                   # text -> image
        cases.append(Case(args=(s, m), expected=hinge_loss(v, t, m).item(), label=f"N={n}, margin={m}", mistakes={
            "the mean of the two directions: the loss sums them": (rows + cols) / 2,
            "one direction only: add the text -> image terms (s_ji)": rows,
            "counted j = i: the pair's own terms add 2 x margin; sum over j != i only": rows + cols + 2 * max(m, 0.0)}))
    return check(hinge, cases, name=function_name(hinge, "hinge"))
