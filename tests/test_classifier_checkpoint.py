"""The shipped attribute classifier (data/zoo/shapes-classifier.*) loads, is as accurate as its record says, and
judges freshly drawn test scenes (chapter 04; later chapters use it to judge generated images). Also the recipe
that trains it: augmentation, loss and the training function."""

import json

import pytest
import torch
import torch.nn.functional as F

from vitlib import zoo
from vitlib.data import Obj, Scene, ShapesWorld, to_tensor
from vitlib.data import one_object_scenes
from vitlib.recipes import classifier_shapes
from vitlib.recipes.classifier_shapes import NAME, accuracy, augment, loss_fn, noisy, tensors, world
from vitlib.classifier import ATTRIBUTES, AttributeClassifier, scene_labels
from vitlib.vision import CNNConfig, CNNEncoder

FLOOR = 0.97


@pytest.fixture(scope="module")
def model():
    return zoo.load(NAME)


def test_loads_as_an_attribute_classifier(model):
    assert isinstance(model, AttributeClassifier) and not model.training
    record = zoo.load_config(NAME)
    assert record["class"] == "vitlib.classifier.AttributeClassifier"
    assert set(record["metrics"]["test_accuracy"]) == {*ATTRIBUTES, "all"}


def test_stated_metrics_match_recomputed_ones(model):
    stated = zoo.load_config(NAME)["metrics"]
    images, labels = tensors(one_object_scenes(world(), "test"))
    assert stated["n_test"] == len(images) == 57
    recomputed = accuracy(model, images, labels)
    for name, value in stated["test_accuracy"].items():
        assert recomputed[name] == pytest.approx(value, abs=1e-6), name
    recomputed = accuracy(model, noisy(images, stated["noise_sigma"]), labels)
    for name, value in stated["noisy_test_accuracy"].items():
        assert recomputed[name] == pytest.approx(value, abs=1e-6), f"{name} with noise"
    assert all(v >= 0.9 for v in stated["noisy_test_accuracy"].values()), "the judge tolerates some noise"


def test_accurate_on_freshly_drawn_test_scenes(model):
    world = ShapesWorld(image_size=32, max_objects=1, holdout=(), seed=2024)
    scenes = world.scenes(400, "test")
    pred = model.predict(world.render_batch(scenes))
    labels = scene_labels(scenes)
    for a in ATTRIBUTES:
        acc = (pred[a] == labels[a]).float().mean().item()
        assert acc >= FLOOR, f"{a}: accuracy {acc:.3f} < {FLOOR}"


def test_describe_names_the_object(model):
    world = ShapesWorld(image_size=32, max_objects=1, holdout=(), seed=5)
    scenes = world.scenes(40, "test")
    names = model.describe(to_tensor(world.render_batch(scenes)))
    truth = [(o.color, o.shape, o.size, ATTRIBUTES["position"][o.position[0] * 3 + o.position[1]])
             for o in (s.objects[0] for s in scenes)]
    assert sum(n == t for n, t in zip(names, truth)) >= 0.9 * len(scenes)
    assert all(isinstance(v, str) for n in names for v in n)


def test_predict_leaves_the_model_unchanged(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}   # BatchNorm's running statistics included
    images, _ = tensors(one_object_scenes(world(), "val"))
    model.train()
    model.predict(images)
    assert model.training
    model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "predict must not train"


def test_augment_changes_only_what_the_labels_allow():
    images, _ = tensors(one_object_scenes(world(), "val")[:16])
    torch.manual_seed(0)
    same, kept = augment(images)
    assert kept.all() and torch.equal(same, images), "no augmentation asked, none done"
    recoloured, kept = augment(images, recolour=1.0)
    assert not kept.all(), "recoloured images lose their colour label"
    torch.testing.assert_close(recoloured.sort(dim=1).values, images.sort(dim=1).values, atol=0, rtol=0)
    jittered, _ = augment(images, jitter=0.3)
    torch.testing.assert_close(jittered[..., 0, 0], images[..., 0, 0], atol=1e-6, rtol=0)   # background stays
    assert (jittered - images).abs().amax() > 0.05
    shifted, _ = augment(images, shift=1)
    mass = lambda x: (x - x[..., :1, :1]).abs().sum(dim=(1, 2, 3))                       # noqa: E731
    torch.testing.assert_close(mass(shifted), mass(images), atol=0, rtol=0.05)   # the object moves, (nearly) whole
    assert not torch.equal(shifted, images)


