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


def unseen_fraction(counts, sequences):
    transitions = [(a, b) for ids in sequences for a, b in zip(ids, ids[1:])]
    return sum(counts[a, b].item() == 0 for a, b in transitions) / len(transitions)


def unigram_perplexity(counts):
    p = [c / sum(counts.tolist()) for c in counts.tolist() if c > 0]
    return math.exp(-sum(q * math.log(q) for q in p))


SOLUTIONS = {ch01.check_merge: merge, ch01.check_sinusoidal_shift: shift_matrix,
             ch01.check_unseen_fraction: unseen_fraction, ch01.check_unigram_perplexity: unigram_perplexity}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch01.check_unseen_fraction(   # a 0-d tensor is as good as a float
        lambda counts, seqs: (counts[ch01.bigram_pairs(seqs)] == 0).float().mean())
    assert ch01.check_unigram_perplexity(   # entr(p) = -p log p, and 0 at p = 0
        lambda c: math.exp(torch.special.entr(c / c.sum()).sum().item()))


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch01.check_merge, merge_first_only, "likely mistake: merged only the first occurrence"),
    (ch01.check_merge, merge_right_to_left, "three in a row"),
    (ch01.check_merge, merge_right_to_left, "likely mistake: merged right to left"),
    (ch01.check_merge, lambda ids, pair, new_id: tuple(merge(ids, pair, new_id)),
     "expected a list of ids, got a tuple"),
    (ch01.check_sinusoidal_shift, lambda k, d: shift_matrix(k, d).T, "likely mistake: M is transposed"),
    (ch01.check_sinusoidal_shift, lambda k, d: shift_matrix(k, d).T, "M @ PE[t] misses PE[t + k]"),
    (ch01.check_sinusoidal_shift, lambda k, d: shift_matrix(1, d), "likely mistake: forgot k"),
    (ch01.check_unseen_fraction, lambda counts, seqs: len({(a, b) for s in seqs for a, b in zip(s, s[1:])
                                                           if counts[a, b] == 0})
     / len({(a, b) for s in seqs for a, b in zip(s, s[1:])}), "likely mistake: counted distinct bigrams"),
    (ch01.check_unseen_fraction, lambda counts, seqs: unseen_fraction(counts.T, seqs),
     "likely mistake: read counts[b, a]"),
    (ch01.check_unseen_fraction, lambda counts, seqs: 1 - unseen_fraction(counts, seqs),
     "likely mistake: the fraction of seen transitions"),
    (ch01.check_unseen_fraction, lambda counts, seqs: (counts == 0).double().mean().item(),
     "likely mistake: the fraction of zero entries in the whole table"),
    (ch01.check_unigram_perplexity, lambda c: math.exp(math.log2(unigram_perplexity(c))),
     "likely mistake: exp of the entropy in bits"),
    (ch01.check_unigram_perplexity, lambda c: math.exp(-(c / c.sum() * (c / c.sum()).log()).sum().item()),
     "likely mistake: NaN: a token of count 0"),
    (ch01.check_unigram_perplexity, lambda c: float((c > 0).sum()),
     "likely mistake: the number of tokens that occur"),
    (ch01.check_unigram_perplexity, lambda c: math.log(unigram_perplexity(c)), "likely mistake: no exp"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
