"""Checkers for chapter 05's exercises: InfoNCE at initialisation, the gradient of symmetric InfoNCE, the hinge loss
both ways, and swap negatives. Each compares your answer with ``vitlib.contrastive`` (itself verified against
transformers' CLIP and SigLIP losses) or with autograd, and names the usual mistakes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..contrastive import hinge_loss, similarity
from . import Case, check, function_name, mismatch


def _embeddings(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired embeddings of unequal lengths: t_i is v_i plus noise, so the diagonal tends to win (but not always)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g) * (1 + torch.rand(n, 1, generator=g) * 3)
    t = v + torch.randn(n, d, generator=g) * 1.5
    return v, t


def check_initial_loss(predict_initial_loss) -> bool:
    """``predict_initial_loss(n)``: InfoNCE of a batch of n pairs when every image and every text embedding is the
    same (a collapsed start): each row's softmax is uniform, so the loss is log n in both directions."""
    cases = [Case(args=(n,), expected=math.log(n), label=f"batch of {n}", mistakes={
        "log base 2 or 10: the cross-entropy uses the natural logarithm": math.log2(n),
        "the probability 1/n is not the loss: the loss is -log p": 1 / n,
        "log(n - 1): the own text is one of the n candidates in the softmax": math.log(n - 1),
        "the sum of the two directions: CLIP averages them": 2 * math.log(n)})
             for n in (2, 8, 64, 512)]
    return check(predict_initial_loss, cases, name=function_name(predict_initial_loss, "predict_initial_loss"))


def _grads(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Autograd's gradients of the row (image -> text) and column (text -> image) cross-entropies."""
    logits = logits.detach().clone().requires_grad_(True)
    targets = torch.arange(len(logits))
    rows = torch.autograd.grad(F.cross_entropy(logits, targets), logits)[0]
    cols = torch.autograd.grad(F.cross_entropy(logits.T, targets), logits)[0]
    return rows, cols


def check_infonce_grad(infonce_grad) -> bool:
    """``infonce_grad(logits)``: dL/dlogits (N, N) of CLIP's symmetric InfoNCE L = (CE(logits) + CE(logits^T)) / 2,
    pairs on the diagonal; compared with autograd."""
    cases = []
    for i, n in enumerate((2, 4, 8)):
        v, t = _embeddings(n, 8, 40 + i)
        logits = similarity(v, t) / 0.1                                             # (N, N)
        rows, cols = _grads(logits)
        expected = (rows + cols) / 2
        cases.append(Case(args=(logits,), expected=expected, label=f"N={n}", mistakes={
            "one direction only: add the text -> image term (softmax over each column)": rows,
            "summed the two directions: L is their mean, so each term carries 1/2": rows + cols,
            "forgot the 1/N: the loss is a mean over the batch": n * expected,
            "sign: dL/dlogit = p - delta (softmax minus one-hot), not delta - p": -expected}))
    return check(infonce_grad, cases, name=function_name(infonce_grad, "infonce_grad"))


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
            "the diagonal left in: each pair's own terms add [m]_+ twice; sum over j != i only":
                rows + cols + 2 * max(m, 0.0)}))
    return check(hinge, cases, name=function_name(hinge, "hinge"))


def _swapped(objects: list[tuple[str, str]], attribute: str) -> list[tuple[str, str]]:
    (c1, s1), (c2, s2) = objects
    return [(c2, s1), (c1, s2)] if attribute == "color" else [(c1, s2), (c2, s1)]


def _words(objects) -> list[str] | None:
    """The sorted words of a list of (colour, shape) pairs; None when it is not one."""
    if not isinstance(objects, (list, tuple)) or not all(isinstance(o, (list, tuple)) and len(o) == 2 and
                                                         all(isinstance(w, str) for w in o) for o in objects):
        return None
    return sorted(w for o in objects for w in o)


def _compare_swap(got, expected) -> bool:
    why = mismatch(got, expected)
    if why is None:
        return True
    if _words(got) is not None and _words(got) != _words(expected):
        raise AssertionError(f"{why}; likely mistake: words changed instead of swapped: a swap negative holds "
                             f"exactly the true caption's words, only who has which is exchanged")
    raise AssertionError(why)


def check_swap_negative(swap_negative) -> bool:
    """``swap_negative(objects, attribute)``: the objects of a two-object caption, [(colour, shape), (colour, shape)],
    with ``attribute`` ("color" or "shape") exchanged between the two objects; a new list, in the same order."""
    scenes = ([("red", "circle"), ("blue", "square")], [("green", "triangle"), ("orange", "cross")],
              [("purple", "diamond"), ("yellow", "square")])
    cases = []
    for objects in scenes:
        for attribute in ("color", "shape"):
            (c1, s1), (c2, s2) = objects
            cases.append(Case(args=(objects, attribute), expected=_swapped(objects, attribute),
                              label=f"{attribute} swap", mistakes={
                                  "returned the true objects: the negative must differ from the caption":
                                      [tuple(o) for o in objects],
                                  "a swap within one object (its colour and shape exchanged): swap one attribute "
                                  "between the two objects": [(s1, c1), (s2, c2)],
                                  "the objects reordered (or the other attribute swapped): object k keeps its "
                                  "shape in a colour swap, its colour in a shape swap":
                                      _swapped(objects, "shape" if attribute == "color" else "color")}))
    return check(swap_negative, cases, name=function_name(swap_negative, "swap_negative"), compare=_compare_swap)
