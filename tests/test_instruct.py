"""vitlib.instruct: the chat template round-trips through the tokenizer, only answers and their <eos> carry labels,
a prompt is a prefix of its conversation, padding, the stage-2 mix's proportions and question balance, no held-out
pair anywhere, seeding, and the bad-input table."""

import math
from collections import Counter

import pytest
import torch

from vitlib.constants import IGNORE_INDEX
from vitlib.data import ShapesWorld, chat_ids, parse_caption
from vitlib.data.language import QUESTION_TYPES
from vitlib.instruct import (DEFAULT_WEIGHTS, KINDS, ROLES, SYSTEM, caption_chats, collate_chats, encode_chat,
                             format_chat, instruction_mix, label_mask_table, prompt_ids)

WORLD = ShapesWorld(seed=0)   # default held-out pairs: red triangle, green cross, blue diamond, yellow circle
TOK = WORLD.tokenizer
SCENES = WORLD.scenes(2000)
CONVERSATIONS = [WORLD.conversation(s, i) for i, s in enumerate(SCENES[:50])]
TWO_TURNS = [{"role": "user", "content": "<image> what color is the circle?"}, {"role": "assistant", "content": "red."},
             {"role": "user", "content": "how many objects are there?"}, {"role": "assistant", "content": "one."}]


def _collapse(ids: list[int]) -> list[int]:
    """Each run of image ids -> one image id: the text the user wrote."""
    return [i for k, i in enumerate(ids) if not (i == TOK.image_id and k and ids[k - 1] == TOK.image_id)]


def _type_of(question: str) -> str:
    """The type of one of the world's questions, read from its first words."""
    for start, t in (("what color", "color"), ("what shape", "shape"), ("where", "position"), ("how many", "count"),
                     ("is there", "exists"), ("is the", "relation")):
        if question.startswith(start):
            return t
    raise AssertionError(f"a question of no known type: {question!r}")


def test_constants():
    assert ROLES == ("user", "assistant") and SYSTEM is None and "system" not in TOK.token_to_id
    assert set(DEFAULT_WEIGHTS) == set(KINDS) and math.isclose(sum(DEFAULT_WEIGHTS.values()), 1.0)


@pytest.mark.parametrize("n_image_tokens", [1, 5])
def test_format_chat_is_the_decode_of_encode_chat(n_image_tokens):
    for turns in CONVERSATIONS:
        ids = encode_chat(turns, TOK, n_image_tokens)["input_ids"].tolist()
        assert ids.count(TOK.image_id) == n_image_tokens
        assert TOK.decode(_collapse(ids), skip_special_tokens=False) == format_chat(turns)
        prompt = prompt_ids(turns[:-2], turns[-2]["content"], TOK, n_image_tokens).tolist()
        assert TOK.decode(_collapse(prompt), skip_special_tokens=False) == \
            format_chat(turns[:-1], add_generation_prompt=True)
    text = format_chat(TWO_TURNS)
    assert text == "<bos> user: <image> what color is the circle? assistant: red. <eos> user: how many objects are " \
                   "there? assistant: one. <eos>"


def test_label_mask_by_hand():
    w = TOK.token_to_id
    out = encode_chat(TWO_TURNS, TOK, n_image_tokens=2)
    ignore = IGNORE_INDEX
    prompt1 = [TOK.bos_id, w["user"], w[":"], TOK.image_id, TOK.image_id, w["what"], w["color"], w["is"], w["the"],
               w["circle"], w["?"], w["assistant"], w[":"]]
    answer1 = [w["red"], w["."], TOK.eos_id]
    prompt2 = [w["user"], w[":"], w["how"], w["many"], w["objects"], w["are"], w["there"], w["?"],
               w["assistant"], w[":"]]
    answer2 = [w["one"], w["."], TOK.eos_id]
    assert out["input_ids"].tolist() == prompt1 + answer1 + prompt2 + answer2
    assert out["labels"].tolist() == [ignore] * len(prompt1) + answer1 + [ignore] * len(prompt2) + answer2
    assert out["input_ids"].dtype == out["labels"].dtype == torch.long
    table = label_mask_table(out, TOK)
    assert len(table) == len(out["input_ids"])
    assert [tok for tok, learned in table if learned] == ["red", ".", "<eos>", "one", ".", "<eos>"]


def test_encode_chat_with_one_image_token_is_chapter_00s_chat_ids():
    for turns in CONVERSATIONS:
        ids, labels = chat_ids(TOK, turns)
        out = encode_chat(turns, TOK, 1)
        assert out["input_ids"].tolist() == ids and out["labels"].tolist() == labels


