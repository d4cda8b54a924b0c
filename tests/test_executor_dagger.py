"""Chapter 12's imitation curves (data/results/executor-dagger.json): made by the recipe's command, both methods on
the same labelling budget over three seeds, and a cheap run recomputed."""

import pytest
import torch

from vitlib.recipes import executor_dagger as recipe
from vitlib.recipes import results_json


@pytest.fixture(scope="module")
def results():
    return results_json.load(recipe.NAME)


def test_it_was_made_by_the_recipe(results):
    settings = results["settings"]
    assert results["command"].startswith("python -m vitlib.recipes.executor_dagger")
    assert settings["start"] == [recipe.START_EPISODES, recipe.START_STEPS]
    assert settings["rounds"] == [recipe.ROUNDS, recipe.ROUND_STATES, recipe.ROUND_STEPS]
    assert settings["beta"] == recipe.BETA
    assert len(settings["seeds"]) >= 3 and settings["n_eval"] == recipe.N_EVAL


def test_both_methods_get_the_same_labelling_budget(results):
    runs = results["results"]["runs"]
    assert {(r["method"], r["seed"]) for r in runs} == {(m, s) for m in recipe.METHODS
                                                        for s in results["settings"]["seeds"]}
    for r in runs:
        states = [p["states"] for p in r["points"]]
        assert len(states) == recipe.ROUNDS + 1
        assert [b - a for a, b in zip(states, states[1:])] == [recipe.ROUND_STATES] * recipe.ROUNDS
        assert all(0 <= p["heldout"] <= 1 for p in r["points"])
    starts = {(r["seed"], r["points"][0]["states"], r["points"][0]["heldout"]) for r in runs}
    assert len(starts) == len(results["settings"]["seeds"])             # one thin start per seed, shared


def test_the_check_run_is_recomputed(results):
    torch.set_num_threads(1)
    stored = results["results"]["check"]
    again = recipe.run_one(**recipe.CHECK)
    assert again["points"] == stored["points"]
