"""The language of ShapesWorld: captions, questions, instructions, conversations and their parser (chapter 00).

Every sentence is generated from the scene, so its meaning is known exactly. The grammar of captions is small
enough to parse back (``parse_caption``): that is how later chapters score generated text and count hallucinations.

    caption   := sentence ("." sentence)* "."?
    sentence  := [loc "there" ("is"|"are")] list | "there" ("is"|"are") list | "the image shows" list
               | number ("object"|"objects") ":" list | ("draw"|"paint"|"place") list | list
    list      := np ("," np)* ["and" np]
    np        := ("a"|"an") [size] colour shape [loc]
    loc       := ("at"|"on"|"in") "the" position
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable

from .render import COLORS, SHAPES, SIZES, check_cell
from .scene import Obj, check_pair, check_scene
from .tokenizer import WordTokenizer

POSITIONS = (("top left", "top", "top right"), ("left", "center", "right"), ("bottom left", "bottom", "bottom right"))
PREPOSITION = {"top left": "at", "top": "at", "top right": "at", "left": "on", "center": "in", "right": "on",
               "bottom left": "at", "bottom": "at", "bottom right": "at"}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RELATIONS = ("to the left of", "to the right of", "above", "below")
VERBS = ("draw", "paint", "place")
DESCRIBE = ("describe the image.", "what do you see in the image?", "what is in this picture?")
QUESTION_TYPES = ("color", "shape", "count", "position", "exists", "relation")
_PAIRS = frozenset((c, s) for c in COLORS for s in SHAPES)
DETAILS = ("full", "sized", "placed", "plain")

# The vocabulary is append-only: shipped checkpoints depend on these ids.
WORDS = (
    ".", ",", "?", ":", ";",
    *COLORS, *SHAPES, "circles", "squares", "triangles", "diamonds", "crosses", *SIZES,
    "top", "bottom", "left", "right", "center", "at", "on", "in", "the", "a", "an", "and",
    "there", "is", "are", "image", "shows", "object", "objects", *NUMBERS,
    "what", "color", "shape", "where", "how", "many", "yes", "no", "to", "of", "above", "below",
    *VERBS, "describe", "do", "you", "see", "this", "picture", "user", "assistant",
)


def tokenizer() -> WordTokenizer:
    """The word-level tokenizer of ShapesWorld: one fixed vocabulary for every world setting."""
    return WordTokenizer(WORDS)


def position_name(position: tuple[int, int]) -> str:
    row, col = check_cell(position)
    return POSITIONS[row][col]


def loc(obj) -> str:
    """ "at the top left", "in the center", ... """
    if not isinstance(obj, Obj):
        raise TypeError(f"expected an Obj, got {type(obj).__name__}")
    name = position_name(obj.position)
    return f"{PREPOSITION[name]} the {name}"


def _check_word(word, what: str) -> str:
    if not isinstance(word, str):
        raise TypeError(f"{what} must be a str, got {type(word).__name__}")
    if not word:
        raise ValueError(f"{what} must be a non-empty str, got ''")
    return word


def plural(shape: str) -> str:
    return _check_word(shape, "shape") + ("es" if shape.endswith("s") else "s")


def article(word: str) -> str:
    return "an" if _check_word(word, "word")[0] in "aeiou" else "a"


def noun_phrase(obj, detail: str = "full") -> str:
    """ "a small red circle at the top left" (full), "a small red circle" (sized), "a red circle at the top left"
    (placed) or "a red circle" (plain)."""
    if not isinstance(obj, Obj):
        raise TypeError(f"expected an Obj, got {type(obj).__name__}")
    if detail not in DETAILS:
        raise ValueError(f"unknown detail {detail!r}; allowed: {', '.join(DETAILS)}")
    words = ([obj.size] if detail in ("full", "sized") else []) + [obj.color, obj.shape]
    phrase = f"{article(words[0])} {' '.join(words)}"
    return f"{phrase} {loc(obj)}" if detail in ("full", "placed") else phrase


def listing(phrases: list[str]) -> str:
    """ "x", "x and y", "x, y and z" """
    if not isinstance(phrases, (list, tuple)) or not all(isinstance(x, str) for x in phrases):
        raise TypeError(f"listing expects a list of phrases (str), got {phrases!r}")
    if not phrases:
        raise ValueError("listing expects at least one phrase, got an empty list")
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _check(scene, rng) -> None:
    """The checks every generator makes: a Scene of known names (never empty: a Scene has 1..9 objects), a Random."""
    check_scene(scene)
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")


def caption(scene, rng: random.Random) -> str:
    _check(scene, rng)
    objs = list(scene.objects)
    rng.shuffle(objs)
    template = rng.randrange(5)
    detail = rng.choice(("full", "sized", "placed", "plain"))
    nps = listing([noun_phrase(o, detail) for o in objs])
    if template == 0:
        return f"{nps}."
    if template == 1:
        return f"there is {nps}."
    if template == 2:
        return f"the image shows {nps}."
    if template == 3:
        return " ".join(f"{loc(o)} there is {noun_phrase(o, 'sized' if detail in ('full', 'sized') else 'plain')}."
                        for o in objs)
    return f"{NUMBERS[len(objs)]} object{'s' if len(objs) > 1 else ''}: {nps}."


def instruction(scene, rng: random.Random) -> str:
    _check(scene, rng)
    return f"{rng.choice(VERBS)} {listing([noun_phrase(o, 'full') for o in scene.objects])}"


def questions(scene, rng: random.Random, allowed_pairs) -> list[tuple[str, str, str]]:
    """Balanced question/answer pairs about a scene. ``allowed_pairs``: the (colour, shape) pairs that may be
    asked about as absent (the world passes its training pairs, so held-out pairs never leak into questions)."""
    _check(scene, rng)
    if isinstance(allowed_pairs, str) or not isinstance(allowed_pairs, Iterable):
        raise TypeError(f"allowed_pairs must be a list of (color, shape) pairs, got {allowed_pairs!r}")
    allowed_pairs = [p if type(p) is tuple and p in _PAIRS else check_pair(p, where="allowed_pairs")
                     for p in allowed_pairs]
    if len(scene.pairs()) != len(scene):  # "where is the red circle?" would have two answers
        raise ValueError(f"questions name objects by colour and shape, so each pair may appear once in a scene; got "
                         f"{sorted((o.color, o.shape) for o in scene.objects)}")
    objs, pairs = scene.objects, scene.pairs()
    n_shape, n_color = Counter(o.shape for o in objs), Counter(o.color for o in objs)
    qa = []
    for o in objs:
        ref = f"the {o.shape}" if n_shape[o.shape] == 1 else f"the {o.shape} {loc(o)}"
        qa.append((f"what color is {ref}?", o.color, "color"))
        ref = f"the {o.color} object" if n_color[o.color] == 1 else f"the {o.color} object {loc(o)}"
        qa.append((f"what shape is {ref}?", o.shape, "shape"))
        qa.append((f"where is the {o.color} {o.shape}?", position_name(o.position), "position"))
        qa.append((f"is there {article(o.color)} {o.color} {o.shape}?", "yes", "exists"))
    absent = sorted(p for p in allowed_pairs if p not in pairs)
    for c, s in rng.sample(absent, min(len(objs), len(absent))):
        qa.append((f"is there {article(c)} {c} {s}?", "no", "exists"))
    qa.append(("how many objects are there?", NUMBERS[len(objs)], "count"))
    colors = sorted({c for c, _ in allowed_pairs} | set(n_color))
    shapes = sorted({s for _, s in allowed_pairs} | set(n_shape))
    missing_color = [c for c in colors if c not in n_color]
    for c in sorted(n_color) + rng.sample(missing_color, min(1, len(missing_color))):
        qa.append((f"how many {c} objects are there?", NUMBERS[n_color[c]], "count"))
    missing_shape = [s for s in shapes if s not in n_shape]
    for s in sorted(n_shape) + rng.sample(missing_shape, min(1, len(missing_shape))):
        qa.append((f"how many {plural(s)} are there?", NUMBERS[n_shape[s]], "count"))
    for i, a in enumerate(objs):
        for b in objs[i + 1:]:
            if rng.random() < 0.5:
                a, b = b, a
            (ra, ca), (rb, cb) = a.position, b.position
            horizontal = ra == rb or (ca != cb and rng.random() < 0.5)
            true_rel = (RELATIONS[0] if ca < cb else RELATIONS[1]) if horizontal else (RELATIONS[2] if ra < rb else RELATIONS[3])
            false_rel = {RELATIONS[0]: RELATIONS[1], RELATIONS[1]: RELATIONS[0],
                         RELATIONS[2]: RELATIONS[3], RELATIONS[3]: RELATIONS[2]}[true_rel]
            for rel, answer in ((true_rel, "yes"), (false_rel, "no")):
                qa.append((f"is the {a.color} {a.shape} {rel} the {b.color} {b.shape}?", answer, "relation"))
    return qa


def conversation(scene, rng: random.Random, allowed_pairs) -> list[dict[str, str]]:
    """A LLaVA-style chat: the user shows the image and asks for a description, then asks 1-3 questions."""
    _check(scene, rng)
    turns = [{"role": "user", "content": f"<image> {rng.choice(DESCRIBE)}"},
             {"role": "assistant", "content": caption(scene, rng)}]
    qa = questions(scene, rng, allowed_pairs)
    for q, a, _ in rng.sample(qa, min(len(qa), rng.randint(1, 3))):
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": f"{a}."}]
    return turns


# ----- parsing ----------------------------------------------------------------------------------------------------
_POSITION_WORDS = sorted((p.split() for row in POSITIONS for p in row), key=len, reverse=True)
_MENTION = re.compile(rf"\b({'|'.join(COLORS)})\s+(?:(?:{'|'.join(SIZES)})\s+)?({'|'.join(SHAPES)})(?:es|s)?\b")


class _Parser:
    def __init__(self, text: str):
        self.text, self.words, self.i, self.found = text, WordTokenizer.split(text.lower()), 0, []

    def peek(self, k: int = 0):
        return self.words[self.i + k] if self.i + k < len(self.words) else None

    def expect(self, allowed, what: str) -> str:
        word = self.peek()
        if word not in allowed:
            got = "the end of the text" if word is None else repr(word)
            raise ValueError(f"not a ShapesWorld caption: expected {what} at word {self.i + 1}, got {got} in {self.text!r}")
        self.i += 1
        return word

    def loc(self):
        self.expect(("at", "on", "in"), "'at', 'on' or 'in'")
        self.expect(("the",), "'the'")
        for words in _POSITION_WORDS:
            if self.words[self.i:self.i + len(words)] == words:
                self.i += len(words)
                return
        self.expect((), "a position (top left, top, ..., bottom right)")

    def np(self):
        self.expect(("a", "an"), "'a' or 'an'")
        if self.peek() in SIZES:
            self.i += 1
        color = self.expect(COLORS, "a colour")
        shape = self.expect(SHAPES, "a shape")
        self.found.append((color, shape))
        if self.peek() in ("at", "on", "in"):
            self.loc()

    def listing(self) -> int:
        self.np()
        count = 1
        while self.peek() == ",":
            self.i += 1
            self.np()
            count += 1
        if self.peek() == "and":
            self.i += 1
            self.np()
            count += 1
        return count

    def sentence(self):
        word = self.peek()
        if word in ("at", "on", "in"):
            self.loc()
            self.expect(("there",), "'there'")
            self.expect(("is", "are"), "'is' or 'are'")
            self.listing()
        elif word == "there":
            self.i += 1
            self.expect(("is", "are"), "'is' or 'are'")
            self.listing()
        elif word == "the":
            self.i += 1
            self.expect(("image",), "'image'")
            self.expect(("shows",), "'shows'")
            self.listing()
        elif word in NUMBERS:
            self.i += 1
            self.expect(("object", "objects"), "'object' or 'objects'")
            self.expect((":",), "':'")
            if self.listing() != NUMBERS.index(word):
                raise ValueError(f"not a ShapesWorld caption: it announces {word} objects but lists another number in {self.text!r}")
        elif word in VERBS:
            self.i += 1
            self.listing()
        else:
            self.listing()

    def parse(self) -> set[tuple[str, str]]:
        if not self.words:
            raise ValueError("not a ShapesWorld caption: the text is empty")
        while self.i < len(self.words):
            self.sentence()
            if self.peek() is not None:
                self.expect((".",), "'.' or the end of the text")
        return set(self.found)


def parse_caption(text: str, strict: bool = True) -> set[tuple[str, str]]:
    """The set of (colour, shape) pairs a text mentions.

    strict=True parses the text with the grammar above and raises ValueError, naming the word, outside it.
    strict=False extracts every "colour [size] shape" mention from any text (plurals included).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    if strict:
        return _Parser(text).parse()
    return {(m.group(1), m.group(2)) for m in _MENTION.finditer(text.lower())}
