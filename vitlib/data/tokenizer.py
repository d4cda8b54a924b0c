"""A word-level tokenizer over a fixed vocabulary (chapters 00 and 01).

Text is lower-cased and split into words and single punctuation marks; each piece maps to one id. Special tokens
come first, so their ids never change: <pad>=0, <bos>=1, <unk>=2, <eos>=3, <image>=4. (<eos> is not id 2 because
transformers' CLIP text model treats eos_token_id == 2 as a legacy setting and pools at the largest token id
instead of at <eos>; chapter 05 exports the course CLIP to it.)
"""

from __future__ import annotations

import re

import torch

SPECIAL_TOKENS = ("<pad>", "<bos>", "<unk>", "<eos>", "<image>")
_PIECE = re.compile(r"<[a-z]+>|[a-z]+|[^\sa-z]")
_NO_SPACE_BEFORE = set(".,?:;")


class WordTokenizer:
    """encode: text -> ids; decode: ids -> text; ``pad`` / ``__call__``: a batch of texts -> padded LongTensor."""

    def __init__(self, words):
        words = tuple(words)
        clash = [w for w in words if w in SPECIAL_TOKENS]
        if clash or len(set(words)) != len(words):
            raise ValueError(f"vocabulary words must be unique and not special tokens; problems: {clash or 'duplicates'}")
        self.vocab = SPECIAL_TOKENS + words
        self.token_to_id = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.unk_id, self.eos_id, self.image_id = range(len(SPECIAL_TOKENS))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"

    @staticmethod
    def split(text: str) -> list[str]:
        """ "A red circle." -> ["a", "red", "circle", "."]; every non-space character ends up in some piece."""
        return _PIECE.findall(text.lower())

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False, unknown: str = "raise") -> list[int]:
        """Text -> token ids. ``unknown="raise"`` (default) rejects words outside the vocabulary; "unk" maps them
        to <unk>."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if unknown not in ("raise", "unk"):
            raise ValueError(f"unknown must be 'raise' or 'unk', got {unknown!r}")
        ids = [self.bos_id] if add_bos else []
        for piece in self.split(text):
            if piece in self.token_to_id:
                ids.append(self.token_to_id[piece])
            elif unknown == "unk":
                ids.append(self.unk_id)
            else:
                raise ValueError(f"word {piece!r} is not in the vocabulary of {self.vocab_size} tokens (text: {text!r}); "
                                 "pass unknown='unk' to map it to <unk>")
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Token ids (list or 1-D tensor) -> text; stops at nothing, skips <pad>/<bos>/<eos> if asked."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        skip = {self.pad_id, self.bos_id, self.eos_id} if skip_special_tokens else set()
        out = []
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i in skip:
                continue
            word = self.vocab[i]
            if out and word not in _NO_SPACE_BEFORE:
                out.append(" ")
            out.append(word)
        return "".join(out)

    def pad(self, sequences, max_len: int | None = None, side: str = "right"):
        """Lists of ids -> (input_ids LongTensor (B, T), attention_mask BoolTensor (B, T)), padded with <pad>.

        Sequences longer than ``max_len`` are cut on the far side from the padding."""
        sequences = [list(s) for s in sequences]
        if not sequences:
            raise ValueError("cannot pad an empty batch")
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        T = max(len(s) for s in sequences) if max_len is None else max_len
        ids = torch.full((len(sequences), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), T), dtype=torch.bool)
        for b, s in enumerate(sequences):
            s = s[:T]
            sl = slice(0, len(s)) if side == "right" else slice(T - len(s), T)
            ids[b, sl] = torch.tensor(s, dtype=torch.long)
            mask[b, sl] = True
        return ids, mask

    def __call__(self, texts, add_bos: bool = True, add_eos: bool = True, max_len: int | None = None,
                 side: str = "right") -> dict[str, torch.Tensor]:
        """A text or list of texts -> {"input_ids": (B, T), "attention_mask": (B, T)}."""
        if isinstance(texts, str):
            texts = [texts]
        ids, mask = self.pad([self.encode(t, add_bos, add_eos) for t in texts], max_len=max_len, side=side)
        return {"input_ids": ids, "attention_mask": mask}
