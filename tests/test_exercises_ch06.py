"""Chapter 06's checkers accept a right answer and reject the usual wrong ones."""

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


def test_checkers_accept_correct_solutions():
    assert ch06.check_sample_negative_texts(sample_negative_texts, n=800)
    assert ch06.check_mask_caption(mask_caption)
    assert ch06.check_itm_batch(itm_batch)
    assert ch06.check_masked_lm_loss(masked_lm_loss)


def test_checkers_reject_wrong_solutions(capsys):
    with_positive = lambda sim, g: torch.multinomial(sim.softmax(dim=1), 1, generator=g)[:, 0]  # noqa: E731
    hardest = lambda sim, g: sim.masked_fill(torch.eye(len(sim), dtype=torch.bool), float("-inf")).argmax(1)  # noqa: E731
    assert not ch06.check_sample_negative_texts(with_positive, n=300)
    assert not ch06.check_sample_negative_texts(hardest, n=300)        # always the top one: not sampled
    assert not ch06.check_mask_caption(
        lambda ids, m, p, ok, g: mask_caption(ids, m, p, torch.ones_like(ok), g))   # masks <bos> and padding
    assert not ch06.check_mask_caption(
        lambda ids, m, p, ok, g: (mask_caption(ids, m, p, ok, g)[0], ids))         # labels everywhere
    assert not ch06.check_itm_batch(lambda t, i: (*itm_batch(t, i)[:2], itm_batch(t, i)[2].float()))  # float labels
    assert not ch06.check_itm_batch(lambda t, i: (itm_batch(i, t)))                  # directions swapped
    assert not ch06.check_masked_lm_loss(
        lambda logits, labels: F.cross_entropy(logits.flatten(0, 1), labels.flatten().clamp(min=0)))  # all positions
    assert not ch06.check_masked_lm_loss(lambda logits, labels: masked_lm_loss(logits, labels) * labels.numel())
    out = capsys.readouterr().out
    assert "the positive was drawn" in out
    assert "must be a LongTensor" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch06.check_itm_batch(stub)
    assert not ch06.check_sample_negative_texts(stub)
    assert "not implemented yet" in capsys.readouterr().out
