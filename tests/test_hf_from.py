"""vitlib.hf.from_hf_gpt2 / from_hf_clip: our GPT and CLIP with the weights of transformers' GPT2LMHeadModel and
CLIPModel give their logits and features; to_hf(from_hf(hf)) and from_hf(to_hf(ours)) give back the same weights;
what our models would compute differently is refused, naming the config field."""

import pytest
import torch

from vitlib.clip import CLIP, CLIPConfig
from vitlib.hf import from_hf_clip, from_hf_gpt2, to_hf_clip, to_hf_gpt2
from vitlib.transformer import GPT
from vitlib.vision import ViTConfig
from tiny_models import spread, tiny_gpt

transformers = pytest.importorskip("transformers")
V = 40   # the vocabulary of the tiny models


def assert_same_state(a: dict, b: dict) -> None:
    """Two state dicts with the same names and bit-identical tensors."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def ids(seed: int = 1):
    return torch.randint(0, V, (3, 17), generator=torch.Generator().manual_seed(seed))


# ----- GPT-2 (chapter 03) ------------------------------------------------------------------------------------------
def hf_gpt2(seed: int = 0, **overrides):
    config = dict(vocab_size=V, n_positions=24, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
                  attn_pdrop=0.0) | overrides   # GPT-2's activation by default: "gelu_new"
    torch.manual_seed(seed)
    return spread(transformers.GPT2LMHeadModel(transformers.GPT2Config(**config)).eval())


GPT2_CONFIGS = {"gelu_new": (dict(), "gelu_tanh"),
                "gelu_pytorch_tanh": (dict(activation_function="gelu_pytorch_tanh", n_layer=1), "gelu_tanh"),
                "gelu-n_inner": (dict(activation_function="gelu", n_inner=40, n_layer=3, n_head=2), "gelu"),
                "relu-eps": (dict(activation_function="relu", layer_norm_epsilon=1e-6), "relu"),
                "quick_gelu": (dict(activation_function="quick_gelu"), "quick_gelu")}


@pytest.mark.parametrize("name", GPT2_CONFIGS)
def test_from_hf_gpt2_gives_its_logits(name):
    overrides, activation = GPT2_CONFIGS[name]
    hf = hf_gpt2(**overrides)
    ours = from_hf_gpt2(hf)
    c = ours.config
    assert isinstance(ours, GPT) and not ours.training
    assert (c.activation, c.d_ff, c.norm_eps) == (activation, hf.config.n_inner or 4 * hf.config.n_embd,
                                                  hf.config.layer_norm_epsilon)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids()), hf(ids()).logits, atol=1e-5, rtol=0)


def test_an_untied_head_equal_to_wte_is_accepted():
    hf = hf_gpt2(tie_word_embeddings=False)
    with torch.no_grad():
        hf.lm_head.weight.copy_(hf.transformer.wte.weight)
    with torch.no_grad():
        torch.testing.assert_close(from_hf_gpt2(hf)(ids()), hf(ids()).logits, atol=1e-5, rtol=0)


def test_gpt2_round_trips_are_exact():
    hf = hf_gpt2(resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)   # as the real gpt2: gelu_new, dropout 0.1
    back = to_hf_gpt2(from_hf_gpt2(hf))
    assert_same_state(back.state_dict(), hf.state_dict())
    assert (back.config.activation_function, back.config.resid_pdrop) == ("gelu_new", 0.1)
    ours = tiny_gpt(0, vocab_size=V, activation="gelu_tanh", dropout=0.1, d_ff=48, norm_eps=1e-6)
    again = from_hf_gpt2(to_hf_gpt2(ours))
    assert again.config == ours.config
    assert_same_state(again.state_dict(), ours.state_dict())


GPT2_BAD = [
    (lambda: "gpt2", TypeError, "from_hf_gpt2 expects a transformers GPT2LMHeadModel, got str"),
    (lambda: transformers.GPT2Model(transformers.GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=V)), TypeError,
     "expects a transformers GPT2LMHeadModel, got GPT2Model"),
    (lambda: tiny_gpt(), TypeError, "expects a transformers GPT2LMHeadModel, got GPT"),
    (lambda: hf_gpt2(activation_function="silu"), ValueError,
     r"activation_function='silu' has no vitlib activation; allowed: gelu, relu, gelu_new, gelu_pytorch_tanh"),
    (lambda: hf_gpt2(scale_attn_by_inverse_layer_idx=True), ValueError,
     "scale_attn_by_inverse_layer_idx=True cannot be converted: vitlib's GPT supports only "
     "scale_attn_by_inverse_layer_idx=False"),
    (lambda: hf_gpt2(scale_attn_weights=False), ValueError,
     "scale_attn_weights=False cannot be converted: .* only scale_attn_weights=True"),
    (lambda: hf_gpt2(reorder_and_upcast_attn=True), ValueError, "reorder_and_upcast_attn=True cannot be converted"),
    (lambda: hf_gpt2(add_cross_attention=True), ValueError, "add_cross_attention=True cannot be converted"),
    (lambda: hf_gpt2(tie_word_embeddings=False), ValueError,
     "tie_word_embeddings=False with an lm_head.weight other than transformer.wte.weight cannot be converted"),
    (lambda: hf_gpt2(attn_pdrop=0.2), ValueError,
     r"one dropout rate for resid_pdrop, embd_pdrop and attn_pdrop, got \{'resid_pdrop': 0.0, 'embd_pdrop': 0.0, "
     r"'attn_pdrop': 0.2\}"),
]


@pytest.mark.parametrize("make, error, match", GPT2_BAD)
def test_from_hf_gpt2_refuses_what_it_cannot_convert(make, error, match):
    model = make()
    with pytest.raises(error, match=match):
        from_hf_gpt2(model)


# ----- CLIP (chapter 05) -------------------------------------------------------------------------------------------
def hf_clip(seed: int = 0, act: str = "quick_gelu", text=None, vision=None, **overrides):
    tower = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, hidden_act=act)
    config = transformers.CLIPConfig(
        text_config=tower | dict(vocab_size=V, max_position_embeddings=20, eos_token_id=3, bos_token_id=1,
                                 pad_token_id=0) | (text or {}),
        vision_config=tower | dict(image_size=16, patch_size=4) | (vision or {}), projection_dim=24, **overrides)
    torch.manual_seed(seed)
    return spread(transformers.CLIPModel(config).eval())


def clip_inputs(eos: int, image_size: int, seed: int = 2):
    """Normalised images (6, 3, S, S) and texts padded after their first <eos> (a second <eos> in the last one)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(6, 3, image_size, image_size, generator=g)   # as CLIP's processor gives them
    input_ids = torch.randint(4, V - 1, (6, 12), generator=g)         # no <eos>, neither 3 nor V - 1, yet
    lengths = torch.tensor([12, 3, 7, 1, 9, 5])
    mask = torch.arange(12) < lengths[:, None]                          # (6, 12): True for real tokens
    input_ids[torch.arange(6), lengths - 1] = eos
    input_ids[-1, -1] = eos
    mask[-1] = True
    return images, input_ids.masked_fill(~mask, 0), mask


