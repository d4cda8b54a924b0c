"""Chapter 05's checkers accept a right answer and reject the usual wrong ones, naming the mistake. The stub,
crash and wrong-type checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch05


def predict_initial_loss(n):
    return math.log(n)


def infonce_grad(logits):
    n = len(logits)
    eye = torch.eye(n)
    return ((logits.softmax(dim=1) - eye) + (logits.softmax(dim=0) - eye)) / (2 * n)


def hinge(s, margin):
    n = len(s)
    positive = s.diag()
    off = ~torch.eye(n, dtype=torch.bool)
    return ((margin - positive[:, None] + s).clamp(min=0)[off].sum()
            + (margin - positive[:, None] + s.T).clamp(min=0)[off].sum()) / n


def swap_negative(objects, attribute):
    (c1, s1), (c2, s2) = objects
    return [(c2, s1), (c1, s2)] if attribute == "color" else [(c1, s2), (c2, s1)]


SOLUTIONS = {ch05.check_initial_loss: predict_initial_loss, ch05.check_infonce_grad: infonce_grad,
             ch05.check_hinge_from_similarity: hinge, ch05.check_swap_negative: swap_negative}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch05.check_initial_loss(lambda n: torch.tensor(math.log(n)))  # a 0-d tensor is as good as a float
    assert ch05.check_swap_negative(lambda o, a: [tuple(p) for p in swap_negative(o, a)])


def _one_way(logits):
    return (logits.softmax(dim=1) - torch.eye(len(logits))) / len(logits)


def _changed(objects, attribute):
    (c1, s1), (c2, s2) = objects
    return [("green" if c1 != "green" else "red", s1), (c2, s2)]


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch05.check_initial_loss, lambda n: math.log2(n), "likely mistake: log base 2 or 10"),
    (ch05.check_initial_loss, lambda n: 1 / n, "likely mistake: the probability 1/n is not the loss"),
    (ch05.check_initial_loss, lambda n: math.log(n - 1), "likely mistake: log(n - 1)"),
    (ch05.check_initial_loss, lambda n: 2 * math.log(n), "likely mistake: the sum of the two directions"),
    (ch05.check_infonce_grad, _one_way, "likely mistake: one direction only"),
    (ch05.check_infonce_grad, lambda x: 2 * infonce_grad(x), "likely mistake: summed the two directions"),
    (ch05.check_infonce_grad, lambda x: len(x) * infonce_grad(x), "likely mistake: forgot the 1/N"),
    (ch05.check_infonce_grad, lambda x: -infonce_grad(x), "likely mistake: sign"),
    (ch05.check_hinge_from_similarity, lambda s, m: hinge(s, m) / 2, "likely mistake: the mean of the two directions"),
    (ch05.check_hinge_from_similarity, lambda s, m: (m - s.diag()[:, None] + s).clamp(min=0)[
        ~torch.eye(len(s), dtype=torch.bool)].sum() / len(s), "likely mistake: one direction only"),
    (ch05.check_hinge_from_similarity, lambda s, m: ((m - s.diag()[:, None] + s).clamp(min=0).sum()
                                                     + (m - s.diag()[:, None] + s.T).clamp(min=0).sum()) / len(s),
     "likely mistake: the diagonal left in"),
    (ch05.check_swap_negative, lambda o, a: list(o), "likely mistake: returned the true objects"),
    (ch05.check_swap_negative, lambda o, a: [(s, c) for c, s in o], "likely mistake: a swap within one object"),
    (ch05.check_swap_negative, _changed, "likely mistake: words changed instead of swapped"),
    (ch05.check_swap_negative, lambda o, a: swap_negative(o, a)[::-1], "likely mistake: the objects reordered"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
