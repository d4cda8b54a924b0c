"""Chapter 06's checkers accept a right answer and reject the usual wrong ones, naming the mistake. The stub,
crash and wrong-type checks for every chapter are in test_exercises.py."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from vitlib.data import IGNORE_INDEX, Scene
from vitlib.exercises import ch06


def sample_negative_texts(sim, generator):
    logits = sim.masked_fill(torch.eye(len(sim), dtype=torch.bool), float("-inf"))
    return torch.multinomial(logits.softmax(dim=1), 1, generator=generator)[:, 0]


def swap_negative(scene, attribute):
    a, b = scene.objects
    return (replace(a, **{attribute: getattr(b, attribute)}), replace(b, **{attribute: getattr(a, attribute)}))


def masking_stats(maskable, mask_prob):
    n = maskable.sum(dim=1).double()            # (B,): maskable words per caption
    return (mask_prob * n).mean().item(), ((1 - mask_prob) ** n).mean().item()


def masked_lm_loss(logits, labels):
    chosen = labels != IGNORE_INDEX
    log_p = logits[chosen].log_softmax(dim=-1)            # (M, V)
    return -log_p.gather(1, labels[chosen][:, None]).mean()


SOLUTIONS = {ch06.check_sample_negative_texts: sample_negative_texts, ch06.check_swap_negative: swap_negative,
             ch06.check_masking_stats: masking_stats, ch06.check_masked_lm_loss: masked_lm_loss}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution) if checker is not ch06.check_sample_negative_texts else checker(solution, n=800)
    assert ch06.check_masked_lm_loss(lambda logits, labels: masked_lm_loss(logits, labels).item())  # a float will do
    assert ch06.check_masking_stats(lambda m, p: tuple(map(torch.tensor, masking_stats(m, p))))   # 0-d tensors too


def uniform_negatives(sim, generator):
    return sample_negative_texts(torch.zeros_like(sim), generator)


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch06.check_sample_negative_texts, lambda sim, g: torch.multinomial(sim.softmax(dim=1), 1, generator=g)[:, 0],
     "the positive was drawn"),
    (ch06.check_sample_negative_texts,     # always the top one: not sampled
     lambda sim, g: sim.masked_fill(torch.eye(len(sim), dtype=torch.bool), float("-inf")).argmax(1),
     "each image got the same text in every draw"),
    (ch06.check_sample_negative_texts, uniform_negatives, "likely mistake: uniform over j != i"),
    (ch06.check_sample_negative_texts, lambda sim, g: sample_negative_texts(sim, g) + len(sim),
     "text indices must lie in 0 .. 2"),
    (ch06.check_swap_negative, lambda scene, attribute: scene.objects[::-1], "likely mistake: exchanged the whole"),
    (ch06.check_swap_negative, lambda scene, attribute: (replace(scene.objects[0], **{
        attribute: getattr(scene.objects[1], attribute)}), scene.objects[1]), "likely mistake: replaced instead of"),
    (ch06.check_swap_negative, lambda scene, attribute: swap_negative(scene, "shape" if attribute == "color" else
                                                                      "color"), "likely mistake: exchanged the"),
    (ch06.check_swap_negative, lambda scene, attribute: swap_negative(
        Scene(swap_negative(scene, "color")), "shape"), "likely mistake: exchanged colour and shape together"),
    (ch06.check_masking_stats, lambda m, p: masking_stats(torch.ones_like(m), p),
     "likely mistake: counted every position"),
    (ch06.check_masking_stats, lambda m, p: masking_stats(m, 0.8 * p), "likely mistake: counted only the words"),
    (ch06.check_masking_stats, lambda m, p: (masking_stats(m, p)[0], (p ** m.sum(1).double()).mean().item()),
     "likely mistake: P(none chosen) is (1 - p)^n"),
    (ch06.check_masking_stats, lambda m, p: (masking_stats(m, p)[0], (1 - p) ** m.sum(1).double().mean().item()),
     "likely mistake: raised (1 - p) to the mean length"),
    (ch06.check_masking_stats, lambda m, p: masking_stats(m, p)[0], "expected a tuple"),
    (ch06.check_masked_lm_loss,
     lambda logits, labels: F.cross_entropy(logits.flatten(0, 1), labels.flatten().clamp(min=0)),
     "likely mistake: scored every position, reading IGNORE_INDEX as token 0"),
    (ch06.check_masked_lm_loss, lambda logits, labels: masked_lm_loss(logits, labels) * (labels != -100).sum(),
     "likely mistake: summed over the masked positions"),
    (ch06.check_masked_lm_loss, lambda logits, labels: -logits.log_softmax(-1).gather(-1, labels[..., None]).mean(),
     "hint: labels are IGNORE_INDEX (-100) where nothing was masked"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not (checker(wrong, n=300) if checker is ch06.check_sample_negative_texts else checker(wrong))
    assert named in capsys.readouterr().out