def test_loss_without_augmentation_is_the_sum_of_cross_entropies():
    images, labels = tensors(one_object_scenes(world(), "val")[:8])
    model = AttributeClassifier(CNNEncoder(CNNConfig(channels=(4, 8)))).eval()
    logits = model(images)
    expected = sum(F.cross_entropy(logits[a], labels[a]) for a in ATTRIBUTES)
    got = loss_fn(model, (images, *labels.values()))
    torch.testing.assert_close(got, expected)


def test_the_recipe_trains_and_evaluates():
    model, history = classifier_shapes.train("vit", steps=2, eval_every=1, progress=False, device="cpu")
    assert isinstance(model, AttributeClassifier) and not model.training
    assert len(history["loss"]) == 2 and len(history["val_accuracy"]) == 2
    metrics = classifier_shapes.evaluate(model)
    assert set(metrics["test_accuracy"]) == {*ATTRIBUTES, "all"} and metrics["n_test"] == 57
    with pytest.raises(ValueError, match="unknown kind 'rnn'"):
        classifier_shapes.train("rnn")


def test_recolouring_would_copy_held_out_scenes_into_training():
    train, val, test = (one_object_scenes(world(), s) for s in ("train", "val", "test"))
    twins = classifier_shapes.recoloured_twins(train, test)
    assert sum(map(bool, twins)) == 54 and len(test) == 57
    assert sum(map(bool, classifier_shapes.recoloured_twins(train, val))) == 50
    i = next(i for i, s in enumerate(val) if s.objects[0] == Obj("triangle", "red", "small", (1, 0)))
    assert ("green", (1, 0, 2)) in classifier_shapes.recoloured_twins(train, val)[i]   # (190, 40, 70) reads as red
    assert classifier_shapes.nearest_colour((190, 40, 70)) == "red"
    assert classifier_shapes.recoloured_twins(train, [Scene((Obj("circle", "red", "small", (0, 0)),))]) != []


def test_shipped_comparison_has_three_seeds_per_arm_and_its_check_row_recomputes():
    record = json.loads(classifier_shapes.RESULTS.read_text())
    assert record["command"] == "python -m vitlib.recipes.classifier_shapes --compare"
    arms = {(r["kind"], r["recolour"]) for r in record["runs"]}
    assert arms == {(k, r) for k in classifier_shapes.KINDS for r in classifier_shapes.RECOLOUR_ARMS}
    for arm in arms:
        assert sorted(r["seed"] for r in record["runs"] if (r["kind"], r["recolour"]) == arm) == [0, 1, 2]
    torch.set_num_threads(1)
    again = classifier_shapes.compare_recolouring(kinds=("cnn",), seeds=(0,), steps=20)
    assert len(again) == len(record["check"])
    for a, b in zip(again, record["check"]):
        assert {k: v for k, v in a.items() if k != "val_correct"} == {k: v for k, v in b.items() if k != "val_correct"}
        # CPUs with other vector units (AVX2, AVX-512) round sums differently: after 20 steps a borderline
        # scene or two of the 52 may flip; a broken run would be off by far more
        for attribute, right in b["val_correct"].items():
            assert abs(a["val_correct"][attribute] - right) <= 2, (a, b)


def test_an_experiment_can_change_the_encoder():
    assert classifier_shapes.config("cnn", {"padding_mode": "circular"}).build_encoder_config().padding_mode == \
        "circular"
    assert classifier_shapes.config("cnn").build_encoder_config().padding_mode == "zeros"
