"""vitlib.decoding: the generation loop (cached or not, the same tokens), greedy tokens equal transformers' GPT-2,
the processors' formulas, seeded sampling, beam search's scores and cache reordering, eos handling and the checks of
every argument (tests/test_decoding_vs_hf.py compares everything with transformers)."""

import math

import pytest
import torch
from torch import nn

from vitlib.decoding import (LogitsProcessorList, MinPProcessor, RepetitionPenaltyProcessor, SampleProcessor,
                             TemperatureProcessor, TopKProcessor, TopPProcessor, beam_search, generate, greedy, sample)
from vitlib.transformer import GPTConfig

from tiny_models import ids, tiny_gpt


def test_generate_with_and_without_cache_is_identical():
    model = tiny_gpt(max_len=64)
    prompt = ids(B=4, T=5)
    with_cache = generate(model, prompt, 40, use_cache=True)
    without = generate(model, prompt, 40, use_cache=False)
    assert with_cache.shape == (4, 45)
    assert torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :5], prompt)
    assert torch.equal(model.generate(prompt, 40), with_cache), "GPT.generate is decoding.generate"


def test_greedy_tokens_match_transformers_gpt2():
    pytest.importorskip("transformers")
    from vitlib.hf import to_hf_gpt2

    model = tiny_gpt(2, max_len=48)
    eos = 3
    hf = to_hf_gpt2(model, eos_token_id=eos, pad_token_id=eos)
    prompt = torch.randint(5, 23, (4, 6), generator=torch.Generator().manual_seed(3))
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, do_sample=False,
                         eos_token_id=eos, pad_token_id=eos)
    for use_cache in (True, False):
        assert torch.equal(generate(model, prompt, 30, use_cache=use_cache, eos_token_id=eos), theirs)


def test_generate_is_greedy_and_applies_the_processor():
    model = tiny_gpt()
    prompt = ids(B=2, T=4)
    out = generate(model, prompt, 1)
    assert torch.equal(out[:, -1], model(prompt)[:, -1].argmax(-1))
    forced = generate(model, prompt, 3, logits_processor=lambda i, s: torch.where(
        torch.arange(s.shape[-1]) == 7, 0.0, float("-inf")).expand_as(s))
    assert (forced[:, 4:] == 7).all()
    calls = []
    generate(model, prompt, 3, logits_processor=lambda i, s: calls.append(i.shape) or s)
    assert calls == [(2, 4), (2, 5), (2, 6)], "the processor sees the ids generated so far"


def test_generate_stops_at_eos_and_pads_with_it():
    model = tiny_gpt()
    prompt = ids(B=2, T=3)
    first = generate(model, prompt, 1)[:, -1]
    eos = int(first[0])  # the first row ends at once; the second continues unless it also picks this token
    out = generate(model, prompt, 10, eos_token_id=eos)
    assert (out[0, 3:] == eos).all()
    plain = generate(model, prompt, out.shape[1] - 3)
    row = plain[1, 3:].tolist()
    expected = row[:row.index(eos) + 1] + [eos] * (len(row) - row.index(eos) - 1) if eos in row else row
    assert out[1, 3:].tolist() == expected


class CountingBigram(nn.Module):
    """Not a transformer: logits depend on the last token only, and the "cache" counts the positions seen. Any model
    with this forward and a config giving vocab_size and max_len can be decoded."""

    def __init__(self, vocab_size=11, max_len=20):
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab_size, d_model=2, n_layers=1, n_heads=1, max_len=max_len)
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(0)))
        self.seen = []

    def forward(self, input_ids, past_kv=None, use_cache=False):
        self.seen.append(input_ids.shape[1])
        logits = self.table[input_ids]                              # (B, t, V)
        P = 0 if past_kv is None else past_kv
        return (logits, P + input_ids.shape[1]) if use_cache else logits


