"""vitlib.hf.to_hf_clip: transformers' CLIPModel with our weights gives our image and text features and logits."""

import pytest
import torch

from vitlib import zoo
from vitlib.clip import CLIP, CLIPConfig
from vitlib.data import ShapesWorld, to_tensor
from vitlib.hf import to_hf_clip
from tiny_models import spread

pytest.importorskip("transformers")
WORLD = ShapesWorld(image_size=24)
TOK = WORLD.tokenizer


def random_clip(seed: int, **overrides) -> CLIP:
    torch.manual_seed(seed)
    cfg = dict(embed_dim=24, vision_width=32, vision_heads=4, text_width=32, text_heads=4, max_len=40) | overrides
    model = CLIP(CLIPConfig(**cfg)).eval()
    spread(model)
    return model


def features(output) -> torch.Tensor:
    """transformers 5 may return a ModelOutput from get_*_features; the features are its pooler_output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def inputs(image_size: int, n: int = 6, seed: int = 0):
    world = ShapesWorld(image_size=image_size, seed=seed)
    scenes = world.scenes(n)
    batch = TOK([world.caption(s) for s in scenes])  # padded: the texts have different lengths
    return to_tensor(world.render_batch(scenes)), batch["input_ids"], batch["attention_mask"]


def assert_same(model, hf, images, ids, mask, atol=1e-5):
    with torch.no_grad():
        torch.testing.assert_close(features(hf.get_image_features(pixel_values=images)), model.encode_image(images),
                                   atol=atol, rtol=0)
        torch.testing.assert_close(features(hf.get_text_features(input_ids=ids, attention_mask=mask)),
                                   model.encode_text(ids, mask), atol=atol, rtol=0)
        out = hf(input_ids=ids, attention_mask=mask, pixel_values=images, return_loss=True)
        torch.testing.assert_close(out.logits_per_image, model(images, ids, mask), atol=atol * 100, rtol=0)
        # the loss is near 50, where one float32 step is 4e-6: how sums round differs between CPUs
        torch.testing.assert_close(out.loss, model.loss(images, ids, mask), atol=atol, rtol=1e-6)


CONFIGS = [dict(), dict(vision_layers=2, text_layers=1, vision_heads=2), dict(image_size=32, patch_size=8),
           dict(image_size=32, patch_size=4, text_layers=3, embed_dim=8), dict(activation="quick_gelu")]


@pytest.mark.parametrize("overrides", CONFIGS, ids=["default", "layers-heads", "32px", "patch4", "quick_gelu"])
def test_features_match_clipmodel(overrides):
    model = random_clip(0, **overrides)
    hf = to_hf_clip(model)
    activation = model.config.activation
    assert hf.config.text_config.hidden_act == hf.config.vision_config.hidden_act == activation   # gelu, quick_gelu
    assert hf.config.text_config.eos_token_id == TOK.eos_id != 2, "eos id 2 would make CLIP pool at the largest id"
    assert_same(model, hf, *inputs(model.config.image_size))


def test_the_scale_is_exported_as_it_is():
    """Neither model clamps logit_scale when it computes logits (training clamps it between steps): exp(6) = 403."""
    model = random_clip(1)
    with torch.no_grad():
        model.logit_scale.fill_(6.0)
    hf = to_hf_clip(model)
    assert hf.logit_scale.item() == 6.0
    assert_same(model, hf, *inputs(24, seed=1))


def test_trained_checkpoint_matches_clipmodel():
    model = zoo.load("clip-shapes")
    hf = to_hf_clip(model)
    assert_same(model, hf, *inputs(model.config.image_size, n=16, seed=2))


def test_rejects_other_models():
    with pytest.raises(TypeError, match="to_hf_clip expects a vitlib.clip.CLIP"):
        to_hf_clip(torch.nn.Linear(2, 2))


def test_eos_id_2_is_refused_since_transformers_would_pool_elsewhere():
    """transformers keeps a legacy rule: a CLIP text config with eos_token_id == 2 pools at each text's largest token
    id. An export with eos_id 2 gave other text features than ours without a word; now it is refused."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    hf = CLIPTextModel(CLIPTextConfig(vocab_size=12, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=8, eos_token_id=2)).eval()
    with torch.no_grad():
        out = hf(input_ids=torch.tensor([[1, 7, 2, 9, 0]]))   # <eos> = 2 at position 2, the largest id at 3
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[:, 3], atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"eos_id=2 cannot be exported: .* legacy rule"):
        to_hf_clip(random_clip(0, eos_id=2))


def test_a_siglip_bias_is_refused_since_clipmodel_has_none():
    with pytest.raises(ValueError, match=r"logit_bias \(SigLIP's\) cannot be exported: .* CLIPModel has no bias"):
        to_hf_clip(random_clip(0, logit_bias=-10.0))
