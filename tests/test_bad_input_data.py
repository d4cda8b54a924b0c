"""Every public entry point of vitlib.data fails fast, with a message that names what it expected and what came.

One table: each row makes one bad call, names the exception and a regex its message must match. Each call runs
under a one-second deadline, so a hang (or a multi-GB allocation) fails the test instead of stalling the suite.
"""

import itertools
import random
import signal
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from vitlib.data import (ConversationDataset, ImageCaptionDataset, Obj, Scene, ShapesWorld, VQADataset,
                         WordTokenizer, chat_ids, parse_caption, to_tensor)
from vitlib.data import language, render
from vitlib.data.bpe import BPETokenizer, count_pairs, merge

WORLD = ShapesWorld(seed=0)
SCENE = WORLD.scenes(1)[0]
TOK = WORLD.tokenizer
BPE = BPETokenizer([(104, 101)])
CAPTIONS = ImageCaptionDataset(WORLD, 2)
RED_CIRCLE = Obj("circle", "red", "small", (0, 0))
# 9 cells x 2 sizes = 18 possible scenes, and the split hash sends every one of them to train
ONLY_TRAIN = ShapesWorld(colors=["red"], shapes=["square"], max_objects=1, holdout=(), bias_pairs=(), image_size=8)
SECONDS = 1.0


