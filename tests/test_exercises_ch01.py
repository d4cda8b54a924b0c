"""Chapter 01's checkers accept a right answer and reject wrong ones (so a student's feedback can be trusted)."""

import math

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


def sinusoidal(max_len, d_model):
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    freq = 10000 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe.float()


def rotate_pair(x, y, m, theta):
    a = m * theta
    return x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)


def test_checkers_accept_correct_solutions():
    assert ch01.check_merge(merge)
    assert ch01.check_sinusoidal(sinusoidal)
    assert ch01.check_perplexity_from_log_probs(lambda lp: math.exp(-lp.mean().item()))
    assert ch01.check_perplexity_from_log_probs(lambda lp: torch.exp(-lp.mean()))   # a 0-d tensor is fine too
    assert ch01.check_rotate_pair(rotate_pair)


def test_checkers_reject_wrong_solutions(capsys):
    assert not ch01.check_merge(merge_first_only)
    assert not ch01.check_merge(merge_right_to_left)
    assert not ch01.check_merge(lambda ids, pair, new_id: tuple(merge(ids, pair, new_id)))
    assert not ch01.check_sinusoidal(lambda T, d: sinusoidal(T, d).flip(-1))           # cos before sin
    assert not ch01.check_sinusoidal(lambda T, d: torch.cat([sinusoidal(T, d)[:, 0::2], sinusoidal(T, d)[:, 1::2]], 1))
    assert not ch01.check_perplexity_from_log_probs(lambda lp: math.exp(lp.mean().item()))   # sign
    assert not ch01.check_perplexity_from_log_probs(lambda lp: math.exp(-lp.sum().item()))   # sum, not mean
    assert not ch01.check_rotate_pair(lambda x, y, m, theta: rotate_pair(x, y, 1, theta))  # forgets the position
    assert not ch01.check_rotate_pair(lambda x, y, m, theta: rotate_pair(x, y, -m, theta))  # clockwise
    out = capsys.readouterr().out
    assert "three in a row" in out and "values differ" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    for checker in (ch01.check_merge, ch01.check_sinusoidal, ch01.check_perplexity_from_log_probs,
                    ch01.check_rotate_pair):
        assert not checker(stub)
    assert capsys.readouterr().out.count("not implemented yet") == 4
