"""vitlib.clip: the dual encoder's pooling, scale (clamped between steps), SigLIP bias, losses, zero-shot
classification, search and its input checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitlib import zoo
from vitlib.clip import CLIP, CLIPConfig, encode_texts, search_images, zero_shot_classify
from vitlib.constants import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX
from vitlib.contrastive import clip_loss, siglip_loss, similarity
from vitlib.data import ShapesWorld, to_tensor
from tiny_models import spread

TOK = ShapesWorld().tokenizer
TINY = dict(embed_dim=16, vision_width=32, vision_heads=2, text_width=32, text_heads=2, text_layers=2, max_len=24)


def tiny_clip(seed: int = 0, **overrides) -> CLIP:
    torch.manual_seed(seed)
    model = CLIP(CLIPConfig(**(TINY | overrides))).eval()
    spread(model)
    return model


def texts(*captions):
    return TOK(list(captions), add_bos=True, add_eos=True)


def test_config_defaults_and_checks():
    c = CLIPConfig()
    assert (c.image_size, c.patch_size, c.eos_id) == (24, 8, TOK.eos_id)
    assert c.vision_config().pre_norm and c.vision_config().n_patches == 9
    with pytest.raises(ValueError, match="text_width=30 is not divisible by text_heads=4"):
        CLIPConfig(text_width=30)
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        CLIPConfig(image_size=24, patch_size=5)
    with pytest.raises(ValueError, match="eos_id=80 is outside the vocabulary of 80"):
        CLIPConfig(eos_id=80)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        CLIPConfig(max_len=0)
    with pytest.raises(TypeError, match="CLIP expects a CLIPConfig"):
        CLIP(TINY)


def test_logit_scale_init_and_clamp_between_steps():
    model = CLIP(CLIPConfig(**TINY))
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07)) == pytest.approx(LOGIT_SCALE_INIT)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert LOGIT_SCALE_MAX == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    assert model.scale().item() == pytest.approx(math.exp(7.0), rel=1e-6), "used as it is, as in OpenCLIP"
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_MAX) and model.scale().item() == pytest.approx(100.0)
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == 0.0, "tau <= 1"
    assert model.logit_scale.requires_grad and model.logit_scale.grad is None, "an in-place clamp, not an op"


def test_the_gradient_reaches_logit_scale_above_ln_100():
    """A clamp inside forward, exp(min(theta, ln 100)), has zero gradient once theta > ln 100: the temperature could
    never learn its way back. Forward uses exp(theta) as it is; clamp_logit_scale_ brings theta back after a step."""
    model = tiny_clip(5)
    images = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    batch = texts("a red circle.", "a blue square.", "a green triangle.", "two objects: a red circle.")
    with torch.no_grad():
        model.logit_scale.fill_(LOGIT_SCALE_MAX + 0.5)
    model.loss(images, batch["input_ids"], batch["attention_mask"]).backward()
    assert model.logit_scale.grad.abs().item() > 1e-6
    clamped = model.logit_scale.clamp(max=LOGIT_SCALE_MAX)   # what forward did before: no gradient at all
    v, t = model.encode_image(images), model.encode_text(batch["input_ids"], batch["attention_mask"])
    assert torch.autograd.grad(clip_loss(v, t, clamped), model.logit_scale)[0].item() == 0.0
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_MAX)


def test_siglip_bias_is_a_parameter_of_the_model(tmp_path):
    assert CLIP(CLIPConfig(**TINY, logit_bias=-10.0)).logit_bias.item() == -10.0, "SigLIP's initial bias"
    model = tiny_clip(6, logit_bias=-10.0)
    assert "logit_bias" in model.state_dict()
    assert "logit_bias" not in tiny_clip(6).state_dict() and tiny_clip(6).logit_bias is None
    images = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    batch = texts("a red circle.", "a blue square.", "a green triangle.")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    v, t = model.encode_image(images), model.encode_text(ids, mask)
    torch.testing.assert_close(model(images, ids, mask), similarity(v, t) * model.scale() + model.logit_bias)
    torch.testing.assert_close(model.loss(images, ids, mask), siglip_loss(v, t, model.logit_scale, model.logit_bias))
    model.loss(images, ids, mask).backward()
    assert model.logit_bias.grad is not None and model.logit_bias.grad.item() != 0.0
    with torch.no_grad():
        model.logit_bias.fill_(-3.5)   # as after training
    zoo.save(model, "tiny-siglip", model.config, directory=tmp_path)
    loaded = zoo.load(tmp_path / "tiny-siglip")
    assert loaded.config.logit_bias == -10.0 and loaded.logit_bias.item() == -3.5, "saved with the weights"
    with pytest.raises(TypeError, match="logit_bias must be a real number, got str"):
        CLIPConfig(logit_bias="-10")
    with pytest.raises(ValueError, match="logit_bias must be finite, got nan"):
        CLIPConfig(logit_bias=math.nan)


def test_text_pools_at_first_eos_and_is_causal():
    model = tiny_clip()
    batch = texts("a red circle.", "there is a blue square at the top left.")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pooled, tokens = model.encode_text(ids, mask), model.text(ids, mask)   # (B, embed_dim), (B, T, text_width)
    first_eos = (ids == TOK.eos_id).int().argmax(dim=1)
    torch.testing.assert_close(pooled, model.text_projection(tokens[torch.arange(2), first_eos]))
    # whatever follows the first <eos> (padding, a second <eos>, other words) never changes the pooled state
    changed = ids.clone()
    changed[0, first_eos[0] + 1:] = TOK.token_to_id["red"]
    changed[0, -1] = TOK.eos_id
    torch.testing.assert_close(model.encode_text(changed), pooled, atol=1e-6, rtol=0)
    # the pooled state of a padded text equals that of the text alone, with or without the mask
    alone = texts("a red circle.")["input_ids"]
    torch.testing.assert_close(model.encode_text(alone)[0], pooled[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(model.encode_text(ids)[0], pooled[0], atol=1e-6, rtol=0)
    # a word before <eos> does change it
    other = texts("a red square.")["input_ids"]
    assert (model.encode_text(other)[0] - pooled[0]).abs().max() > 1e-3


def test_forward_and_loss_are_scaled_cosines():
    model = tiny_clip(1)
    w = ShapesWorld(image_size=24)
    scenes = w.scenes(5)
    images = to_tensor(w.render_batch(scenes))
    batch = TOK([w.caption(s) for s in scenes])
    v = model.encode_image(images)
    t = model.encode_text(batch["input_ids"], batch["attention_mask"])
    assert v.shape == t.shape == (5, TINY["embed_dim"])
    assert not torch.allclose(v.norm(dim=-1), torch.ones(5)), "encode_* return projected, not normalised, embeddings"
    logits = model(images, batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(logits, F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T * model.logit_scale.exp(),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(model.loss(images, batch["input_ids"], batch["attention_mask"]),
                               clip_loss(v, t, model.logit_scale))


def test_zero_shot_classify_and_prompt_ensembles():
    model = tiny_clip(2)
    images = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    classes = ["a red circle.", "a blue square.", "a green cross."]
    expected = similarity(model.encode_image(images), encode_texts(model, TOK, classes)).argmax(dim=1)
    predicted = zero_shot_classify(model, TOK, images, classes)
    assert predicted.dtype == torch.long and torch.equal(predicted, expected)
    # a class given as several prompts is the normalised mean of their unit embeddings
    ensembles = [["a red circle.", "there is a red circle."], ["a blue square."], ["a green cross.", "a cross."]]
    units = F.normalize(encode_texts(model, TOK, [t for e in ensembles for t in e]), dim=-1)
    means = torch.stack([units[0:2].mean(0), units[2], units[3:5].mean(0)])
    expected = similarity(model.encode_image(images), means).argmax(dim=1)
    assert torch.equal(zero_shot_classify(model, TOK, images, ensembles), expected)
    with pytest.raises(ValueError, match="class_texts must be a non-empty list"):
        zero_shot_classify(model, TOK, images, "a red circle.")
    with pytest.raises(ValueError, match="each class must be a text or a non-empty list"):
        zero_shot_classify(model, TOK, images, [["a red circle."], []])
    with pytest.raises(ValueError, match=r"images must be a float tensor \(B, 3, H, W\)"):
        zero_shot_classify(model, TOK, images[0], classes)


def test_search_images():
    model = tiny_clip(3)
    images = torch.rand(7, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    index, score = search_images(model, TOK, "a red circle.", images, k=3)
    s = similarity(encode_texts(model, TOK, ["a red circle."]), model.encode_image(images))[0]
    assert torch.equal(index, s.argsort(descending=True)[:3])
    torch.testing.assert_close(score, s[index])
    with pytest.raises(ValueError, match="k must be in 1..7"):
        search_images(model, TOK, "a red circle.", images, k=8)
    with pytest.raises(ValueError, match="unknown word|not in the vocabulary|vocabulary"):
        search_images(model, TOK, "a red elephant", images)


def test_bad_input():
    model = tiny_clip()
    good = texts("a red circle.")
    with pytest.raises(ValueError, match=r"must contain <eos> \(id 3\)"):
        model.encode_text(TOK(["a red circle."], add_eos=False)["input_ids"])
    with pytest.raises(ValueError, match="sequence length 25 exceeds max_len=24"):
        model.encode_text(torch.full((1, 25), TOK.eos_id))
    with pytest.raises(ValueError, match="input_ids must be a LongTensor"):
        model.encode_text(good["input_ids"].float())
    with pytest.raises(ValueError, match="input_ids must be a LongTensor"):
        model.encode_text(good["input_ids"][0])
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 80\)"):
        model.encode_text(torch.tensor([[1, 99, TOK.eos_id]]))
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        model.encode_text(good["input_ids"], good["attention_mask"][:, :-1])
    with pytest.raises(ValueError, match="images must be 24x24, got 32x32"):
        model.encode_image(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\)"):
        model.encode_image(torch.rand(2, 1, 24, 24))
    with pytest.raises(TypeError, match="float tensor"):
        model.encode_image(torch.zeros(2, 3, 24, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="non-empty list of texts"):
        encode_texts(model, TOK, [])


def test_zoo_round_trip(tmp_path):
    model = tiny_clip(4)
    zoo.save(model, "tiny-clip", model.config, {"note": 1.0}, directory=tmp_path)
    loaded = zoo.load(tmp_path / "tiny-clip")
    assert isinstance(loaded, CLIP) and not loaded.training and loaded.config == model.config
    images = torch.rand(2, 3, 24, 24)
    ids = texts("a red circle.", "two objects: a blue square and a red circle.")["input_ids"]
    torch.testing.assert_close(loaded(images, ids), model(images, ids), atol=0, rtol=0)


def test_config_and_text_tower_check_their_sizes():
    with pytest.raises(ValueError, match="vocab_size must be at most 1048576"):
        CLIPConfig(vocab_size=2**40)
    model = tiny_clip()
    ids = texts("a red circle.")["input_ids"]
    with pytest.raises(ValueError, match=r"attention_mask must be bool or 0/1 .* with other values"):
        model.encode_text(ids, torch.full(ids.shape, 2.0))   # 2 was read as True without a word