def test_prompt_ids_is_a_prefix_up_to_assistant():
    head = TOK.encode("assistant :")
    for turns in CONVERSATIONS:
        full = encode_chat(turns, TOK, 3)
        for k in range(0, len(turns), 2):   # before each user turn: history = the complete turns so far
            prompt = prompt_ids(turns[:k], turns[k]["content"], TOK, 3)
            n = len(prompt)
            assert torch.equal(prompt, full["input_ids"][:n]) and prompt[-2:].tolist() == head
            m = 0
            if k:   # the history's own tokens keep their labels
                history = encode_chat(turns[:k], TOK, 3)["labels"]
                m = len(history)
                assert torch.equal(full["labels"][:m], history)
            assert (full["labels"][m:n] == IGNORE_INDEX).all()       # the new question is not learned ...
            assert full["labels"][n] == full["input_ids"][n]          # ... and the answer starts right after it


def test_collate_chats_pads_on_the_right():
    items = [encode_chat(turns, TOK, 4) for turns in CONVERSATIONS[:6]]
    batch = collate_chats(items, pad_id=TOK.pad_id)
    B, T = batch["input_ids"].shape
    lengths = [len(it["input_ids"]) for it in items]
    assert (B, T) == (6, max(lengths)) and len(set(lengths)) > 1
    assert batch["labels"].shape == batch["attention_mask"].shape == (B, T)
    assert batch["attention_mask"].dtype == torch.bool
    for b, it in enumerate(items):
        n = lengths[b]
        assert batch["attention_mask"][b].tolist() == [True] * n + [False] * (T - n)
        assert torch.equal(batch["input_ids"][b, :n], it["input_ids"])
        assert torch.equal(batch["labels"][b, :n], it["labels"])
        assert (batch["input_ids"][b, n:] == TOK.pad_id).all() and (batch["labels"][b, n:] == IGNORE_INDEX).all()


def test_caption_chats_are_stage_1_descriptions():
    chats = caption_chats(WORLD, SCENES[:100], seed=0)
    assert len(chats) == 100
    for scene, turns in zip(SCENES, chats):
        assert [t["role"] for t in turns] == ["user", "assistant"] and turns[0]["content"].startswith("<image> ")
        assert parse_caption(turns[1]["content"]) == scene.pairs()     # the caption is of its own scene
        encode_chat(turns, TOK, 2)                                     # and passes the template's checks


def test_instruction_mix_proportions_and_balanced_short_questions():
    mix = instruction_mix(WORLD, SCENES, seed=0)
    assert [i for i, _, _ in mix] == list(range(len(SCENES)))
    counts = Counter(kind for _, kind, _ in mix)
    for kind in KINDS:
        assert abs(counts[kind] / len(mix) - DEFAULT_WEIGHTS[kind]) < 0.04, (kind, counts)
    for i, kind, turns in mix:
        assert len(turns) == 2 if kind != "conversation" else len(turns) >= 4
        if kind == "short":
            assert len(TOK.split(turns[1]["content"])) in (2, 3)        # one answer ("top left" is two words) + "."
        encode_chat(turns, TOK, 1)
    # a type uniformly, then a question of it: on scenes of 2+ objects every type has its sixth (sd 0.010 here)
    many = [s for s in SCENES if len(s) >= 2]
    short = [_type_of(t[0]["content"].removeprefix("<image> "))
             for _, _, t in instruction_mix(WORLD, many, seed=1, weights={"short": 1.0})]
    shares = {t: n / len(short) for t, n in Counter(short).items()}
    assert set(shares) == set(QUESTION_TYPES) and all(abs(s - 1 / 6) < 0.04 for s in shares.values()), shares
    # drawn uniformly among all questions, count and relation would swamp the rest
    raw = Counter(t for s in many[:300] for _, _, t in WORLD.questions(s))
    assert raw["count"] / sum(raw.values()) > 0.25


def test_short_questions_pack_one_scenes_questions_into_one_chat():
    single = instruction_mix(WORLD, SCENES[:100], seed=4, weights={"short": 1.0})
    packed = instruction_mix(WORLD, SCENES[:100], seed=4, weights={"short": 1.0}, short_questions=5)
    for (i, _, one), (_, _, turns) in zip(single, packed):
        assert [t["role"] for t in turns] == ["user", "assistant"] * 5
        assert [t["content"].startswith("<image> ") for t in turns[::2]] == [True, False, False, False, False]
        assert i > 0 or turns[:2] == one        # the same draw starts both, where no earlier scene moved the rng
        truth = {q: a for k in range(100) for q, a, _ in WORLD.questions(SCENES[i], k)}
        for user, assistant in zip(turns[::2], turns[1::2]):
            assert truth[user["content"].removeprefix("<image> ")] + "." == assistant["content"]
        encode_chat(turns, TOK, 9)


