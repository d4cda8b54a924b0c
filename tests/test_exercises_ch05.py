"""Chapter 05's checkers accept a right answer and reject the usual wrong ones."""

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


def test_checkers_accept_correct_solutions():
    assert ch05.check_info_nce(info_nce)
    assert ch05.check_info_nce(lambda s, tau: float(info_nce(s, tau)))  # a float is as good as a 0-d tensor
    assert ch05.check_match_probabilities(match_probabilities)
    assert ch05.check_recall_at_k(recall)
    assert ch05.check_hinge_from_similarity(hinge)


def test_checkers_reject_wrong_solutions(capsys):
    targets = lambda s: torch.arange(len(s))  # noqa: E731
    assert not ch05.check_info_nce(lambda s, tau: F.cross_entropy(s / tau, targets(s)))  # one direction only
    assert not ch05.check_info_nce(lambda s, tau: info_nce(s * tau, 1.0))  # multiplies by tau
    assert not ch05.check_info_nce(lambda s, tau: info_nce(s, 1.0))  # forgets tau
    assert not ch05.check_match_probabilities(lambda s, tau: torch.softmax(s / tau, dim=0))  # columns, not rows
    assert not ch05.check_match_probabilities(lambda s, tau: torch.softmax(s, dim=1))  # no temperature
    assert not ch05.check_match_probabilities(lambda s, tau: torch.exp(s / tau) / torch.exp(s / tau).sum())  # whole matrix
    assert not ch05.check_recall_at_k(lambda s, k: recall(s.T, k))  # columns as queries
    assert not ch05.check_recall_at_k(lambda s, k: recall(s, max(1, k - 1)))  # off by one
    assert not ch05.check_hinge_from_similarity(lambda s, m: hinge(s, m) / 2)  # a mean of the directions
    assert not ch05.check_hinge_from_similarity(  # one direction only
        lambda s, m: (m - s.diag()[:, None] + s).clamp(min=0)[~torch.eye(len(s), dtype=torch.bool)].sum() / len(s))
    assert not ch05.check_hinge_from_similarity(lambda s, m: (m - s.diag()[:, None] + s).clamp(min=0).sum() * 2 / len(s))  # counts j = i
    out = capsys.readouterr().out
    assert "✗ info_nce" in out and "✗ hinge" in out


def test_stubs_get_a_reminder(capsys):
    def stub(*args):
        raise NotImplementedError
    assert not ch05.check_info_nce(stub)
    assert "not implemented yet" in capsys.readouterr().out
