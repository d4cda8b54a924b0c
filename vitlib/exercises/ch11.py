"""Checkers for chapter 11's exercises: the label mask of the chat template, splicing image features into the
prompt, the template as text, and the number of image tokens the LM reads. Each compares your answer with
``vitlib.instruct`` (``encode_chat``'s labels, ``format_chat``) and ``vitlib.vlm`` (``splice``,
``VLMConfig.n_image_tokens``) and names the usual mistakes.

    <bos> user : u_1 assistant : a_1 <eos> user : u_2 assistant : a_2 <eos> ...
    labels_t = x_t on the answers a_i and the <eos> after each, IGNORE_INDEX elsewhere
    x_t = E[w_t], except at the N <image> positions of each row, which take h_1 .. h_N in order
    N = (image_size / patch_size)^2 (+ 1 with the class token, "full"), or 1 when the features are mean-pooled
"""

from __future__ import annotations

import torch

from ..constants import IGNORE_INDEX
from ..data import ShapesWorld
from ..instruct import caption_chats, encode_chat
from . import Case, check, function_name, mismatch


def _differing(expected, mistakes: dict) -> dict:
    """The mistakes whose answer differs from the right one on this case (the others cannot be told apart)."""
    return {what: wrong for what, wrong in mistakes.items() if mismatch(wrong, expected) is not None}


# ----- the label mask ------------------------------------------------------------------------------------------
def _spans(ids: torch.Tensor, start: int, stop: int, skip: int, with_stop: bool) -> torch.Tensor:
    """(T,) bool: True from `skip` tokens after each `start` id up to the next `stop` id (itself if `with_stop`)."""
    ids, inside = ids.tolist(), torch.zeros(len(ids), dtype=torch.bool)
    for p in (p for p, i in enumerate(ids) if i == start):
        t = p + skip
        while t < len(ids) and ids[t] != stop:
            inside[t], t = True, t + 1
        inside[t:t + 1] = with_stop                                             # the stop itself, if there is one
    return inside