def test_weights_choose_the_kinds():
    only_short = instruction_mix(WORLD, SCENES[:200], seed=0, weights={"short": 1.0})
    assert {kind for _, kind, _ in only_short} == {"short"}
    halves = Counter(k for _, k, _ in instruction_mix(WORLD, SCENES, 0, weights={"detailed": 3, "conversation": 3}))
    assert set(halves) == {"detailed", "conversation"} and abs(halves["detailed"] / len(SCENES) - 0.5) < 0.04


def test_no_held_out_pair_in_any_text():
    held = WORLD.holdout
    assert parse_caption("is there a red triangle?", strict=False) & held   # the check below can see one
    texts = [t["content"] for _, _, turns in instruction_mix(WORLD, SCENES, seed=0) for t in turns]
    texts += [t["content"] for turns in caption_chats(WORLD, SCENES, seed=0) for t in turns]
    absent = [x for x in texts if x.startswith("is there") or x.startswith("<image> is there")]
    assert len(absent) > 100   # questions about absent pairs were asked: the ones that could leak
    leaks = [x for x in texts if parse_caption(x, strict=False) & held]
    assert not leaks, leaks[:3]


def test_seeded():
    assert instruction_mix(WORLD, SCENES[:300], seed=3) == instruction_mix(WORLD, SCENES[:300], seed=3)
    assert instruction_mix(WORLD, SCENES[:300], seed=3) != instruction_mix(WORLD, SCENES[:300], seed=4)
    assert caption_chats(WORLD, SCENES[:50], seed=3) == caption_chats(WORLD, SCENES[:50], seed=3)
    assert caption_chats(WORLD, SCENES[:50], seed=3) != caption_chats(WORLD, SCENES[:50], seed=4)


def _u(content):
    return {"role": "user", "content": content}


def _a(content):
    return {"role": "assistant", "content": content}


OK = [_u("<image> describe the image."), _a("a red circle.")]
ITEM = encode_chat(OK, TOK, 2)
HELD = WORLD.scenes(1, "heldout")
EMPTY = torch.zeros(0, dtype=torch.long)

