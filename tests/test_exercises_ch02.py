"""Chapter 02's checkers accept a right answer and reject the usual wrong ones."""

import math

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


def test_checkers_accept_correct_solutions():
    assert ch02.check_causal_mask(causal)
    assert ch02.check_attend_one(attend_one)
    assert ch02.check_split_heads(split_heads)
    assert ch02.check_merge_heads(merge_heads)
    assert ch02.check_padding_mask(padding_mask)


def test_checkers_reject_wrong_solutions(capsys):
    assert not ch02.check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu())  # sees the future
    assert not ch02.check_causal_mask(lambda T: torch.ones(T, T).tril())  # float, not bool
    assert not ch02.check_attend_one(lambda q, K, V: torch.softmax(K @ q, dim=0) @ V)  # no 1/sqrt(d_k)
    assert not ch02.check_attend_one(lambda q, K, V: (K @ q / math.sqrt(q.shape[0])) @ V)  # no softmax
    assert not ch02.check_split_heads(lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2))  # (d h)
    assert not ch02.check_split_heads(lambda x, h: x.view(x.shape[0], h, x.shape[1], -1))  # reshape, no transpose
    assert not ch02.check_merge_heads(lambda x: x.reshape(x.shape[0], x.shape[2], -1))  # heads and time mixed
    assert not ch02.check_padding_mask(lambda lengths, S: ~padding_mask(lengths, S))  # True on padding
    assert not ch02.check_padding_mask(lambda lengths, S: torch.arange(S)[None, :] <= lengths[:, None])  # off by one
    out = capsys.readouterr().out
    assert "expected dtype torch.bool (True = may attend), got torch.float32" in out
    assert "values differ" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch02.check_split_heads(stub)
    assert "not implemented yet" in capsys.readouterr().out