def _labels(ids: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    return ids.where(learned, IGNORE_INDEX)                                     # (T,)


def check_label_mask(label_mask) -> bool:
    """``label_mask(input_ids, assistant_id, eos_id, user_id)``: the ids (T,) of one conversation in the template
    ``<bos> user : u_1 assistant : a_1 <eos> user : ...`` -> its labels (T,) int64, as ``encode_chat`` writes
    them: x_t on each answer's tokens (those after "assistant :") and the <eos> that closes it, IGNORE_INDEX (-100)
    everywhere else. The ids come from real ShapesWorld conversations, "<image>" expanded to N image ids."""
    world = ShapesWorld(seed=0)
    tok, scenes = world.tokenizer, world.scenes(3)
    w = tok.token_to_id
    chats = [([{"role": "user", "content": "<image> what color is the circle?"}, {"role": "assistant", "content":
               "red."}, {"role": "user", "content": "how many objects are there?"},
               {"role": "assistant", "content": "one."}], 2, "two questions, N=2"),
             (caption_chats(world, scenes[:1], seed=0)[0], 9, "a description, N=9")]
    chats += [(world.conversation(scene, 110 + i), n, f"a ShapesWorld conversation, N={n}")
              for i, (scene, n) in enumerate(zip(scenes, (1, 4, 9)))]
    assistant, eos, user = w["assistant"], tok.eos_id, w["user"]
    cases = []
    for turns, n, label in chats:
        encoded = encode_chat(turns, tok, n)
        ids, expected = encoded["input_ids"], encoded["labels"]                 # (T,) each
        answers = _spans(ids, assistant, eos, skip=2, with_stop=True)
        cases.append(Case(args=(ids, assistant, eos, user), expected=expected, label=label,
                          mistakes=_differing(expected, {
                              "every token labelled: that is plain LM training, the model would learn to write the "
                              "questions and the image ids too": ids.clone(),
                              "the ':' after 'assistant' labelled: the answer starts after 'assistant :'":
                                  _labels(ids, _spans(ids, assistant, eos, skip=1, with_stop=True)),
                              "'assistant :' labelled: the role word and ':' are the template's, not the answer":
                                  _labels(ids, _spans(ids, assistant, eos, skip=0, with_stop=True)),
                              "the <eos> after an answer left out: without it the model never learns to stop":
                                  _labels(ids, _spans(ids, assistant, eos, skip=2, with_stop=False)),
                              "the image tokens labelled: the LM cannot predict the image's ids, they are features":
                                  _labels(ids, answers | (ids == tok.image_id)),
                              "the user's questions labelled instead of the answers: the tokens after "
                              "'assistant :' are learned":
                                  _labels(ids, _spans(ids, user, assistant, skip=2, with_stop=False)),
                              "labels shifted left by one: they stand at their own token, the loss shifts them":
                                  torch.cat([expected[1:], expected.new_full((1,), IGNORE_INDEX)])})))
    return check(label_mask, cases, name=function_name(label_mask, "label_mask"))


# ----- the splice ----------------------------------------------------------------------------------------------
def _splice(inputs_embeds: torch.Tensor, image_features: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
    out = inputs_embeds.clone()
    out[image_mask] = image_features.flatten(0, 1)          # (B N, d) into the masked positions, row-major
    return out


def check_splice(splice) -> bool:
    """``splice(inputs_embeds, image_features, image_mask)``: the token embeddings (B, T, d), each row's N image
    features (B, N, d) and the <image> positions (B, T) bool (N True per row) -> (B, T, d): the embeddings with the
    n-th True position of row b replaced by image_features[b, n], as ``vitlib.vlm.splice``."""
    layouts = [(3, 10, [[3, 4, 5], [3, 4, 5]], "after '<bos> user :' in both rows"),
               (4, 9, [[1, 2, 3, 4], [4, 5, 6, 7], [0, 1, 2, 3]], "at another place in each row"),
               (2, 7, [[0, 3], [2, 6]], "positions not next to each other"),
               (1, 5, [[0], [2]], "one image token per row")]
    cases = []
    for i, (N, T, positions, label) in enumerate(layouts):
        g, B, d = torch.Generator().manual_seed(130 + i), len(positions), 4
        inputs_embeds = torch.randn(B, T, d, generator=g)
        image_features = torch.randn(B, N, d, generator=g)
        image_mask = torch.zeros(B, T, dtype=torch.bool)
        for b, p in enumerate(positions):
            image_mask[b, p] = True
        expected = _splice(inputs_embeds, image_features, image_mask)
        first_n = inputs_embeds.clone()
        first_n[:, :N] = image_features
        cases.append(Case(args=(inputs_embeds, image_features, image_mask), expected=expected,
                          label=f"B={B}, T={T}, N={N}, {label}", mistakes=_differing(expected, {
                              "features added to the <image> embeddings: they replace them": inputs_embeds
                              + _splice(torch.zeros_like(inputs_embeds), image_features, image_mask),
                              "features in reverse order: the n-th <image> position takes the n-th feature":
                                  _splice(inputs_embeds, image_features.flip(1), image_mask),
                              "every row given row 0's features: each prompt reads its own image":
                                  _splice(inputs_embeds, image_features[:1].expand_as(image_features), image_mask),
                              "the mask ignored, the features written at the first N positions": first_n,
                              "features concatenated in front: the <image> ids already hold their places, so the "
                              "length stays T": torch.cat([image_features, inputs_embeds], dim=1)})))
    return check(splice, cases, name=function_name(splice, "splice"))


# ----- the template as text ------------------------------------------------------------------------------------
def _chat_text(turns, roles=("user:", "assistant:"), bos="<bos>", eos="every", image=True) -> str:
    words, last = [bos] if bos else [], len(turns) - 1
    for i, turn in enumerate(turns):
        words.append(roles[turn["role"] == "assistant"])
        words += [w for w in turn["content"].split() if image or w != "<image>"]
        if turn["role"] == "assistant" and (eos == "every" or eos == "last" and i == last):
            words.append("<eos>")
    return " ".join(words)


def _compare_text(got, expected) -> bool:
    """mismatch's type check, then where the texts part (a long text's repr is cut in the feedback)."""
    why = mismatch(got, expected)
    if why == "values differ":
        got = str.__str__(got)
        i = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        why = f"the texts differ from character {i}: expected {expected[i:i + 24]!r}, got {got[i:i + 24]!r}"
    if why is not None:
        raise AssertionError(why)
    return True


def check_chat_text(chat_text) -> bool:
    """``chat_text(turns)``: a conversation, a list of {"role": "user" | "assistant", "content": str} dicts, ->
    the template as ``vitlib.instruct.format_chat`` writes it, i.e. as the tokenizer decodes its ids: words one
    space apart, none before ". , ? : ;". Each turn starts with its role and ":", each answer ends with <eos>:
    "<bos> user: <image> what color is the circle? assistant: red. <eos> user: ..."."""
    world = ShapesWorld(seed=0)
    scenes = world.scenes(3)
    chats = [([{"role": "user", "content": "<image> what color is the circle?"},
               {"role": "assistant", "content": "red."}], "one question"),
             ([{"role": "user", "content": "how many objects are there? <image>"},
               {"role": "assistant", "content": "two."}], "<image> after the question"),
             (caption_chats(world, scenes[:1], seed=1)[0], "a description")]
    chats += [(turns, f"a ShapesWorld conversation of {len(turns)} turns")
              for turns in (world.conversation(scene, 120 + i) for i, scene in enumerate(scenes[1:]))]
    cases = []
    for turns, label in chats:
        expected = _chat_text(turns)
        cases.append(Case(args=(turns,), expected=expected, label=label, mistakes=_differing(expected, {
            "no <eos> after an answer: the model learns to stop from it": _chat_text(turns, eos="never"),
            "<eos> only after the last answer: every answer ends with one": _chat_text(turns, eos="last"),
            "<bos> missing: the template opens with it": _chat_text(turns, bos=None),
            "roles capitalised: the template writes 'user:' and 'assistant:'":
                _chat_text(turns, roles=("User:", "Assistant:")),
            "roles without ':': each role is followed by ':'": _chat_text(turns, roles=("user", "assistant")),
            "a space before ':': the text reads as the tokenizer decodes it, no space before punctuation":
                _chat_text(turns, roles=("user :", "assistant :")),
            "the <image> word dropped: it marks where the image tokens go": _chat_text(turns, image=False)})))
    return check(chat_text, cases, name=function_name(chat_text, "chat_text"), compare=_compare_text)


# ----- the number of image tokens ------------------------------------------------------------------------------
def _image_tokens(image_size, patch_size, select, pool, class_token=None, per_side=None, pooled=True) -> int:
    """N; the keyword arguments give the mistakes' answers (class token always or never, another patch count)."""
    S = (image_size // patch_size) ** 2 if per_side is None else per_side
    return 1 if pool == "mean" and pooled else S + (select == "full" if class_token is None else class_token)


def check_image_token_count(image_token_count) -> bool:
    """``image_token_count(image_size, patch_size, select, pool)`` -> N (int), the image tokens the LM reads, as
    ``vitlib.vlm.VLMConfig.n_image_tokens``: S = (image_size / patch_size)^2 patch features, + 1 (the class token)
    with select "full", none with "patch"; a single token with pool "mean" ("none" keeps them all)."""
    settings = [(336, 14, "patch", "none", "LLaVA-1.5: CLIP ViT-L/14 at 336 px"),
                (24, 8, "patch", "none", "the course's tower"), (24, 8, "full", "none", "the course's, with class"),
                (224, 14, "full", "none", "CLIP ViT-L/14 at 224 px, with class"),
                (32, 8, "patch", "mean", "pooled"), (24, 8, "full", "mean", "pooled, with class")]
    cases = []
    for image_size, patch_size, select, pool, label in settings:
        args = (image_size, patch_size, select, pool)
        expected = _image_tokens(*args)
        cases.append(Case(args=args, expected=expected, label=label, mistakes=_differing(expected, {
            "the class token counted with 'patch': 'patch' drops it, only 'full' keeps it":
                _image_tokens(*args, class_token=True),
            "the patches per side not squared: a side of image_size / patch_size patches gives its square":
                _image_tokens(*args, per_side=image_size // patch_size),
            "image_size ** 2 / patch_size: both sides are divided, S = (image_size / patch_size) ** 2":
                _image_tokens(*args, per_side=image_size ** 2 // patch_size),
            "pooling ignored: pool 'mean' averages the features into one token": _image_tokens(*args, pooled=False)})))
    return check(image_token_count, cases, name=function_name(image_token_count, "image_token_count"))