@contextmanager
def deadline(seconds: float):
    """Raise TimeoutError in the main thread if the block runs longer than ``seconds`` (where SIGALRM exists)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


ROWS = [
    # ShapesWorld settings
    (lambda: ShapesWorld(image_size=2048), ValueError, r"image_size must be an int in 8\.\.256.*got 2048"),
    (lambda: ShapesWorld(image_size=-32), ValueError, r"image_size must be an int in 8\.\.256.*got -32"),
    (lambda: ShapesWorld(image_size=32.0), ValueError, r"image_size must be an int.*got 32\.0"),
    (lambda: ShapesWorld(image_size=True), ValueError, r"image_size must be an int.*got True"),
    (lambda: ShapesWorld(max_objects=True), ValueError, r"max_objects must be an int in 1\.\.9.*got True"),
    (lambda: ShapesWorld(seed=1.5), ValueError, r"seed must be a non-negative int, got 1\.5"),
    (lambda: ShapesWorld(bias=float("nan")), ValueError, r"bias must be a probability in \[0, 1\], got nan"),
    (lambda: ShapesWorld(bias=True), ValueError, r"bias must be a probability in \[0, 1\], got True"),
    (lambda: ShapesWorld(colors="red"), TypeError, r"colors must be a list, got 'red'"),
    (lambda: ShapesWorld(colors=["red", "red"]),
     ValueError, r"colors must name at least one color, each once, got \['red', 'red'\]"),
    (lambda: ShapesWorld(shapes=[]), ValueError, r"shapes must name at least one shape.*got \[\]"),
    (lambda: ShapesWorld(shapes=["hexagon"]), ValueError, r"unknown shape 'hexagon'; allowed: circle"),
    (lambda: ShapesWorld(holdout=("red", "triangle")),
     ValueError, r"expected a \(color, shape\) pair of names in holdout, got 'red'"),
    (lambda: ShapesWorld(bias_pairs=[("red", "circle", "red", "circle")]),
     ValueError, r"bias pair \('red', 'circle', 'red', 'circle'\) has its partner equal to its trigger"),
    (lambda: ShapesWorld(max_objects=1, bias=0.5), ValueError, r"bias=0\.5 needs max_objects >= 2.*got max_objects=1"),
    # sampling
    (lambda: ONLY_TRAIN.scenes(5, "val"), ValueError, r"no scene of this world falls in split 'val'.*5 scenes"),
    (lambda: ONLY_TRAIN.scenes(5, "test"), ValueError, r"no scene of this world falls in split 'test'"),
    (lambda: WORLD.scenes(10**7), ValueError, r"n must be a non-negative int, at most 1,000,000.*got 10000000"),
    (lambda: WORLD.scenes(2.0), ValueError, r"n must be a non-negative int.*got 2\.0"),
    (lambda: WORLD.scenes(3, "dev"), ValueError, r"unknown split 'dev'; allowed: train, val, test, heldout"),
    (lambda: ShapesWorld(holdout=()).scenes(3, "heldout"),
     ValueError, r"no held-out pairs \(holdout=\(\)\), so it has no 'heldout' split"),
    (lambda: WORLD.split_of("a red circle"), TypeError, r"expected a Scene, got str"),
    (lambda: WORLD.check_scene(None), TypeError, r"expected a Scene, got NoneType"),
    # objects and scenes
    (lambda: Obj("circle", "red", "small", (0, 5)),
     ValueError, r"position must be a \(row, col\) cell with values in 0\.\.2, got \(0, 5\)"),
    (lambda: Obj("circle", "red", "small", (-1, 0)), ValueError, r"values in 0\.\.2, got \(-1, 0\)"),
    (lambda: Obj(3, "red", "small", (0, 0)), TypeError, r"Obj shape must be a str, got int"),
    (lambda: Scene(()), ValueError, r"a scene holds 1\.\.9 objects.*got 0"),
    (lambda: Scene(("circle",)), TypeError, r"Scene objects must be a tuple of Obj, got an element of type str"),
    (lambda: Scene((RED_CIRCLE, Obj("square", "blue", "small", (0, 0)))),
     ValueError, r"two objects share a cell: positions \[\(0, 0\), \(0, 0\)\]"),
    # pixels
    (lambda: WORLD.render(Scene((Obj("circle", "pink", "small", (0, 0)),))),
     ValueError, r"unknown color in scene 'pink'; allowed: red"),
    (lambda: ONLY_TRAIN.render(Scene((RED_CIRCLE,))), ValueError, r"unknown shape in scene 'circle'; allowed: square"),
    (lambda: WORLD.render(Scene((Obj("circle", "red", "huge", (0, 0)),))),
     ValueError, r"unknown size 'huge'; allowed: small, large"),
    (lambda: WORLD.render_batch([SCENE] * 10**6),
     ValueError, r"render_batch of 1000000 scenes of 32x32.*needs 8\.6 GiB.*limit of 2 GiB"),
    (lambda: WORLD.render_batch(SCENE), TypeError, r"render_batch expects a list of Scenes, got Scene"),
    (lambda: WORLD.render_batch([SCENE, "scene"]), TypeError, r"expects a list of Scenes, got an element of type str"),
    (lambda: WORLD.center((0, 0)), TypeError, r"expected an Obj, got tuple"),
    (lambda: to_tensor(np.zeros((2, 8, 8, 3), np.float32)),
     TypeError, r"expected a uint8 numpy array of images, got float32"),
    (lambda: to_tensor(np.zeros((2, 8, 8, 4), np.uint8)),
     ValueError, r"expected images of shape \(H, W, 3\) or \(N, H, W, 3\), got \(2, 8, 8, 4\)"),
    (lambda: render.coverage_masks(("circle",), 2048), ValueError, r"image_size must be an int in 8\.\.256.*got 2048"),
    (lambda: render.coverage_masks(("hexagon",), 32), ValueError, r"unknown shape 'hexagon'; allowed: circle"),
    (lambda: render.sprites(("circle",), 32, ((300, 0, 0),), render.BACKGROUND),
     ValueError, r"each colour must be an \(r, g, b\) triple of ints in 0\.\.255, got \(300, 0, 0\)"),
    (lambda: render.cell_center((3, 0), 32), ValueError, r"values in 0\.\.2, got \(3, 0\)"),
    (lambda: render.box_origin((0, 0), 4), ValueError, r"image_size must be an int in 8\.\.256.*got 4"),
    (lambda: render.render_sprites(np.zeros((1, 2), np.int64), np.zeros((1, 2), np.int64), 32, WORLD._sprites,
                                   render.BACKGROUND),
     ValueError, r"two objects of one scene share a cell"),
    # language
    (lambda: WORLD.caption(Scene(())), ValueError, r"a scene holds 1\.\.9 objects.*got 0"),
    (lambda: WORLD.caption("a red circle"), TypeError, r"expected a Scene, got str"),
    (lambda: WORLD.caption(SCENE, rng=True), TypeError, r"rng must be None, an int seed or a random\.Random, got bool"),
    (lambda: WORLD.instruction(None), TypeError, r"expected a Scene, got NoneType"),
    (lambda: WORLD.questions(Scene((RED_CIRCLE, Obj("circle", "red", "large", (1, 1))))), ValueError,
     r"each pair may appear once in a scene; got \[\('red', 'circle'\), \('red', 'circle'\)\]"),
    (lambda: WORLD.conversation(SCENE, rng="seed"),
     TypeError, r"rng must be None, an int seed or a random\.Random, got str"),
    (lambda: WORLD.parse_caption(b"a red circle."), TypeError, r"expected a str, got bytes"),
    (lambda: WORLD.cooccurrence([], ("red", "circle"), ("blue", "square")),
     ValueError, r"needs at least one scene, got none"),
    (lambda: WORLD.cooccurrence([SCENE], ("pink", "circle"), ("blue", "square")),
     ValueError, r"unknown color in trigger 'pink'; allowed: red"),
    (lambda: language.caption(SCENE, None), TypeError, r"rng must be a random\.Random, got NoneType"),
    (lambda: language.instruction(Scene(()), random.Random(0)), ValueError, r"a scene holds 1\.\.9 objects.*got 0"),
    (lambda: language.questions(SCENE, random.Random(0), ["red"]),
     ValueError, r"expected a \(color, shape\) pair of names in allowed_pairs, got 'red'"),
    (lambda: language.conversation(SCENE, random.Random(0), 5),
     TypeError, r"allowed_pairs must be a list of \(color, shape\) pairs, got 5"),
    (lambda: language.position_name((-1, 0)), ValueError, r"values in 0\.\.2, got \(-1, 0\)"),
    (lambda: language.loc((1, 1)), TypeError, r"expected an Obj, got tuple"),
    (lambda: language.noun_phrase(RED_CIRCLE, "tiny"),
     ValueError, r"unknown detail 'tiny'; allowed: full, sized, placed, plain"),
    (lambda: language.listing([]), ValueError, r"at least one phrase, got an empty list"),
    (lambda: language.article(""), ValueError, r"word must be a non-empty str, got ''"),
    (lambda: language.plural(3), TypeError, r"shape must be a str, got int"),
    (lambda: parse_caption("a red circle.", strict="no"), TypeError, r"strict must be True or False, got 'no'"),
    (lambda: parse_caption("a red dog."), ValueError, r"expected a shape at word 3, got 'dog'"),
    # word tokenizer
    (lambda: WordTokenizer("abc"), TypeError, r"words must be a list of vocabulary words, got 'abc'"),
    (lambda: WordTokenizer(["Red"]), ValueError, r"one piece of split\(\).*got 'Red'"),
    (lambda: WordTokenizer(["red", "red"]), ValueError, r"must be unique and not special tokens; problems: \['red'\]"),
    (lambda: WordTokenizer.split(5), TypeError, r"split expects a str, got int"),
    (lambda: TOK.encode(5), TypeError, r"encode expects a str, got int"),
    (lambda: TOK.encode("a red dog"), ValueError, r"'dog' is not in the vocabulary of 80 tokens"),
    (lambda: TOK.encode("a", add_bos="yes"), TypeError, r"add_bos and add_eos must be True or False, got 'yes'"),
    (lambda: TOK.decode([-1]), ValueError, r"token id -1 is outside the vocabulary \[0, 80\)"),
    (lambda: TOK.decode([10**6]), ValueError, r"token id 1000000 is outside the vocabulary \[0, 80\)"),
    (lambda: TOK.decode([3.0]), TypeError, r"decode expects int ids, got 3\.0 \(float\)"),
    (lambda: TOK.decode(None), TypeError, r"decode expects a list or 1-D tensor of int ids, got NoneType"),
    (lambda: TOK.decode(torch.zeros(2, 2, dtype=torch.long)), ValueError, r"1-D sequence of ids, got shape \(2, 2\)"),
    (lambda: TOK.pad([[1.5, 2]]), TypeError, r"list or 1-D tensor of int ids, got torch\.float32"),
    (lambda: TOK.pad([]), ValueError, r"cannot pad an empty batch"),
    (lambda: TOK.pad([[1]], max_len=-1), ValueError, r"max_len must be None or a positive int, got -1"),
    (lambda: TOK.pad([[1]] * 1000, max_len=10**9),
     ValueError, r"1000 x 1000000000 tokens is over the limit of 67108864"),
    (lambda: TOK.pad([[1]], side="up"), ValueError, r"side must be 'right' or 'left', got 'up'"),
    (lambda: TOK(None), TypeError, r"expected a text or a list of texts, got NoneType"),
    # byte-pair encoding
    (lambda: BPETokenizer.train(b"hello", 300), TypeError, r"train expects a str, got bytes"),
    (lambda: BPETokenizer.train("hello", 100), ValueError, r"vocab_size must be an int >= 256.*got 100"),
    (lambda: BPETokenizer("ab"), TypeError, r"merges must be a list of \(a, b\) pairs of token ids, got str"),
    (lambda: BPETokenizer([(1.0, 2)]),
     ValueError, r"merge 0 must be a pair \(a, b\) of int token ids, got \(1\.0, 2\)"),
    (lambda: BPETokenizer([(0, 400)]), ValueError, r"merge 0 = \(0, 400\) refers to a token outside \[0, 256\)"),
    (lambda: BPETokenizer([(97, 98), (97, 98)]), ValueError, r"merge 1 = \(97, 98\) repeats merge 0"),
    (lambda: BPETokenizer([(97, 97)] + [(256 + i, 256 + i) for i in range(40)]), ValueError,
     r"builds a token of 2097152 bytes, over the limit of 1048576"),
    (lambda: BPE.encode(b"x"), TypeError, r"encode expects a str, got bytes"),
    (lambda: BPE.decode([-1]), ValueError, r"token ids must be ints in \[0, 257\), got \[-1\]"),
    (lambda: BPE.decode([True]), TypeError, r"decode expects int ids, got True \(bool\)"),
    (lambda: BPETokenizer.split(None), TypeError, r"split expects a str, got NoneType"),
    (lambda: count_pairs(5), TypeError, r"count_pairs expects a list, tuple or 1-D tensor of token ids, got int"),
    (lambda: count_pairs([1, 2], weight=0.5), TypeError, r"weight must be an int, got 0\.5"),
    (lambda: merge([1, 2], (1,), 3), ValueError, r"pair must be a pair \(a, b\) of int token ids, got \(1,\)"),
    # datasets
    (lambda: ImageCaptionDataset("world", 4), TypeError, r"expected a ShapesWorld, got str"),
    (lambda: ImageCaptionDataset(WORLD, 0), ValueError, r"n must be a positive int.*got 0"),
    (lambda: ImageCaptionDataset(WORLD, 500_000),
     ValueError, r"dataset of 500000 scenes of 32x32 \(float32 images\) needs 5\.7 GiB.*limit of 2 GiB"),
    (lambda: ImageCaptionDataset(WORLD, 4, captions_per_scene=10**9),
     ValueError, r"captions_per_scene must be a positive int.*got 1000000000"),
    (lambda: ImageCaptionDataset(WORLD, 4, seed="x"), TypeError, r"seed must be an int, got 'x'"),
    (lambda: VQADataset(WORLD, 5, types="colorcount"),
     ValueError, r"unknown question type 'colorcount'; allowed: color, shape, count, position, exists, relation"),
    (lambda: VQADataset(WORLD, 5, types=[]),
     ValueError, r"types must name at least one of color.*got an empty collection"),
    (lambda: VQADataset(WORLD, 5, types=3), TypeError, r"types must be None, a question type or a list of them, got 3"),
    (lambda: ConversationDataset(WORLD, 4, split="dev"), ValueError, r"unknown split 'dev'; allowed: train"),
    (lambda: ConversationDataset(ONLY_TRAIN, 4, split="val"),
     ValueError, r"no scene of this world falls in split 'val'"),
    (lambda: CAPTIONS[2], IndexError, r"index must be an int in \[-2, 2\) for this dataset, got 2"),
    (lambda: CAPTIONS[1.0], IndexError, r"index must be an int in \[-2, 2\).*got 1\.0"),
    (lambda: CAPTIONS.collate([]), ValueError, r"collate expects a non-empty list of items.*got \[\]"),
    (lambda: chat_ids(TOK, []), ValueError, r"a conversation needs at least one turn, got an empty list"),
    (lambda: chat_ids(TOK, [{"content": "hi"}]),
     TypeError, r"turn 0 must be a dict with str 'role' and 'content', got \{'content': 'hi'\}"),
    (lambda: chat_ids(TOK, [{"role": "system", "content": "hi"}]),
     ValueError, r"turn 0: unknown role 'system'; allowed: user, assistant"),
    (lambda: chat_ids(TOK, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]),
     ValueError, r"a conversation shows the image once, as <image> in the first user turn.*got none"),
    (lambda: chat_ids(BPE, [{"role": "user", "content": "hi"}]),
     TypeError, r"expected a WordTokenizer, got BPETokenizer"),
]


@pytest.mark.parametrize("call, error, message", ROWS)
def test_bad_call_fails_fast_with_a_clear_message(call, error, message):
    start = time.perf_counter()
    with deadline(SECONDS), pytest.raises(error, match=message):
        call()
    assert time.perf_counter() - start < SECONDS, f"the bad call took {time.perf_counter() - start:.2f} s"


def drawable_splits(world: ShapesWorld) -> set[str]:
    """The splits of every scene a world can draw, listed by brute force. Without bias that is every set of distinct
    colour+shape pairs in distinct cells; with bias 1 and one bias pair, those where the partner joins its trigger."""
    splits = set()
    for k in range(1, world.max_objects + 1):
        for cells, pairs in itertools.product(itertools.combinations(range(9), k),
                                              itertools.permutations(world.pairs_seen, k)):
            if world.bias == 1 and any(t in pairs and p not in pairs for t, p in world.bias_pairs):
                continue
            for sizes in itertools.product(world.sizes, repeat=k):
                objects = tuple(Obj(s, c, z, divmod(cell, 3)) for (c, s), cell, z in zip(pairs, cells, sizes))
                splits.add(ShapesWorld.split_of(Scene(objects)))
    return splits


def test_scenes_raises_exactly_when_a_split_has_no_drawable_scene():
    """A split is a hash of the scene, so a tiny world can leave one empty; drawing from it used to loop forever."""
    empty = 0
    for colors, shapes in itertools.product((["red"], ["yellow"], ["red", "green"]),
                                            (["square"], ["diamond"], ["circle", "cross"])):
        n_pairs = len(colors) * len(shapes)
        for max_objects, bias in itertools.product((1, 2), (0.0, 1.0)):
            if max_objects > n_pairs or (bias and (max_objects < 2 or n_pairs < 2)):
                continue
            pair = [(colors[0], shapes[0], colors[-1], shapes[-1])] if bias else []
            world = ShapesWorld(colors=colors, shapes=shapes, max_objects=max_objects, holdout=(), bias=bias,
                                bias_pairs=pair, image_size=8)
            splits = drawable_splits(world)
            for split in ("train", "val", "test"):
                with deadline(SECONDS):
                    if split in splits:
                        assert len(world.scenes(20, split)) == 20
                    else:
                        empty += 1
                        with pytest.raises(ValueError, match=f"no scene of this world falls in split '{split}'"):
                            world.scenes(20, split)
    assert empty >= 4, "the sweep holds worlds with an empty split (red squares, yellow diamonds: train only)"
