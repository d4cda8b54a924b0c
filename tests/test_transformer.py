"""vitlib.transformer: blocks and encoder equal PyTorch's, the GPT validates its input, the KV cache changes nothing."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlib import zoo
from vitlib.transformer import GPT, Block, Encoder, FeedForward, GPTConfig

ATOL = 1e-5


def tiny_gpt(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=23, d_model=32, n_layers=2, n_heads=4, max_len=40) | overrides
    model = GPT(GPTConfig(**cfg)).eval()
    with torch.no_grad():  # spread the weights so that outputs differ visibly between positions and tokens
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def ids(B=3, T=9, V=23, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_feed_forward_is_the_formula():
    ffn = FeedForward(8, 32, activation="relu")
    x = torch.randn(2, 5, 8)
    expected = torch.clamp(x @ ffn.fc1.weight.T + ffn.fc1.bias, min=0) @ ffn.fc2.weight.T + ffn.fc2.bias
    torch.testing.assert_close(ffn(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("padded", [False, True])
def test_encoder_equals_torch_transformer_encoder(activation, padded):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation=activation, batch_first=True,
                                       norm_first=True)
    ref = nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(32), enable_nested_tensor=False).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases
        for name, p in ref.named_parameters():
            if "norm" in name or "bias" in name:
                p.add_(torch.randn_like(p) * 0.1)
    ours = Encoder.from_torch(ref).eval()
    x = torch.randn(2, 7, 32)
    mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7]) if padded else None
    with torch.no_grad():
        got = ours(x, attention_mask=mask)
        expected = ref(x, src_key_padding_mask=None if mask is None else ~mask)
    keep = mask if padded else torch.ones(2, 7, dtype=torch.bool)  # PyTorch leaves padded positions undefined
    torch.testing.assert_close(got[keep], expected[keep], atol=ATOL, rtol=0)


def test_encoder_rejects_post_ln_and_wrong_widths():
    post_ln = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1, norm=nn.LayerNorm(16),
                                    enable_nested_tensor=False)
    with pytest.raises(ValueError, match="norm_first"):
        Encoder.from_torch(post_ln)
    with pytest.raises(ValueError, match=r"\(batch, length, 16\)"):
        Encoder(16, 2, 1)(torch.randn(2, 3, 8))


def test_causal_block_ignores_the_future():
    torch.manual_seed(0)
    block = Block(16, 4, causal=True).eval()
    x = torch.randn(1, 6, 16)
    changed = x.clone()
    changed[:, 4:] += torch.randn(1, 2, 16)
    torch.testing.assert_close(block(x)[:, :4], block(changed)[:, :4], atol=1e-6, rtol=0)
    bidirectional = Block(16, 4, causal=False).eval()
    bidirectional.load_state_dict(block.state_dict())
    assert not torch.allclose(bidirectional(x)[:, :4], bidirectional(changed)[:, :4]), "without the mask it sees"


def test_block_is_pre_ln_with_residuals():
    torch.manual_seed(0)
    block = Block(16, 4, d_ff=24, causal=True).eval()
    x = torch.randn(2, 5, 16)
    h = x + block.attn(F.layer_norm(x, (16,), block.norm1.weight, block.norm1.bias), is_causal=True)
    expected = h + block.ffn(F.layer_norm(h, (16,), block.norm2.weight, block.norm2.bias))
    torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=0)


def test_gpt_config_defaults_and_checks():
    assert GPTConfig(10, 16, 1, 2, 8).d_ff == 64
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(10, 16, 1, 3, 8)
    with pytest.raises(ValueError, match="max_len"):
        GPTConfig(10, 16, 1, 2, 0)
    with pytest.raises(ValueError, match="activation"):
        GPTConfig(10, 16, 1, 2, 8, activation="tanh")


def test_gpt_logits_shape_and_tied_head():
    model = tiny_gpt()
    logits = model(ids())
    assert logits.shape == (3, 9, 23)
    assert "lm_head" not in dict(model.named_parameters())
    x = model.tok_emb(ids()) + model.pos_emb(torch.arange(9))
    for block in model.blocks:
        x = block(x)
    torch.testing.assert_close(logits, model.norm(x) @ model.tok_emb.weight.T, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 3), "LongTensor"),
    (torch.zeros(5, dtype=torch.long), r"\(batch, length\)"),
    (torch.zeros(1, 41, dtype=torch.long), "exceeds max_len=40"),
    (torch.full((1, 3), 23), r"\[0, 23\)"),
    (torch.full((1, 3), -1), r"\[0, 23\)"),
])
def test_gpt_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        tiny_gpt()(bad)


def test_right_padding_does_not_change_real_positions():
    model = tiny_gpt()
    x = ids(B=2, T=8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, 5:] = False
    padded = model(x, attention_mask=mask)
    torch.testing.assert_close(padded[0, :5], model(x[:1, :5])[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(padded[1], model(x[1:])[0], atol=ATOL, rtol=0)


def test_kv_cache_gives_the_same_logits_step_by_step():
    model = tiny_gpt()
    x = ids(T=12)
    full = model(x)
    logits, cache = model(x[:, :5], use_cache=True)
    steps = [logits]
    for t in range(5, 12):
        logits, cache = model(x[:, t:t + 1], past_kv=cache, use_cache=True)
        steps.append(logits)
    assert cache[0][0].shape == (3, 4, 12, 8)  # (B, H, T, Dh) per layer
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=0)


def test_generate_with_and_without_cache_is_identical():
    model = tiny_gpt(max_len=64)
    prompt = ids(B=4, T=5)
    with_cache = model.generate(prompt, 40, use_cache=True)
    without = model.generate(prompt, 40, use_cache=False)
    assert with_cache.shape == (4, 45)
    assert torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :5], prompt)


def test_generate_is_greedy_and_applies_the_processor():
    model = tiny_gpt()
    prompt = ids(B=2, T=4)
    out = model.generate(prompt, 1)
    assert torch.equal(out[:, -1], model(prompt)[:, -1].argmax(-1))
    forced = model.generate(prompt, 3, logits_processor=lambda i, s: torch.where(
        torch.arange(s.shape[-1]) == 7, 0.0, float("-inf")).expand_as(s))
    assert (forced[:, 4:] == 7).all()
    calls = []
    model.generate(prompt, 3, logits_processor=lambda i, s: calls.append(i.shape) or s)
    assert calls == [(2, 4), (2, 5), (2, 6)], "the processor sees the ids generated so far"


def test_generate_stops_at_eos_and_pads_with_it():
    model = tiny_gpt()
    prompt = ids(B=2, T=3)
    first = model.generate(prompt, 1)[:, -1]
    eos = int(first[0])  # the first row ends at once; the second continues unless it also picks this token
    out = model.generate(prompt, 10, eos_token_id=eos)
    assert (out[0, 3:] == eos).all()
    plain = model.generate(prompt, out.shape[1] - 3)
    row = plain[1, 3:].tolist()
    expected = row[:row.index(eos) + 1] + [eos] * (len(row) - row.index(eos) - 1) if eos in row else row
    assert out[1, 3:].tolist() == expected


def test_generate_checks_its_arguments():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="exceeds max_len"):
        model.generate(ids(T=30), 11)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(ids(), -1)
    with pytest.raises(ValueError, match=r"eos_token_id must be a token id in \[0, 23\) or None, got 23"):
        model.generate(ids(), 2, eos_token_id=23)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_never_returns_an_id_outside_the_vocabulary(use_cache):
    """A logits processor that widened the scores let argmax pick an id >= vocab_size; on the last step nothing
    re-checked it, and generate returned it. One that returned NaN (or -inf everywhere) let argmax pick any id."""
    model = tiny_gpt()
    wide = lambda i, s: torch.cat([s, s + 1], dim=-1)  # noqa: E731  the copy wins every argmax
    with pytest.raises(ValueError, match=r"scores of shape \(3, 23\) \(batch, vocab_size\), got .* \(3, 46\)"):
        model.generate(ids(), 1, use_cache=use_cache, logits_processor=wide)
    with pytest.raises(ValueError, match="NaN scores"):
        model.generate(ids(), 1, use_cache=use_cache, logits_processor=lambda i, s: s * math.nan)
    top2 = lambda i, s: s.masked_fill(s < s.topk(2).values[:, -1:], -math.inf)  # noqa: E731  a valid processor
    assert model.generate(ids(), 3, use_cache=use_cache, logits_processor=top2).max() < 23


def test_an_empty_batch_is_refused_with_its_shape():
    model = tiny_gpt()
    for bad in (torch.zeros(0, 3, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long)):
        with pytest.raises(ValueError, match=rf"batch, length >= 1, got \({bad.shape[0]}, {bad.shape[1]}\)"):
            model(bad)
    with pytest.raises(ValueError, match=r"got \(0, 3\)"):
        model.generate(torch.zeros(0, 3, dtype=torch.long), 2)


@pytest.mark.parametrize("bad, message", [
    (dict(norm_eps=-1), r"norm_eps must be > 0.0, got -1"),
    (dict(norm_eps=0.0), r"norm_eps must be > 0.0, got 0.0"),
    (dict(dropout=1.5), r"dropout must be in \[0.0, 1.0\), got 1.5"),
    (dict(dropout=math.nan), r"dropout must be in \[0.0, 1.0\), got nan"),
    (dict(n_heads=0), r"n_heads must be a positive int, got 0"),
    (dict(d_model=2**21, n_heads=1), r"d_model must be at most 1048576, got 2097152"),
])
def test_gpt_config_rejects_what_would_build_a_broken_model(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**(dict(vocab_size=10, d_model=16, n_layers=1, n_heads=2, max_len=8) | bad))


def test_dropout_is_active_only_in_training():
    model = tiny_gpt(dropout=0.5)
    x = ids()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_parameter_groups_add_up():
    model = tiny_gpt(d_ff=48)
    groups = model.parameter_groups()
    assert sum(groups.values()) == sum(p.numel() for p in model.parameters())
    d, L, V, T = 32, 2, 23, 40
    assert groups == {"embeddings": V * d + T * d, "attention": L * 4 * (d * d + d),
                      "ffn": L * (d * 48 + 48 + 48 * d + d), "norms": (2 * L + 1) * 2 * d}


def test_zoo_round_trip(tmp_path):
    model = tiny_gpt()
    zoo.save(model, "tiny", model.config, {"note": 1}, directory=tmp_path)
    loaded = zoo.load(tmp_path / "tiny")
    assert isinstance(loaded, GPT) and loaded.config == model.config
    torch.testing.assert_close(loaded(ids()), model(ids()), atol=0, rtol=0)
    assert loaded.tok_emb.weight.data_ptr() != model.tok_emb.weight.data_ptr()


def test_initial_loss_is_near_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=80, d_model=32, n_layers=2, n_heads=4, max_len=16))
    x = torch.randint(0, 80, (8, 16))
    loss = F.cross_entropy(model(x)[:, :-1].reshape(-1, 80), x[:, 1:].reshape(-1))
    assert abs(loss.item() - math.log(80)) < 0.05, "small initial weights: every token about equally likely"
