"""vitlib.decoding against transformers: every logits processor is torch.equal to its transformers namesake (ties and
edge settings included), and greedy, seeded sampling and beam search on a tiny GPT give the tokens (and, for beam
search, the sequences_scores) of ``GPT2LMHeadModel.generate`` with the same weights."""

import math

import pytest
import torch

from vitlib.decoding import (LogitsProcessorList, MinPProcessor, RepetitionPenaltyProcessor, TemperatureProcessor,
                             TopKProcessor, TopPProcessor, beam_search, greedy, sample)

from tiny_models import tiny_gpt

transformers = pytest.importorskip("transformers")
from vitlib.hf import to_hf_gpt2  # noqa: E402  after the skip: it needs transformers

V = 23
NEW = 20


def score_sets() -> dict:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, V, generator=g) * 3
    return {
        "random": scores,
        # integers from a small range: many tokens share the score at every cut (top-k's k-th, top-p's boundary)
        "ties": torch.randint(-2, 3, (6, V), generator=g).float(),
        "flat row": torch.cat([torch.zeros(1, V), scores[1:]]),
        "after a filter": scores.masked_fill(torch.rand(6, V, generator=g) < 0.4, -math.inf),
    }


T = transformers
PAIRS = [
    *[(TemperatureProcessor(tau), T.TemperatureLogitsWarper(tau)) for tau in (0.3, 1.0, 2.5)],
    *[(TopKProcessor(k, m), T.TopKLogitsWarper(k, min_tokens_to_keep=m))
      for k, m in ((1, 1), (5, 1), (5, 8), (V, 1), (100, 1), (2, 30))],
    *[(TopPProcessor(p, m), T.TopPLogitsWarper(p, min_tokens_to_keep=m))
      for p, m in ((0.05, 1), (0.5, 1), (0.9, 1), (0.3, 4), (1.0, 1), (0.5, 30))],
    *[(MinPProcessor(p, m), T.MinPLogitsWarper(p, min_tokens_to_keep=m))
      for p, m in ((0.0, 1), (0.1, 1), (0.5, 1), (0.3, 5), (0.99, 1), (1.0, 1), (1.0, 3), (0.5, 30))],
    *[(RepetitionPenaltyProcessor(r), T.RepetitionPenaltyLogitsProcessor(r)) for r in (0.5, 1.0, 1.3, 3.0)],
]


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[f"{type(t).__name__}-{i}" for i, (_, t) in enumerate(PAIRS)])
@pytest.mark.parametrize("kind", list(score_sets()))
def test_processor_equals_transformers(ours, theirs, kind):
    scores = score_sets()[kind]
    seen = torch.randint(0, 8, (6, 9), generator=torch.Generator().manual_seed(1))   # repeats: penalised once
    expected = theirs(seen, scores.clone())
    assert torch.equal(ours(seen, scores.clone()), expected)
    assert torch.equal(scores, score_sets()[kind]), "the input scores are left as they were"


def test_the_filters_bite_on_ties():
    """The equality above is not trivial: on tied scores the filters remove tokens, and keep every tie at the cut."""
    ties = score_sets()["ties"]
    for processor in (TopKProcessor(5), TopPProcessor(0.5), MinPProcessor(0.5)):
        kept = ~processor(None, ties).isneginf()
        assert (kept.sum(-1) < V).all() and (kept.sum(-1) >= 1).all()
    kept = ~TopKProcessor(5)(None, ties).isneginf()
    kth = ties.topk(5).values[:, -1:]
    assert torch.equal(kept, ties >= kth) and (kept.sum(-1) > 5).any(), "all tokens tied with the 5th stay"


@pytest.fixture(scope="module")
def models():
    model = tiny_gpt(2, max_len=48)
    prompt = torch.randint(6, 23, (4, 6), generator=torch.Generator().manual_seed(3))   # pad 0 never in it
    return model, prompt, to_hf_gpt2(model)   # built here: building draws from the global generator


def hf_generate(hf, prompt, eos, **kwargs):
    return hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW, eos_token_id=eos,
                       pad_token_id=0 if eos is None else eos, **kwargs)


@pytest.mark.parametrize("eos", [None, 9])
def test_greedy_equals_transformers(models, eos):
    model, prompt, hf = models
    theirs = hf_generate(hf, prompt, eos, do_sample=False)
    for use_cache in (True, False):
        assert torch.equal(greedy(model, prompt, NEW, eos_token_id=eos, use_cache=use_cache), theirs)
    if eos is not None:
        assert (theirs[:, 6:] == eos).any(), "eos occurs"


