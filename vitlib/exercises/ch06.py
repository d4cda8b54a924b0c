"""Checkers for chapter 06's exercises: hard-negative sampling, token masking, ITM pairs and the masked-LM loss.
Each compares your function with ``vitlib.vlp`` (or, for the sampler, with the probabilities it must follow)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import IGNORE_INDEX
from ..vlp import itm_pairs, mask_tokens
from . import Case, check, mismatch


def _frequencies(sample_negative_texts, sim: torch.Tensor, n: int) -> torch.Tensor:
    """Run the sampler n times; (B, B) fraction of draws of text j for image i."""
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(sim.shape)
    for _ in range(n):
        j = sample_negative_texts(sim, g)
        if not isinstance(j, torch.Tensor) or j.shape != (len(sim),) or j.dtype != torch.long:
            raise TypeError(f"expected a LongTensor of shape ({len(sim)},), one text index per image, got "
                            f"{getattr(j, 'dtype', type(j).__name__)} {tuple(getattr(j, 'shape', ()))}")
        counts[torch.arange(len(sim)), j] += 1
    return counts / n


def check_sample_negative_texts(sample_negative_texts, n: int = 1500) -> bool:
    """``sample_negative_texts(sim, generator) -> (B,)``: for image i a text j != i with probability
    softmax_j(sim[i, j]) over j != i. Checked by drawing ``n`` times and comparing frequencies."""
    sims = {"uniform logits": torch.zeros(3, 3),
            "one close text per image": torch.tensor([[4.0, 3.0, 0.0], [0.0, 4.0, 3.0], [3.0, 0.0, 4.0]]),
            "the positive scores lowest": torch.tensor([[-5.0, 1.0, 0.0, 0.5], [2.0, -5.0, 1.0, 0.0],
                                                        [0.0, 0.0, -5.0, 1.0], [1.0, 2.0, 0.5, -5.0]])}
    cases = []
    for label, sim in sims.items():
        off = ~torch.eye(len(sim), dtype=torch.bool)
        cases.append(Case(args=(sim,), expected=sim.masked_fill(~off, float("-inf")).softmax(dim=1), label=label))

    def close(got, expected):
        if got.diagonal().sum() > 0:
            raise AssertionError(f"the positive was drawn: image i got its own text i in a fraction "
                                 f"{got.diagonal().tolist()} of the draws; exclude the diagonal")
        if (got - expected).abs().max() > 0.05:
            raise AssertionError(f"frequencies {got.tolist()} are far from softmax over j != i {expected.tolist()}")
    return check(lambda sim: _frequencies(sample_negative_texts, sim, n), cases, name="sample_negative_texts",
                 compare=close)


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
        cases.append(Case(args=(ids, 80, p, maskable, torch.Generator().manual_seed(i)), expected=expected,
                          label=f"{B}x{T} ids, mask_prob={p}"))
    return check(mask_caption, cases, name="mask_caption")


def check_itm_batch(itm_batch) -> bool:
    """``itm_batch(text_for_image, image_for_text) -> (image_idx, text_idx, labels)``: B positives (i, i, 1), then
    (i, text_for_image[i], 0), then (image_for_text[j], j, 0); all LongTensors of length 3B."""
    cases = []
    for t, i in (([1, 0], [1, 0]), ([2, 0, 1], [1, 2, 0]), ([3, 3, 0, 1], [2, 0, 3, 0])):
        t, i = torch.tensor(t), torch.tensor(i)
        cases.append(Case(args=(t, i), expected=itm_pairs(t, i), label=f"B={len(t)}"))

    def same(got, expected):
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError("expected a tuple (image_idx, text_idx, labels)")
        for name, g, e in zip(("image_idx", "text_idx", "labels"), got, expected):
            if isinstance(g, torch.Tensor) and g.dtype != torch.long:
                raise AssertionError(f"{name} must be a LongTensor (cross_entropy wants long labels), got {g.dtype}")
            if (why := mismatch(g, e)) is not None:
                raise AssertionError(f"{name}: {why}")
    return check(itm_batch, cases, name="itm_batch", compare=same)


def check_masked_lm_loss(masked_lm_loss) -> bool:
    """``masked_lm_loss(logits (B, T, V), labels (B, T)) -> scalar``: the mean of -log softmax(logits)[label] over
    the positions whose label is not IGNORE_INDEX (-100), written without ``ignore_index``."""
    cases = []
    for i, (B, T, V) in enumerate(((1, 4, 5), (2, 6, 10), (3, 5, 80))):
        g = torch.Generator().manual_seed(20 + i)
        logits = torch.randn(B, T, V, generator=g) * 3
        labels = torch.randint(0, V, (B, T), generator=g)
        labels[torch.rand(B, T, generator=g) < 0.6] = IGNORE_INDEX
        labels[0, 1] = 2   # at least one masked position
        expected = F.cross_entropy(logits.reshape(-1, V), labels.flatten(), ignore_index=IGNORE_INDEX)
        cases.append(Case(args=(logits, labels), expected=expected,
                          label=f"{(labels != IGNORE_INDEX).sum().item()} masked of {B * T}"))
    return check(masked_lm_loss, cases, name="masked_lm_loss")
