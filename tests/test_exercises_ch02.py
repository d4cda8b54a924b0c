"""Chapter 02's checkers accept a right answer and reject the usual wrong ones, naming the mistake. The stub,
crash and wrong-type checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch02


def causal(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


def attend_one(q, K, V):
    return torch.softmax(K @ q / math.sqrt(q.shape[0]), dim=0) @ V


def split_heads(x, n_heads):
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x):
    B, H, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * Dh)


def padding_mask(lengths, S):
    return torch.arange(S)[None, :] < lengths[:, None]


SOLUTIONS = {ch02.check_causal_mask: causal, ch02.check_attend_one: attend_one, ch02.check_split_heads: split_heads,
             ch02.check_merge_heads: merge_heads, ch02.check_padding_mask: padding_mask}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch02.check_causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "likely mistake: the upper triangle"),
    (ch02.check_causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1),
     "likely mistake: the diagonal is missing"),
    (ch02.check_causal_mask, lambda T: torch.ones(T, T).tril(),
     "expected dtype torch.bool (True = may attend), got torch.float32"),
    (ch02.check_attend_one, lambda q, K, V: torch.softmax(K @ q, dim=0) @ V,
     "likely mistake: no 1/sqrt(d_k) scaling"),
    (ch02.check_attend_one, lambda q, K, V: (K @ q / math.sqrt(q.shape[0])) @ V, "likely mistake: no softmax"),
    (ch02.check_split_heads, lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2),
     "likely mistake: features split as (d h)"),
    (ch02.check_split_heads, lambda x, h: x.view(x.shape[0], h, x.shape[1], -1),
     "likely mistake: reshaped straight to (B, H, T, Dh)"),
    (ch02.check_merge_heads, lambda x: x.reshape(x.shape[0], x.shape[2], -1),
     "likely mistake: reshaped without transpose(1, 2) first"),
    (ch02.check_merge_heads, lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1),
     "hint: after a transpose the tensor is not contiguous"),
    (ch02.check_padding_mask, lambda lengths, S: ~padding_mask(lengths, S), "likely mistake: True on the padding"),
    (ch02.check_padding_mask, lambda lengths, S: torch.arange(S)[None, :] <= lengths[:, None],
     "likely mistake: off by one"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
