"""Chapter 12's policy-gradient curves (data/results/executor-reinforce.json): made by the recipe's command, both
ways of training from one thin start over three seeds, points where the recipe says, and a cheap run recomputed."""

import pytest
import torch

from vitlib.recipes import executor_reinforce as recipe
from vitlib.recipes import results_json


@pytest.fixture(scope="module")
def results():
    return results_json.load(recipe.NAME)


def test_it_was_made_by_the_recipe(results):
    settings = results["settings"]
    assert results["command"].startswith("python -m vitlib.recipes.executor_reinforce")
    assert settings["start"] == [recipe.START_EPISODES, recipe.START_STEPS]
    assert (settings["updates"], settings["batch"], settings["every"]) == (recipe.UPDATES, recipe.BATCH, recipe.EVERY)
    assert settings["lr"] == recipe.LR and len(settings["seeds"]) >= 3 and settings["n_eval"] == recipe.N_EVAL


def test_every_run_starts_from_the_same_policy_and_reports_each_evaluation(results):
    runs = results["results"]["runs"]
    assert {(r["train"], r["seed"]) for r in runs} == {(t, s) for t in recipe.LR for s in results["settings"]["seeds"]}
    for r in runs:
        assert [p["update"] for p in r["points"]] == list(range(0, recipe.UPDATES + 1, recipe.EVERY))
        assert len(r["returns"]) == recipe.UPDATES
        assert all(0 <= p[k] <= 1 for p in r["points"] for k in ("sampled_train", "sampled_heldout",
                                                                   "greedy_heldout"))
    assert len({tuple(r["points"][0].items()) for r in runs}) == 1          # one thin start for all


def test_the_check_run_is_recomputed(results):
    torch.set_num_threads(1)
    stored = results["results"]["check"]
    again = recipe.run_one(**recipe.CHECK)
    assert again["points"] == stored["points"] and again["returns"] == stored["returns"]
