"""torch Datasets over ShapesWorld: image-caption pairs, visual questions, conversations (chapter 00).

Images are rendered once when the dataset is built (that is fast) and kept as uint8; items are float tensors
(3, H, W) in [0, 1]. Each dataset has a ``collate`` that pads token ids, for ``DataLoader(..., collate_fn=ds.collate)``.
"""

from __future__ import annotations

import random

import torch
from torch.utils.data import Dataset

from .render import to_tensor
from .shapes import ShapesWorld

IGNORE_INDEX = -100  # label value that cross-entropy skips (torch's default ignore_index)


class _WorldDataset(Dataset):
    def __init__(self, world: ShapesWorld, n: int, split: str, seed: int):
        if not isinstance(world, ShapesWorld):
            raise TypeError(f"expected a ShapesWorld, got {type(world).__name__}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int (number of scenes), got {n!r}")
        self.world, self.split, self.tokenizer = world, split, world.tokenizer
        self.scenes = world.scenes(n, split)
        self.images = to_tensor(world.render_batch(self.scenes))  # (N, 3, H, W) float in [0, 1]
        self.rng = random.Random(seed)

    def _pad(self, key: str, items: list[dict], pad_value: int) -> torch.Tensor:
        ids, mask = self.tokenizer.pad([it[key].tolist() for it in items])
        return ids.masked_fill(~mask, pad_value)


class ImageCaptionDataset(_WorldDataset):
    """(image, caption) pairs; ``captions_per_scene`` different captions of each scene."""

    def __init__(self, world: ShapesWorld, n: int, split: str = "train", captions_per_scene: int = 1, seed: int = 0):
        super().__init__(world, n, split, seed)
        self.captions = [[world.caption(s, self.rng) for _ in range(captions_per_scene)] for s in self.scenes]
        self.index = [(i, j) for i in range(n) for j in range(captions_per_scene)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> dict:
        i, j = self.index[idx]
        text = self.captions[i][j]
        ids = torch.tensor(self.tokenizer.encode(text, add_bos=True, add_eos=True))
        return {"image": self.images[i], "input_ids": ids, "caption": text, "scene_index": i}

    def collate(self, items: list[dict]) -> dict:
        ids, mask = self.tokenizer.pad([it["input_ids"].tolist() for it in items])
        return {"image": torch.stack([it["image"] for it in items]), "input_ids": ids, "attention_mask": mask,
                "caption": [it["caption"] for it in items],
                "scene_index": torch.tensor([it["scene_index"] for it in items])}


class VQADataset(_WorldDataset):
    """(image, question, answer, type) for every question ``world.questions`` asks about each scene."""

    def __init__(self, world: ShapesWorld, n: int, split: str = "train", types=None, seed: int = 0):
        super().__init__(world, n, split, seed)
        self.items = [(i, q, a, t) for i, s in enumerate(self.scenes) for q, a, t in world.questions(s, self.rng)
                      if types is None or t in types]
        if not self.items:
            raise ValueError(f"no questions of types {types!r}; allowed: color, shape, count, position, exists, relation")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict:
        i, q, a, t = self.items[idx]
        return {"image": self.images[i], "question": q, "answer": a, "type": t, "scene_index": i,
                "question_ids": torch.tensor(self.tokenizer.encode(q, add_bos=True)),
                "answer_ids": torch.tensor(self.tokenizer.encode(a, add_eos=True))}

    def collate(self, items: list[dict]) -> dict:
        q_ids, q_mask = self.tokenizer.pad([it["question_ids"].tolist() for it in items])
        return {"image": torch.stack([it["image"] for it in items]), "question_ids": q_ids, "question_mask": q_mask,
                "answer_ids": self._pad("answer_ids", items, self.tokenizer.pad_id),
                **{k: [it[k] for it in items] for k in ("question", "answer", "type")}}


def chat_ids(tokenizer, turns: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Render a conversation as ids and labels: ``<bos> user : ... assistant : ... <eos> user : ...``.

    Labels copy the ids on the assistant's words and the <eos> closing each answer, and are IGNORE_INDEX elsewhere,
    so a language model is trained only on what the assistant says (chapter 11)."""
    ids, labels = [tokenizer.bos_id], [IGNORE_INDEX]
    for turn in turns:
        if turn["role"] not in ("user", "assistant"):
            raise ValueError(f"turn role must be 'user' or 'assistant', got {turn['role']!r}")
        head = tokenizer.encode(f"{turn['role']}:")
        body = tokenizer.encode(turn["content"])
        ids += head + body
        if turn["role"] == "assistant":
            ids.append(tokenizer.eos_id)
            labels += [IGNORE_INDEX] * len(head) + body + [tokenizer.eos_id]
        else:
            labels += [IGNORE_INDEX] * (len(head) + len(body))
    return ids, labels


class ConversationDataset(_WorldDataset):
    """(image, multi-turn conversation) with ``input_ids`` and assistant-only ``labels``."""

    def __init__(self, world: ShapesWorld, n: int, split: str = "train", seed: int = 0):
        super().__init__(world, n, split, seed)
        self.conversations = [world.conversation(s, self.rng) for s in self.scenes]

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, idx: int) -> dict:
        ids, labels = chat_ids(self.tokenizer, self.conversations[idx])
        return {"image": self.images[idx], "input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "conversation": self.conversations[idx]}

    def collate(self, items: list[dict]) -> dict:
        ids, mask = self.tokenizer.pad([it["input_ids"].tolist() for it in items])
        return {"image": torch.stack([it["image"] for it in items]), "input_ids": ids, "attention_mask": mask,
                "labels": self._pad("labels", items, IGNORE_INDEX),
                "conversation": [it["conversation"] for it in items]}
