"""The shipped warm-up of chapter 06 (data/zoo/vlp-shapes-warmup): it loads, its stated metrics are what its weights
give, and it has learnt the alignment (ITC) it is meant to start the hard/random comparison from."""

import pytest
import torch

from vitlib import zoo
from vitlib.recipes import vlp_shapes
from vitlib.vlp import VLPConfig, VLPModel


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)   # the metrics were computed with one thread
    return zoo.load(vlp_shapes.NAME)


def test_loads_in_eval_mode_with_the_recipe_config(model):
    assert isinstance(model, VLPModel) and not model.training
    assert model.config == VLPConfig(**zoo.load_config(vlp_shapes.NAME)["config"])
    assert model.config == vlp_shapes.config()


def test_stated_metrics_match_recomputed(model):
    stated = zoo.verify(vlp_shapes.NAME)
    recomputed = vlp_shapes.evaluate(model)
    assert stated["itc_r1"] == pytest.approx(recomputed["itc_r1"], abs=1e-6)
    assert stated["rerank_r1"] == pytest.approx(recomputed["rerank_r1"], abs=1e-6)
    for kind, accuracy in recomputed["minimal_pairs"].items():
        for attribute, value in accuracy.items():
            assert stated["minimal_pairs"][kind][attribute] == pytest.approx(value, abs=1e-6), (kind, attribute)
    assert stated["steps"] == vlp_shapes.STEPS


def test_the_warm_up_has_learnt_to_align(model):
    stated = zoo.verify(vlp_shapes.NAME)
    assert stated["itc_r1"] > 0.5, "text -> image R@1 among 1000 test scenes (chance 0.001)"
    assert stated["minimal_pairs"]["itc"]["color"] > 0.9
