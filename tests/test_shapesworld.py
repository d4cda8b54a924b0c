"""ShapesWorld: determinism, splits, held-out pairs, pixels, language that agrees with the scene."""

import random

import numpy as np
import pytest

from vitlib.data import Obj, Scene, ShapesWorld
from vitlib.data.language import NUMBERS, POSITIONS, RELATIONS
from vitlib.data.render import BACKGROUND, to_tensor

SEEDS = range(8)


@pytest.fixture(scope="module")
def world():
    return ShapesWorld(seed=0)


def test_same_seed_same_bytes_and_other_seed_differs():
    a, b, c = ShapesWorld(seed=3), ShapesWorld(seed=3), ShapesWorld(seed=4)
    assert a.scenes(200) == b.scenes(200)
    assert a.render_batch(a.scenes(200)).tobytes() == b.render_batch(b.scenes(200)).tobytes()
    assert [a.caption(s) for s in a.scenes(50)] == [b.caption(s) for s in b.scenes(50)]
    assert a.scenes(200) != c.scenes(200)


def test_scenes_are_prefix_stable(world):
    assert world.scenes(30, "val")[:10] == world.scenes(10, "val")


def test_splits_are_disjoint_and_hold_no_heldout_pairs():
    for seed in SEEDS[:3]:
        w = ShapesWorld(seed=seed)
        keys = {split: {s.key() for s in w.scenes(3000 if split == "train" else 600, split)}
                for split in ("train", "val", "test")}
        assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
        for split in ("train", "val", "test"):
            for s in w.scenes(1000, split):
                assert not s.pairs() & w.holdout, f"held-out pair in {split}: {s}"
        heldout = w.scenes(500, "heldout")
        assert all(s.pairs() & w.holdout for s in heldout)
        assert {p for s in heldout for p in s.pairs() & w.holdout} == set(w.holdout)


def test_scenes_respect_world_settings():
    for seed in SEEDS:
        w = ShapesWorld(seed=seed, max_objects=seed % 9 + 1)
        counts = []
        for s in w.scenes(300):
            w.check_scene(s)
            assert len({o.position for o in s.objects}) == len(s.objects)
            assert len(s.pairs()) == len(s.objects), "colour+shape pairs are unique within a scene"
            counts.append(len(s))
        assert min(counts) == 1 and max(counts) == w.max_objects


def test_pixel_at_each_object_centre_has_its_colour():
    for seed in SEEDS:
        for size in (32, 48, 64):  # at 16 px a small triangle is narrower than a pixel at its centre
            w = ShapesWorld(seed=seed, image_size=size)
            scenes = w.scenes(100)
            images = w.render_batch(scenes)
            for scene, image in zip(scenes, images):
                for o in scene.objects:
                    x, y = w.center(o)
                    assert tuple(image[int(y), int(x)]) == w.colors[o.color], (o, size)


def test_render_matches_batch_and_background_elsewhere(world):
    scenes = world.scenes(20)
    batch = world.render_batch(scenes)
    assert batch.dtype == np.uint8 and batch.shape == (20, 32, 32, 3)
    assert all(np.array_equal(world.render(s), im) for s, im in zip(scenes, batch))
    assert tuple(batch[0, 0, 0]) == BACKGROUND  # corners are empty at this object size
    x = to_tensor(batch)
    assert x.shape == (20, 3, 32, 32) and x.min() >= 0 and x.max() <= 1


def test_objects_are_anti_aliased(world):
    big = ShapesWorld(image_size=64, seed=0)
    image = big.render(Scene((Obj("circle", "red", "large", (1, 1)),)))
    red = np.array(big.colors["red"])
    edge = [tuple(p) for p in image.reshape(-1, 3) if tuple(p) != BACKGROUND and tuple(p) != tuple(red)]
    assert len(edge) > 10, "edge pixels blend object and background"


