"""Chapter 05's ablation (data/results/clip-ablation.json): every row over three seeds, the command that made it,
and its stored check recomputed: the first row trained for a few steps gives the stored metrics."""

import pytest

from vitlib.recipes import clip_ablation


@pytest.fixture(scope="module")
def results():
    return clip_ablation.load()


def test_every_row_has_every_seed(results):
    assert results["command"] == "python -m vitlib.recipes.clip_ablation"
    assert list(results["rows"]) == list(clip_ablation.ROWS) and len(results["seeds"]) >= 3
    for name, runs in results["rows"].items():
        assert len(runs) == len(results["seeds"]), name
        assert all(set(clip_ablation.COLUMNS) <= set(r) for r in runs), name


def test_summary_is_mean_and_sample_spread():
    assert clip_ablation.summary([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}], "a") == (2.0, 1.0)


def test_the_stored_check_is_recomputed(results):
    check = results["check"]
    recomputed = clip_ablation.run_row(clip_ablation.ROWS[check["row"]], check["seed"], check["steps"])
    for name, value in check["metrics"].items():
        assert recomputed[name] == pytest.approx(value, abs=1e-6), name
