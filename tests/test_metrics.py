"""vitlib.metrics: Wilson intervals, perplexity, parse rate, recall@k and re-ranking (chapters 01, 03, 05, 06)."""

import math

import pytest
import torch

from vitlib.lm import cross_entropy
from vitlib.metrics import accuracy_with_interval, parse_rate, perplexity, recall_at_k, rerank, wilson_interval


def test_wilson_interval_known_values():
    # 8 of 10: the interval Wilson (1927) gives, to 4 places (0.4902, 0.9433)
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] > 0.1   # not empty at p = 0
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] < 0.9
    lo, hi = wilson_interval(500, 1000)
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 1000), rel=0.01)   # the normal one at large n


def test_accuracy_with_interval():
    acc, (lo, hi) = accuracy_with_interval(torch.tensor([True] * 8 + [False] * 2))
    assert acc == 0.8 and lo < 0.8 < hi
    assert accuracy_with_interval([True, False])[0] == 0.5
    for bad in (torch.tensor([]), torch.tensor([1, 0]), []):
        with pytest.raises(ValueError, match="non-empty bool"):
            accuracy_with_interval(bad)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_perplexity():
    assert perplexity(torch.full((10,), math.log(80))) == pytest.approx(80)
    assert perplexity(0.0) == 1.0
    uniform = cross_entropy(torch.zeros(6, 50), torch.randint(0, 50, (6,)))
    assert perplexity(uniform) == pytest.approx(50, rel=1e-6)




def test_parse_rate():
    def parse(text):
        if "bad" in text:
            raise ValueError("no")
        return text

    assert parse_rate(["ok", "bad", "ok", "ok"], parse) == 0.75
    with pytest.raises(ValueError, match="non-empty list of strings"):
        parse_rate([], parse)
    with pytest.raises(TypeError, match="parse must be callable"):
        parse_rate(["ok"], "parse")


def test_recall_at_k():
    s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.1, 0.2, 0.3]])
    assert recall_at_k(s, 1) == pytest.approx(2 / 3)
    assert recall_at_k(s, 2) == 1.0
    assert recall_at_k(s, 1, targets=torch.tensor([0, 0, 2])) == 1.0
    with pytest.raises(ValueError, match="k must be in 1..3"):
        recall_at_k(s, 4)


def test_recall_refuses_what_would_make_it_silently_wrong():
    s = torch.eye(3)
    with pytest.raises(ValueError, match="NaN"):   # topk ranks NaN first
        recall_at_k(s * math.nan, 1)
    with pytest.raises(ValueError, match=r"\[0, 3\), got values in \[-1, 2\]"):
        recall_at_k(s, 1, targets=torch.tensor([0, -1, 2]))


def test_rerank():
    sim = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.9, 0.8]])
    prefer = torch.tensor([1, 3])
    reranked = rerank(sim, 2, lambda q, c: (c == prefer[q]).float())
    assert reranked.argmax(dim=1).tolist() == [1, 3]
    assert reranked[0].argsort(descending=True).tolist() == [1, 0, 2, 3]   # the rest keep ITC's order, below
    with pytest.raises(ValueError, match="1 <= k <= candidates"):
        rerank(sim, 5, lambda q, c: q.float())
