"""vitlib.fusion: the fusion layer equals PyTorch's attention modules, the fusion encoder nn.TransformerDecoder."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlib.fusion import FusionEncoder, FusionLayer


def _decoder(d_model=32, n_heads=4, n_layers=2, activation="gelu", norm_first=True):
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(d_model, n_heads, 3 * d_model, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    decoder = nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d_model)).eval()
    for p in decoder.parameters():   # LayerNorms start at (1, 0): perturb them so a swapped norm is caught
        nn.init.normal_(p, std=0.3)
    return decoder


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
    self_attn = nn.MultiheadAttention(d, 2, batch_first=True)
    cross_attn = nn.MultiheadAttention(d, 2, kdim=dc, vdim=dc, batch_first=True)
    for ours, ref in ((layer.self_attn, self_attn), (layer.cross_attn, cross_attn)):
        with torch.no_grad():   # copy our weights into PyTorch's modules
            if ref._qkv_same_embed_dim:
                ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
            else:
                ref.q_proj_weight.copy_(ours.q_proj.weight)
                ref.k_proj_weight.copy_(ours.k_proj.weight)
                ref.v_proj_weight.copy_(ours.v_proj.weight)
            ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            ref.out_proj.load_state_dict(ours.out_proj.state_dict())
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