def test_generate_decodes_any_model_with_that_forward():
    model = CountingBigram()
    prompt = torch.tensor([[1, 2, 3]])
    out = generate(model, prompt, 5)
    expected = [1, 2, 3]
    for _ in range(5):
        expected.append(int(model.table[expected[-1]].argmax()))
    assert out[0].tolist() == expected
    assert model.seen == [3, 1, 1, 1, 1], "with the cache, only the newest token goes in after the prompt"
    model.seen.clear()
    assert torch.equal(generate(model, prompt, 5, use_cache=False), out) and model.seen == [3, 4, 5, 6, 7]


def test_generate_restores_the_training_mode():
    model = tiny_gpt(dropout=0.5).train()
    assert torch.equal(generate(model, ids(), 3), generate(model, ids(), 3)), "dropout is off while decoding"
    assert model.training
    with pytest.raises(ZeroDivisionError):
        generate(model, ids(), 3, logits_processor=lambda i, s: 1 / 0)
    assert model.training, "restored even when a processor raises"


def test_generate_checks_its_arguments():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"prompt length 30 \+ max_new_tokens 11 exceeds max_len=40"):
        generate(model, ids(T=30), 11)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0, got -1"):
        generate(model, ids(), -1)
    with pytest.raises(ValueError, match=r"eos_token_id must be a token id in \[0, 23\) or None, got 23"):
        generate(model, ids(), 2, eos_token_id=23)
    with pytest.raises(TypeError, match="model must be an nn.Module whose config gives vocab_size and max_len"):
        generate(lambda x: x, ids(), 2)
    with pytest.raises(TypeError, match="use_cache must be a bool, got str"):
        generate(model, ids(), 2, use_cache="yes")
    with pytest.raises(ValueError, match=r"input_ids must be a LongTensor \(batch, length\), got torch\.int32"):
        generate(model, ids().int(), 2)
    assert torch.equal(generate(model, ids(), 0), ids()), "nothing to add"


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_never_returns_an_id_outside_the_vocabulary(use_cache):
    """A logits processor that widened the scores let argmax pick an id >= vocab_size; on the last step nothing
    re-checked it, and generate returned it. One that returned NaN (or -inf everywhere) let argmax pick any id."""
    model = tiny_gpt()
    wide = lambda i, s: torch.cat([s, s + 1], dim=-1)  # noqa: E731  the copy wins every argmax
    with pytest.raises(ValueError, match=r"scores of shape \(3, 23\) \(batch, vocab_size\), got .* \(3, 46\)"):
        generate(model, ids(), 1, use_cache=use_cache, logits_processor=wide)
    with pytest.raises(ValueError, match="NaN scores"):
        generate(model, ids(), 1, use_cache=use_cache, logits_processor=lambda i, s: s * math.nan)
    top2 = lambda i, s: s.masked_fill(s < s.topk(2).values[:, -1:], -math.inf)  # noqa: E731  a valid processor
    assert generate(model, ids(), 3, use_cache=use_cache, logits_processor=top2).max() < 23


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_temperature_equals_transformers_warper(temperature):
    transformers = pytest.importorskip("transformers")
    scores = torch.randn(4, 23, generator=torch.Generator().manual_seed(0))
    theirs = transformers.TemperatureLogitsWarper(temperature)(ids(B=4), scores.clone())
    torch.testing.assert_close(TemperatureProcessor(temperature)(ids(B=4), scores), theirs, atol=0, rtol=0)


def test_processor_list_applies_in_order_like_transformers():
    transformers = pytest.importorskip("transformers")
    scores = torch.randn(4, 23, generator=torch.Generator().manual_seed(1))
    top3 = lambda i, s: s.masked_fill(s < s.topk(3).values[:, -1:], -math.inf)  # noqa: E731
    ours = LogitsProcessorList([TemperatureProcessor(0.5), top3])(ids(B=4), scores)
    theirs = transformers.LogitsProcessorList([transformers.TemperatureLogitsWarper(0.5),
                                               transformers.TopKLogitsWarper(3)])(ids(B=4), scores.clone())
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    with pytest.raises(TypeError, match="processor 1 must be a callable .*, got str"):
        LogitsProcessorList([top3, "top_k"])


