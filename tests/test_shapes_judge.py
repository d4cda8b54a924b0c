"""Chapter 09's judge (data/zoo/shapes-judge.*): it loads, its stated accuracies on clean and degraded test renders
are recomputed, it is trustworthy where chapter 04's classifier is not, and it reads multi-object scenes cell by
cell. The results file data/results/shapes-judge.json (both classifiers at every level) is recomputed too."""

import pytest
import torch

from vitlib import zoo
from vitlib.classifier import AttributeClassifier
from vitlib.data import Obj, Scene, ShapesWorld, to_tensor
from vitlib.recipes import results_json, shapes_judge
from vitlib.recipes.classifier_shapes import NAME as CLASSIFIER_NAME

CHEAP_LEVELS = ("clean", "blur 1.0", "resample 24", "all", shapes_judge.RENDERED_24)


@pytest.fixture(scope="module")
def judge_model():
    return zoo.load(shapes_judge.NAME)


@pytest.fixture(scope="module")
def classifier():
    return zoo.load(CLASSIFIER_NAME)


def test_loads_as_the_chapter_04_classifier_kind(judge_model, classifier):
    assert isinstance(judge_model, AttributeClassifier) and not judge_model.training
    assert judge_model.config == classifier.config                       # the same CNN, retrained
    stated = zoo.load_config(shapes_judge.NAME)["metrics"]
    assert stated["parameters"] == 62118 and set(stated["levels"]) == set(shapes_judge.MEASURED)


@pytest.mark.parametrize("level", CHEAP_LEVELS)
def test_stated_accuracies_match_recomputed_ones(judge_model, level):
    stated = zoo.load_config(shapes_judge.NAME)["metrics"]["levels"][level]
    assert shapes_judge.measure(judge_model, levels=(level,))[level] == stated


@pytest.mark.parametrize("name", [CLASSIFIER_NAME, shapes_judge.NAME])
def test_results_file_matches_recomputed_figures(name, judge_model, classifier):
    results = results_json.load(shapes_judge.RESULTS)["results"]
    model = judge_model if name == shapes_judge.NAME else classifier
    recomputed = shapes_judge.measure(model, levels=CHEAP_LEVELS)
    for level in CHEAP_LEVELS:
        assert recomputed[level] == results[name][level], (name, level)
    assert shapes_judge.per_cell(model) == results["per_cell"][name]


SHAPE_READABLE = ("clean", "blur 0.5", "noise 0.05", "noise 0.1", "jitter 0.1", "jitter 0.2", "jitter 0.3",
                  shapes_judge.RENDERED_24)
LARGE_SHAPE_READABLE = ("blur 1.0", "noise 0.2", "resample 16", "resample 24")


def test_the_judge_is_trustworthy_where_the_classifier_is_not(judge_model, classifier):
    """Colour, size and position at every level; shape where the pixels still show it: on every level but strong
    blur, and on large objects under blur 1.0 and resampling too (a small object is 6 pixels across: blur takes
    its shape first). Chapter 04's classifier reads far fewer shapes under blur and resampling."""
    levels = zoo.load_config(shapes_judge.NAME)["metrics"]["levels"]
    for level, figures in levels.items():
        assert figures["interval"]["color"][0] >= 0.9 and figures["interval"]["position"][0] >= 0.9, level
        assert figures["accuracy"]["size"] >= 0.95, level
    for level in SHAPE_READABLE:
        assert levels[level]["accuracy"]["shape"] >= 0.9, level
    for level in LARGE_SHAPE_READABLE:
        large = levels[level]["shape_by_size"]["large"]
        assert large["correct"] >= 0.95 * large["n"], level
    baseline = shapes_judge.measure(classifier, levels=("blur 1.0", "resample 24", shapes_judge.RENDERED_24))
    for level, figures in baseline.items():
        assert figures["accuracy"]["shape"] < levels[level]["accuracy"]["shape"] - 0.15, level


def test_per_cell_judging_of_multi_object_scenes(judge_model):
    figures = shapes_judge.per_cell(judge_model, n=60, seed=3)
    assert figures["all"]["n"] > 60 and figures["all"]["correct"] >= 0.9 * figures["all"]["n"]


def test_isolate_cell_leaves_one_object():
    w = ShapesWorld(image_size=32, max_objects=3, holdout=())
    two = Scene((Obj("circle", "red", "large", (0, 0)), Obj("square", "blue", "large", (2, 2))))
    one = Scene((Obj("circle", "red", "large", (0, 0)),))
    images = to_tensor(w.render_batch([two, one]))
    isolated = shapes_judge.isolate_cell(images, (0, 0))
    assert torch.equal(isolated[0], images[1]) and torch.equal(isolated[1], images[1])


def test_judge_resizes_other_sizes(judge_model):
    scene = Scene((Obj("triangle", "green", "large", (1, 2)),))
    images = {s: to_tensor(ShapesWorld(image_size=s, max_objects=1, holdout=()).render_batch([scene]))
              for s in (24, 32, 48)}
    preds = [shapes_judge.judge(judge_model, x) for x in images.values()]
    assert all(p["color"].item() == preds[1]["color"].item() for p in preds)
    assert all(p["position"].item() == 5 for p in preds)


BAD = [
    (lambda m: shapes_judge.judge(m, torch.zeros(1, 3, 32, 24)), ValueError, "square"),
    (lambda m: shapes_judge.judge(m, torch.zeros(1, 1, 32, 32)), ValueError, r"\(B, 3, H, W\)"),
    (lambda m: shapes_judge.judge(m, torch.zeros(1, 3, 32, 32, dtype=torch.uint8)), TypeError, "float"),
    (lambda m: shapes_judge.isolate_cell(torch.zeros(1, 3, 32, 32), (3, 0)), ValueError, "cell"),
    (lambda m: shapes_judge.isolate_cell(torch.zeros(1, 3, 32, 32), [0, 0]), ValueError, "cell"),
    (lambda m: shapes_judge.measure(m, levels=("fog",)), ValueError, "allowed: clean"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_inputs_are_named(judge_model, call, error, message):
    with pytest.raises(error, match=message):
        call(judge_model)
