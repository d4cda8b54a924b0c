"""vitlib.fusion: the fusion layer equals PyTorch's attention modules, the fusion encoder nn.TransformerDecoder."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlib.fusion import (AttentionFusion, ConcatFusion, CrossAttentionFusion, FusionEncoder, FusionLayer,
                           GatedCrossAttention, Projector, Resampler)


def _decoder(d_model=32, n_heads=4, n_layers=2, activation="gelu", norm_first=True):
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(d_model, n_heads, 3 * d_model, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    decoder = nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d_model)).eval()
    for p in decoder.parameters():   # LayerNorms start at (1, 0): perturb them so a swapped norm is caught
        nn.init.normal_(p, std=0.3)
    return decoder


def _torch_mha(ours, d_context):
    """An nn.MultiheadAttention (kdim = vdim = d_context) holding the weights of our MultiHeadAttention."""
    ref = nn.MultiheadAttention(ours.d_model, ours.n_heads, kdim=d_context, vdim=d_context, batch_first=True)
    with torch.no_grad():
        if ref._qkv_same_embed_dim:
            ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        else:
            ref.q_proj_weight.copy_(ours.q_proj.weight)
            ref.k_proj_weight.copy_(ours.k_proj.weight)
            ref.v_proj_weight.copy_(ours.v_proj.weight)
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    return ref.eval()


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_fusion_encoder_matches_nn_transformer_decoder(activation):
    decoder = _decoder(activation=activation)
    ours = FusionEncoder.from_torch(decoder).eval()
    g = torch.Generator().manual_seed(1)
    text, image = torch.randn(3, 7, 32, generator=g), torch.randn(3, 5, 32, generator=g)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False   # padding in the text
    ref = decoder(text, image, tgt_key_padding_mask=~mask)
    got = ours(text, image, mask)
    torch.testing.assert_close(got[mask], ref[mask], atol=1e-5, rtol=1e-5)


def test_fusion_layer_with_a_wider_context_matches_torch_modules():
    torch.manual_seed(0)
    d, dc = 16, 24
    layer = FusionLayer(d, 2, d_context=dc).eval()
    for p in layer.parameters():
        nn.init.normal_(p, std=0.3)
    self_attn, cross_attn = _torch_mha(layer.self_attn, d), _torch_mha(layer.cross_attn, dc)   # our weights
    x, image = torch.randn(2, 5, d), torch.randn(2, 9, dc)
    h = x + self_attn(*(layer.norm1(x),) * 3, need_weights=False)[0]
    h = h + cross_attn(layer.norm2(h), image, image, need_weights=False)[0]
    ref = h + layer.ffn.fc2(F.gelu(layer.ffn.fc1(layer.norm3(h))))
    torch.testing.assert_close(layer(x, image), ref, atol=1e-5, rtol=1e-5)


def test_fusion_bad_input():
    with pytest.raises(ValueError, match="norm_first=True"):
        FusionEncoder.from_torch(_decoder(norm_first=False))
    with pytest.raises(TypeError, match="TransformerDecoder"):
        FusionEncoder.from_torch(nn.Linear(2, 2))
    f = FusionEncoder(16, 2, 1, d_context=8)
    with pytest.raises(ValueError, match=r"text must have shape \(batch, length, 16\)"):
        f(torch.randn(2, 3, 8), torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"image must have shape \(2, S, 8\)"):
        f(torch.randn(2, 3, 16), torch.randn(2, 4, 16))


def test_cross_attention_maps_match_the_decoders_attention_weights():
    """FusionEncoder.cross_attention: per layer, the weights (B, H, T, S) of nn.TransformerDecoder's cross-attention
    (its multihead_attn, queried by the words after self-attention) on the same inputs."""
    decoder = _decoder()
    ours = FusionEncoder.from_torch(decoder).eval()
    g = torch.Generator().manual_seed(2)
    text, image = torch.randn(2, 6, 32, generator=g), torch.randn(2, 5, 32, generator=g)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    maps = ours.cross_attention(text, image, mask)
    assert len(maps) == 2 and all(m.shape == (2, 4, 6, 5) for m in maps)
    x = text
    for layer, got in zip(decoder.layers, maps):
        h = x + layer._sa_block(layer.norm1(x), None, ~mask)
        want = layer.multihead_attn(layer.norm2(h), image, image, need_weights=True, average_attn_weights=False)[1]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        x = layer(x, image, tgt_key_padding_mask=~mask)
    with pytest.raises(ValueError, match="image must have shape"):
        ours.cross_attention(text, image[:1])


# ----- chapter 07's operators ---------------------------------------------------------------------------------


def _perturbed(module):
    torch.manual_seed(0)
    for p in module.parameters():   # LayerNorms start at (1, 0), gates at 0: perturb so that every part counts
        nn.init.normal_(p, std=0.3)
    return module.eval()


def test_concat_fusion_is_gelu_of_a_linear_map_of_the_concatenation():
    f = _perturbed(ConcatFusion(6, 4, 5))
    v_i, v_t = torch.randn(3, 6), torch.randn(3, 4)
    W, b = f.proj.weight, f.proj.bias
    want = F.gelu(v_i @ W[:, :6].T + v_t @ W[:, 6:].T + b)   # each half of W sees one modality
    torch.testing.assert_close(f(v_i, v_t), want, atol=1e-6, rtol=1e-6)


def test_attention_fusion_is_attention_with_the_text_vector_as_the_only_query():
    """project=False: seed 001's S_j = v_j^T v_t, alpha = softmax(S / sqrt(d)), v_it = sum_j alpha_j v_j, which is
    F.scaled_dot_product_attention with one query v_t and keys = values = the patches."""
    f = AttentionFusion(8, 8, project=False)
    V, v_t = torch.randn(3, 9, 8), torch.randn(3, 8)
    want = F.scaled_dot_product_attention(v_t[:, None], V, V)[:, 0]
    torch.testing.assert_close(f(V, v_t), want, atol=1e-6, rtol=1e-6)
    alpha = f.weights(V, v_t)
    torch.testing.assert_close(alpha, (V @ v_t[:, :, None])[..., 0].div(8 ** 0.5).softmax(-1), atol=1e-6, rtol=0)
    g = _perturbed(AttentionFusion(8, 5))   # with W: the same, the query being W v_t
    v_t5 = torch.randn(3, 5)
    torch.testing.assert_close(g(V, v_t5), F.scaled_dot_product_attention(g.to_image(v_t5)[:, None], V, V)[:, 0],
                               atol=1e-6, rtol=1e-6)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[:, 4:] = False   # masked patches get no weight: the same as dropping them
    torch.testing.assert_close(f(V, v_t, mask), f(V[:, :4], v_t), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("gated", [False, True])
def test_cross_attention_blocks_match_torch_modules(gated):
    d, dc = 16, 12
    block = _perturbed((GatedCrossAttention if gated else CrossAttentionFusion)(d, 4, d_context=dc))
    mha = _torch_mha(block.cross_attn, dc)
    x, V = torch.randn(2, 5, d), torch.randn(2, 9, dc)
    a, b = (block.alpha_xattn.tanh(), block.alpha_ffw.tanh()) if gated else (1.0, 1.0)
    h = x + a * mha(block.norm1(x), V, V, need_weights=False)[0]
    want = h + b * block.ffn.fc2(F.gelu(block.ffn.fc1(block.norm2(h))))
    torch.testing.assert_close(block(x, V), want, atol=1e-5, rtol=1e-5)
    weights = block.attention(x, V)
    assert weights.shape == (2, 4, 5, 9)
    torch.testing.assert_close(weights, mha(block.norm1(x), V, V, average_attn_weights=False)[1], atol=1e-6, rtol=0)


def test_gated_cross_attention_is_the_identity_at_initialisation():
    """tanh(0) = 0: a freshly inserted block leaves the frozen LM's hidden states exactly as they were."""
    block = GatedCrossAttention(16, 4, d_context=12)
    x, V = torch.randn(2, 5, 16), torch.randn(2, 9, 12)
    assert torch.equal(block(x, V), x)
    with torch.no_grad():
        block.alpha_xattn.fill_(0.5)
    assert not torch.allclose(block(x, V), x), "a non-zero gate lets the image in"
    loss = block(x, V).sum()
    loss.backward()
    assert block.alpha_ffw.grad is not None and block.alpha_ffw.grad != 0, "the closed gate still learns"