def features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


CLIP_CONFIGS = {"quick_gelu": (dict(), "quick_gelu", 3),   # OpenAI's activation
                "gelu-layers": (dict(act="gelu", vision=dict(num_hidden_layers=1)), "gelu", 3),
                "gelu_new-32px": (dict(act="gelu_new", vision=dict(image_size=32, patch_size=8)), "gelu_tanh", 3),
                # transformers' legacy rule pools at the largest id: our first <eos> when <eos> is the last id
                "legacy-eos-2": (dict(text=dict(eos_token_id=2, num_hidden_layers=3)), "quick_gelu", V - 1)}


@pytest.mark.parametrize("name", CLIP_CONFIGS)
def test_from_hf_clip_gives_its_features_and_logits(name):
    overrides, activation, eos_id = CLIP_CONFIGS[name]
    hf = hf_clip(**overrides)
    ours = from_hf_clip(hf)
    c = ours.config
    assert isinstance(ours, CLIP) and not ours.training
    assert (c.activation, c.eos_id) == (activation, eos_id)
    images, input_ids, mask = clip_inputs(c.eos_id, c.image_size)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), features(hf.get_image_features(pixel_values=images)),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_text(input_ids, mask),
                                   features(hf.get_text_features(input_ids=input_ids, attention_mask=mask)),
                                   atol=1e-5, rtol=0)
        out = hf(input_ids=input_ids, attention_mask=mask, pixel_values=images)
        torch.testing.assert_close(ours(images, input_ids, mask), out.logits_per_image, atol=1e-5, rtol=0)


