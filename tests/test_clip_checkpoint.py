"""The shipped course CLIP (data/zoo/clip-shapes): it loads, classifies fresh scenes zero-shot, and its stated
metrics are what its weights give."""

import pytest
import torch

from vitlib import zoo
from vitlib.clip import CLIP, CLIPConfig, zero_shot_classify
from vitlib.data import ShapesWorld, one_object_scenes, to_tensor
from vitlib.recipes import clip_shapes

NAME = clip_shapes.NAME


@pytest.fixture(scope="module")
def model():
    return zoo.load(NAME)


def test_loads_in_eval_mode(model):
    assert isinstance(model, CLIP) and not model.training
    assert model.config == CLIPConfig(**zoo.load_config(NAME)["config"])
    assert model.config.eos_id == ShapesWorld().tokenizer.eos_id


def test_zero_shot_on_freshly_generated_scenes(model):
    w = ShapesWorld(image_size=clip_shapes.IMAGE_SIZE, max_objects=1, seed=123)  # another seed than training's
    pairs = clip_shapes.class_pairs(w)
    for split, floor in (("test", 0.95), ("heldout", 0.7)):
        scenes = w.scenes(300, split)
        labels = torch.tensor([pairs.index((s.objects[0].color, s.objects[0].shape)) for s in scenes])
        predicted = zero_shot_classify(model, w.tokenizer, to_tensor(w.render_batch(scenes)),
                                       clip_shapes.class_texts(pairs))
        accuracy = (predicted == labels).float().mean().item()
        assert accuracy >= floor, f"zero-shot accuracy on fresh {split} scenes {accuracy:.3f} < {floor}"


def test_stated_metrics_match_recomputed(model):
    stated = zoo.verify(NAME)
    recomputed = clip_shapes.evaluate(model)
    for name, value in recomputed.items():
        assert stated[name] == pytest.approx(value, abs=1e-6), name
    assert stated["zero_shot_test"] >= 0.95
    assert stated["parameters"] == sum(p.numel() for p in model.parameters())



def test_recipe_data():
    w = clip_shapes.world()
    pairs = clip_shapes.class_pairs(w)
    assert len(pairs) == 30 and w.holdout <= set(pairs)
    assert [w.parse_caption(t) for t in clip_shapes.class_texts(pairs)] == [{p} for p in pairs]  # in the grammar
    test, train = one_object_scenes(w, "test"), one_object_scenes(w, "train")
    heldout = one_object_scenes(w, "heldout")
    assert not {s.key() for s in test} & {s.key() for s in train}
    assert len(heldout) == 4 * 2 * 9 and all(s.pairs() <= w.holdout for s in heldout)
    single, multi = clip_shapes.training_data(n_single=200, n_multi=200)
    for pool in (single, multi):
        assert not set().union(*(w.parse_caption(c) for c in pool["captions"])) & w.holdout
        assert not set().union(*(s.pairs() for s in pool["scenes"])) & w.holdout
    assert {len(s) for s in single["scenes"]} == {1} and {len(s) for s in multi["scenes"]} == {1, 2, 3}
    images, ids, mask = next(clip_shapes.batches(single, multi, 1, 8, 0.25, torch.Generator().manual_seed(0)))
    assert images.shape == (8, 3, 24, 24) and images.dtype == torch.float32 and 0 <= images.min() <= images.max() <= 1
    assert ids.shape == mask.shape and mask[:, -1].any() and (ids == ShapesWorld().tokenizer.eos_id).any(1).all()