def test_every_caption_parses_back_to_the_scene():
    for seed in SEEDS:
        w = ShapesWorld(seed=seed)
        rng = random.Random(seed)
        for s in w.scenes(300, "train") + w.scenes(50, "heldout"):
            for _ in range(3):
                text = w.caption(s, rng)
                assert w.parse_caption(text) == s.pairs(), text
                assert w.parse_caption(text, strict=False) == s.pairs(), text
            assert w.parse_caption(w.instruction(s, rng)) == s.pairs()


def test_caption_templates_and_word_orders_vary(world):
    s = next(s for s in world.scenes(100) if len(s) == 3)
    captions = {world.caption(s, random.Random(i)) for i in range(200)}
    starts = {c.split()[0] for c in captions}
    assert len(captions) > 20 and {"a", "there", "the", "three"} <= starts and starts & {"at", "on", "in"}
    first_mentions = {next(iter(sorted(world.parse_caption(c.split(" and ")[0], strict=False)))) for c in captions
                      if c.startswith("a ")}
    assert len(first_mentions) > 1, "objects are listed in more than one order"


@pytest.mark.parametrize("text", [
    "a red circle", "", "a red dog.", "a circle red.", "there is a red circle at the moon.",
    "two objects: a red circle.", "a red circle and and a blue square.", "a red circle!",
])
def test_strict_parser_rejects_text_outside_the_grammar(world, text):
    if text == "a red circle":
        assert world.parse_caption(text) == {("red", "circle")}
        return
    with pytest.raises(ValueError, match="not a ShapesWorld caption"):
        world.parse_caption(text)


def test_lenient_parser_extracts_mentions_from_any_text(world):
    text = "I think there are two Red Circles, a small blue square and maybe a purple cross!"
    assert world.parse_caption(text, strict=False) == {("red", "circle"), ("blue", "square"), ("purple", "cross")}


def _answer(scene, question):
    """An independent oracle for the question forms, written from the scene alone."""
    words = question.rstrip("?").split()
    objs = scene.objects
    named = lambda c, s: next(o for o in objs if o.color == c and o.shape == s)  # noqa: E731
    if question.startswith("how many objects"):
        return NUMBERS[len(objs)]
    if question.startswith("how many"):
        what = words[2]
        n = sum(o.color == what or o.shape + "s" == what or o.shape + "es" == what for o in objs)
        return NUMBERS[n]
    if question.startswith("is there"):
        return "yes" if (words[3], words[4]) in scene.pairs() else "no"
    if question.startswith("where is"):
        o = named(words[3], words[4])
        return POSITIONS[o.position[0]][o.position[1]]
    if question.startswith("what color"):
        matches = [o for o in objs if o.shape == words[4]]
        if len(words) > 5:
            matches = [o for o in matches if POSITIONS[o.position[0]][o.position[1]] == " ".join(words[7:])]
        assert len(matches) == 1
        return matches[0].color
    if question.startswith("what shape"):
        matches = [o for o in objs if o.color == words[4]]
        if len(words) > 6:
            matches = [o for o in matches if POSITIONS[o.position[0]][o.position[1]] == " ".join(words[8:])]
        assert len(matches) == 1
        return matches[0].shape
    if question.startswith("is the"):
        text = " ".join(words[2:])
        rel = next(r for r in RELATIONS if f" {r} " in text)
        left, right = text.split(f" {rel} ")
        a, b = named(*left.split()), named(*right.split()[1:])
        (ra, ca), (rb, cb) = a.position, b.position
        holds = {"to the left of": ca < cb, "to the right of": ca > cb, "above": ra < rb, "below": ra > rb}[rel]
        return "yes" if holds else "no"
    raise AssertionError(f"unexpected question form: {question}")


