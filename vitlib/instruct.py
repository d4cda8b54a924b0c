"""Instruction data for a vision-language chat model (chapter 11): the chat template, its label mask, LLaVA's mixes.

A conversation is a list of turns {"role": "user" | "assistant", "content": str}: the user speaks first, the two
alternate, the assistant speaks last, and the image enters once, as "<image>" in the first user turn. LLaVA's
template (Liu et al., 2023; LLaVA-1.5 closes each answer with the end token the same way), in this world's words:

    <bos> user : u_1 assistant : a_1 <eos> user : u_2 assistant : a_2 <eos> ...

There is no system prompt (``SYSTEM = None``): LLaVA opens with "A chat between a curious human and an artificial
intelligence assistant ...", and this world's vocabulary has no words for that.

The one "<image>" becomes N copies of the image token, one per visual feature the projector emits (transformers'
LLaVA processor expands it the same way), so the language model reads [<bos>, user, :, <image> x N, words ...].
Only the answers are learned. With x the template's tokens and A the positions of the assistant's words and of the
<eos> that closes each answer (the model must learn to stop):

    L = - sum_{t in A} log p(x_t | x_<t, image)          labels_t = x_t on A, IGNORE_INDEX elsewhere

Stage 1 (feature alignment) trains on ``caption_chats``: "<image> describe the image." -> a caption, LLaVA's brief
descriptions. Stage 2 (instruction tuning) trains on ``instruction_mix``: short answers, detailed descriptions and
multi-turn conversations, as LLaVA-1.5 mixes VQA, captions and chats.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import torch

from .checks import check_int, check_number, check_one_of, describe
from .constants import IGNORE_INDEX
from .data.language import DESCRIBE, QUESTION_TYPES
from .data.scene import Scene
from .data.shapes import ShapesWorld
from .data.tokenizer import MAX_PAD_TOKENS, WordTokenizer

__all__ = ["ROLES", "SYSTEM", "IMAGE", "KINDS", "DEFAULT_WEIGHTS", "format_chat", "encode_chat", "prompt_ids",
           "collate_chats", "caption_chats", "instruction_mix", "label_mask_table"]

ROLES = ("user", "assistant")
SYSTEM = None          # no system prompt: the world's vocabulary has no word for one (see the module docstring)
IMAGE = "<image>"      # where the user shows the image; encode_chat expands it to n_image_tokens ids
KINDS = ("short", "detailed", "conversation")
DEFAULT_WEIGHTS = {"short": 0.5, "detailed": 0.2, "conversation": 0.3}
MAX_SHORT_QUESTIONS = 64   # more would not fit any context this course trains
_NO_SPACE_BEFORE = set(".,?:;")   # the spacing WordTokenizer.decode writes, so format_chat reads like a decode


# ----- the template -------------------------------------------------------------------------------------------
def _check_turns(turns, last: str) -> list[dict]:
    """Raise unless ``turns`` alternate user/assistant from the user, end with ``last``'s turn, none is empty, and
    exactly one "<image>" stands in the first user turn (and no other special token anywhere)."""
    if isinstance(turns, (str, dict)) or not isinstance(turns, (list, tuple)):
        raise TypeError(f"turns must be a list of {{'role': ..., 'content': ...}} dicts, got {describe(turns)}")
    if not turns:
        raise ValueError("a conversation needs at least one turn, got an empty list")
    images = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping) or not isinstance(turn.get("role"), str) \
                or not isinstance(turn.get("content"), str):
            raise TypeError(f"turn {i} must be a dict with str 'role' and 'content', got {turn!r:.80}")
        role, pieces = turn["role"], WordTokenizer.split(turn["content"])
        if role not in ROLES:
            raise ValueError(f"turn {i}: unknown role {role!r}; allowed: {', '.join(ROLES)} (no system prompt here)")
        if role != ROLES[i % 2]:
            raise ValueError(f"turn {i} must be the {ROLES[i % 2]}'s (user and assistant alternate, the user first), "
                             f"got {role!r}")
        if not pieces:
            raise ValueError(f"turn {i} ({role}) says nothing: content {turn['content']!r}")
        special = [p for p in pieces if p.startswith("<") and p.endswith(">") and p != IMAGE]
        if special:
            raise ValueError(f"turn {i} ({role}) holds {special[0]!r}; the template places <bos> and <eos> itself "
                             f"and a turn may hold only {IMAGE}")
        images += [i] * pieces.count(IMAGE)
    if images != [0]:
        got = "none" if not images else f"{len(images)} (in turns {images})"
        raise ValueError(f"a conversation shows the image once, as {IMAGE} in the first user turn (e.g. "
                         f"'{IMAGE} {DESCRIBE[0]}'); got {got}")
    if turns[-1]["role"] != last:
        raise ValueError(f"the last turn must be the {last}'s, got the {turns[-1]['role']}'s ({len(turns)} turns)")
    return list(turns)


def _segments(turns: list[dict], generation: bool) -> list[tuple[str, bool, str]]:
    """The template as (text, carries_loss, where) pieces: the answers and their <eos> carry the loss."""
    segments = [("<bos>", False, "the template")]
    for i, turn in enumerate(turns):
        where = f"turn {i} ({turn['role']})"
        if turn["role"] == "user":
            segments += [("user :", False, "the template"), (turn["content"], False, where)]
        else:
            segments += [("assistant :", False, "the template"), (turn["content"], True, where),
                         ("<eos>", True, "the template")]
    if generation:   # the model answers from here
        segments.append(("assistant :", False, "the template"))
    return segments


def format_chat(turns, add_generation_prompt: bool = False) -> str:
    """The template as text, one "<image>" where the user put it: what ``tokenizer.decode(ids,
    skip_special_tokens=False)`` gives for ``encode_chat``'s ids once the image tokens are collapsed to one.

    add_generation_prompt=True formats a prompt instead (``prompt_ids``' text): turns end with the user's, and the
    text with "assistant:"."""
    if not isinstance(add_generation_prompt, bool):
        raise TypeError(f"add_generation_prompt must be True or False, got {add_generation_prompt!r}")
    turns = _check_turns(turns, last="user" if add_generation_prompt else "assistant")
    pieces = WordTokenizer.split(" ".join(text for text, _, _ in _segments(turns, add_generation_prompt)))
    return "".join(p if i == 0 or p in _NO_SPACE_BEFORE else " " + p for i, p in enumerate(pieces))


def _check_tokenizer(tokenizer, n_image_tokens) -> None:
    if not isinstance(tokenizer, WordTokenizer):
        raise TypeError(f"tokenizer must be a WordTokenizer, got {type(tokenizer).__name__}")
    check_int(n_image_tokens, "n_image_tokens")


def _encode(segments, tokenizer: WordTokenizer, n_image_tokens: int) -> tuple[list[int], list[int]]:
    ids, labels = [], []
    for text, learned, where in segments:
        try:
            piece = tokenizer.encode(text)
        except ValueError as e:   # an unknown word: say which turn holds it
            raise ValueError(f"{where}: {e}") from None
        for i in piece:
            copies = n_image_tokens if i == tokenizer.image_id else 1   # one id per image feature
            ids += [i] * copies
            labels += [i if learned else IGNORE_INDEX] * copies
    return ids, labels


def encode_chat(turns, tokenizer: WordTokenizer, n_image_tokens: int) -> dict[str, torch.Tensor]:
    """A conversation -> {"input_ids": LongTensor (T,), "labels": LongTensor (T,)}.

    "<image>" becomes ``n_image_tokens`` copies of ``tokenizer.image_id``; labels copy the ids on the assistant's
    words and the <eos> after each answer, and are IGNORE_INDEX elsewhere (the loss L of the module docstring)."""
    _check_tokenizer(tokenizer, n_image_tokens)
    ids, labels = _encode(_segments(_check_turns(turns, last="assistant"), False), tokenizer, n_image_tokens)
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}


def prompt_ids(history, message: str, tokenizer: WordTokenizer, n_image_tokens: int) -> torch.Tensor:
    """The ids (T,) a model answers from: ``history`` (complete user/assistant pairs, maybe none), then the user's
    ``message``, then "assistant :". A prefix of ``encode_chat``'s ids for the conversation that answers it."""
    _check_tokenizer(tokenizer, n_image_tokens)
    if isinstance(history, (str, dict)) or not isinstance(history, (list, tuple)):
        raise TypeError(f"history must be a list of turns (maybe empty), got {describe(history)}")
    if len(history) % 2:
        raise ValueError(f"history must hold complete (user, assistant) pairs, got {len(history)} turns")
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, got {describe(message)}")
    turns = _check_turns([*history, {"role": "user", "content": message}], last="user")
    ids, _ = _encode(_segments(turns, True), tokenizer, n_image_tokens)
    return torch.tensor(ids, dtype=torch.long)


def collate_chats(items, pad_id: int) -> dict[str, torch.Tensor]:
    """``encode_chat`` outputs -> {"input_ids", "labels", "attention_mask" (bool)}, each (B, T), padded on the
    right with ``pad_id`` (labels with IGNORE_INDEX, so padding carries no loss)."""
    if isinstance(items, dict) or not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"items must be a non-empty list of encode_chat outputs, got {describe(items)}")
    check_int(pad_id, "pad_id", minimum=0)
    for b, item in enumerate(items):
        if not isinstance(item, Mapping) or "input_ids" not in item or "labels" not in item:
            raise ValueError(f"item {b} must be a dict with 'input_ids' and 'labels', got {describe(item)}")
        x, y = item["input_ids"], item["labels"]
        for name, t in (("input_ids", x), ("labels", y)):
            if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.dim() != 1 or not len(t):
                raise ValueError(f"item {b} {name} must be a non-empty LongTensor (T,), got {describe(t)}")
        if x.shape != y.shape:
            raise ValueError(f"item {b}: input_ids {tuple(x.shape)} and labels {tuple(y.shape)} differ in length")
    lengths = torch.tensor([len(item["input_ids"]) for item in items])   # (B,)
    B, T = len(items), int(lengths.max())
    if B * T > MAX_PAD_TOKENS:
        raise ValueError(f"a padded batch of {B} x {T} tokens is over the limit of {MAX_PAD_TOKENS} (MAX_PAD_TOKENS)")
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    for b, item in enumerate(items):
        input_ids[b, :lengths[b]] = item["input_ids"]
        labels[b, :lengths[b]] = item["labels"]
    attention_mask = torch.arange(T)[None, :] < lengths[:, None]         # (B, T): True on real tokens
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def label_mask_table(encoded, tokenizer: WordTokenizer) -> list[tuple[str, bool]]:
    """(token, carries_loss) for every position of an ``encode_chat`` output: the rows of "which tokens carry the
    loss" (chapter 11's figure)."""
    if not isinstance(tokenizer, WordTokenizer):
        raise TypeError(f"tokenizer must be a WordTokenizer, got {type(tokenizer).__name__}")
    if not isinstance(encoded, Mapping) or "input_ids" not in encoded or "labels" not in encoded:
        raise ValueError(f"encoded must be encode_chat's dict with 'input_ids' and 'labels', got {describe(encoded)}")
    ids, labels = encoded["input_ids"], encoded["labels"]
    for name, t in (("input_ids", ids), ("labels", labels)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.dim() != 1:
            raise ValueError(f"encoded {name} must be a LongTensor (T,), got {describe(t)}")
    if ids.shape != labels.shape:
        raise ValueError(f"input_ids {tuple(ids.shape)} and labels {tuple(labels.shape)} differ in length")
    if len(ids) and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
        raise ValueError(f"token ids must be in [0, {tokenizer.vocab_size}), got values in "
                         f"[{ids.min().item()}, {ids.max().item()}]")
    return [(tokenizer.vocab[i], y != IGNORE_INDEX) for i, y in zip(ids.tolist(), labels.tolist())]


# ----- the data -------------------------------------------------------------------------------------------------
def _check_data(world, scenes, seed) -> list[Scene]:
    """A ShapesWorld, a non-empty list of its scenes without held-out pairs (this is training data), a seed."""
    if not isinstance(world, ShapesWorld):
        raise TypeError(f"world must be a ShapesWorld, got {type(world).__name__}")
    if isinstance(scenes, Scene) or not isinstance(scenes, (list, tuple)):
        raise TypeError(f"scenes must be a list of Scenes, got {describe(scenes)}")
    if not scenes:
        raise ValueError("scenes must hold at least one scene, got an empty list")
    for i, scene in enumerate(scenes):
        world.check_scene(scene)
        leaked = sorted(scene.pairs() & world.holdout)
        if leaked:
            raise ValueError(f"scene {i} holds the held-out pair(s) {leaked}; instruction data is drawn from "
                             "train/val/test scenes so that held-out pairs stay unseen")
    check_int(seed, "seed", minimum=0, maximum=None)
    return list(scenes)


def _describe(world: ShapesWorld, scene: Scene, rng: random.Random) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{IMAGE} {rng.choice(DESCRIBE)}"},
            {"role": "assistant", "content": world.caption(scene, rng)}]


