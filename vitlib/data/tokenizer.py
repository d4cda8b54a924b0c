"""A word-level tokenizer over a fixed vocabulary (chapters 00 and 01).

Text is lower-cased and split into words and single punctuation marks; each piece maps to one id. Special tokens
come first, so their ids never change: <pad>=0, <bos>=1, <unk>=2, <eos>=3, <image>=4. (<eos> is not id 2 because
transformers' CLIP text model treats eos_token_id == 2 as a legacy setting and pools at the largest token id
instead of at <eos>; chapter 05 exports the course CLIP to it.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from numbers import Integral

import torch

SPECIAL_TOKENS = ("<pad>", "<bos>", "<unk>", "<eos>", "<image>")
_PIECE = re.compile(r"<[a-z]+>|[a-z]+|[^\sa-z]")
_NO_SPACE_BEFORE = set(".,?:;")
# Tokens one padded batch may hold: 2**26 int64 ids and bool mask entries take 576 MiB; a course batch holds ~10**4.
MAX_PAD_TOKENS = 2**26


def is_int(i) -> bool:
    """An int (Python's or numpy's), but not a bool."""
    return type(i) is int or (isinstance(i, Integral) and not isinstance(i, bool))  # the first test is the fast one


def ids_list(ids, where: str) -> list:
    """Token ids given as a list, tuple or 1-D tensor, as a list; anything else raises."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"{where} expects a 1-D sequence of ids, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"{where} expects a list or 1-D tensor of int ids, got {type(ids).__name__}")
    ids = list(ids)
    bad = [i for i in ids if not is_int(i)]
    if bad:
        raise TypeError(f"{where} expects int ids, got {bad[0]!r} ({type(bad[0]).__name__})")
    return ids


def _id_row(ids) -> torch.Tensor:
    """One sequence to pad (a list or 1-D tensor of ints) as a 1-D long tensor; floats are refused, not truncated."""
    if not isinstance(ids, (torch.Tensor, str, bytes)) and isinstance(ids, Iterable):
        ids = list(ids)
        try:
            ids = torch.tensor(ids) if ids else torch.zeros(0, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"pad expects sequences of int ids, got {ids!r:.80}") from None
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() \
            or ids.dtype == torch.bool:
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"pad expects each sequence as a list or 1-D tensor of int ids, got {got}")
    return ids.long()


class WordTokenizer:
    """encode: text -> ids; decode: ids -> text; ``pad`` / ``__call__``: a batch of texts -> padded LongTensor."""

    def __init__(self, words):
        if isinstance(words, str) or not isinstance(words, Iterable):
            raise TypeError(f"words must be a list of vocabulary words, got {words!r}")
        words = tuple(words)
        unsplittable = [w for w in words if not isinstance(w, str) or self.split(w) != [w]]
        if unsplittable:  # encode could never produce such a word
            raise ValueError(f"each vocabulary word must be one piece of split() (a lower-case word or one punctuation "
                             f"mark), got {unsplittable[0]!r}")
        clash = [w for w in words if w in SPECIAL_TOKENS] or sorted({w for w in words if words.count(w) > 1})
        if clash:
            raise ValueError(f"vocabulary words must be unique and not special tokens; problems: {clash}")
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
        if not isinstance(text, str):
            raise TypeError(f"split expects a str, got {type(text).__name__}")
        return _PIECE.findall(text.lower())

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False, unknown: str = "raise") -> list[int]:
        """Text -> token ids. ``unknown="raise"`` (default) rejects words outside the vocabulary; "unk" maps them
        to <unk>."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if unknown not in ("raise", "unk"):
            raise ValueError(f"unknown must be 'raise' or 'unk', got {unknown!r}")
        if not isinstance(add_bos, bool) or not isinstance(add_eos, bool):
            raise TypeError(f"add_bos and add_eos must be True or False, got {add_bos!r} and {add_eos!r}")
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
        ids = ids_list(ids, "decode")
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

        Sequences longer than ``max_len`` are cut on the far side from the padding. Any ints pad (ids, or labels
        with IGNORE_INDEX), so values are not checked against the vocabulary."""
        if isinstance(sequences, (str, torch.Tensor)) or not isinstance(sequences, Iterable):
            raise TypeError(f"pad expects a list of id sequences, got {type(sequences).__name__}")
        sequences = [_id_row(s) for s in sequences]
        if not sequences:
            raise ValueError("cannot pad an empty batch")
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        if max_len is not None and (not is_int(max_len) or max_len < 1):
            raise ValueError(f"max_len must be None or a positive int, got {max_len!r}")
        T = max(len(s) for s in sequences) if max_len is None else max_len
        if len(sequences) * T > MAX_PAD_TOKENS:
            raise ValueError(f"a padded batch of {len(sequences)} x {T} tokens is over the limit of {MAX_PAD_TOKENS} "
                             "(MAX_PAD_TOKENS); pad fewer or shorter sequences")
        ids = torch.full((len(sequences), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), T), dtype=torch.bool)
        for b, s in enumerate(sequences):
            s = s[:T]
            sl = slice(0, len(s)) if side == "right" else slice(T - len(s), T)
            ids[b, sl] = s
            mask[b, sl] = True
        return ids, mask

    def __call__(self, texts, add_bos: bool = True, add_eos: bool = True, max_len: int | None = None,
                 side: str = "right") -> dict[str, torch.Tensor]:
        """A text or list of texts -> {"input_ids": (B, T), "attention_mask": (B, T)}."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Iterable):
            raise TypeError(f"expected a text or a list of texts, got {type(texts).__name__}")
        ids, mask = self.pad([self.encode(t, add_bos, add_eos) for t in texts], max_len=max_len, side=side)
        return {"input_ids": ids, "attention_mask": mask}
