"""Chapter 05's checkers accept a right answer and reject the usual wrong ones, naming the mistake. The stub,
crash and wrong-type checks for every chapter are in test_exercises.py."""

import pytest
import torch
import torch.nn.functional as F

from vitlib.exercises import ch05


def info_nce(s, tau):
    targets = torch.arange(len(s))
    return (F.cross_entropy(s / tau, targets) + F.cross_entropy(s.T / tau, targets)) / 2


def match_probabilities(s, tau):
    return torch.softmax(s / tau, dim=1)


def recall(s, k):
    top = s.topk(k, dim=1).indices
    return (top == torch.arange(len(s))[:, None]).any(dim=1).float().mean().item()


def hinge(s, margin):
    n = len(s)
    positive = s.diag()
    off = ~torch.eye(n, dtype=torch.bool)
    return ((margin - positive[:, None] + s).clamp(min=0)[off].sum()
            + (margin - positive[:, None] + s.T).clamp(min=0)[off].sum()) / n


SOLUTIONS = {ch05.check_info_nce: info_nce, ch05.check_match_probabilities: match_probabilities,
             ch05.check_recall_at_k: recall, ch05.check_hinge_from_similarity: hinge}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch05.check_info_nce(lambda s, tau: float(info_nce(s, tau)))  # a float is as good as a 0-d tensor
    assert ch05.check_recall_at_k(lambda s, k: torch.tensor(recall(s, k)))  # and a 0-d tensor as a float


targets = lambda s: torch.arange(len(s))  # noqa: E731
WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch05.check_info_nce, lambda s, tau: F.cross_entropy(s / tau, targets(s)), "likely mistake: one direction only"),
    (ch05.check_info_nce, lambda s, tau: 2 * info_nce(s, tau), "likely mistake: summed the two directions"),
    (ch05.check_info_nce, lambda s, tau: info_nce(s * tau, 1.0), "likely mistake: multiplied by tau"),
    (ch05.check_info_nce, lambda s, tau: info_nce(s, 1.0), "likely mistake: forgot the temperature"),
    (ch05.check_info_nce, lambda s, tau: F.cross_entropy(s / tau, targets(s), reduction="none"),
     "expected a float (a 0-d tensor will do), got a torch.Tensor of shape"),
    (ch05.check_match_probabilities, lambda s, tau: torch.softmax(s / tau, dim=0),
     "likely mistake: softmax over the columns (dim=0)"),
    (ch05.check_match_probabilities, lambda s, tau: torch.softmax(s, dim=1), "likely mistake: forgot the temperature"),
    (ch05.check_match_probabilities, lambda s, tau: torch.exp(s / tau) / torch.exp(s / tau).sum(),
     "likely mistake: softmax over the whole matrix"),
    (ch05.check_recall_at_k, lambda s, k: recall(s.T, k), "likely mistake: columns as queries"),
    (ch05.check_recall_at_k, lambda s, k: recall(s, max(1, k - 1)), "likely mistake: off by one"),
    (ch05.check_hinge_from_similarity, lambda s, m: hinge(s, m) / 2, "likely mistake: the mean of the two directions"),
    (ch05.check_hinge_from_similarity, lambda s, m: (m - s.diag()[:, None] + s).clamp(min=0)[
        ~torch.eye(len(s), dtype=torch.bool)].sum() / len(s), "likely mistake: one direction only"),
    (ch05.check_hinge_from_similarity, lambda s, m: ((m - s.diag()[:, None] + s).clamp(min=0).sum()
                                                     + (m - s.diag()[:, None] + s.T).clamp(min=0).sum()) / len(s),
     "likely mistake: counted j = i"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
