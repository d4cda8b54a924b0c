"""Checkers for chapter 06's exercises: hard-negative sampling, swap negatives, how many words masking chooses, and
the masked-LM loss. Each compares your function with ``vitlib`` (``vlp``, ``binding``) or with the formula it must
follow, and names the likely mistake when a known wrong variant matches."""

from __future__ import annotations

import functools
import random
from dataclasses import replace

import torch
import torch.nn.functional as F

from ..binding import swap
from ..data import IGNORE_INDEX, Obj, Scene, ShapesWorld
from . import Case, check, function_name, hint_on_error, kind, mismatch, short_repr


class _BadDraw:
    """A draw that is not one text index per image; the comparison says what is wrong with it."""

    def __init__(self, draw, n_images: int):
        self.draw, self.n_images = draw, n_images

    def __repr__(self) -> str:
        return short_repr(self.draw)

    def problem(self) -> str:
        j, B = self.draw, self.n_images
        want = f"expected a torch.Tensor of shape ({B},) and dtype torch.int64, one text index per image"
        if not isinstance(j, torch.Tensor):
            return f"{want}, got {kind(j)}"
        if j.shape != (B,) or j.dtype != torch.long:
            return f"{want}, got shape {tuple(j.shape)} and dtype {j.dtype}"
        return f"text indices must lie in 0 .. {B - 1}, got {j.tolist()}"


def _frequencies(sample_negative_texts, n: int):
    """sim -> (B, B) fraction of n draws of text j for image i (or the first malformed draw, as a _BadDraw)."""
    @functools.wraps(sample_negative_texts)  # so that feedback names (and a stub is traced to) the student's function
    def frequencies(sim: torch.Tensor):
        g = torch.Generator().manual_seed(0)
        B = len(sim)
        counts = torch.zeros(sim.shape)                                                  # (B, B)
        for _ in range(n):
            j = sample_negative_texts(sim, g)
            if not (isinstance(j, torch.Tensor) and j.shape == (B,) and j.dtype == torch.long
                    and bool(((j >= 0) & (j < B)).all())):
                return _BadDraw(j, B)
            counts[torch.arange(B), j] += 1
        return counts / n
    return frequencies


def check_sample_negative_texts(sample_negative_texts, n: int = 1500) -> bool:
    """``sample_negative_texts(sim, generator) -> (B,)``: for image i a text j != i with probability
    softmax_j(sim[i, j]) over j != i. Checked by drawing ``n`` times (one seeded generator) and comparing
    frequencies."""
    sims = {"uniform logits": torch.zeros(3, 3),
            "one close text per image": torch.tensor([[4.0, 3.0, 0.0], [0.0, 4.0, 3.0], [3.0, 0.0, 4.0]]),
            "the positive scores lowest": torch.tensor([[-5.0, 1.0, 0.0, 0.5], [2.0, -5.0, 1.0, 0.0],
                                                        [0.0, 0.0, -5.0, 1.0], [1.0, 2.0, 0.5, -5.0]])}
    cases = []
    for label, sim in sims.items():
        off = ~torch.eye(len(sim), dtype=torch.bool)
        uniform = off.float() / (len(sim) - 1)
        cases.append(Case(args=(sim,), expected=sim.masked_fill(~off, float("-inf")).softmax(dim=1),
                          label=f"{label}, {n} draws", mistakes={
                              "uniform over j != i: draw in proportion to softmax(sim[i]) instead": uniform}))

    def close(got, expected):
        if isinstance(got, _BadDraw):
            raise AssertionError(got.problem())
        if got.diagonal().sum() > 0:
            raise AssertionError(f"the positive was drawn: image i got its own text i in a fraction "
                                 f"{got.diagonal().tolist()} of the draws; exclude the diagonal")
        if bool((got.max(dim=1).values == 1).all()) and not bool((expected.max(dim=1).values == 1).all()):
            raise AssertionError("each image got the same text in every draw: sample (torch.multinomial with "
                                 "the generator), do not take the argmax")
        if (got - expected).abs().max() > 0.05:
            raise AssertionError(f"frequencies {got.tolist()} are far from softmax over j != i {expected.tolist()}")
    return check(_frequencies(sample_negative_texts, n), cases,
                 name=function_name(sample_negative_texts, "sample_negative_texts"), compare=close)


def _two_object_scenes() -> list[Scene]:
    """Scenes of two objects that differ in colour and in shape (sizes differ in one of them)."""
    return [Scene((Obj("circle", "red", "small", (0, 0)), Obj("square", "blue", "small", (1, 1)))),
            Scene((Obj("triangle", "green", "large", (2, 0)), Obj("diamond", "yellow", "small", (0, 2)))),
            Scene((Obj("cross", "purple", "large", (1, 2)), Obj("circle", "orange", "large", (1, 0))))]