def test_clip_round_trips_are_exact():
    hf = hf_clip()
    assert_same_state(to_hf_clip(from_hf_clip(hf)).state_dict(), hf.state_dict())
    torch.manual_seed(0)
    ours = spread(CLIP(CLIPConfig(vocab_size=V, embed_dim=16, vision_width=32, text_width=32, activation="quick_gelu")))
    again = from_hf_clip(to_hf_clip(ours))
    assert again.config == ours.config
    expected = {k: w.clone() for k, w in ours.state_dict().items()}   # CLIPModel has no patch bias: b moves into E_pos
    expected["vision.pos_emb"][0, 1:] += expected["vision.patch_embed.proj.bias"]
    expected["vision.patch_embed.proj.bias"].zero_()
    assert_same_state(again.state_dict(), expected)
    images, input_ids, mask = clip_inputs(ours.config.eos_id, ours.config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(again(images, input_ids, mask), ours(images, input_ids, mask), atol=1e-5, rtol=0)


CLIP_BAD = [
    (lambda: "openai/clip-vit-base-patch32", TypeError, "from_hf_clip expects a transformers CLIPModel, got str"),
    (lambda: hf_gpt2(), TypeError, "from_hf_clip expects a transformers CLIPModel, got GPT2LMHeadModel"),
    (lambda: hf_clip().text_model, TypeError, "expects a transformers CLIPModel, got CLIPTextModel"),
    (lambda: hf_clip(act="silu"), ValueError,
     "text_config.hidden_act='silu' has no vitlib activation; allowed: gelu, relu, gelu_new"),
    (lambda: hf_clip(vision=dict(hidden_act="gelu")), ValueError,
     "text_config.hidden_act='quick_gelu' and vision_config.hidden_act='gelu' differ"),
    (lambda: hf_clip(text=dict(intermediate_size=100)), ValueError,
     "text_config.intermediate_size=100 cannot be converted: vitlib's CLIP has intermediate_size=128"),
    (lambda: hf_clip(vision=dict(layer_norm_eps=1e-6)), ValueError,
     "vision_config.layer_norm_eps=1e-06 cannot be converted: vitlib's CLIP has layer_norm_eps=1e-05"),
    (lambda: hf_clip(vision=dict(attention_dropout=0.1)), ValueError, "vision_config.attention_dropout=0.1 cannot"),
    (lambda: hf_clip(vision=dict(num_channels=1)), ValueError, "vision_config.num_channels=1 cannot be converted"),
    (lambda: hf_clip(text=dict(eos_token_id=None)), ValueError,
     "text_config.eos_token_id must be one int id to pool at, got None"),
]


@pytest.mark.parametrize("make, error, match", CLIP_BAD)
def test_from_hf_clip_refuses_what_it_cannot_convert(make, error, match):
    model = make()
    with pytest.raises(error, match=match):
        from_hf_clip(model)


def test_new_activation_options_default_to_the_old_behaviour_and_are_checked():
    assert CLIPConfig().activation == ViTConfig().activation == "gelu"
    for make in (lambda: CLIPConfig(activation="swish"), lambda: ViTConfig(activation="swish")):
        with pytest.raises(ValueError, match="unknown activation 'swish'; allowed: gelu, relu, gelu_tanh, quick_gelu"):
            make()
