"""torch Datasets over ShapesWorld: image-caption pairs, visual questions, conversations (chapter 00).

Images are rendered once when the dataset is built (that is fast) and kept as uint8; items are float tensors
(3, H, W) in [0, 1]. Each dataset has a ``collate`` that pads token ids, for ``DataLoader(..., collate_fn=ds.collate)``.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Iterable

import torch
from torch.utils.data import Dataset

from .language import QUESTION_TYPES
from .render import check_bytes, to_tensor
from .shapes import MAX_SCENES, ShapesWorld
from .tokenizer import WordTokenizer
from ..constants import IGNORE_INDEX



class _WorldDataset(Dataset):
    def __init__(self, world: ShapesWorld, n: int, split: str, seed: int):
        if not isinstance(world, ShapesWorld):
            raise TypeError(f"expected a ShapesWorld, got {type(world).__name__}")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SCENES:
            raise ValueError(f"n must be a positive int (number of scenes), at most {MAX_SCENES:,} (MAX_SCENES), "
                             f"got {n!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        H = world.image_size
        check_bytes(n * 3 * H * H * 4, f"a dataset of {n} scenes of {H}x{H} (float32 images)")  # before drawing them
        self.world, self.split, self.tokenizer = world, split, world.tokenizer
        self.scenes = world.scenes(n, split)
        self.images = to_tensor(world.render_batch(self.scenes))  # (N, 3, H, W) float in [0, 1]
        self.rng = random.Random(seed)

    def _check_index(self, idx) -> int:
        try:  # ints, numpy ints and 0-d int tensors; not bools
            i = None if isinstance(idx, bool) else operator.index(idx)
        except TypeError:
            i = None
        if i is None or not -len(self) <= i < len(self):
            raise IndexError(f"index must be an int in [{-len(self)}, {len(self)}) for this dataset, got {idx!r}")
        return i

    def _check_items(self, items) -> None:
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(it, dict) for it in items):
            raise ValueError(f"collate expects a non-empty list of items (dicts) of this dataset, got {items!r:.80}")

    def _pad(self, key: str, items: list[dict], pad_value: int) -> torch.Tensor:
        ids, mask = self.tokenizer.pad([it[key].tolist() for it in items])
        return ids.masked_fill(~mask, pad_value)


class ImageCaptionDataset(_WorldDataset):
    """(image, caption) pairs; ``captions_per_scene`` different captions of each scene."""

    def __init__(self, world: ShapesWorld, n: int, split: str = "train", captions_per_scene: int = 1, seed: int = 0):
        if not isinstance(captions_per_scene, int) or isinstance(captions_per_scene, bool) or captions_per_scene < 1 \
                or isinstance(n, int) and n * captions_per_scene > MAX_SCENES:
            raise ValueError(f"captions_per_scene must be a positive int with n * captions_per_scene at most "
                             f"{MAX_SCENES:,} (MAX_SCENES), got {captions_per_scene!r} for n={n!r}")
        super().__init__(world, n, split, seed)
        self.captions = [[world.caption(s, self.rng) for _ in range(captions_per_scene)] for s in self.scenes]
        self.index = [(i, j) for i in range(n) for j in range(captions_per_scene)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> dict:
        i, j = self.index[self._check_index(idx)]
        text = self.captions[i][j]
        ids = torch.tensor(self.tokenizer.encode(text, add_bos=True, add_eos=True))
        return {"image": self.images[i], "input_ids": ids, "caption": text, "scene_index": i}

    def collate(self, items: list[dict]) -> dict:
        self._check_items(items)
        ids, mask = self.tokenizer.pad([it["input_ids"].tolist() for it in items])
        return {"image": torch.stack([it["image"] for it in items]), "input_ids": ids, "attention_mask": mask,
                "caption": [it["caption"] for it in items],
                "scene_index": torch.tensor([it["scene_index"] for it in items])}


class VQADataset(_WorldDataset):
    """(image, question, answer, type) for every question ``world.questions`` asks about each scene."""

    def __init__(self, world: ShapesWorld, n: int, split: str = "train", types=None, seed: int = 0):
        types = _question_types(types)
        super().__init__(world, n, split, seed)
        self.items = [(i, q, a, t) for i, s in enumerate(self.scenes) for q, a, t in world.questions(s, self.rng)
                      if types is None or t in types]
        if not self.items:
            raise ValueError(f"no questions of types {sorted(types)} about these {n} scenes (a relation needs two "
                             f"objects)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict:
        i, q, a, t = self.items[self._check_index(idx)]
        return {"image": self.images[i], "question": q, "answer": a, "type": t, "scene_index": i,
                "question_ids": torch.tensor(self.tokenizer.encode(q, add_bos=True)),
                "answer_ids": torch.tensor(self.tokenizer.encode(a, add_eos=True))}

    def collate(self, items: list[dict]) -> dict:
        self._check_items(items)
        q_ids, q_mask = self.tokenizer.pad([it["question_ids"].tolist() for it in items])
        return {"image": torch.stack([it["image"] for it in items]), "question_ids": q_ids, "question_mask": q_mask,
                "answer_ids": self._pad("answer_ids", items, self.tokenizer.pad_id),
                **{k: [it[k] for it in items] for k in ("question", "answer", "type")}}


def chat_ids(tokenizer, turns: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Render a conversation as ids and labels: ``<bos> user : <image> ... assistant : ... <eos> user : ...``.

    Labels copy the ids on the assistant's words and the <eos> closing each answer, and are IGNORE_INDEX elsewhere,
    so a language model is trained only on what the assistant says: ``vitlib.instruct.encode_chat`` (chapter 11,
    which checks the turns) with one id for the image."""
    from ..instruct import encode_chat   # instruct builds on this package, so it is imported when first needed

    if not isinstance(tokenizer, WordTokenizer):
        raise TypeError(f"expected a WordTokenizer, got {type(tokenizer).__name__}")
    encoded = encode_chat(turns, tokenizer, n_image_tokens=1)
    return encoded["input_ids"].tolist(), encoded["labels"].tolist()


