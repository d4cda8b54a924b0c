"""vitlib.decoding: the generation loop (cached or not, the same tokens), greedy tokens equal transformers' GPT-2,
logits processors equal transformers' warpers, seeded sampling, eos handling and the checks of every argument."""

import math

import pytest
import torch
from torch import nn

from vitlib.decoding import LogitsProcessorList, SampleProcessor, TemperatureProcessor, generate
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
