"""Chapter 12's shipped executor (data/zoo/executor-shapes, written by the executor_shapes recipe): trained as its
recipe says, its stated success rates recomputed on the same episodes, and its evaluation never replaying a
training episode."""

import pytest
import torch

from vitlib import agent as A
from vitlib import zoo
from vitlib.recipes import executor_shapes as recipe


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    return zoo.load(recipe.NAME).eval(), zoo.load_config(recipe.NAME)["metrics"]


def test_it_was_trained_as_the_recipe_says(shipped):
    model, stated = shipped
    assert model.config == recipe.config() and stated["steps"] == recipe.STEPS


def test_it_meets_the_chapters_target_on_held_out_compositions(shipped):
    _, stated = shipped
    assert stated["heldout"]["n"] == recipe.N_EVAL >= 500
    assert stated["heldout"]["success"] >= 0.9, stated["heldout"]


def test_evaluation_episodes_are_not_training_episodes():
    train = A.ShapesGridEnv(split="train")
    seen = set()
    for seed in range(0, recipe.N_EXPERT, 97):             # a sample of the expert episodes
        obs, info = train.reset(seed=seed)
        seen.add((obs["instruction"], obs["image"].tobytes()))
    for split, first in recipe.EVAL_SEEDS.items():
        env = A.ShapesGridEnv(split=split)
        assert first >= recipe.N_EXPERT
        for seed in range(first, first + 50):
            obs, _ = env.reset(seed=seed)
            assert (obs["instruction"], obs["image"].tobytes()) not in seen


@pytest.mark.slow
def test_stated_success_is_recomputed(shipped):
    """1,000 greedy episodes (about 20 s on one core)."""
    model, stated = shipped
    assert recipe.evaluate(model) == {k: stated[k] for k in recipe.EVAL_SEEDS}
