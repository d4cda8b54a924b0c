"""Chapter 13's mini scaling study (data/results/gpt-scaling.json): made by the recipe's command over three seeds, its
fits recomputed from its own points, and a cheap run recomputed."""

import math

import pytest
import torch

from vitlib.recipes import gpt_scaling as recipe
from vitlib.recipes import results_json
from vitlib.scaling import fit_power_law


@pytest.fixture(scope="module")
def results():
    return results_json.load(recipe.NAME)


def test_it_was_made_by_the_recipe(results):
    settings = results["settings"]
    assert results["command"].startswith("python -m vitlib.recipes.gpt_scaling")
    assert settings["sizes"] == [list(s) for s in recipe.SIZES] and settings["data"] == list(recipe.DATA)
    assert settings["steps"] == recipe.STEPS and len(settings["seeds"]) >= 3
    runs = results["results"]["runs"]
    assert len(runs) == (len(recipe.SIZES) + len(recipe.DATA)) * len(settings["seeds"])


def test_the_fits_are_the_fits_of_the_stored_points(results):
    stored = results["results"]["fits"]
    again = recipe.fits(results["results"]["runs"])
    assert set(stored) == {"size", "data"}
    for kind in stored:
        assert stored[kind]["x"] == again[kind]["x"]
        for key in ("E", "A", "alpha", "rmse"):
            assert math.isclose(stored[kind][key], again[kind][key], rel_tol=1e-9, abs_tol=1e-12), (kind, key)
        assert again[kind]["alpha"] > 0                                  # the loss falls with size and with data
        fit = fit_power_law(again[kind]["x"], again[kind]["loss"])
        assert fit["rmse"] == again[kind]["rmse"]


def test_every_run_reports_its_size_and_data(results):
    for r in results["results"]["runs"]:
        assert r["val_loss"] == min(r["curve"]) and r["N"] > 0 and r["D"] > 0
    sizes = sorted({r["N"] for r in results["results"]["runs"] if r["kind"] == "size"})
    assert len(sizes) == len(recipe.SIZES)


def test_the_check_run_is_recomputed(results):
    torch.set_num_threads(1)
    stored, again = results["results"]["check"], recipe.run_one(**recipe.CHECK)
    assert (again["N"], again["D"]) == (stored["N"], stored["D"])
    assert again["curve"] == pytest.approx(stored["curve"], abs=1e-6)