class ConversationDataset(_WorldDataset):
    """(image, multi-turn conversation) with ``input_ids`` and assistant-only ``labels``."""

    def __init__(self, world: ShapesWorld, n: int, split: str = "train", seed: int = 0):
        super().__init__(world, n, split, seed)
        self.conversations = [world.conversation(s, self.rng) for s in self.scenes]

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, idx: int) -> dict:
        idx = self._check_index(idx)
        ids, labels = chat_ids(self.tokenizer, self.conversations[idx])
        return {"image": self.images[idx], "input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "conversation": self.conversations[idx]}

    def collate(self, items: list[dict]) -> dict:
        self._check_items(items)
        ids, mask = self.tokenizer.pad([it["input_ids"].tolist() for it in items])
        return {"image": torch.stack([it["image"] for it in items]), "input_ids": ids, "attention_mask": mask,
                "labels": self._pad("labels", items, IGNORE_INDEX),
                "conversation": [it["conversation"] for it in items]}


def _question_types(types) -> frozenset | None:
    """None (every type), one type name, or a collection of them; unknown names raise (no substring matching)."""
    if types is None:
        return None
    if isinstance(types, str):
        types = (types,)
    if not isinstance(types, Iterable):
        raise TypeError(f"types must be None, a question type or a list of them, got {types!r}")
    types = list(types)
    if not all(isinstance(t, str) for t in types):
        raise TypeError(f"types must be None, a question type or a list of them, got {types!r}")
    types = frozenset(types)
    for t in types:
        if t not in QUESTION_TYPES:
            raise ValueError(f"unknown question type {t!r}; allowed: {', '.join(QUESTION_TYPES)}")
    if not types:
        raise ValueError(f"types must name at least one of {', '.join(QUESTION_TYPES)}, got an empty collection")
    return types