def check_swap_negative(swap_negative) -> bool:
    """``swap_negative(scene, attribute) -> tuple of Obj``: the two objects of ``scene`` with ``attribute`` ("color",
    "shape" or "position") exchanged between them, in their order; compared with ``vitlib.binding.swap``."""
    world = ShapesWorld(image_size=32, max_objects=2, holdout=(), seed=0)
    cases = []
    for k, scene in enumerate(_two_object_scenes()):
        a, b = scene.objects
        for attribute in ("color", "shape", "position"):
            expected = swap(scene, attribute, world, random.Random(k)).objects
            other = "shape" if attribute == "color" else "color"
            mistakes = {
                "exchanged the whole objects: (b, a) is the same scene listed in another order, no negative at all":
                    (b, a),
                f"replaced instead of swapped: only the first object took the second's {attribute}; that changes "
                f"which words occur, and a bag of words sees it": (replace(a, **{attribute: getattr(b, attribute)}), b),
                f"exchanged the {other}, not the {attribute}":
                    (replace(a, **{other: getattr(b, other)}), replace(b, **{other: getattr(a, other)}))}
            if attribute != "position":
                mistakes["exchanged colour and shape together: each look moved to the other cell, which is a "
                         "position swap"] = (replace(a, color=b.color, shape=b.shape),
                                             replace(b, color=a.color, shape=a.shape))
            cases.append(Case(args=(scene, attribute), expected=tuple(expected), label=f"{attribute} swap",
                              mistakes=mistakes))
    return check(swap_negative, cases, name=function_name(swap_negative, "swap_negative"))


def check_masking_stats(masking_stats) -> bool:
    """``masking_stats(maskable (B, T) bool, mask_prob) -> (mean number of chosen words per caption, mean
    probability that a caption has none chosen)``: with n_b maskable words in caption b, E[chosen] = p n_b and
    P(none) = (1 - p)^n_b, each averaged over the captions. Floats, or 0-d tensors."""
    cases = []
    for i, (lengths, T, p) in enumerate((([4], 6, 0.5), ([3, 10, 14], 16, 0.15), ([12, 14, 15, 9], 18, 0.3))):
        maskable = torch.zeros(len(lengths), T, dtype=torch.bool)
        for row, n in enumerate(lengths):
            maskable[row, 1:n + 1] = True        # <bos> first; <eos> and padding after the words
        n = torch.tensor(lengths, dtype=torch.float64)
        none = ((1 - p) ** n).mean().item()
        cases.append(Case(args=(maskable, p), expected=((p * n).mean().item(), none),
                          label=f"{len(lengths)} captions, mask_prob={p}", mistakes={
                              "counted every position (T), not the maskable words":
                                  (p * T, (1 - p) ** T),
                              "counted only the words that become [MASK] (80%): every chosen word is a target":
                                  (0.8 * p * n.mean().item(), ((1 - 0.8 * p) ** n).mean().item()),
                              "P(none chosen) is (1 - p)^n, the chance that every word escapes; p^n is the chance "
                              "that all are chosen": ((p * n).mean().item(), (p ** n).mean().item()),
                              "raised (1 - p) to the mean length: average (1 - p)^n_b over the captions instead":
                                  ((p * n).mean().item(), (1 - p) ** n.mean().item())}))

    def close(got, expected):
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise AssertionError(f"expected a tuple (mean chosen words, P(none chosen)), got {kind(got)}")
        for name, g, e in zip(("mean chosen words", "P(none chosen)"), got, expected):
            g = g.item() if isinstance(g, torch.Tensor) and g.dim() == 0 else g
            if (why := mismatch(g, e, rtol=1e-4, atol=1e-6)) is not None:
                raise AssertionError(f"{name}: {why}")
    return check(masking_stats, cases, name=function_name(masking_stats, "masking_stats"), compare=close)


def check_masked_lm_loss(masked_lm_loss) -> bool:
    """``masked_lm_loss(logits (B, T, V), labels (B, T)) -> scalar``: the mean of -log softmax(logits)[label] over
    the positions whose label is not IGNORE_INDEX (-100), written without ``ignore_index``. A float or a 0-d
    tensor will do."""
    cases = []
    for i, (B, T, V) in enumerate(((1, 4, 5), (2, 6, 10), (3, 5, 80))):
        g = torch.Generator().manual_seed(20 + i)
        logits = torch.randn(B, T, V, generator=g) * 3
        labels = torch.randint(0, V, (B, T), generator=g)
        labels[torch.rand(B, T, generator=g) < 0.6] = IGNORE_INDEX
        labels[0, 1] = 2   # at least one masked position
        nll = F.cross_entropy(logits.reshape(-1, V), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none")
        chosen = labels.flatten() != IGNORE_INDEX                                          # (B*T,)
        cases.append(Case(args=(logits, labels), expected=nll[chosen].mean().item(),
                          label=f"{chosen.sum().item()} masked of {B * T}", mistakes={
                              "summed over the masked positions: take their mean": nll[chosen].sum().item(),
                              "averaged over every position, not only the masked ones": nll.sum().item() / (B * T),
                              "scored every position, reading IGNORE_INDEX as token 0: keep only labels != -100":
                                  F.cross_entropy(logits.reshape(-1, V), labels.flatten().clamp(min=0)).item()}))
    return check(masked_lm_loss, cases, name=function_name(masked_lm_loss, "masked_lm_loss"), explain=hint_on_error({
        "out of bounds": "labels are IGNORE_INDEX (-100) where nothing was masked: keep only the positions with "
                         "labels != -100 before indexing or gathering"}))
