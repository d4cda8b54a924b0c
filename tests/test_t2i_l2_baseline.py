"""Seed 000's L2 baseline (data/zoo/t2i-l2-baseline.*): the decoder loads, its stated figures are recomputed, and
what L2 regression to the mean gives holds: zero diversity, an average of the allowed renders, blur (chapter 09).
Also vitlib.text_decoder: shapes, determinism and a bad-input table."""

import pytest
import torch

from vitlib import zoo
from vitlib.data import to_tensor
from vitlib.degrade import blur
from vitlib.recipes import t2i_l2_baseline as recipe
from vitlib.text_decoder import TextDecoder, TextDecoderConfig


@pytest.fixture(scope="module")
def decoder():
    return zoo.load(recipe.NAME)


@pytest.fixture(scope="module")
def clip():
    return zoo.load(recipe.CLIP_NAME)


@pytest.fixture(scope="module")
def recomputed(decoder, clip):
    return recipe.evaluate(decoder, clip)


def test_loads_small_and_24_pixels(decoder):
    assert isinstance(decoder, TextDecoder) and not decoder.training
    assert decoder.config.image_size == 24 == recipe.world().image_size
    stated = zoo.load_config(recipe.NAME)["metrics"]
    assert stated["parameters"] < 250_000 and stated["train_seconds"] < 600, "trains in <= 10 minutes on one core"


def test_stated_figures_match_recomputed_ones(recomputed):
    stated = zoo.load_config(recipe.NAME)["metrics"]
    for key, value in recomputed.items():
        if isinstance(value, dict):
            for attribute, figures in value.items():
                assert figures == stated[key][attribute], f"{key}/{attribute}"
        else:
            assert value == pytest.approx(stated[key], abs=1e-5), key


def test_one_prompt_one_image(recomputed):
    """The decoder is deterministic: repeating a prompt gives exactly the same pixels; the renders the prompt
    allows (2 sizes x 9 cells) do differ."""
    assert recomputed["pixel_variance_repeated_prompt"] == 0.0
    assert recomputed["pixel_variance_real_completions"] > 0.005


def test_regression_to_the_mean(recomputed):
    """For "a red circle." the L2 answer sits near the mean of the 18 allowed renders and far from every one."""
    r = recomputed
    assert r["mse_plain_to_mean_of_completions"] < 0.5 * r["mse_plain_to_nearest_completion"]
    assert r["judged_plain_prompts"]["color+shape"]["accuracy"] < r["judged_full_prompts"]["color+shape"]["accuracy"]


def test_blurrier_than_renders_yet_draws_full_prompts(recomputed):
    r = recomputed
    assert r["edge_sharpness_full_prompts"] < 0.7 * r["edge_sharpness_real_renders"]
    assert r["edge_sharpness_plain_prompts"] < 0.5 * r["edge_sharpness_real_renders"]
    for attribute in ("color", "size", "position"):
        assert r["judged_full_prompts"][attribute]["accuracy"] >= 0.75, attribute


def test_edge_sharpness_falls_with_blur():
    w = recipe.world()
    real = to_tensor(w.render_batch(w.scenes(8, "test")))
    assert recipe.edge_sharpness(blur(real, 1.0)) < 0.6 * recipe.edge_sharpness(real)
    assert recipe.edge_sharpness(torch.full((2, 3, 24, 24), 0.5)) == 0.0


def test_training_runs_and_lowers_the_loss(clip):
    torch.manual_seed(0)
    model, history = recipe.train(steps=6, device="cpu", progress=False, clip=clip, n_train=64, batch_size=16)
    assert isinstance(model, TextDecoder) and len(history["loss"]) == 6
    assert history["loss"][-1] < history["loss"][0]


def test_decoder_shapes_and_determinism():
    torch.manual_seed(0)
    d = TextDecoder(TextDecoderConfig(text_dim=8, channels=(16, 8), base_size=4)).eval()
    t = torch.randn(5, 8)
    x = d(t)
    assert x.shape == (5, 3, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, d(t))


def test_generate_is_the_decoder_of_the_normalised_clip_embedding(decoder, clip):
    prompts = ["a small red circle at the top left.", "a blue square."]
    t = recipe.embed(clip, prompts)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2))
    assert torch.equal(recipe.generate(decoder, clip, prompts), decoder(t))


BAD = [
    (lambda: TextDecoderConfig(text_dim=0), ValueError, "text_dim"),
    (lambda: TextDecoderConfig(channels=()), ValueError, "channels"),
    (lambda: TextDecoderConfig(channels=(8, -1)), ValueError, "channels"),
    (lambda: TextDecoderConfig(base_size=2.5), ValueError, "base_size"),
    (lambda: TextDecoder({"text_dim": 8}), TypeError, "TextDecoderConfig"),
    (lambda: TextDecoder(TextDecoderConfig(text_dim=8))(torch.zeros(2, 9)), ValueError, r"\(B, 8\)"),
    (lambda: TextDecoder(TextDecoderConfig(text_dim=8))(torch.zeros(8)), ValueError, r"\(B, 8\)"),
    (lambda: TextDecoder(TextDecoderConfig(text_dim=8))(torch.zeros(2, 8, dtype=torch.long)), TypeError, "float"),
    (lambda: recipe.embed(None, "a red circle."), ValueError, "list of str"),
    (lambda: recipe.embed(None, []), ValueError, "list of str"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_inputs_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
