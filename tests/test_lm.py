"""Bigram language models, cross-entropy and perplexity (vitlib.lm)."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitlib.data import ShapesWorld
from vitlib.lm import BigramCounts, NeuralBigram, bigram_pairs, cross_entropy, sample_bigram
from vitlib.metrics import perplexity
from vitlib.train import train


def test_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, 11) * 3
    targets = torch.randint(0, 11, (4, 7))
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    torch.testing.assert_close(cross_entropy(logits, targets), expected, atol=1e-6, rtol=0)
    targets[:, -2:] = -100
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(cross_entropy(logits, targets), expected, atol=1e-6, rtol=0)
    logits.requires_grad_(True)
    grad_ours = torch.autograd.grad(cross_entropy(logits, targets), logits)[0]
    grad_torch = torch.autograd.grad(F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)), logits)[0]
    torch.testing.assert_close(grad_ours, grad_torch, atol=1e-7, rtol=0)


def test_cross_entropy_bad_input():
    with pytest.raises(ValueError, match="must agree"):
        cross_entropy(torch.randn(3, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="long"):
        cross_entropy(torch.randn(3, 5), torch.zeros(3))
    with pytest.raises(ValueError, match="nothing to score"):
        cross_entropy(torch.randn(3, 5), torch.full((3,), -100))


def test_bigram_counts_by_hand():
    seqs = [[1, 5, 6, 2], [1, 5, 7, 2], [1, 6, 2]]
    prev, nxt = bigram_pairs(seqs)
    assert prev.tolist() == [1, 5, 6, 1, 5, 7, 1, 6] and nxt.tolist() == [5, 6, 2, 5, 7, 2, 6, 2]
    model = BigramCounts(8).fit(seqs)
    p = model.log_probs.exp()
    assert p[1, 5].item() == pytest.approx(2 / 3) and p[5, 7].item() == pytest.approx(0.5)
    assert p[6, 2].item() == pytest.approx(1.0)
    torch.testing.assert_close(p[3], torch.full((8,), 1 / 8))          # a row never seen: uniform
    smooth = BigramCounts(8, alpha=1.0).fit(seqs).log_probs.exp()
    assert smooth[1, 5].item() == pytest.approx((2 + 1) / (3 + 8))
    torch.testing.assert_close(smooth.sum(1), torch.ones(8))
    nll = model.nll(seqs)
    assert nll.shape == (8,) and nll[0].item() == pytest.approx(-math.log(2 / 3))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        BigramCounts(8).fit([[1, 9]])


@pytest.fixture(scope="module")
def captions():
    world = ShapesWorld(seed=0)
    encode = lambda scenes: [world.tokenizer.encode(world.caption(s), add_bos=True, add_eos=True) for s in scenes]
    return world.tokenizer, encode(world.scenes(600, "train")), encode(world.scenes(200, "val"))


def test_neural_bigram_converges_to_the_counts(captions):
    tok, train_ids, val_ids = captions
    counts = BigramCounts(tok.vocab_size).fit(train_ids)
    torch.manual_seed(0)
    model = NeuralBigram(tok.vocab_size)
    assert perplexity(model.nll(val_ids)) == pytest.approx(tok.vocab_size)   # W = 0: uniform
    prev, nxt = bigram_pairs(train_ids)
    train(model, [(prev, nxt)], lambda m, b: cross_entropy(m(b[0]), b[1]),
          torch.optim.Adam(model.parameters(), lr=1.0), steps=150, progress=False)
    ppl_counts, ppl_neural = perplexity(counts.nll(train_ids)), perplexity(model.nll(train_ids))
    assert ppl_counts < 4 and ppl_neural == pytest.approx(ppl_counts, rel=0.005)
    seen = counts.counts > 0
    torch.testing.assert_close(model.log_probs[seen], counts.log_probs[seen], atol=0.05, rtol=0)


def test_sampling(captions):
    tok, train_ids, _ = captions
    # a table that always goes 1 -> 5 -> 6 -> 2 samples exactly that
    table = torch.full((8, 8), -1e9)
    table[1, 5] = table[5, 6] = table[6, 2] = table[2, 2] = 0.0
    assert sample_bigram(table, 3, bos_id=1, eos_id=2) == [[5, 6]] * 3
    # without <eos> a sequence is cut at max_len
    assert sample_bigram(torch.zeros(4, 4).fill_(-1e9).fill_diagonal_(0), 2, 0, 3, max_len=5) == [[0] * 5] * 2
    counts = BigramCounts(tok.vocab_size).fit(train_ids)
    a = sample_bigram(counts.log_probs, 500, tok.bos_id, tok.eos_id, generator=torch.Generator().manual_seed(0))
    b = sample_bigram(counts.log_probs, 500, tok.bos_id, tok.eos_id, generator=torch.Generator().manual_seed(0))
    assert a == b
    first = torch.bincount(torch.tensor([s[0] for s in a]), minlength=tok.vocab_size) / 500
    assert (first - counts.log_probs[tok.bos_id].exp()).abs().max() < 0.07   # first words follow p(. | <bos>)
    with pytest.raises(ValueError, match=r"\(V, V\)"):
        sample_bigram(torch.zeros(3, 4), 1, 0, 1)


@pytest.mark.parametrize("alpha, error, message", [
    (float("nan"), ValueError, r"must be >= 0.0, got nan"),   # every probability came out NaN
    (-0.5, ValueError, r"must be >= 0.0, got -0.5"),
    (float("inf"), ValueError, r"must be >= 0.0, got inf"),
    (True, TypeError, r"must be a real number, got bool"),
])
def test_bigram_counts_refuse_a_smoothing_that_is_no_number(alpha, error, message):
    with pytest.raises(error, match=message):
        BigramCounts(5, alpha=alpha)


def test_cross_entropy_names_the_targets_outside_the_vocabulary():
    logits = torch.randn(3, 5)
    with pytest.raises(ValueError, match=r"ids in \[0, 5\) or ignore_index=-100, got values in \[0, 5\]"):
        cross_entropy(logits, torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match=r"got values in \[-3, 1\]"):
        cross_entropy(logits, torch.tensor([0, -3, 1]))
    torch.testing.assert_close(cross_entropy(logits, torch.tensor([0, -100, 1])),
                               F.cross_entropy(logits, torch.tensor([0, -100, 1])))


def test_counted_nll_refuses_negative_ids_and_perplexity_overflows_to_inf():
    counts = BigramCounts(5).fit([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"\[0, 5\), got values in \[-1, 0\]"):   # -1 read the last row
        counts.nll([[0, -1]])
    with pytest.raises(TypeError, match="token ids must be ints, got torch.float32"):   # 1.5 was cut to 1
        counts.fit([[0, 1.5]])
    assert perplexity(1000.0) == math.inf
