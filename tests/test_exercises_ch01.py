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


def test_checkers_accept_correct_solutions():
    assert ch01.check_merge(merge)
    assert ch01.check_sinusoidal_shift(shift_matrix)
    assert ch01.check_caption_perplexity(caption_perplexity)
    assert ch01.check_caption_perplexity(   # a 0-d tensor is as good as a float
        lambda lp, ids: (-lp[torch.tensor(ids[:-1]), torch.tensor(ids[1:])]).mean().exp())
    assert ch01.check_rotate_pair(rotate_pair)


def test_checkers_reject_wrong_solutions(capsys):
    assert not ch01.check_merge(merge_first_only)
    assert not ch01.check_merge(merge_right_to_left)
    assert not ch01.check_merge(lambda ids, pair, new_id: tuple(merge(ids, pair, new_id)))
    assert not ch01.check_sinusoidal_shift(lambda k, d: shift_matrix(k, d).T)          # rotates the wrong way
    assert not ch01.check_sinusoidal_shift(lambda k, d: shift_matrix(1, d))             # forgets k
    assert not ch01.check_caption_perplexity(lambda lp, ids: caption_perplexity(lp.T, ids))   # p(a | b)
    assert not ch01.check_caption_perplexity(lambda lp, ids: math.exp(-sum(lp[a, b].item() for a, b in
                                                                            zip(ids, ids[1:]))))  # sum, not mean
    assert not ch01.check_rotate_pair(lambda x, y, m, theta: rotate_pair(x, y, 1, theta))  # forgets the position
    assert not ch01.check_rotate_pair(lambda x, y, m, theta: rotate_pair(x, y, -m, theta))  # clockwise
    out = capsys.readouterr().out
    assert "three in a row" in out and "M @ PE[t] misses PE[t + k]" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    for checker in (ch01.check_merge, ch01.check_sinusoidal_shift, ch01.check_caption_perplexity,
                    ch01.check_rotate_pair):
        assert not checker(stub)
    assert capsys.readouterr().out.count("not implemented yet") == 4