ROWS = [
    # the template
    (lambda: encode_chat([{"role": "system", "content": "hi"}] + OK, TOK, 1),
     ValueError, r"turn 0: unknown role 'system'"),
    (lambda: encode_chat([_a("<image> red."), _u("what?")], TOK, 1), ValueError, r"turn 0 must be the user's"),
    (lambda: encode_chat([OK[0], _u("what?"), _a("red.")], TOK, 1), ValueError, r"turn 1 must be the assistant's"),
    (lambda: encode_chat(OK[:1], TOK, 1), ValueError, r"last turn must be the assistant's, got the user's"),
    (lambda: encode_chat([_u("<image> <image> describe the image."), OK[1]], TOK, 1),
     ValueError, r"shows the image once.*got 2 \(in turns \[0, 0\]\)"),
    (lambda: encode_chat(OK + [_u("<image> what?"), _a("red.")], TOK, 1), ValueError, r"got 2 \(in turns \[0, 2\]\)"),
    (lambda: encode_chat([_u("describe the image."), OK[1]], TOK, 1), ValueError, r"shows the image once.*got none"),
    (lambda: encode_chat([_u("describe the image."), OK[1], _u("<image> what?"), _a("red.")], TOK, 1),
     ValueError, r"in the first user turn.*got 1 \(in turns \[2\]\)"),
    (lambda: encode_chat([], TOK, 1), ValueError, r"at least one turn, got an empty list"),
    (lambda: encode_chat([OK[0], _a("  ")], TOK, 1), ValueError, r"turn 1 \(assistant\) says nothing"),
    (lambda: encode_chat([OK[0], _a("red. <eos>")], TOK, 1), ValueError, r"turn 1 \(assistant\) holds '<eos>'"),
    (lambda: encode_chat([OK[0], _a("a crimson circle.")], TOK, 1),
     ValueError, r"turn 1 \(assistant\): word 'crimson' is not in the vocabulary"),
    (lambda: encode_chat("user: hi", TOK, 1), TypeError, r"turns must be a list of .*dicts, got str"),
    (lambda: encode_chat([("user", "<image> hi")], TOK, 1), TypeError, r"turn 0 must be a dict with str 'role'"),
    (lambda: encode_chat(OK, TOK, 0), ValueError, r"n_image_tokens must be a positive int, got 0"),
    (lambda: encode_chat(OK, TOK, -3), ValueError, r"n_image_tokens must be a positive int, got -3"),
    (lambda: encode_chat(OK, TOK, 2.0), ValueError, r"n_image_tokens must be a positive int, got 2\.0"),
    (lambda: encode_chat(OK, TOK, True), ValueError, r"n_image_tokens must be a positive int, got True"),
    (lambda: encode_chat(OK, TOK, 2**30), ValueError, r"n_image_tokens must be at most 1048576"),
    (lambda: encode_chat(OK, "tokenizer", 1), TypeError, r"tokenizer must be a WordTokenizer, got str"),
    (lambda: format_chat(OK, add_generation_prompt="yes"), TypeError, r"add_generation_prompt must be True or False"),
    (lambda: format_chat(OK, add_generation_prompt=True), ValueError, r"last turn must be the user's"),
    # prompts
    (lambda: prompt_ids(OK[:1], "what?", TOK, 1), ValueError, r"history must hold complete .* got 1 turns"),
    (lambda: prompt_ids([], "what color is it?", TOK, 1), ValueError, r"shows the image once.*got none"),
    (lambda: prompt_ids(OK, "<image> what?", TOK, 1), ValueError, r"got 2 \(in turns \[0, 2\]\)"),
    (lambda: prompt_ids(OK, 3, TOK, 1), TypeError, r"message must be a str, got int"),
    (lambda: prompt_ids(None, "<image> what?", TOK, 1), TypeError, r"history must be a list of turns .*got NoneType"),
    (lambda: prompt_ids([], "<image> hello", TOK, 1), ValueError, r"turn 0 \(user\): word 'hello' is not in"),
    # batches
    (lambda: collate_chats([], 0), ValueError, r"items must be a non-empty list of encode_chat outputs"),
    (lambda: collate_chats([ITEM], -1), ValueError, r"pad_id must be an int >= 0, got -1"),
    (lambda: collate_chats([ITEM, {"input_ids": ITEM["input_ids"]}], 0),
     ValueError, r"item 1 must be a dict with 'input_ids' and 'labels'"),
    (lambda: collate_chats([{"input_ids": ITEM["input_ids"].float(), "labels": ITEM["labels"]}], 0),
     ValueError, r"item 0 input_ids must be a non-empty LongTensor \(T,\), got torch.float32"),
    (lambda: collate_chats([{"input_ids": ITEM["input_ids"], "labels": ITEM["labels"][:-1]}], 0),
     ValueError, r"item 0: input_ids \(\d+,\) and labels \(\d+,\) differ in length"),
    (lambda: collate_chats([{"input_ids": EMPTY, "labels": EMPTY}], 0), ValueError, r"non-empty LongTensor"),
    (lambda: label_mask_table({"input_ids": ITEM["input_ids"]}, TOK), ValueError, r"'input_ids' and 'labels'"),
    (lambda: label_mask_table({"input_ids": ITEM["input_ids"] + 1000, "labels": ITEM["labels"]}, TOK),
     ValueError, r"token ids must be in \[0, \d+\)"),
    # data
    (lambda: caption_chats("world", SCENES[:2], 0), TypeError, r"world must be a ShapesWorld, got str"),
    (lambda: caption_chats(WORLD, [], 0), ValueError, r"at least one scene, got an empty list"),
    (lambda: caption_chats(WORLD, SCENES[0], 0), TypeError, r"scenes must be a list of Scenes, got Scene"),
    (lambda: caption_chats(WORLD, SCENES[:2], -1), ValueError, r"seed must be an int >= 0, got -1"),
    (lambda: instruction_mix(WORLD, SCENES[:2] + HELD, 0),
     ValueError, r"scene 2 holds the held-out pair\(s\) \[\('(red|green|blue|yellow)'"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, weights={"long": 1.0}),
     ValueError, r"unknown kind in weights 'long'"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, weights={"short": -1.0}),
     ValueError, r"weights\['short'\] must be >= 0"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, weights={"short": float("nan")}),
     ValueError, r"weights\['short'\] must be >= 0.0, got nan"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, weights={"short": "1"}),
     TypeError, r"must be a real number, got str"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, weights={"short": 0, "detailed": 0}),
     ValueError, r"some kind a positive weight"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, weights=[0.5, 0.2, 0.3]), TypeError, r"weights must be a dict"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, short_questions=0), ValueError, r"short_questions .*got 0"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, short_questions=10**6), ValueError, r"short_questions .*1000000"),
    (lambda: instruction_mix(WORLD, SCENES[:2], 0, short_questions=2.0),
     ValueError, r"short_questions must be a positive int, got 2.0"),
]


@pytest.mark.parametrize("call, error, message", ROWS)
def test_bad_input_fails_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()
