"""NegCLIP on ShapesWorld (vitlib.recipes.clip_negclip): its swap pool, its batches, the shipped checkpoint's stated
metrics, and the stored three-seed comparison (data/results/clip-negclip.json) with its check recomputed."""

import json
import random
import re

import pytest
import torch

from vitlib import binding, zoo
from vitlib.clip import CLIP, score_pairs
from vitlib.data import Scene
from vitlib.recipes import clip_negclip, clip_shapes


@pytest.fixture(scope="module")
def pools():
    single, multi = clip_shapes.training_data(n_single=64, n_multi=64)
    return single, multi, clip_negclip.swap_data(multi["scenes"], seed=0)


def test_swap_pool_holds_train_edits_with_the_same_words(pools):
    _, multi, swaps = pools
    w, tok = clip_negclip.world(), clip_negclip.world().tokenizer
    assert len(swaps["images"]) == len(swaps["neg_images"]) > 0
    for ids, neg_ids in zip(swaps["input_ids"][:20].tolist(), swaps["neg_input_ids"][:20].tolist()):
        true, false = tok.decode(ids, skip_special_tokens=True), tok.decode(neg_ids, skip_special_tokens=True)
        words = [sorted(set(re.findall(r"[a-z]+", c)) - {"a", "an"}) for c in (true, false)]  # articles may change
        assert true != false and words[0] == words[1], (true, false)
        assert not w.parse_caption(false) & w.holdout
    assert not (swaps["images"] == swaps["neg_images"]).flatten(1).all(1).any(), "every edit changes the image"


def test_batches_append_swaps_and_their_negatives(pools):
    single, multi, swaps = pools
    images, ids, mask, neg_images, neg_ids, neg_mask = next(clip_negclip.batches(
        single, multi, swaps, 1, 8, 4, torch.Generator().manual_seed(0)))
    assert images.shape == (12, 3, 24, 24) and ids.shape == mask.shape and ids.shape[0] == 12
    assert neg_images.shape == (4, 3, 24, 24) and neg_ids.shape == neg_mask.shape == (4, ids.shape[1])
    eos = clip_negclip.world().tokenizer.eos_id
    assert (ids == eos).any(1).all() and (neg_ids == eos).any(1).all()
    assert 0 <= images.min() <= images.max() <= 1


def test_swap_data_needs_scenes_that_allow_a_swap():
    one = clip_negclip.world().scenes(1, "train")
    with pytest.raises(ValueError, match="no scene allowed a swap"):
        clip_negclip.swap_data([s for s in one if len(s) == 1] or [Scene(one[0].objects[:1])], seed=0)


def test_score_pairs_is_the_cosine_of_aligned_pairs():
    model = zoo.load(clip_shapes.NAME)
    w = clip_shapes.world()
    swaps = binding.swap_set(w, 4, "test", seed=0)
    images = torch.stack([torch.zeros(3, 24, 24), torch.ones(3, 24, 24)])
    texts = swaps.true["color"][:2]
    s = score_pairs(model, w.tokenizer, images, texts)
    assert s.shape == (2,) and (s.abs() <= 1 + 1e-6).all()
    with pytest.raises(ValueError, match=r"one text per image \(2\)"):
        score_pairs(model, w.tokenizer, images, texts[:1])


def test_checkpoint_states_what_its_weights_give():
    model = zoo.load(clip_negclip.NAME)
    assert isinstance(model, CLIP) and not model.training
    stated = zoo.verify(clip_negclip.NAME)
    recomputed = clip_negclip.evaluate(model)
    for name, value in recomputed.items():
        assert stated[name] == pytest.approx(value, abs=1e-6), name


def test_the_comparison_has_three_seeds_and_its_check_is_recomputed():
    results = json.loads(clip_negclip.RESULTS.read_text())
    assert results["command"] == "python -m vitlib.recipes.clip_negclip --compare --save"
    assert set(results["rows"]) == {"CLIP", "NegCLIP"} and len(results["seeds"]) >= 3
    assert all(len(runs) == len(results["seeds"]) for runs in results["rows"].values())
    check = results["check"]
    model, _ = clip_negclip.train(steps=check["steps"], seed=check["seed"], device="cpu", eval_every=None,
                                  progress=False, **results["options"])
    for name, value in clip_negclip.evaluate(model).items():
        assert check["metrics"][name] == pytest.approx(value, abs=1e-6), name


def test_recipe_follows_the_protocol():
    assert clip_negclip.NAME in zoo.available()
    for fn in ("world", "config", "train", "evaluate", "main"):
        assert callable(getattr(clip_negclip, fn))
    rng = random.Random(0)
    scene = next(s for s in clip_negclip.world().scenes(50, "train") if len(s) == 2)
    edited = binding.swap(scene, "color", clip_negclip.world(), rng)
    assert edited is None or edited.pairs() != scene.pairs()