def test_sample_processor_draws_from_the_softmax_with_its_own_generator():
    model = tiny_gpt()
    start = torch.zeros(6, 1, dtype=torch.long)
    a = generate(model, start, 20, logits_processor=SampleProcessor(torch.Generator().manual_seed(5)))
    b = generate(model, start, 20, logits_processor=SampleProcessor(torch.Generator().manual_seed(5)))
    assert torch.equal(a, b), "same seed, same tokens"
    assert not torch.equal(a, generate(model, start, 20)), "sampling is not greedy"
    scores = torch.tensor([[0.0, math.log(3.0), -math.inf]])   # p = (1/4, 3/4, 0)
    g = torch.Generator().manual_seed(0)
    drawn = torch.cat([SampleProcessor(g)(None, scores).argmax(-1) for _ in range(4000)])
    assert (drawn == 2).sum() == 0 and abs((drawn == 1).float().mean().item() - 0.75) < 0.03
    cold = SampleProcessor(torch.Generator().manual_seed(0), temperature=0.05)
    assert all(cold(None, scores).argmax().item() == 1 for _ in range(50)), "tau -> 0: the argmax"
    with pytest.raises(ValueError, match="temperature must be > 0.0, got 0"):
        SampleProcessor(torch.Generator(), temperature=0)
    with pytest.raises(TypeError, match="generator must be a CPU torch.Generator"):
        SampleProcessor(0)


def test_processors_follow_their_formulas():
    s = torch.tensor([[1.0, 3.0, 3.0, 2.0, -1.0]])
    inf = math.inf
    assert TopKProcessor(2)(None, s).tolist() == [[-inf, 3.0, 3.0, -inf, -inf]]
    assert TopKProcessor(1)(None, s).tolist() == [[-inf, 3.0, 3.0, -inf, -inf]], "ties with the k-th all stay"
    assert TopKProcessor(1, min_tokens_to_keep=3)(None, s).tolist() == [[-inf, 3.0, 3.0, 2.0, -inf]]
    logp = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert TopPProcessor(0.7)(None, logp).isfinite().tolist() == [[True, True, False, False]]   # 0.5 + 0.3 >= 0.7
    assert TopPProcessor(0.5)(None, logp).isfinite().tolist() == [[True, False, False, False]]
    assert TopPProcessor(0.5, min_tokens_to_keep=3)(None, logp).isfinite().sum() == 3
    assert TopPProcessor(1.0)(None, logp).isfinite().all()
    assert MinPProcessor(0.5)(None, logp).isfinite().tolist() == [[True, True, False, False]]     # p >= 0.25
    assert MinPProcessor(1.0)(None, logp).isfinite().tolist() == [[True, False, False, False]]
    penalised = RepetitionPenaltyProcessor(2.0)(torch.tensor([[0, 4, 4]]), torch.tensor([[2.0, 1.0, 0, 0, -3.0]]))
    assert penalised.tolist() == [[1.0, 1.0, 0, 0, -6.0]], "once per token: positive / 2, negative * 2"


