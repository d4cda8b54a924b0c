"""Chapter 11's checkers accept a right answer and reject the usual wrong ones, naming the mistake; the right answers
agree with vitlib.instruct (encode_chat's labels, format_chat) and vitlib.vlm (splice, VLMConfig.n_image_tokens).
The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import re

import pytest
import torch

from vitlib.constants import IGNORE_INDEX
from vitlib.data import ShapesWorld
from vitlib.exercises import ch11
from vitlib.instruct import encode_chat, format_chat, instruction_mix
from vitlib.vlm import VLMConfig, splice as vlm_splice

WORLD = ShapesWorld(seed=0)
TOK = WORLD.tokenizer
CHATS = [turns for _, _, turns in instruction_mix(WORLD, WORLD.scenes(40), seed=3)]   # short, detailed, multi-turn


def learn_after(input_ids, start_id, stop_id, offset=2, with_stop=True, ids_kept=None):
    """Labels: the tokens from `offset` after each start_id up to the next stop_id (kept if with_stop)."""
    labels, speaking, since = torch.full_like(input_ids, IGNORE_INDEX), False, None
    for t, token in enumerate(input_ids.tolist()):
        if since is not None and t - since == offset:
            speaking = True
        if token == stop_id and speaking:
            speaking, since = False, None
            if with_stop:
                labels[t] = token
            continue
        if token == start_id:
            since, speaking = t, offset == 0
        if speaking or (ids_kept is not None and token in ids_kept):
            labels[t] = token
    return labels


def label_mask(input_ids, assistant_id, eos_id, user_id):
    labels, speaking = torch.full_like(input_ids, IGNORE_INDEX), False
    for t, token in enumerate(input_ids.tolist()):
        if speaking:
            labels[t] = token
        if token == eos_id:
            speaking = False
        if t and input_ids[t - 1] == assistant_id:   # the ':' after 'assistant': the answer starts next
            speaking = True
    return labels


def splice(inputs_embeds, image_features, image_mask):
    n = (image_mask.cumsum(dim=1) - 1).clamp(min=0)                               # (B, T): which feature goes there
    gathered = image_features.gather(1, n[..., None].expand(-1, -1, image_features.shape[-1]))   # (B, T, d)
    return torch.where(image_mask[..., None], gathered, inputs_embeds)


def chat_text(turns):
    parts = ["<bos>"]
    for turn in turns:
        parts += [turn["role"], ":", turn["content"]] + (["<eos>"] if turn["role"] == "assistant" else [])
    return re.sub(r"\s+([.,?:;])", r"\1", " ".join(parts))


def image_token_count(image_size, patch_size, select, pool):
    if pool == "mean":
        return 1
    side = image_size // patch_size
    return side * side + int(select == "full")


SOLUTIONS = {ch11.check_label_mask: label_mask, ch11.check_splice: splice, ch11.check_chat_text: chat_text,
             ch11.check_image_token_count: image_token_count}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def test_label_mask_is_encode_chats_labels():
    w = TOK.token_to_id
    for turns in CHATS:
        for n in (1, 3):
            encoded = encode_chat(turns, TOK, n)
            labels = label_mask(encoded["input_ids"], w["assistant"], TOK.eos_id, w["user"])
            assert torch.equal(labels, encoded["labels"])
            assert torch.equal(learn_after(encoded["input_ids"], w["assistant"], TOK.eos_id), encoded["labels"])


def test_splice_is_vlm_splice():
    g = torch.Generator().manual_seed(0)
    B, T, N, d = 4, 12, 5, 8
    image_mask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        image_mask[b, torch.randperm(T, generator=g)[:N]] = True                 # N scattered positions per row
    inputs_embeds, image_features = torch.randn(B, T, d, generator=g), torch.randn(B, N, d, generator=g)
    assert torch.equal(splice(inputs_embeds, image_features, image_mask),
                       vlm_splice(inputs_embeds, image_features, image_mask))


def test_chat_text_is_format_chat():
    kinds = {kind for _, kind, _ in instruction_mix(WORLD, WORLD.scenes(40), seed=3)}
    assert kinds == {"short", "detailed", "conversation"}
    for turns in CHATS:
        assert chat_text(turns) == format_chat(turns)


def test_image_token_count_is_vlm_configs():
    for image_size, patch_size in ((24, 8), (32, 8), (336, 14), (224, 14), (224, 16)):
        for select in ("patch", "full"):
            for pool in ("none", "mean"):
                config = VLMConfig(vocab_size=16, max_len=600, d_model=8, n_layers=1, n_heads=1,
                                   image_size=image_size, patch_size=patch_size, feature_select=select,
                                   image_pool=pool)
                assert image_token_count(image_size, patch_size, select, pool) == config.n_image_tokens
    assert image_token_count(336, 14, "patch", "none") == 576 and image_token_count(24, 8, "patch", "none") == 9


def test_chat_text_feedback_says_where_the_texts_part(capsys):
    assert not ch11.check_chat_text(lambda turns: chat_text(turns).replace("red.", "blue."))
    out = capsys.readouterr().out
    assert "the texts differ from character 57: expected 'red. <eos>', got 'blue. <eos>'" in out
    assert "likely mistake" not in out


def side(image_size, patch_size):
    return image_size // patch_size


A, E, U = TOK.token_to_id["assistant"], TOK.eos_id, TOK.token_to_id["user"]
WRONG = [
    (ch11.check_label_mask, lambda ids, a, e, u: ids.clone(), "every token labelled"),
    (ch11.check_label_mask, lambda ids, a, e, u: learn_after(ids, a, e, offset=1), "the ':' after 'assistant'"),
    (ch11.check_label_mask, lambda ids, a, e, u: learn_after(ids, a, e, offset=0), "'assistant :' labelled"),
    (ch11.check_label_mask, lambda ids, a, e, u: learn_after(ids, a, e, with_stop=False), "<eos> after an answer"),
    (ch11.check_label_mask, lambda ids, a, e, u: learn_after(ids, a, e, ids_kept={TOK.image_id}),
     "image tokens labelled"),
    (ch11.check_label_mask, lambda ids, a, e, u: learn_after(ids, u, a, with_stop=False), "user's questions"),
    (ch11.check_label_mask, lambda ids, a, e, u: label_mask(ids, a, e, u).roll(-1).index_fill(0, torch.tensor(
        [len(ids) - 1]), IGNORE_INDEX), "shifted left by one"),
    (ch11.check_splice, lambda x, h, m: splice(x, h, m) + x * m[..., None], "added"),
    (ch11.check_splice, lambda x, h, m: splice(x, h.flip(1), m), "reverse order"),
    (ch11.check_splice, lambda x, h, m: splice(x, h[[0] * len(h)], m), "row 0's features"),
    (ch11.check_splice, lambda x, h, m: torch.cat([h, x[:, h.shape[1]:]], dim=1), "the first N positions"),
    (ch11.check_splice, lambda x, h, m: torch.cat([h, x], dim=1), "concatenated in front"),
    (ch11.check_chat_text, lambda turns: chat_text(turns).replace(" <eos>", ""), "no <eos> after an answer"),
    (ch11.check_chat_text, lambda turns: chat_text(turns).replace(" <eos>", "") + " <eos>", "only after the last"),
    (ch11.check_chat_text, lambda turns: chat_text(turns).removeprefix("<bos> "), "<bos> missing"),
    (ch11.check_chat_text, lambda turns: re.sub(r"\b(user|assistant):", lambda m: m[0].capitalize(),
                                                chat_text(turns)), "roles capitalised"),
    (ch11.check_chat_text, lambda turns: re.sub(r"\b(user|assistant):", r"\1", chat_text(turns)), "without ':'"),
    (ch11.check_chat_text, lambda turns: re.sub(r"\b(user|assistant):", r"\1 :", chat_text(turns)),
     "a space before ':'"),
    (ch11.check_chat_text, lambda turns: chat_text(turns).replace("<image> ", "").replace(" <image>", ""),
     "<image> word dropped"),
    (ch11.check_image_token_count, lambda s, p, sel, pool: 1 if pool == "mean" else side(s, p) ** 2 + 1,
     "class token counted"),
    (ch11.check_image_token_count, lambda s, p, sel, pool: 1 if pool == "mean" else side(s, p) + (sel == "full"),
     "not squared"),
    (ch11.check_image_token_count, lambda s, p, sel, pool: 1 if pool == "mean" else s * s // p + (sel == "full"),
     "image_size ** 2 / patch_size"),
    (ch11.check_image_token_count, lambda s, p, sel, pool: side(s, p) ** 2 + (sel == "full"), "pooling ignored"),
]


@pytest.mark.parametrize("checker, wrong, mistake", WRONG, ids=[f"{c.__name__}-{m}" for c, _, m in WRONG])
def test_checkers_name_the_mistake(checker, wrong, mistake, capsys):
    assert not checker(wrong)
    out = capsys.readouterr().out
    print(out)
    assert re.search(rf"likely mistake: [^\n]*{re.escape(mistake)}", out), out


@pytest.mark.parametrize("checker", SOLUTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [None, 3, "label_mask"], ids=["None", "int", "str"])
def test_checkers_want_a_function(checker, bad):
    with pytest.raises(TypeError, match="check expects the function to test"):
        checker(bad)