def test_answers_agree_with_the_scene_for_every_type():
    seen_types = set()
    for seed in SEEDS:
        w = ShapesWorld(seed=seed)
        for s in w.scenes(150):
            qa = w.questions(s)
            for q, a, t in qa:
                assert _answer(s, q) == a, (s, q, a)
                seen_types.add(t)
            exists = [a for _, a, t in qa if t == "exists"]
            assert exists.count("yes") == exists.count("no"), "existence questions are balanced"
            relation = [a for _, a, t in qa if t == "relation"]
            assert relation.count("yes") == relation.count("no")
    assert seen_types == {"color", "shape", "count", "position", "exists", "relation"}


def test_questions_never_mention_heldout_pairs_for_training_scenes(world):
    for s in world.scenes(500):
        for text in [q for q, _, _ in world.questions(s)] + [t["content"] for t in world.conversation(s)]:
            assert not world.parse_caption(text, strict=False) & world.holdout, text


def test_conversation_shape(world):
    for s in world.scenes(50):
        turns = world.conversation(s)
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2) and 4 <= len(turns) <= 8
        assert turns[0]["content"].startswith("<image>")
        assert world.parse_caption(turns[1]["content"]) == s.pairs()


def test_bias_knob_strength_is_measurable():
    trigger, partner = ("red", "circle"), ("blue", "square")
    base = ShapesWorld(seed=1).cooccurrence(ShapesWorld(seed=1).scenes(20000), trigger, partner)
    biased_world = ShapesWorld(seed=1, bias=0.9)
    biased = biased_world.cooccurrence(biased_world.scenes(20000), trigger, partner)
    assert base["p_partner_given_trigger"] < 0.15
    assert biased["p_partner_given_trigger"] > 0.85
    assert abs(biased["p_partner_given_no_trigger"] - base["p_partner_given_no_trigger"]) < 0.03


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 4}, "image_size"),
    ({"max_objects": 10}, "max_objects"),
    ({"max_objects": 0}, "max_objects"),
    ({"seed": -1}, "seed"),
    ({"bias": 1.5}, "bias"),
    ({"colors": ["red", "pink"]}, "unknown color 'pink'; allowed: red, green"),
    ({"shapes": ["circle", "hexagon"]}, "unknown shape 'hexagon'"),
    ({"holdout": [("pink", "circle")]}, "color in holdout"),
    ({"bias_pairs": [("red", "circle", "blue")]}, "bias pair"),
    ({"bias_pairs": [("red", "triangle", "blue", "square")]}, "held-out"),
])
def test_bad_settings_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapesWorld(**kwargs)


def test_bad_calls_raise_clear_errors(world):
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        world.scenes(-1)
    with pytest.raises(ValueError, match="unknown split 'dev'; allowed: train, val, test, heldout"):
        world.scenes(3, "dev")
    with pytest.raises(ValueError, match="no held-out pairs"):
        ShapesWorld(holdout=()).scenes(3, "heldout")
    with pytest.raises(ValueError, match="unknown color in scene 'pink'"):
        world.render(Scene((Obj("circle", "pink", "small", (0, 0)),)))
    with pytest.raises(ValueError, match="share a cell"):
        world.check_scene(Scene((Obj("circle", "red", "small", (0, 0)), Obj("square", "red", "small", (0, 0)))))
    with pytest.raises(TypeError, match="uint8"):
        to_tensor(np.zeros((2, 8, 8, 3), np.float32))


def test_small_world_settings_work():
    w = ShapesWorld(colors=["red", "blue"], shapes=["circle", "square"], holdout=[("red", "square")], max_objects=2)
    scenes = w.scenes(100)
    assert {p for s in scenes for p in s.pairs()} == {("red", "circle"), ("blue", "circle"), ("blue", "square")}
    assert w.tokenizer.vocab == ShapesWorld().tokenizer.vocab, "one vocabulary for every world setting"