def _short(world: ShapesWorld, scene: Scene, rng: random.Random, n_questions: int = 1) -> list[dict[str, str]]:
    """``n_questions`` questions in a row, each with its one-word answer. A type first, uniformly, then a question
    of it: a scene has far more count and relation questions than colour ones, and drawing questions uniformly would
    mostly teach those. Several questions in one chat are LLaVA-1.5's packing of an image's VQA questions into one
    conversation: one image, many answers to learn from."""
    by_type = {}
    for q, a, t in world.questions(scene, rng):   # the world's questions never name a held-out pair
        by_type.setdefault(t, []).append((q, a))
    types = [t for t in QUESTION_TYPES if t in by_type]
    turns = []
    for k in range(n_questions):
        q, a = rng.choice(by_type[rng.choice(types)])
        turns += [{"role": "user", "content": f"{IMAGE} {q}" if k == 0 else q},
                  {"role": "assistant", "content": f"{a}."}]
    return turns


def caption_chats(world: ShapesWorld, scenes, seed: int) -> list[list[dict[str, str]]]:
    """Stage 1 data: for each scene, "<image> " + one of DESCRIBE -> a caption of it (seeded)."""
    scenes = _check_data(world, scenes, seed)
    rng = random.Random(seed)
    return [_describe(world, scene, rng) for scene in scenes]