SAMPLING = [  # (transformers' generate arguments, the same filters as vitlib processors, in transformers' order)
    (dict(top_k=0), []),
    (dict(top_k=5, temperature=0.7), [TemperatureProcessor(0.7), TopKProcessor(5)]),
    (dict(top_k=0, top_p=0.8, temperature=1.5), [TemperatureProcessor(1.5), TopPProcessor(0.8)]),
    (dict(top_k=8, top_p=0.9, min_p=0.2, temperature=0.5),
     [TemperatureProcessor(0.5), TopKProcessor(8), TopPProcessor(0.9), MinPProcessor(0.2)]),
    (dict(top_k=0, repetition_penalty=1.5), [RepetitionPenaltyProcessor(1.5)]),
]


@pytest.mark.parametrize("hf_args, processors", SAMPLING, ids=[str(a) for a, _ in SAMPLING])
@pytest.mark.parametrize("eos", [None, 9])
def test_seeded_sampling_equals_transformers(models, hf_args, processors, eos):
    model, prompt, hf = models
    for seed in (0, 1):
        torch.manual_seed(seed)
        theirs = hf_generate(hf, prompt, eos, do_sample=True, **hf_args)
        torch.manual_seed(seed)
        ours = sample(model, prompt, NEW, logits_processor=LogitsProcessorList(processors), eos_token_id=eos)
        assert torch.equal(ours, theirs), f"seed {seed}"
        assert eos is None or (ours[:, 6:] == eos).any(), "eos occurs"
    assert not torch.equal(ours, greedy(model, prompt, NEW, eos, LogitsProcessorList(processors)))


@pytest.mark.parametrize("num_beams", [3, 4])
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0])
@pytest.mark.parametrize("eos", [None, 1, 22, 9])
def test_beam_search_equals_transformers(models, num_beams, length_penalty, eos):
    model, prompt, hf = models
    out = hf_generate(hf, prompt, eos, num_beams=num_beams, length_penalty=length_penalty, do_sample=False,
                      early_stopping=False, return_dict_in_generate=True, output_scores=True)
    for use_cache in (True, False):
        sequences, scores = beam_search(model, prompt, NEW, num_beams, length_penalty, eos, use_cache=use_cache)
        assert torch.equal(sequences, out.sequences)
        torch.testing.assert_close(scores, out.sequences_scores, atol=1e-5, rtol=0)


def test_beam_search_hypotheses_end_at_eos_like_transformers(models):
    """The cases above where eos matters: winners of different lengths (padded with eos), and a search that stops
    before max_new_tokens because no running beam can beat the finished ones."""
    model, prompt, hf = models
    sequences, _ = beam_search(model, prompt, NEW, 3, 0.0, eos_token_id=1)
    lengths = [row.tolist().index(1) + 1 if 1 in row else NEW for row in sequences[:, 6:]]
    assert min(lengths) < NEW == max(lengths)
    sequences, _ = beam_search(model, prompt, NEW, 3, 0.0, eos_token_id=9)
    assert sequences.shape[1] < 6 + NEW and (sequences[:, 6:] == 9).any(dim=1).all()


def test_beam_search_with_a_processor_equals_transformers(models):
    model, prompt, hf = models
    penalty = [RepetitionPenaltyProcessor(1.3)]
    out = hf_generate(hf, prompt, 22, num_beams=3, do_sample=False, early_stopping=False,
                      return_dict_in_generate=True, output_scores=True,
                      logits_processor=transformers.LogitsProcessorList(penalty))
    sequences, scores = beam_search(model, prompt, NEW, 3, eos_token_id=22,
                                    logits_processor=LogitsProcessorList(penalty))
    assert torch.equal(sequences, out.sequences)
    torch.testing.assert_close(scores, out.sequences_scores, atol=1e-5, rtol=0)
    assert not torch.equal(sequences, beam_search(model, prompt, NEW, 3, eos_token_id=22)[0]), "the penalty matters"


def test_vitlib_processors_plug_into_transformers_generate(models):
    model, prompt, hf = models
    processors = [RepetitionPenaltyProcessor(1.5), TopKProcessor(3)]
    theirs = hf_generate(hf, prompt, 9, do_sample=False, logits_processor=transformers.LogitsProcessorList(processors))
    assert torch.equal(greedy(model, prompt, NEW, 9, LogitsProcessorList(processors)), theirs)
    assert not torch.equal(theirs, greedy(model, prompt, NEW, 9)), "the processors change the tokens"
