"""vitlib.transformer: blocks and encoder equal PyTorch's, the text transformer and GPT validate their input, the KV
cache and inputs_embeds change nothing, GPT-2's initialisation."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlib import zoo
from vitlib.transformer import GPT, Block, Encoder, FeedForward, GPTConfig, TextTransformer

from tiny_models import ids, tiny_gpt

ATOL = 1e-5


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
    t = model.transformer
    x = t.token_emb(ids()) + t.pos_emb(torch.arange(9))
    for block in t.blocks:
        x = block(x)
    torch.testing.assert_close(logits, t.norm(x) @ t.token_emb.weight.T, atol=1e-5, rtol=0)


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


def test_an_empty_batch_is_refused_with_its_shape():
    model = tiny_gpt()
    for bad in (torch.zeros(0, 3, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long)):
        with pytest.raises(ValueError, match=rf"batch, length >= 1, got \({bad.shape[0]}, {bad.shape[1]}\)"):
            model(bad)
    with pytest.raises(ValueError, match=r"got \(0, 3\)"):
        model.generate(torch.zeros(0, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, length, 32\) .* got \(2, 0, 32\)"):
        model(inputs_embeds=torch.zeros(2, 0, 32))


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
    assert loaded.transformer.token_emb.weight.data_ptr() != model.transformer.token_emb.weight.data_ptr()


def test_initial_loss_is_near_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=80, d_model=32, n_layers=2, n_heads=4, max_len=16))
    x = torch.randint(0, 80, (8, 16))
    loss = F.cross_entropy(model(x)[:, :-1].reshape(-1, 80), x[:, 1:].reshape(-1))
    assert abs(loss.item() - math.log(80)) < 0.05, "small initial weights: every token about equally likely"


def test_inputs_embeds_equal_the_ids_they_embed():
    """forward(inputs_embeds=E[x]) is forward(x): positions are added alike, with and without the cache."""
    model = tiny_gpt()
    x = ids(T=12)
    embeds = model.transformer.token_emb(x)   # (B, T, d_model)
    torch.testing.assert_close(model(inputs_embeds=embeds), model(x), atol=0, rtol=0)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[0, 8:] = False
    torch.testing.assert_close(model(inputs_embeds=embeds, attention_mask=mask), model(x, attention_mask=mask),
                               atol=0, rtol=0)
    logits, cache = model(inputs_embeds=embeds[:, :5], use_cache=True)   # a prompt of embeddings, then ids
    steps = [logits]
    for t in range(5, 12):
        step = dict(inputs_embeds=embeds[:, t:t + 1]) if t % 2 else dict(input_ids=x[:, t:t + 1])
        logits, cache = model(**step, past_kv=cache, use_cache=True)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), model(x), atol=ATOL, rtol=0)


def test_inputs_embeds_are_checked():
    model = tiny_gpt()
    x = ids()
    with pytest.raises(ValueError, match=r"exactly one of input_ids \(B, T\) and inputs_embeds \(B, T, 32\), got both"):
        model(x, inputs_embeds=model.transformer.token_emb(x))
    with pytest.raises(ValueError, match="got neither"):
        model()
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, length, 32\), got \(3, 9, 16\)"):
        model(inputs_embeds=torch.randn(3, 9, 16))
    with pytest.raises(TypeError, match=r"inputs_embeds has dtype torch\.float64"):
        model(inputs_embeds=torch.randn(3, 9, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="sequence length 41 exceeds max_len=40"):
        model(inputs_embeds=torch.randn(1, 41, 32))


def test_gpt2_initialisation_scales_the_residual_projections():
    """GPT-2 (and nanoGPT's c_proj) draw the two projections that write into the residual stream, attention's W^O
    and the FFN's W_2, from N(0, 0.02 / sqrt(2 n_layers)); every other weight from N(0, 0.02); biases are 0."""
    torch.manual_seed(0)
    L = 6
    model = GPT(GPTConfig(vocab_size=200, d_model=128, n_layers=L, n_heads=4, max_len=64))
    blocks = model.transformer.blocks
    residual = torch.cat([p.weight.flatten() for b in blocks for p in (b.attn.out_proj, b.ffn.fc2)])
    assert residual.std().item() == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.02)   # 0.0058, not 0.02
    assert abs(residual.mean().item()) < 1e-4
    others = torch.cat([p.weight.flatten() for b in blocks for p in (b.attn.q_proj, b.attn.v_proj, b.ffn.fc1)]
                       + [model.transformer.token_emb.weight.flatten(), model.transformer.pos_emb.weight.flatten()])
    assert others.std().item() == pytest.approx(0.02, rel=0.02)
    assert all((b.attn.out_proj.bias == 0).all() and (b.ffn.fc2.bias == 0).all() for b in blocks)


def test_text_transformer_serves_causal_and_bidirectional_towers():
    torch.manual_seed(0)
    causal = TextTransformer(23, 16, 32, 2, 4, causal=True).eval()
    both_ways = TextTransformer(23, 16, 32, 2, 4, causal=False).eval()
    both_ways.load_state_dict(causal.state_dict())
    x = ids(T=8)
    changed = x.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 23
    torch.testing.assert_close(causal(x)[:, :6], causal(changed)[:, :6], atol=1e-6, rtol=0)
    assert not torch.allclose(both_ways(x)[:, :6], both_ways(changed)[:, :6]), "bidirectional: the past sees ahead"
    with pytest.raises(ValueError, match="a KV cache needs causal attention"):
        both_ways(x, use_cache=True)
    std = TextTransformer(23, 16, 64, 1, 4, embedding_std=(0.02, 0.01))
    assert std.token_emb.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert std.pos_emb.weight.std().item() == pytest.approx(0.01, rel=0.1)
    with pytest.raises(ValueError, match=r"embedding_std must be None or \(std of E, std of P\)"):
        TextTransformer(23, 16, 32, 1, 4, embedding_std=0.02)


def test_attention_mask_checks():
    model = tiny_gpt()
    x = ids(B=2, T=4)
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(2, 4\), got \(2, 3\)"):
        model(x, attention_mask=torch.ones(2, 3, dtype=torch.bool))
    _, cache = model(x, use_cache=True)
    with pytest.raises(ValueError, match=r"shape \(batch, cached \+ new length\) = \(2, 5\), got \(2, 1\)"):
        model(x[:, :1], past_kv=cache, use_cache=True, attention_mask=torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bool or 0/1 \(1 = real token\), got torch\.int64 \(2, 4\) with other"):
        model(x, attention_mask=torch.full((2, 4), 2))
    torch.testing.assert_close(model(x, attention_mask=torch.ones(2, 4, dtype=torch.long)), model(x))
