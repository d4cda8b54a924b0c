"""Chapter 10's shipped captioners (data/zoo/captioner-shapes*, written by the captioner_shapes and
captioner_shapes_pooled recipes): their stated figures are recomputed on the same test scenes, and the chapter's
claims hold: both beat the nearest-neighbour baseline's BLEU, the 9-token captioner almost never names an absent
object, the pooled one does so measurably."""

import pytest
import torch

from vitlib import zoo
from vitlib.metrics import bleu, chair, parse_rate
from vitlib.recipes import captioner_shapes, captioner_shapes_pooled

pytestmark = pytest.mark.slow   # 1150 test scenes through the frozen CLIP, then greedy captions (~10 s each)

RECIPES = {"captioner-shapes": captioner_shapes, "captioner-shapes-pooled": captioner_shapes_pooled}


@pytest.fixture(scope="module", params=list(RECIPES))
def shipped(request):
    torch.set_num_threads(1)
    recipe = RECIPES[request.param]
    model = zoo.load(recipe.NAME).eval()
    assert model.config == recipe.config(), f"{recipe.NAME} was trained with another config than its recipe's"
    return recipe, model, zoo.load_config(recipe.NAME)["metrics"]


def test_stated_figures_are_recomputed(shipped):
    recipe, model, stated = shipped
    scenes, tokens = captioner_shapes.scene_tokens("test", captioner_shapes.N_TEST)
    texts = captioner_shapes.captions(model, tokens)
    chair_i, chair_s = chair(texts, scenes, captioner_shapes.world())
    assert abs(bleu(texts, captioner_shapes.references(scenes)) - stated["bleu"]) < 0.05
    assert abs(chair_i - stated["chair_i"]) < 5e-4 and abs(chair_s - stated["chair_s"]) < 1e-3
    assert parse_rate(texts, captioner_shapes.world().parse_caption) == stated["parse_rate"]
    t_scenes, t_tokens = captioner_shapes.trigger_scenes(captioner_shapes.N_TRIGGER)
    partner = captioner_shapes.bias_pair()[1]
    rate = captioner_shapes.mention_rate(captioner_shapes.captions(model, t_tokens), t_scenes, partner)
    assert rate == stated["partner_given_trigger_only"]
    assert stated["steps"] == captioner_shapes.STEPS


def test_the_chapters_claims_hold(shipped):
    recipe, _, stated = shipped
    assert stated["bleu"] > stated["bleu_nearest_neighbour"] + 10
    assert stated["cooccurrence_train"]["p_partner_given_trigger"] > 0.85
    if recipe is captioner_shapes:
        assert stated["chair_i"] < 0.01
    else:
        assert stated["chair_i"] > 0.05 and stated["bleu"] > 50
