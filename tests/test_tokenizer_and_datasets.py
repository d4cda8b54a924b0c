"""The word tokenizer round-trips all of ShapesWorld's language; datasets give padded, aligned batches."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vitlib.data import IGNORE_INDEX, ConversationDataset, ImageCaptionDataset, ShapesWorld, VQADataset, chat_ids


@pytest.fixture(scope="module")
def world():
    return ShapesWorld(seed=0)


def test_special_token_ids_are_fixed(world):
    tok = world.tokenizer
    assert tok.vocab[:5] == ("<pad>", "<bos>", "<unk>", "<eos>", "<image>")
    assert (tok.pad_id, tok.bos_id, tok.unk_id, tok.eos_id, tok.image_id) == (0, 1, 2, 3, 4)
    assert tok.eos_id != 2, "transformers' CLIP treats eos_token_id == 2 as legacy and would pool elsewhere"


def test_all_generated_language_round_trips(world):
    tok = world.tokenizer
    texts = []
    for split in ("train", "heldout"):
        for s in world.scenes(200, split):
            texts += [world.caption(s), world.instruction(s)]
            texts += [q for q, _, _ in world.questions(s)] + [a for _, a, _ in world.questions(s)]
            texts += [t["content"] for t in world.conversation(s)]
    for text in texts:
        ids = tok.encode(text)
        assert tok.unk_id not in ids
        assert tok.decode(ids) == text, text


def test_encode_adds_bos_eos_and_decode_skips_them(world):
    tok = world.tokenizer
    ids = tok.encode("a red circle.", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and len(ids) == 6
    assert tok.decode(ids) == "a red circle."
    assert tok.decode(torch.tensor(ids), skip_special_tokens=False) == "<bos> a red circle. <eos>"


def test_unknown_words(world):
    tok = world.tokenizer
    with pytest.raises(ValueError, match="'dog' is not in the vocabulary"):
        tok.encode("a red dog")
    assert tok.encode("a red dog", unknown="unk")[-1] == tok.unk_id
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([10_000])


def test_batch_padding_right_and_left(world):
    tok = world.tokenizer
    batch = tok(["a red circle.", "there is a small blue square at the top left."])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask[0].sum() == 6 and (ids[0][~mask[0]] == tok.pad_id).all()
    left, lmask = tok.pad([[5, 6], [5, 6, 7, 8]], side="left")
    assert left.tolist() == [[0, 0, 5, 6], [5, 6, 7, 8]] and lmask[0].tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="empty batch"):
        tok.pad([])


def test_caption_dataset_batches(world):
    ds = ImageCaptionDataset(world, 64, captions_per_scene=2)
    assert len(ds) == 128
    batch = next(iter(DataLoader(ds, batch_size=16, collate_fn=ds.collate)))
    assert batch["image"].shape == (16, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["input_ids"].shape[0] == 16 and (batch["input_ids"][:, 0] == world.tokenizer.bos_id).all()
    for ids, mask, text, i in zip(batch["input_ids"], batch["attention_mask"], batch["caption"], batch["scene_index"]):
        assert world.tokenizer.decode(ids[mask]) == text
        assert world.parse_caption(text) == ds.scenes[i].pairs()


def test_vqa_dataset_filters_types_and_aligns_answers(world):
    ds = VQADataset(world, 40, types=("count", "exists"))
    assert {it[3] for it in ds.items} == {"count", "exists"}
    batch = ds.collate([ds[i] for i in range(8)])
    assert batch["image"].shape == (8, 3, 32, 32) and len(batch["answer"]) == 8
    for ids, a in zip(batch["answer_ids"], batch["answer"]):
        assert world.tokenizer.decode(ids) == a
    with pytest.raises(ValueError, match="unknown question type 'colour'; allowed: color, shape"):
        VQADataset(world, 5, types=("colour",))
    with pytest.raises(ValueError, match="no questions of types \\['relation'\\]"):  # one object: no relations
        VQADataset(ShapesWorld(max_objects=1), 5, types="relation")


def test_vqa_types_are_names_not_substrings(world):
    """A str used to be searched for substrings, so "colorcount" kept colour and count questions."""
    one = VQADataset(world, 10, types="count")
    assert one.items == VQADataset(world, 10, types=("count",)).items == VQADataset(world, 10, types={"count"}).items
    assert {t for *_, t in VQADataset(world, 10, types=iter(["shape", "exists"])).items} == {"shape", "exists"}
    for bad in ("colorcount", "count ", "Count", ["count", "colors"]):
        with pytest.raises(ValueError, match="unknown question type"):
            VQADataset(world, 10, types=bad)


def test_conversation_labels_cover_only_the_assistant(world):
    tok = world.tokenizer
    turns = [{"role": "user", "content": "<image> describe the image."},
             {"role": "assistant", "content": "a red circle."},
             {"role": "user", "content": "is there a red circle?"},
             {"role": "assistant", "content": "yes."}]
    ids, labels = chat_ids(tok, turns)
    assert len(ids) == len(labels)
    assert tok.decode([i for i, l in zip(ids, labels) if l != IGNORE_INDEX], skip_special_tokens=False) == \
        "a red circle. <eos> yes. <eos>"
    assert tok.decode(ids) == "user: <image> describe the image. assistant: a red circle. user: is there a red circle? assistant: yes."
    ds = ConversationDataset(world, 16)
    batch = ds.collate([ds[i] for i in range(4)])
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][~batch["attention_mask"]] == IGNORE_INDEX).all()


def test_dataset_bad_input(world):
    with pytest.raises(ValueError, match="n must be a positive int"):
        ImageCaptionDataset(world, 0)
    with pytest.raises(TypeError, match="expected a ShapesWorld"):
        ImageCaptionDataset("world", 4)
    with pytest.raises(ValueError, match="unknown role 'system'"):
        chat_ids(world.tokenizer, [{"role": "system", "content": "hi"}])


def test_pad_takes_int_rows_of_any_kind_and_refuses_others(world):
    tok = world.tokenizer
    rows = [[5, 6], (7,), torch.tensor([8, 9, 10]), np.array([11], np.int32), [IGNORE_INDEX, 5]]
    ids, mask = tok.pad(rows)
    assert ids.tolist() == [[5, 6, 0], [7, 0, 0], [8, 9, 10], [11, 0, 0], [IGNORE_INDEX, 5, 0]]
    assert mask.sum(1).tolist() == [2, 1, 3, 1, 2]
    for bad in ([[1.5]], [torch.tensor([1.0])], [[True, False]], [["a"]], [[[1, 2]]]):
        with pytest.raises(TypeError, match="int ids"):   # a float used to be truncated to an int in silence
            tok.pad(bad)


def test_dataset_items_by_any_int_index(world):
    ds = ImageCaptionDataset(world, 3)
    assert ds[np.int64(1)]["caption"] == ds[1]["caption"] == ds[torch.tensor(1)]["caption"] == ds[-2]["caption"]
    with pytest.raises(IndexError, match="index must be an int in \\[-3, 3\\)"):
        ds[3]
