"""The swap benchmark (vitlib.binding): swaps keep the words and change the binding, the control changes a word, the
bookkeeping scores an oracle 1 and a bag of words 0 (ties count as wrong), and bad input fails clearly."""

import random
from collections import Counter

import pytest
import torch

from vitlib.binding import SWAPS, SwapSet, paired_captions, swap, swap_accuracy, swap_set
from vitlib.data import Obj, Scene, ShapesWorld, WordTokenizer

WORLD = ShapesWorld(image_size=24, max_objects=3, seed=0)
SET = swap_set(WORLD, 40, "test", seed=1)
words = WordTokenizer.split   # "right." -> ["right", "."]


def test_swaps_keep_the_words_and_change_the_pairs_or_cells():
    for attribute in SWAPS:
        for scene, edited, true, false in zip(SET.scenes[attribute], SET.edited[attribute], SET.true[attribute],
                                              SET.false[attribute]):
            assert len(scene) == 2 and true != false
            assert WORLD.split_of(scene) == "test" and not edited.pairs() & WORLD.holdout
            same_words = Counter(words(true)) == Counter(words(false))
            assert same_words == (attribute != "absent"), (attribute, true, false)
            if attribute == "position":
                assert edited.pairs() == scene.pairs()
                assert {o.position for o in edited.objects} == {o.position for o in scene.objects}
            elif attribute in ("color", "shape"):
                assert edited.pairs() != scene.pairs() and [o.position for o in edited.objects] == \
                    [o.position for o in scene.objects]
            else:
                assert len({o.color for o in edited.objects} - {o.color for o in scene.objects}) == 1


def test_the_set_is_distinct_and_reproducible():
    for attribute in SWAPS:
        keys = [s.key() for s in SET.scenes[attribute]]
        assert len(set(keys)) == len(keys) == 40
    again = swap_set(WORLD, 40, "test", seed=1)
    assert again.true == SET.true and again.false == SET.false
    assert swap_set(WORLD, 40, "test", seed=2).true != SET.true


def test_swap_needs_two_objects_that_differ_in_colour_and_shape():
    rng = random.Random(0)
    red_circle = Obj("circle", "red", "small", (0, 0))
    assert swap(Scene((red_circle,)), "color", WORLD, rng) is None
    same_shape = Scene((red_circle, Obj("circle", "blue", "small", (1, 1))))
    assert swap(same_shape, "color", WORLD, rng) is None
    two = Scene((red_circle, Obj("square", "blue", "large", (2, 2))))
    assert swap(two, "color", WORLD, rng).objects == (Obj("circle", "blue", "small", (0, 0)),
                                                      Obj("square", "red", "large", (2, 2)))
    assert swap(two, "shape", WORLD, rng).objects == (Obj("square", "red", "small", (0, 0)),
                                                      Obj("circle", "blue", "large", (2, 2)))
    assert swap(two, "position", WORLD, rng).objects == (Obj("circle", "red", "small", (2, 2)),
                                                         Obj("square", "blue", "large", (0, 0)))


def test_paired_captions_describe_object_k_in_the_same_place():
    scene = Scene((Obj("circle", "red", "small", (0, 0)), Obj("square", "blue", "large", (1, 1))))
    edited = swap(scene, "color", WORLD, random.Random(0))
    true, false = paired_captions(scene, edited, random.Random(3), detail="plain")
    assert {true, false} <= {f"{t}{x}." for t in ("", "there is ", "the image shows ")
                             for x in ("a red circle and a blue square", "a blue square and a red circle",
                                       "a blue circle and a red square", "a red square and a blue circle")}
    assert (true.index("red") < true.index("blue")) == (false.index("blue") < false.index("red"))


def _oracle(swaps: SwapSet):
    """Scores 1 exactly when the text is the true caption of the image it is paired with."""
    truth = {}
    for attribute in SWAPS:
        for scenes, texts in ((swaps.scenes, swaps.true), (swaps.edited, swaps.false)):
            for scene, text in zip(scenes[attribute], texts[attribute]):
                truth.setdefault(WORLD.render(scene).tobytes(), set()).add(text)

    def score(images, texts):
        pixels = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()   # (N, 3, H, W) -> (N, H, W, 3)
        return torch.tensor([float(t in truth[p.tobytes()]) for p, t in zip(pixels, texts)])
    return score


def test_an_oracle_scores_one_and_a_bag_of_words_scores_zero_on_swaps():
    for attribute, r in swap_accuracy(_oracle(SET), SET).items():
        assert r["text"] == r["image"] == 1.0 and r["n"] == 40, attribute
        assert r["text_ci"][0] > 0.9
    bag = swap_accuracy(lambda images, texts: torch.tensor([float(sum(map(hash, sorted(words(t)))) % 97)
                                                            for t in texts]), SET)
    for attribute in ("color", "shape", "position"):
        assert bag[attribute]["text"] == 0.0, attribute       # identical words tie, and a tie is not a win
    assert bag["absent"]["text"] > 0


BAD = [
    (lambda: swap(SET.scenes["color"][0], "size", WORLD, random.Random(0)), ValueError, "unknown attribute 'size'"),
    (lambda: swap("a red circle", "color", WORLD, random.Random(0)), TypeError, "scene must be a Scene, got str"),
    (lambda: swap(SET.scenes["color"][0], "color", None, random.Random(0)), TypeError, "must be a ShapesWorld"),
    (lambda: swap(SET.scenes["color"][0], "color", WORLD, 0), TypeError, "rng must be a random.Random, got int"),
    (lambda: swap(Scene((Obj("blob", "red", "small", (0, 0)),)), "color", WORLD, random.Random(0)), ValueError,
     "blob"),
    (lambda: paired_captions(SET.scenes["color"][0], Scene((Obj("circle", "red", "small", (0, 0)),)),
                             random.Random(0)), ValueError, "as many objects, got 2 and 1"),
    (lambda: paired_captions(SET.scenes["color"][0], SET.edited["color"][0], random.Random(0), detail="tiny"),
     ValueError, "unknown detail 'tiny'"),
    (lambda: swap_set(WORLD, 0), ValueError, "n"),
    (lambda: swap_set(WORLD, 10**9), ValueError, "n"),
    (lambda: swap_set(WORLD, 5, split="dev"), ValueError, "split"),
    (lambda: swap_set(ShapesWorld(image_size=24, max_objects=1), 5), ValueError, "max_objects=1"),
    (lambda: swap_set("world", 5), TypeError, "must be a ShapesWorld, got str"),
    (lambda: swap_accuracy(lambda i, t: torch.zeros(len(t) + 1), SET), ValueError, r"shape \(40,\)"),
    (lambda: swap_accuracy(lambda i, t: torch.full((len(t),), float("nan")), SET), ValueError, "NaN"),
    (lambda: swap_accuracy(lambda i, t: [0.0] * len(t), SET), ValueError, "got list"),
    (lambda: swap_accuracy("clip", SET), TypeError, "score must be a function"),
    (lambda: swap_accuracy(lambda i, t: torch.zeros(len(t)), {"color": []}), TypeError, "SwapSet"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_input_fails_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()
