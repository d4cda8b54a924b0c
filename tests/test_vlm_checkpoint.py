"""Chapter 11's shipped assistant (data/zoo/vlm-shapes, written by the vlm_shapes recipe): trained as its recipe
says, its stated accuracies and CHAIR recomputed on the same scenes."""

import pytest
import torch

from vitlib import zoo
from vitlib.metrics import chair
from vitlib.recipes import vlm_shapes as recipe


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    model = zoo.load(recipe.NAME).eval()
    return model, zoo.load_config(recipe.NAME)["metrics"]


def test_it_was_trained_as_the_recipe_says(shipped):
    model, stated = shipped
    assert model.config == recipe.config(), "vlm-shapes was trained with another config than its recipe's"
    assert stated["steps"] == recipe.STAGE1_STEPS + recipe.STEPS


@pytest.mark.slow
def test_stated_accuracies_are_recomputed(shipped):
    """Every question of the 500 test and 300 held-out scenes (about 15 s on one core)."""
    model, stated = shipped
    assert recipe.accuracy(model, "test", recipe.N_TEST) == stated["test"]
    assert recipe.accuracy(model, "heldout", recipe.N_HELDOUT) == stated["heldout"]


@pytest.mark.slow
def test_stated_chair_is_recomputed(shipped):
    model, stated = shipped
    scenes, images = recipe.scenes_and_images("test", recipe.N_TEST)
    for key, vcd in (("describe", False), ("describe_vcd", True)):
        texts = recipe.describe(model, images, vcd=vcd)
        chair_i, chair_s = chair(texts, scenes, recipe.world())
        assert (round(chair_i, 4), round(chair_s, 4)) == (stated[key]["chair_i"], stated[key]["chair_s"]), key
        assert texts[:3] == stated[key]["examples"]