def test_resampler_gives_k_tokens_whatever_the_number_of_patches():
    r = _perturbed(Resampler(16, 4, n_queries=3, d_context=12, n_layers=2))
    for S in (4, 9, 20):
        assert r(torch.randn(2, S, 12)).shape == (2, 3, 16)
    V = torch.randn(2, 9, 12)
    perm = torch.randperm(9)
    torch.testing.assert_close(r(V[:, perm]), r(V), atol=1e-5, rtol=1e-5)   # no positions inside: a set
    layer, q = r.layers[0], r.queries.expand(2, -1, -1)
    mha = _torch_mha(layer.cross_attn, 12)
    h = q + mha(layer.norm1(q), V, V, need_weights=False)[0]
    h = h + layer.ffn(layer.norm2(h))
    h = r.layers[1](h, V)
    torch.testing.assert_close(r(V), r.norm(h), atol=1e-5, rtol=1e-5)


def test_projector_matches_llava_multimodal_projector():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    config = transformers.LlavaConfig(vision_config=transformers.CLIPVisionConfig(hidden_size=12),
                                      text_config=transformers.LlamaConfig(hidden_size=16, num_attention_heads=2),
                                      vision_feature_layer=-2)
    theirs = LlavaMultiModalProjector(config).eval()
    ours = Projector(12, 16, kind="mlp")
    ours.net[0].load_state_dict(theirs.linear_1.state_dict())
    ours.net[2].load_state_dict(theirs.linear_2.state_dict())
    V = torch.randn(2, 9, 12)
    torch.testing.assert_close(ours(V), theirs(V), atol=1e-6, rtol=1e-6)
    linear = Projector(12, 16, kind="linear")
    torch.testing.assert_close(linear(V), V @ linear.net.weight.T + linear.net.bias, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("make, call, error, message", [
    (lambda: ConcatFusion(0, 4, 4), None, ValueError, "d_image"),
    (lambda: ConcatFusion(6, 4, 5), lambda f: f(torch.randn(3, 5), torch.randn(3, 4)), ValueError, r"image must .*6"),
    (lambda: ConcatFusion(6, 4, 5), lambda f: f(torch.randn(3, 6), torch.randn(2, 4)), ValueError, r"text must .*3"),
    (lambda: ConcatFusion(6, 4, 5), lambda f: f(torch.randn(0, 6), torch.randn(0, 4)), ValueError, "image must"),
    (lambda: ConcatFusion(6, 4, 5), lambda f: f(torch.ones(3, 6, dtype=torch.long), torch.randn(3, 4)), TypeError,
     "image"),
    (lambda: AttentionFusion(8, 5, project=False), None, ValueError, "project=False needs d_image == d_text"),
    (lambda: AttentionFusion(8, 8), lambda f: f(torch.randn(3, 8), torch.randn(3, 8)), ValueError,
     r"image must have shape \(B, length, 8\)"),
    (lambda: AttentionFusion(8, 8), lambda f: f(torch.randn(3, 0, 8), torch.randn(3, 8)), ValueError, "length >= 1"),
    (lambda: AttentionFusion(8, 8), lambda f: f(torch.randn(3, 9, 8), torch.randn(3, 8), torch.ones(3, 9)),
     ValueError, "image_mask must be a bool"),
    (lambda: CrossAttentionFusion(16, 3), None, ValueError, "n_heads"),
    (lambda: CrossAttentionFusion(16, 4, 12), lambda f: f(torch.randn(2, 5, 16), torch.randn(2, 9, 16)), ValueError,
     r"image must have shape \(2, length, 12\)"),
    (lambda: GatedCrossAttention(16, 4, 12), lambda f: f(torch.randn(5, 16), torch.randn(2, 9, 12)), ValueError,
     r"text must have shape"),
    (lambda: Resampler(16, 4, n_queries=0), None, ValueError, "n_queries"),
    (lambda: Resampler(16, 4, 3, 12), lambda f: f(torch.randn(2, 9, 16)), ValueError, r"image must .*12"),
    (lambda: Resampler(16, 4, 3, 12), lambda f: f(torch.randn(2, 9, 12).double()), TypeError, "image"),
    (lambda: Projector(12, 16, kind="conv"), None, ValueError, "kind"),
    (lambda: Projector(12, 16), lambda f: f(torch.randn(2, 9, 16)), ValueError, r"image must .*12"),
    (lambda: Projector(12, 16), lambda f: f(torch.full((2, 9, 12), float("nan"))), ValueError, "NaN"),
])
def test_fusion_operators_bad_input(make, call, error, message):
    with pytest.raises(error, match=message):
        module = make()
        call(module)
