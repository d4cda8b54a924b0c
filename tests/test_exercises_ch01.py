"""Chapter 01's checkers accept a right answer and reject wrong ones, naming the usual mistakes (so a student's
feedback can be trusted). The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch01


def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


def merge_right_to_left(ids, pair, new_id):  # "5 5 5" -> [5, 9] instead of [9, 5]
    return merge(ids[::-1], pair[::-1], new_id)[::-1]


def shift_matrix(k, d_model):
    m = torch.zeros(d_model, d_model)
    for i in range(d_model // 2):
        a = k / 10000 ** (2 * i / d_model)
        m[2 * i, 2 * i], m[2 * i, 2 * i + 1] = math.cos(a), math.sin(a)
        m[2 * i + 1, 2 * i], m[2 * i + 1, 2 * i + 1] = -math.sin(a), math.cos(a)
    return m


def caption_perplexity(log_probs, ids):
    nll = [-log_probs[a, b].item() for a, b in zip(ids, ids[1:])]
    return math.exp(sum(nll) / len(nll))


def rotate_pair(x, y, m, theta):
    a = m * theta
    return x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)


SOLUTIONS = {ch01.check_merge: merge, ch01.check_sinusoidal_shift: shift_matrix,
             ch01.check_caption_perplexity: caption_perplexity, ch01.check_rotate_pair: rotate_pair}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch01.check_caption_perplexity(   # a 0-d tensor is as good as a float
        lambda lp, ids: (-lp[torch.tensor(ids[:-1]), torch.tensor(ids[1:])]).mean().exp())
    assert ch01.check_rotate_pair(lambda x, y, m, theta: list(rotate_pair(x, y, m, theta)))  # a list will do


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch01.check_merge, merge_first_only, "likely mistake: merged only the first occurrence"),
    (ch01.check_merge, merge_right_to_left, "three in a row"),
    (ch01.check_merge, merge_right_to_left, "likely mistake: merged right to left"),
    (ch01.check_merge, lambda ids, pair, new_id: tuple(merge(ids, pair, new_id)),
     "expected a list of ids, got a tuple"),
    (ch01.check_sinusoidal_shift, lambda k, d: shift_matrix(k, d).T, "likely mistake: M is transposed"),
    (ch01.check_sinusoidal_shift, lambda k, d: shift_matrix(k, d).T, "M @ PE[t] misses PE[t + k]"),
    (ch01.check_sinusoidal_shift, lambda k, d: shift_matrix(1, d), "likely mistake: forgot k"),
    (ch01.check_caption_perplexity, lambda lp, ids: caption_perplexity(lp.T, ids),
     "likely mistake: read log p(a | b)"),
    (ch01.check_caption_perplexity, lambda lp, ids: math.exp(-sum(lp[a, b].item() for a, b in zip(ids, ids[1:]))),
     "likely mistake: exp of the sum"),
    (ch01.check_caption_perplexity, lambda lp, ids: math.log(caption_perplexity(lp, ids)),
     "likely mistake: forgot the exp"),
    (ch01.check_rotate_pair, lambda x, y, m, theta: rotate_pair(x, y, 1, theta),
     "likely mistake: rotated by theta, not by m * theta"),
    (ch01.check_rotate_pair, lambda x, y, m, theta: rotate_pair(x, y, -m, theta), "likely mistake: rotated clockwise"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