def _check_weights(weights) -> list[float]:
    """Weights of KINDS (a missing kind weighs 0), as a list in KINDS' order; not normalised (random.choices)."""
    if weights is None:
        weights = DEFAULT_WEIGHTS
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a dict {{kind: weight}} over {', '.join(KINDS)}, got {describe(weights)}")
    for kind, w in weights.items():
        check_one_of(kind, "kind in weights", KINDS)
        check_number(w, f"weights[{kind!r}]", low=0.0)
    if sum(weights.values()) <= 0:
        raise ValueError(f"weights must give some kind a positive weight, got {dict(weights)}")
    return [float(weights.get(kind, 0.0)) for kind in KINDS]


def instruction_mix(world: ShapesWorld, scenes, seed: int, weights=None,
                    short_questions: int = 1) -> list[tuple[int, str, list[dict]]]:
    """Stage 2 data: one (scene_index, kind, turns) per scene, the kind drawn with ``weights`` (default
    DEFAULT_WEIGHTS: short 0.5, detailed 0.2, conversation 0.3), seeded:

        short          "<image> what color is the circle?" -> "red."     a type uniformly, then a question of it;
                       ``short_questions`` such questions in a row, one chat
        detailed       "<image> describe the image."       -> a caption
        conversation   ``world.conversation``: a description, then 1-3 questions

    LLaVA-1.5 asks short answers with "answer the question using a single word or phrase"; this world has no words
    for that, so the kind shows only in the answer's length."""
    scenes = _check_data(world, scenes, seed)
    probs = _check_weights(weights)
    check_int(short_questions, "short_questions", minimum=1, maximum=MAX_SHORT_QUESTIONS)
    rng = random.Random(seed)
    build = {"short": lambda w, s, r: _short(w, s, r, short_questions), "detailed": _describe,
             "conversation": lambda w, s, r: w.conversation(s, r)}
    out = []
    for i, scene in enumerate(scenes):
        kind = rng.choices(KINDS, weights=probs)[0]
        out.append((i, kind, build[kind](world, scene, rng)))
    return out
