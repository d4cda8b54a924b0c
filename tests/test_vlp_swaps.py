"""The shipped results of chapter 06's runs over seeds (data/results/vlp-swaps*.json): complete, with the command
that made them, and reproducible: the first steps of the first seed's runs are recomputed and compared with what is
stored."""

import pytest
import torch

from vitlib.metrics import wilson_interval
from vitlib.recipes import vlp_swaps


SHIPPED = {"300 steps": (vlp_swaps.RESULTS, vlp_swaps.STEPS, tuple(vlp_swaps.VARIANTS)),
           "1500 steps": (vlp_swaps.RESULTS_LONG, 1500, ("hard", "hard+swaps"))}


@pytest.mark.parametrize("which", SHIPPED)
def test_every_variant_ran_on_at_least_three_seeds(which):
    path, steps, variants = SHIPPED[which]
    shipped = vlp_swaps.load(path)
    assert shipped["command"].startswith("python -m vitlib.recipes.vlp_swaps")
    assert len(shipped["seeds"]) >= 3 and shipped["steps"] == steps
    assert tuple(shipped["runs"]) == variants
    for variant in variants:
        runs = shipped["runs"][variant]
        assert sorted(runs) == sorted(map(str, shipped["seeds"])), variant
        for run in runs.values():
            assert len(run["losses"]["loss"]) == steps
            assert run["swaps"]["itm"]["color"]["n"] == vlp_swaps.N_SWAPS
            assert run["minimal_pairs"]["itm"]["all"][1] == 600


@pytest.mark.parametrize("which, variant", [("300 steps", "hard"), ("300 steps", "hard+swaps+itc"),
                                            ("1500 steps", "hard+swaps")])
def test_the_first_steps_of_the_first_seed_are_reproduced(which, variant):
    torch.set_num_threads(1)   # the results were computed with one thread
    shipped = vlp_swaps.load(SHIPPED[which][0])
    seed = shipped["seeds"][0]
    _, history = vlp_swaps.train(variant, shipped["steps"], seed, stop_after=3)
    stored = shipped["runs"][variant][str(seed)]["losses"]
    for name in ("itc", "itm", "mlm"):
        assert history[name] == pytest.approx(stored[name][:3], abs=2e-4), (which, variant, name)


def test_summary_and_pooled_intervals():
    s = vlp_swaps.summary([0.5, 0.7, 0.6])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1) and s["n_seeds"] == 3
    runs = [{"minimal_pairs": {"itm": {"all": [90, 100]}}}, {"minimal_pairs": {"itm": {"all": [70, 100]}}}]
    acc, ci = vlp_swaps.pooled(runs, "minimal_pairs", "itm", "all")
    assert acc == 0.8 and ci == wilson_interval(160, 200)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant 'easy'"):
        vlp_swaps.train("easy")
