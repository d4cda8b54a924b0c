"""Chapter 06's checkers accept a right answer and reject the usual wrong ones, naming the mistake. The stub,
crash and wrong-type checks for every chapter are in test_exercises.py."""

import pytest
import torch
import torch.nn.functional as F

from vitlib.data import IGNORE_INDEX
from vitlib.exercises import ch06


def sample_negative_texts(sim, generator):
    logits = sim.masked_fill(torch.eye(len(sim), dtype=torch.bool), float("-inf"))
    return torch.multinomial(logits.softmax(dim=1), 1, generator=generator)[:, 0]


def mask_caption(input_ids, mask_id, mask_prob, maskable, generator):
    chosen = (torch.rand(input_ids.shape, generator=generator) < mask_prob) & maskable
    return input_ids.masked_fill(chosen, mask_id), input_ids.masked_fill(~chosen, IGNORE_INDEX)


def itm_batch(text_for_image, image_for_text):
    i = torch.arange(len(text_for_image))
    return (torch.cat([i, i, image_for_text]), torch.cat([i, text_for_image, i]),
            torch.cat([torch.ones_like(i), torch.zeros_like(i), torch.zeros_like(i)]))


def masked_lm_loss(logits, labels):
    chosen = labels != IGNORE_INDEX
    log_p = logits[chosen].log_softmax(dim=-1)            # (M, V)
    return -log_p.gather(1, labels[chosen][:, None]).mean()


SOLUTIONS = {ch06.check_sample_negative_texts: sample_negative_texts, ch06.check_mask_caption: mask_caption,
             ch06.check_itm_batch: itm_batch, ch06.check_masked_lm_loss: masked_lm_loss}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution) if checker is not ch06.check_sample_negative_texts else checker(solution, n=800)
    assert ch06.check_masked_lm_loss(lambda logits, labels: masked_lm_loss(logits, labels).item())  # a float will do


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
    (ch06.check_mask_caption, lambda ids, m, p, ok, g: mask_caption(ids, m, p, torch.ones_like(ok), g),
     "likely mistake: masked tokens that maskable forbids"),
    (ch06.check_mask_caption, lambda ids, m, p, ok, g: (mask_caption(ids, m, p, ok, g)[0], ids),
     "likely mistake: labels everywhere"),
    (ch06.check_mask_caption, lambda ids, m, p, ok, g: (lambda x, y: (x, x.masked_fill(y == IGNORE_INDEX, -100)))(
        *mask_caption(ids, m, p, ok, g)), "likely mistake: labels hold mask_id"),
    (ch06.check_itm_batch, lambda t, i: (*itm_batch(t, i)[:2], itm_batch(t, i)[2].float()),
     "labels must be a LongTensor"),
    (ch06.check_itm_batch, lambda t, i: itm_batch(i, t),
     "likely mistake: text_for_image and image_for_text swapped"),
    (ch06.check_itm_batch, lambda t, i: (*itm_batch(t, i)[:2], 1 - itm_batch(t, i)[2]),
     "likely mistake: labels inverted"),
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
