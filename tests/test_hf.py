"""vitlib.hf: transformers' GPT2LMHeadModel with our weights gives our logits and our greedy tokens (to_hf_gpt2);
our ViT with the weights of transformers' ViTModel gives its token states and attention maps (from_hf_vit)."""

import pytest
import torch

from vitlib import zoo
from vitlib.data import ShapesWorld
from vitlib.hf import from_hf_vit, to_hf_gpt2
from vitlib.transformer import GPT, GPTConfig
from vitlib.vision import ViT, ViTConfig
from tiny_models import spread

pytest.importorskip("transformers")
TOK = ShapesWorld().tokenizer
SPECIAL = dict(bos_token_id=TOK.bos_id, eos_token_id=TOK.eos_id, pad_token_id=TOK.pad_id)


def random_gpt(seed: int, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=TOK.vocab_size, d_model=32, n_layers=2, n_heads=4, max_len=48) | overrides
    model = GPT(GPTConfig(**cfg)).eval()
    spread(model)
    return model


def hf_greedy(hf, prompt, new_tokens):
    return hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, do_sample=False,
                       eos_token_id=TOK.eos_id, pad_token_id=TOK.eos_id)


CONFIGS = [dict(), dict(n_layers=3, n_heads=2, d_ff=40), dict(activation="relu", d_model=48, n_heads=6),
           dict(norm_eps=1e-6, n_layers=1), dict(activation="gelu_tanh"), dict(activation="quick_gelu")]
HF_ACTIVATION = {"gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_new", "quick_gelu": "quick_gelu"}


@pytest.mark.parametrize("overrides", CONFIGS, ids=["default", "d_ff", "relu", "eps", "gelu_tanh", "quick_gelu"])
def test_logits_match_gpt2(overrides):
    model = random_gpt(0, **overrides)
    hf = to_hf_gpt2(model, **SPECIAL)
    assert hf.config.n_embd == model.config.d_model and hf.config.n_inner == model.config.d_ff
    assert hf.config.activation_function == HF_ACTIVATION[model.config.activation]   # GPT-2's own is "gelu_new"
    x = torch.randint(0, TOK.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("overrides", CONFIGS[:2], ids=["default", "d_ff"])
def test_greedy_tokens_match_gpt2_generate(overrides):
    model = random_gpt(2, **overrides)
    hf = to_hf_gpt2(model, **SPECIAL)
    prompt = torch.randint(5, TOK.vocab_size, (4, 6), generator=torch.Generator().manual_seed(3))
    ours = model.generate(prompt, 30, eos_token_id=TOK.eos_id)
    theirs = hf_greedy(hf, prompt, 30)
    assert torch.equal(ours, theirs)


def test_the_head_stays_tied():
    hf = to_hf_gpt2(random_gpt(0), **SPECIAL)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()


def test_trained_checkpoint_matches_gpt2():
    model = zoo.load("gpt-shapes")
    hf = to_hf_gpt2(model, **SPECIAL)
    texts = ["<bos> a small red circle at the top left and a blue square.", "<bos> two objects: a green"]
    batch = TOK(texts, add_bos=False, add_eos=False)
    with torch.no_grad():
        ours = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        theirs = hf(batch["input_ids"], attention_mask=batch["attention_mask"].long()).logits
    keep = batch["attention_mask"]
    torch.testing.assert_close(theirs[keep], ours[keep], atol=1e-5, rtol=0)
    prompt = torch.tensor([TOK.encode("<bos> there is"), TOK.encode("<bos> one object")])
    assert torch.equal(model.generate(prompt, 40, eos_token_id=TOK.eos_id), hf_greedy(hf, prompt, 40))


def test_rejects_other_models():
    with pytest.raises(TypeError, match="vitlib.transformer.GPT"):
        to_hf_gpt2(torch.nn.Linear(2, 2))


def test_special_ids_must_be_in_the_vocabulary():
    model = random_gpt(0)
    with pytest.raises(ValueError, match=rf"eos_token_id must be a token id in \[0, {model.config.vocab_size}\)"):
        to_hf_gpt2(model, eos_token_id=model.config.vocab_size)


# ----- ViT (chapter 04) ------------------------------------------------------------------------------------------
def _hf_vit(config: ViTConfig):
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.ViTConfig(hidden_size=config.d_model, num_hidden_layers=config.n_layers,
                                       num_attention_heads=config.n_heads, intermediate_size=config.d_ff,
                                       image_size=config.image_size, patch_size=config.patch_size,
                                       num_channels=config.in_channels, layer_norm_eps=config.norm_eps,
                                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    hf_config._attn_implementation = "eager"   # so that it can return attention weights
    hf = transformers.ViTModel(hf_config, add_pooling_layer=False).eval()
    with torch.no_grad():   # transformers starts the class token and biases at zero: randomise everything
        for p in hf.parameters():
            p.normal_(0, 0.2)
    return hf


def test_vit_equals_transformers_vit_model():
    config = ViTConfig(image_size=16, patch_size=4, d_model=32, n_layers=2, n_heads=4, d_ff=48)
    hf = _hf_vit(config)
    ours = from_hf_vit(hf).eval()
    assert isinstance(ours, ViT)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = hf(pixel_values=x).last_hidden_state            # (B, 1 + N, d_model)
    v, tokens = ours(x, return_tokens=True)
    torch.testing.assert_close(tokens, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(v, ref[:, 0], atol=1e-5, rtol=0)
    weights = hf(pixel_values=x, output_attentions=True).attentions  # per layer (B, H, T, T)
    torch.testing.assert_close(ours.attention_maps(x), torch.stack([w.mean(dim=1) for w in weights]),
                               atol=1e-6, rtol=0)


def test_from_hf_vit_refuses_what_it_cannot_copy():
    with pytest.raises(TypeError, match="from_hf_vit expects a transformers ViTModel, got Linear"):
        from_hf_vit(torch.nn.Linear(2, 2))
    hf = _hf_vit(ViTConfig(image_size=8, patch_size=4, d_model=8, n_layers=1, n_heads=2))
    hf.config.qkv_bias = False
    with pytest.raises(ValueError, match="need hidden_act='gelu' and qkv_bias=True"):
        from_hf_vit(hf)