class Captioner(nn.Module):
    """Stands in for chapter 10's captioner: an image (one vector per prompt) is bound to the model, and beam
    search's K rows per prompt (row b K + k) repeat it; the cache is the ids seen so far, a tensor with the batch
    first, and the logits depend on the whole history, so a cache left in the wrong order changes the tokens."""

    def __init__(self, images, vocab_size=11, max_len=20):
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab_size, d_model=2, n_layers=1, n_heads=1, max_len=max_len)
        g = torch.Generator().manual_seed(0)
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=g))
        self.memory = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=g))
        self.images = images                                                        # (B, V)

    def forward(self, input_ids, past_kv=None, use_cache=False):
        seen = input_ids if past_kv is None else torch.cat([past_kv, input_ids], dim=1)    # (rows, P + t)
        image = self.images.repeat_interleave(seen.shape[0] // self.images.shape[0], dim=0)   # (rows, V)
        V = self.config.vocab_size
        logits = self.table[seen] + self.memory[seen.cumsum(1) % V] + image[:, None]        # (rows, P + t, V)
        logits = logits[:, -input_ids.shape[1]:]
        return (logits, seen) if use_cache else logits


def recomputed_score(model, sequence, prompt_length, eos, length_penalty):
    """score(y) = sum_i log p(y_i | y_<i) / n ** length_penalty over the n generated tokens, eos included."""
    new = sequence[prompt_length:].tolist()
    n = new.index(eos) + 1 if eos in new else len(new)
    log_p = model(sequence[None, :prompt_length + n - 1]).log_softmax(-1)[0, prompt_length - 1:]   # (n, V)
    return log_p.gather(1, sequence[prompt_length:prompt_length + n, None]).sum() / n ** length_penalty


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_search_scores_are_length_normalised_log_probabilities(length_penalty):
    model = tiny_gpt(2, max_len=48)
    prompt = ids(B=3, T=4)
    for eos in (None, 5):
        sequences, scores = beam_search(model, prompt, 15, 3, length_penalty, eos)
        for b in range(3):
            expected = recomputed_score(model, sequences[b], 4, eos, length_penalty)
            torch.testing.assert_close(scores[b], expected, atol=1e-5, rtol=0)
    one_beam, _ = beam_search(model, prompt, 15, 1)
    assert torch.equal(one_beam, greedy(model, prompt, 15)), "one beam is greedy decoding"


def test_beam_search_reorders_the_cache_and_binds_per_prompt_inputs():
    images = torch.randn(3, 11, generator=torch.Generator().manual_seed(1)) * 2
    model, prompt = Captioner(images), torch.tensor([[1, 2], [3, 4], [5, 6]])
    for eos in (None, 4):
        cached, cached_scores = beam_search(model, prompt, 12, 4, eos_token_id=eos)
        full, full_scores = beam_search(model, prompt, 12, 4, eos_token_id=eos, use_cache=False)
        assert torch.equal(cached, full) and torch.equal(cached_scores, full_scores)
        for b in range(3):   # each prompt alone, with its own image, gives its row of the batch
            alone, score = beam_search(Captioner(images[b:b + 1]), prompt[b:b + 1], 12, 4, eos_token_id=eos)
            n = alone.shape[1]
            assert torch.equal(cached[b, :n], alone[0]) and (eos is None or (cached[b, n:] == eos).all())
            torch.testing.assert_close(cached_scores[b], score[0], atol=1e-6, rtol=0)
    assert torch.equal(greedy(model, prompt, 5), greedy(model, prompt, 5, use_cache=False))
    counting = CountingBigram()   # a cache that is not a tensor passes through unchanged
    assert torch.equal(beam_search(counting, prompt, 6, 3)[0], beam_search(counting, prompt, 6, 3, use_cache=False)[0])


def test_beam_search_uses_the_models_own_reorder_cache():
    class Reordering(Captioner):
        def reorder_cache(self, past, beam_idx):
            self.calls.append(beam_idx.tolist())
            return past[beam_idx]

    model = Reordering(torch.zeros(2, 11))
    model.calls = []
    beam_search(model, torch.tensor([[1], [2]]), 4, 3)
    assert len(model.calls) == 4 and all(len(c) == 6 and max(c) < 6 for c in model.calls)


def test_sample_draws_from_the_softmax_of_the_processed_scores():
    model = CountingBigram()
    start = torch.full((4000, 1), 2)
    p = model.table[2].softmax(-1)
    drawn = sample(model, start, 1, generator=torch.Generator().manual_seed(0))[:, 1]
    freq = torch.bincount(drawn, minlength=11) / 4000
    assert (freq - p).abs().max() < 0.03
    top2 = p.topk(2).indices
    drawn = sample(model, start, 1, torch.Generator().manual_seed(0), TopKProcessor(2))[:, 1]
    assert set(drawn.tolist()) == set(top2.tolist())
    assert abs((drawn == top2[0]).float().mean() - p[top2[0]] / p[top2].sum()) < 0.03


def test_sample_with_a_generator_leaves_the_global_one_alone():
    model, prompt = tiny_gpt(), ids(B=4, T=3)
    state = torch.get_rng_state()
    a = sample(model, prompt, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, sample(model, prompt, 20, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(a, sample(model, prompt, 20, torch.Generator().manual_seed(5), use_cache=False))
    assert not torch.equal(a, greedy(model, prompt, 20))
    torch.manual_seed(1)
    b = sample(model, prompt, 20)
    torch.manual_seed(1)
    assert torch.equal(b, sample(model, prompt, 20)), "the global generator, seeded, repeats itself"


def test_gpt_generate_delegates_to_each_loop():
    model, prompt = tiny_gpt(), ids(B=2, T=3)
    assert torch.equal(model.generate(prompt, 8, do_sample=True, generator=torch.Generator().manual_seed(2)),
                       sample(model, prompt, 8, torch.Generator().manual_seed(2)))
    assert torch.equal(model.generate(prompt, 8, num_beams=3, length_penalty=0.5, eos_token_id=4),
                       beam_search(model, prompt, 8, 3, 0.5, 4)[0])
    assert torch.equal(model.generate(prompt, 8, eos_token_id=4), greedy(model, prompt, 8, 4))
    model.train()
    beam_search(model, prompt, 3, 2)
    assert model.training, "beam search restores the training mode"


def _bad_input_rows():
    model, good, scores = tiny_gpt(), ids(), torch.randn(3, 23)
    return [
        (lambda: TopKProcessor(2.5), ValueError, r"top_k must be a positive int, got 2\.5"),
        (lambda: TopKProcessor(0), ValueError, r"top_k must be a positive int, got 0"),
        (lambda: TopKProcessor(True), ValueError, r"top_k must be a positive int, got True"),
        (lambda: TopKProcessor(3, min_tokens_to_keep=0), ValueError, r"min_tokens_to_keep must be a positive int"),
        (lambda: TopPProcessor(0.0), ValueError, r"top_p must be in \(0\.0, 1\.0\], got 0\.0"),
        (lambda: TopPProcessor(1.5), ValueError, r"top_p must be in \(0\.0, 1\.0\], got 1\.5"),
        (lambda: TopPProcessor("0.9"), TypeError, r"top_p must be a real number, got str"),
        (lambda: TopPProcessor(0.9, min_tokens_to_keep=1.5), ValueError, r"min_tokens_to_keep must be a positive int"),
        (lambda: MinPProcessor(-0.1), ValueError, r"min_p must be in \[0\.0, 1\.0\], got -0\.1"),
        (lambda: MinPProcessor(math.nan), ValueError, r"min_p must be in \[0\.0, 1\.0\], got nan"),
        (lambda: RepetitionPenaltyProcessor(-1.0), ValueError, r"penalty must be > 0\.0, got -1\.0"),
        (lambda: RepetitionPenaltyProcessor(0), ValueError, r"penalty must be > 0\.0, got 0"),
        (lambda: TopKProcessor(3)(good, scores[0]), ValueError,
         r"scores must be a float tensor \(batch, vocab_size\) .*, got torch\.float32 \(23,\)"),
        (lambda: TopPProcessor(0.5)(good, scores.long()), ValueError, r"scores must be a float tensor .* torch\.int64"),
        (lambda: MinPProcessor(0.1)(good, scores[:0]), ValueError,
         r"scores must be .* batch, vocab_size >= 1, .* \(0, 23\)"),
        (lambda: TemperatureProcessor(2.0)(good, scores[None]), ValueError, r"scores must be .* \(1, 3, 23\)"),
        (lambda: RepetitionPenaltyProcessor(1.2)(good.float(), scores), ValueError,
         r"input_ids must be a LongTensor \(batch, length\), got torch\.float32"),
        (lambda: RepetitionPenaltyProcessor(1.2)(good[:2], scores), ValueError,
         r"input_ids and scores must have the same batch size, got 2 and 3"),
        (lambda: RepetitionPenaltyProcessor(1.2)(good + 23, scores), ValueError, r"token ids must be in \[0, 23\)"),
        (lambda: greedy(model, good.float(), 2), ValueError, r"input_ids must be a LongTensor .* torch\.float32"),
        (lambda: greedy(model, good[:0], 2), ValueError, r"input_ids must have shape .* >= 1, got \(0, 9\)"),
        (lambda: greedy(model, good, -1), ValueError, r"max_new_tokens must be an int >= 0, got -1"),
        (lambda: greedy(model, good, 2, eos_token_id=23), ValueError, r"eos_token_id must be a token id in \[0, 23\)"),
        (lambda: greedy(model, good, 2, logits_processor="top_k"), TypeError, r"logits_processor must be a callable"),
        (lambda: sample(model, good, 2, generator=0), TypeError,
         r"generator must be a torch\.Generator or None, got int"),
        (lambda: sample(model, good.float(), 2), ValueError, r"input_ids must be a LongTensor"),
        (lambda: sample(model, good, 2.0), ValueError, r"max_new_tokens must be an int >= 0, got 2\.0"),
        (lambda: sample(model, good, 2, use_cache="yes"), TypeError, r"use_cache must be a bool, got str"),
        (lambda: sample(model, good, 2, logits_processor=lambda i, s: s * math.nan), ValueError, r"NaN scores"),
        (lambda: beam_search(model, good, 2, 0), ValueError, r"num_beams must be a positive int, got 0"),
        (lambda: beam_search(model, good, 2, 2.0), ValueError, r"num_beams must be a positive int, got 2\.0"),
        (lambda: beam_search(model, good, 0, 2), ValueError, r"max_new_tokens must be a positive int, got 0"),
        (lambda: beam_search(model, good, -1, 2), ValueError, r"max_new_tokens must be a positive int, got -1"),
        (lambda: beam_search(model, good.float(), 2, 2), ValueError, r"input_ids must be a LongTensor"),
        (lambda: beam_search(model, good[:0], 2, 2), ValueError, r"input_ids must have shape .* got \(0, 9\)"),
        (lambda: beam_search(model, good, 2, 2, length_penalty="1"), TypeError,
         r"length_penalty must be a real number, got str"),
        (lambda: beam_search(model, good, 2, 2, length_penalty=math.inf), ValueError,
         r"length_penalty must be finite, got inf"),
        (lambda: beam_search(model, good, 2, 2, eos_token_id=-1), ValueError, r"eos_token_id must be a token id"),
        (lambda: beam_search(model, ids(T=39), 2, 2), ValueError, r"prompt length 39 \+ max_new_tokens 2 exceeds"),
        (lambda: beam_search(nn.Linear(2, 2), good, 2, 2), TypeError, r"model must be an nn\.Module whose config"),
        (lambda: beam_search(model, good, 2, 2, logits_processor=lambda i, s: s[:, :5]), ValueError,
         r"logits_processor must return scores of shape \(6, 23\)"),
        (lambda: model.generate(good, 2, generator=torch.Generator()), ValueError,
         r"a generator was given with do_sample=False"),
        (lambda: model.generate(good, 2, do_sample=True, num_beams=2), ValueError, r"do_sample=True with num_beams=2"),
        (lambda: model.generate(good, 2, do_sample=1), TypeError, r"do_sample must be a bool, got int"),
        (lambda: model.generate(good, 2, num_beams=0), ValueError, r"num_beams must be a positive int, got 0"),
    ]


@pytest.mark.parametrize("row", range(len(_bad_input_rows())))
def test_new_decoding_callables_refuse_bad_input(row):
    call, error, message = _bad_input_rows()[row]
    with pytest.raises(error, match=message):
        call()
