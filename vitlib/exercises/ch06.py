"""Checkers for chapter 06's exercises: hard-negative sampling, token masking, ITM pairs and the masked-LM loss.
Each compares your function with ``vitlib.vlp`` (or, for the sampler, with the probabilities it must follow)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..data import IGNORE_INDEX
from ..vlp import itm_pairs, mask_tokens
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


def check_mask_caption(mask_caption) -> bool:
    """``mask_caption(input_ids, mask_id, mask_prob, maskable, generator) -> (masked_ids, labels)``: one draw
    u = torch.rand(input_ids.shape, generator=generator); chosen = (u < mask_prob) & maskable; chosen ids become
    mask_id; labels hold the original id where chosen and IGNORE_INDEX (-100) elsewhere."""
    cases = []
    for i, (B, T, p) in enumerate(((1, 6, 0.5), (3, 8, 0.15), (4, 12, 0.3))):
        g = torch.Generator().manual_seed(10 + i)
        ids = torch.randint(5, 60, (B, T), generator=g)
        ids[:, 0] = 1
        maskable = torch.ones(B, T, dtype=torch.bool)
        maskable[:, 0] = False
        if B > 1:
            maskable[1, T // 2:] = False   # padding
        expected = mask_tokens(ids, 80, 80, p, maskable, torch.Generator().manual_seed(i), replace_probs=(1.0, 0.0))
        u = torch.rand(ids.shape, generator=torch.Generator().manual_seed(i))          # the one draw, (B, T)
        everywhere = u < p
        cases.append(Case(args=(ids, 80, p, maskable, torch.Generator().manual_seed(i)), expected=expected,
                          label=f"{B}x{T} ids, mask_prob={p}", mistakes={
                              "masked tokens that maskable forbids (<bos>, padding): "
                              "chosen = (u < mask_prob) & maskable":
                                  (ids.masked_fill(everywhere, 80), ids.masked_fill(~everywhere, IGNORE_INDEX)),
                              "labels everywhere: IGNORE_INDEX (-100) where a token was not chosen":
                                  (expected[0], ids),
                              "labels hold mask_id: they keep the original id of each chosen token":
                                  (expected[0], expected[0].masked_fill(expected[1] == IGNORE_INDEX, IGNORE_INDEX))}))
    return check(mask_caption, cases, name=function_name(mask_caption, "mask_caption"))


def check_itm_batch(itm_batch) -> bool:
    """``itm_batch(text_for_image, image_for_text) -> (image_idx, text_idx, labels)``: B positives (i, i, 1), then
    (i, text_for_image[i], 0), then (image_for_text[j], j, 0); all LongTensors of length 3B."""
    cases = []
    for t, i in (([1, 0], [1, 0]), ([2, 0, 1], [1, 2, 0]), ([3, 3, 0, 1], [2, 0, 3, 0])):
        t, i = torch.tensor(t), torch.tensor(i)
        cases.append(Case(args=(t, i), expected=itm_pairs(t, i), label=f"B={len(t)}", mistakes={
            "text_for_image and image_for_text swapped: image i's negative text is text_for_image[i]": itm_pairs(i, t),
            "labels inverted: 1 for the B positives, 0 for the 2B negatives":
                (*itm_pairs(t, i)[:2], 1 - itm_pairs(t, i)[2])}))

    def same(got, expected):
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError(f"expected a tuple (image_idx, text_idx, labels), got {kind(got)}")
        for name, g, e in zip(("image_idx", "text_idx", "labels"), got, expected):
            if isinstance(g, torch.Tensor) and g.dtype != torch.long:
                raise AssertionError(f"{name} must be a LongTensor: expected dtype torch.int64 (cross_entropy "
                                     f"wants long labels), got dtype {g.dtype}")
            if (why := mismatch(g, e)) is not None:
                raise AssertionError(f"{name}: {why}")
    return check(itm_batch, cases, name=function_name(itm_batch, "itm_batch"), compare=same)


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
