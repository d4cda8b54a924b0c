"""The text-to-image checkpoints of chapter 09 (data/zoo/t2i-shapes.*, t2i-shapes-latent.*): each loads, and the
figures its record states are recomputed from fresh samples (20 DDIM steps): test prompts at the scale chosen on
validation, held-out colour+shape pairs, and SDEdit at the strength chosen on validation. Also the recipes' own
machinery: a short training run and the edit requests."""

import pytest
import torch

from vitlib import zoo
from vitlib.classifier import ATTRIBUTES
from vitlib.recipes import t2i_shapes, t2i_shapes_latent
from vitlib.recipes.t2i_l2_baseline import judged
from vitlib.unet import UNet

RECIPES = {"pixels": t2i_shapes, "latents": t2i_shapes_latent}


@pytest.fixture(scope="module")
def encoder():
    return t2i_shapes.text_encoder()


@pytest.fixture(scope="module")
def judge():
    return zoo.load(t2i_shapes.JUDGE_NAME)


def _space(recipe):
    return recipe.space() if recipe is t2i_shapes_latent else t2i_shapes.PIXELS


@pytest.mark.parametrize("name", RECIPES)
def test_stated_test_and_heldout_figures_are_recomputed(name, encoder, judge):
    recipe = RECIPES[name]
    model, stated = zoo.load(recipe.NAME), zoo.load_config(recipe.NAME)["metrics"]
    assert isinstance(model, UNet) and stated["best_scale"] in t2i_shapes.SCALES
    val = stated["sweep"]["val"]
    chosen = max(t2i_shapes.SCALES, key=lambda s: (val[str(s)]["color+shape"]["accuracy"], val[str(s)]["clip_score"]))
    assert chosen == stated["best_scale"], "the scale is the one validation chose"
    for split, key in (("test", "test"), ("heldout", "heldout")):
        scenes, prompts = t2i_shapes.scene_prompts(split)
        images = t2i_shapes.draw(model, t2i_shapes.schedule(), prompts, stated["best_scale"], encoder_=encoder,
                                 space=_space(recipe))
        again = judged(judge, images, scenes, ATTRIBUTES)
        for attribute in (*ATTRIBUTES, "color+shape"):
            assert again[attribute] == stated[key][attribute], f"{name} {split} {attribute}"
    # floors: the chapter's target for the latent model (0.935 shipped), under the pixel model's 0.391
    assert stated["test"]["color+shape"]["accuracy"] >= (0.35 if name == "pixels" else 0.9)


def test_the_latent_models_editing_is_recomputed(encoder, judge):
    model, stated = zoo.load(t2i_shapes_latent.NAME), zoo.load_config(t2i_shapes_latent.NAME)["metrics"]
    edits = stated["editing"]
    best = max(t2i_shapes.EDIT_STRENGTHS, key=lambda a: edits["val"][str(a)]["success"]["accuracy"])
    assert best == edits["best_strength"]
    again = t2i_shapes.editing(model, t2i_shapes.schedule(), best, "test", stated["best_scale"], judge,
                               encoder_=encoder, space=t2i_shapes_latent.space())
    assert again == edits["test"] and again["success"]["accuracy"] >= 0.8


def test_guidance_trades_diversity_for_accuracy():
    """What the chapter says of the sweep: s = 0 ignores the prompt (colour near chance), a scale above 1 beats
    s = 0 by far, and the layouts a plain prompt leaves open vary more at s = 1 than at s = 8."""
    sweep = zoo.load_config(t2i_shapes_latent.NAME)["metrics"]["sweep"]["test"]
    assert sweep["0.0"]["color"]["accuracy"] < 0.5
    assert max(sweep[s]["color+shape"]["accuracy"] for s in ("2.0", "3.0", "5.0")) > \
        sweep["0.0"]["color+shape"]["accuracy"] + 0.5
    assert sweep["1.0"]["diversity"]["distinct_layouts"] >= sweep["8.0"]["diversity"]["distinct_layouts"]


def test_edit_requests_change_only_the_colour_and_avoid_heldout_pairs():
    world = t2i_shapes.world()
    for scene, target, instruction in t2i_shapes.edit_requests("test"):
        before, after = scene.objects[0], target.objects[0]
        assert after.color != before.color and (after.color, after.shape) not in world.holdout
        assert (after.shape, after.size, after.position) == (before.shape, before.size, before.position)
        assert instruction == f"make the {before.shape} {after.color}"


def test_training_runs_on_pixels_and_on_latents():
    x, cond = torch.rand(32, 3, 32, 32) * 2 - 1, torch.randn(32, 16, 64)
    model, history = t2i_shapes.train(steps=3, progress=False, batch_size=4, eval_every=None, data=(x, cond))
    assert isinstance(model, UNet) and len(history["loss"]) == 3 and not model.training
    z = torch.randn(32, 4, 8, 8)
    latent, history = t2i_shapes.train(steps=2, progress=False, batch_size=4, eval_every=None, data=(z, cond),
                                       model=UNet(t2i_shapes_latent.config()), space=t2i_shapes_latent.space())
    assert latent.config.in_channels == 4 and len(history["loss"]) == 2


def test_the_controlled_pixel_vs_latent_run_is_consistent():
    """data/results/t2i-pixel-vs-latent.json: both arms trained the same steps with v-prediction; the stated
    accuracies are their counts (Wilson intervals recomputed), the scale is the one validation chose, and a latent
    step is cheaper than a pixel step."""
    from vitlib.metrics import wilson_interval
    from vitlib.recipes import results_json, t2i_pixel_vs_latent

    record = results_json.load(t2i_pixel_vs_latent.RESULTS)
    assert record["settings"]["prediction_type"] == "v_prediction" and set(record["results"]) == {"pixels", "latents"}
    for arm in record["results"].values():
        by_scale = arm["val_color_shape_by_scale"]
        assert arm["best_scale"] == max(t2i_shapes.SCALES, key=lambda s: by_scale[str(s)])
        for figures in arm["test"].values():
            assert figures["n"] == 46 and figures["accuracy"] == round(figures["correct"] / 46, 4)
            assert figures["interval"] == [round(v, 4) for v in wilson_interval(figures["correct"], 46)]
    assert record["results"]["latents"]["seconds_per_step"] < record["results"]["pixels"]["seconds_per_step"] / 2
