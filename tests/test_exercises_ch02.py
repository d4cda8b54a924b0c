"""Chapter 02's checkers accept a right answer and reject the usual wrong ones, naming the mistake. The stub,
crash and wrong-type checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch02


def cached_causal(L, S):
    return torch.ones(L, S, dtype=torch.bool).tril(S - L)


def score_scale(d_k, var_q, var_k):
    return (d_k * var_q * var_k) ** -0.5


def split_heads(x, n_heads):
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x):
    B, H, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * Dh)


def reaches_padding(keep, causal):   # every query, padding ones too: a wrong answer
    B, S = keep.shape
    out = torch.zeros(B, S, dtype=torch.bool)
    for b in range(B):
        for i in range(S):
            keys = range(i + 1) if causal else range(S)
            out[b, i] = any(not keep[b, j] for j in keys)
    return out


def sees_padding(keep, causal):
    return keep & reaches_padding(keep, causal)


SOLUTIONS = {ch02.check_cached_causal_mask: cached_causal, ch02.check_score_scale: score_scale,
             ch02.check_split_heads: split_heads, ch02.check_merge_heads: merge_heads,
             ch02.check_sees_padding: sees_padding}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch02.check_cached_causal_mask, lambda L, S: torch.ones(L, S, dtype=torch.bool).tril(),
     "likely mistake: aligned to the top left (PyTorch's is_causal)"),
    (ch02.check_cached_causal_mask, lambda L, S: torch.ones(L, S, dtype=torch.bool).triu(S - L),
     "likely mistake: the upper triangle (triu, not tril)"),
    (ch02.check_cached_causal_mask, lambda L, S: torch.ones(L, S, dtype=torch.bool).tril(S - L - 1),
     "likely mistake: the diagonal is missing"),
    (ch02.check_cached_causal_mask, lambda L, S: torch.ones(L, S).tril(S - L),
     "expected dtype torch.bool (True = may attend), got torch.float32"),
    (ch02.check_score_scale, lambda d_k, var_q, var_k: 1 / math.sqrt(d_k), "likely mistake: only 1/sqrt(d_k)"),
    (ch02.check_score_scale, lambda d_k, var_q, var_k: 1 / (d_k * var_q * var_k),
     "likely mistake: divided by the variance"),
    (ch02.check_score_scale, lambda d_k, var_q, var_k: (var_q * var_k) ** -0.5, "likely mistake: no 1/sqrt(d_k)"),
    (ch02.check_score_scale, lambda d_k, var_q, var_k: (d_k * (var_q + var_k)) ** -0.5,
     "likely mistake: added the variances"),
    (ch02.check_split_heads, lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2),
     "likely mistake: features split as (d h)"),
    (ch02.check_split_heads, lambda x, h: x.view(x.shape[0], h, x.shape[1], -1),
     "likely mistake: reshaped straight to (B, H, T, Dh)"),
    (ch02.check_merge_heads, lambda x: x.reshape(x.shape[0], x.shape[2], -1),
     "likely mistake: reshaped without transpose(1, 2) first"),
    (ch02.check_merge_heads, lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1),
     "hint: after a transpose the tensor is not contiguous"),
    (ch02.check_sees_padding, lambda keep, causal: sees_padding(keep, False),
     "likely mistake: ignored the causal mask"),
    (ch02.check_sees_padding, reaches_padding, "likely mistake: marked padding queries too"),
    (ch02.check_sees_padding, lambda keep, causal: keep & (torch.ones(keep.shape[1], keep.shape[1], dtype=torch.bool)
                                                         .triu(1)[None] & ~keep[:, None]).any(-1) if causal
     else sees_padding(keep, False), "likely mistake: looked at the keys after the query (triu)"),
    (ch02.check_sees_padding, lambda keep, causal: sees_padding(keep, causal).int(),
     "expected dtype torch.bool (True = may attend), got torch.int32"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