def random_scene(rng: random.Random, world: ShapesWorld) -> Scene:
    """Any valid scene of the world, not only those it samples: repeated pairs, held-out pairs, up to 9 objects."""
    cells = rng.sample(range(9), rng.randint(1, 9))
    return Scene(tuple(Obj(rng.choice(world.shapes), rng.choice(list(world.colors)), rng.choice(world.sizes),
                           divmod(cell, 3)) for cell in cells))


def test_render_and_render_batch_agree_on_random_valid_scenes():
    rng = random.Random(0)
    for world in (ShapesWorld(image_size=8), ShapesWorld(image_size=17, seed=1), ShapesWorld(image_size=32),
                  ShapesWorld(image_size=24, colors=["red", "blue"], shapes=["cross"], max_objects=2, holdout=(),
                              bias_pairs=())):
        scenes = [random_scene(rng, world) for _ in range(200)]
        assert np.array_equal(np.stack([world.render(s) for s in scenes]), world.render_batch(scenes))


def test_render_and_render_batch_make_the_same_checks():
    small = ShapesWorld(colors=["red", "blue"], shapes=["circle", "square"], holdout=(), bias_pairs=())
    for scene, message in [(Scene((Obj("cross", "red", "small", (0, 0)),)), "unknown shape in scene 'cross'"),
                           (Scene((Obj("circle", "green", "small", (2, 2)),)), "unknown color in scene 'green'"),
                           (Scene((Obj("circle", "red", "medium", (1, 2)),)), "unknown size 'medium'")]:
        for draw in (small.render, lambda s: small.render_batch([s])):
            with pytest.raises(ValueError, match=message):
                draw(scene)


def test_a_scene_is_valid_by_construction():
    """Two objects in one cell would add their pixels past 255; an off-grid cell would be drawn in another one."""
    with pytest.raises(ValueError, match="share a cell"):
        Scene((Obj("circle", "red", "small", (1, 1)), Obj("square", "blue", "large", (1, 1))))
    for position in [(0, 3), (3, 0), (-1, 1), (1,), (0.0, 1), (True, 0)]:
        with pytest.raises(ValueError, match="position must be a \\(row, col\\) cell"):
            Obj("circle", "red", "small", position)
    scene = Scene([Obj("circle", "red", "small", [np.int64(2), 0])])   # lists and numpy ints are fine
    assert scene.objects[0].position == (2, 0) and isinstance(scene.objects, tuple)


def test_heldout_scenes_keep_their_heldout_pair_under_bias():
    """The bias step replaces an object when the scene is full; in a held-out scene it must not be the held-out one."""
    for bias in (0.5, 1.0):
        w = ShapesWorld(seed=0, bias=bias)
        assert all(s.pairs() & w.holdout for s in w.scenes(3000, "heldout"))


def test_bias_pairs_never_exceed_max_objects():
    w = ShapesWorld(seed=0, max_objects=2, bias=1.0, holdout=(),
                    bias_pairs=[("red", "circle", "blue", "square"), ("red", "circle", "green", "square")])
    scenes = w.scenes(2000)
    assert max(len(s) for s in scenes) == 2
    triggered = [s for s in scenes if ("red", "circle") in s.pairs()]
    assert triggered and all(len(s.pairs() & {("blue", "square"), ("green", "square")}) == 1 for s in triggered)


def test_language_needs_a_scene_the_world_can_draw():
    """The world never draws an empty scene (1..max_objects objects), so there is nothing to caption: Scene(()) is
    refused where it is made, before caption could index an empty listing."""
    with pytest.raises(ValueError, match="a scene holds 1..9 objects"):
        ShapesWorld().caption(Scene(()))
    w = ShapesWorld(seed=0)
    twins = Scene((Obj("circle", "red", "small", (0, 0)), Obj("circle", "red", "large", (2, 2))))
    assert w.parse_caption(w.caption(twins)) == {("red", "circle")}   # a caption may repeat a pair ...
    with pytest.raises(ValueError, match="each pair may appear once"):  # ... a question naming "the red circle" may not
        w.questions(twins)
