"""Chapter 07's shipped results: the fusion comparison (data/results/fusion-vqa.json), of which one cheap run is
recomputed, and the zoo's vqa-shapes, whose stated accuracies are recomputed on the same questions."""

import pytest
import torch

from vitlib import zoo
from vitlib.recipes import fusion_vqa, results_json, vqa_shapes
from vitlib.vqa import OPERATORS, QUESTION_TYPES

pytestmark = pytest.mark.slow   # the frozen encoders run over 4500 scenes first (about 10 s)


@pytest.fixture(scope="module")
def results():
    return results_json.load(fusion_vqa.NAME)


def test_the_comparison_covers_every_operator_and_seed_with_the_recipe_settings(results):
    settings, runs = results["settings"], results["results"]["runs"]
    assert settings["steps"] == vqa_shapes.STEPS and settings["batch_size"] == vqa_shapes.BATCH_SIZE
    assert len(settings["seeds"]) >= 3
    assert sorted((r["operator"], r["seed"]) for r in runs) == sorted(
        (op, s) for op in OPERATORS for s in settings["seeds"])
    for r in runs:
        assert set(r["test"]) == {*QUESTION_TYPES, "all"}
        assert r["test"]["all"]["n"] > 15000 and r["val"]["all"]["n"] > 8000


def test_a_cheap_run_of_the_comparison_is_reproduced(results):
    torch.set_num_threads(1)
    stored, again = results["results"]["check"], fusion_vqa.run_one(**fusion_vqa.CHECK)
    assert (again["operator"], again["seed"], again["steps"]) == (stored["operator"], stored["seed"], stored["steps"])
    for split in ("val", "test"):
        for kind in (*QUESTION_TYPES, "all"):
            assert abs(again[split][kind]["accuracy"] - stored[split][kind]["accuracy"]) < 0.01, (split, kind)


def test_the_shipped_operator_is_the_validation_winner_and_its_figures_hold(results):
    runs = results["results"]["runs"]
    assert fusion_vqa.ranking(runs)[0] == vqa_shapes.OPERATOR
    model = zoo.load(vqa_shapes.NAME)
    assert model.config.operator == vqa_shapes.OPERATOR and not model.training
    stated = zoo.load_config(vqa_shapes.NAME)["metrics"]
    seed0 = next(r for r in runs if r["operator"] == vqa_shapes.OPERATOR and r["seed"] == 0)
    recomputed = vqa_shapes.evaluate(model)
    for split in ("val", "test"):
        for kind in (*QUESTION_TYPES, "all"):
            assert abs(recomputed[split][kind]["accuracy"] - stated[split][kind]["accuracy"]) < 2e-3, (split, kind)
            assert abs(stated[split][kind]["accuracy"] - seed0[split][kind]["accuracy"]) < 0.01, (split, kind)
    for kind in ("color", "shape", "exists"):
        assert recomputed["test"][kind]["accuracy"] >= 0.9, kind


def test_pooling_loses_where_things_are(results):
    """The chapter's claim: a mean-pooled image vector cannot say where an object is; patch-level operators can."""
    table = fusion_vqa.summary(results["results"]["runs"], "test")
    assert table["concat"]["position"][0] < 0.4
    assert table["cross_attention"]["position"][0] > 0.9
