"""Byte-level byte-pair encoding (BPE), learned from text (chapter 01).

Sennrich et al. (2016) start from characters and repeatedly merge the most frequent adjacent pair of symbols into a
new symbol; GPT-2 (Radford et al., 2019) starts from the 256 byte values of UTF-8, so every text can be encoded and
nothing is ever unknown:

    vocabulary_0 = {0, ..., 255}
    repeat (vocab_size - 256) times:
        (a, b) = argmax_{(a, b)} count(a, b)      # the most frequent adjacent pair, over all words
        new token z = a ++ b; replace every (a, b) by z

Text is first cut into pieces that a merge may never cross, like GPT-2's regex: contractions ('s, 't, 're, 've, 'm,
'll, 'd), runs of letters, runs of digits and runs of other symbols, each with an optional leading space, and runs
of whitespace. ``SPLIT`` writes that regex with Python's ``re`` (``[^\\W\\d_]`` for \\p{L}, ``\\d`` for \\p{N}); the
two split text identically except at rare numerals such as "²" or "½", which ``re`` counts as letters.

Training keeps a count of every pair and updates it only in the words a merge touches, so learning a thousand
merges takes about a second. Encoding applies the learned merges in the order they were learned (lowest rank
first), exactly as GPT-2 and the ``tokenizers`` library do.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import torch

from .tokenizer import ids_list, is_int

__all__ = ["SPLIT", "BPETokenizer", "count_pairs", "merge", "course_text"]

SPLIT = re.compile(r"""'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
# The longest token a list of merges may build. A learned token is a piece of its training text; merges that were
# not learned can double a token's length each time ((97, 97), (256, 256), ...) and exhaust memory in ~30 merges.
MAX_TOKEN_BYTES = 2**20


def _sequence(ids, where: str):
    """A list, tuple or 1-D tensor of ids as a list or tuple (a tensor's elements would hash by identity)."""
    if isinstance(ids, torch.Tensor) and ids.dim() == 1:
        return ids.tolist()
    if not isinstance(ids, (list, tuple)):
        raise TypeError(f"{where} expects a list, tuple or 1-D tensor of token ids, got {type(ids).__name__}")
    return ids


def _check_pair(pair, where: str) -> tuple[int, int]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(is_int(i) for i in pair)):
        raise ValueError(f"{where} must be a pair (a, b) of int token ids, got {pair!r}")
    return tuple(pair)


def count_pairs(ids, counts: Counter | None = None, weight: int = 1) -> Counter:
    """Count adjacent pairs: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1} (added to ``counts`` if given)."""
    ids = _sequence(ids, "count_pairs")
    if counts is not None and not isinstance(counts, Counter):
        raise TypeError(f"counts must be None or a Counter, got {type(counts).__name__}")
    if not is_int(weight):
        raise TypeError(f"weight must be an int, got {weight!r}")
    counts = Counter() if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] += weight
    return counts


def merge(ids, pair: tuple[int, int], new_id: int) -> list[int]:
    """One merge step: replace each occurrence of ``pair``, left to right and without overlap, by ``new_id``.

    merge([5, 5, 5], (5, 5), 9) -> [9, 5]
    """
    ids, pair = _sequence(ids, "merge"), _check_pair(pair, "pair")
    if not is_int(new_id):
        raise TypeError(f"new_id must be an int, got {new_id!r}")
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def course_text() -> str:
    """The course's own English prose: book/*.md (sorted by name) and README.md, read from the repository."""
    root = Path(__file__).resolve().parents[2]
    paths = sorted((root / "book").glob("*.md")) + [root / "README.md"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or len(paths) == 1:
        raise FileNotFoundError(f"course_text reads book/*.md and README.md from the repository at {root}, "
                                f"which lacks {missing or 'book/*.md'}; install the course with `pip install -e .`")
    return "\n\n".join(p.read_text(encoding="utf-8") for p in paths)


class BPETokenizer:
    """Byte-level BPE: ``BPETokenizer.train(text, vocab_size)``, then ``encode(text) -> ids``, ``decode(ids) -> text``.

    ``vocab[i]`` is the byte string of token i: ids 0-255 are the single bytes, id 256 + r is the r-th merge.
    """

    def __init__(self, merges=()):
        if isinstance(merges, (str, bytes)) or not isinstance(merges, Iterable):
            raise TypeError(f"merges must be a list of (a, b) pairs of token ids, got {type(merges).__name__}")
        self.merges: list[tuple[int, int]] = []
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]
        self.ranks: dict[tuple[int, int], int] = {}
        for a, b in (_check_pair(m, f"merge {r}") for r, m in enumerate(merges)):
            r = len(self.merges)
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)):
                raise ValueError(f"merge {r} = ({a}, {b}) refers to a token outside [0, {len(self.vocab)})")
            if (a, b) in self.ranks:  # encode would only ever use the later one
                raise ValueError(f"merge {r} = ({a}, {b}) repeats merge {self.ranks[a, b]}")
            if len(self.vocab[a]) + len(self.vocab[b]) > MAX_TOKEN_BYTES:
                raise ValueError(f"merge {r} = ({a}, {b}) builds a token of {len(self.vocab[a]) + len(self.vocab[b])} "
                                 f"bytes, over the limit of {MAX_TOKEN_BYTES} (MAX_TOKEN_BYTES)")
            self.ranks[a, b] = r
            self.merges.append((a, b))
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    @staticmethod
    def split(text: str) -> list[str]:
        """Cut text into the pieces merges may not cross: "Hello, world!" -> ["Hello", ",", " world", "!"]."""
        if not isinstance(text, str):
            raise TypeError(f"split expects a str, got {type(text).__name__}")
        return SPLIT.findall(text)

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if no pair is left to merge).

        Ties between equally frequent pairs go to the smaller pair (a, b), so training is deterministic.
        """
        if not isinstance(text, str):
            raise TypeError(f"train expects a str, got {type(text).__name__}")
        if not is_int(vocab_size) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int >= 256 (the byte alphabet), got {vocab_size!r}")
        word_freq = Counter(piece.encode("utf-8") for piece in cls.split(text))
        words = [list(w) for w in word_freq]           # each distinct piece as a list of token ids
        freqs = list(word_freq.values())
        counts: Counter = Counter()                    # (a, b) -> occurrences in the whole text
        where: dict[tuple[int, int], set[int]] = defaultdict(set)   # (a, b) -> indices of words that hold it
        for w, (ids, f) in enumerate(zip(words, freqs)):
            count_pairs(ids, counts, f)
            for pair in zip(ids, ids[1:]):
                where[pair].add(w)
        heap = [(-c, pair) for pair, c in counts.items()]   # max-heap by count; stale entries are skipped
        heapq.heapify(heap)
        merges = []
        while len(merges) < vocab_size - 256 and heap:
            neg, pair = heapq.heappop(heap)
            if counts.get(pair, 0) != -neg or -neg == 0:
                continue                               # stale: the count changed since this entry was pushed
            new_id = 256 + len(merges)
            merges.append(pair)
            changed = set()
            for w in where.pop(pair):
                old = words[w]
                count_pairs(old, counts, -freqs[w])    # remove the word's old pairs ...
                words[w] = merge(old, pair, new_id)
                count_pairs(words[w], counts, freqs[w])   # ... and add its new ones
                for p in zip(words[w], words[w][1:]):
                    where[p].add(w)
                changed.update(zip(old, old[1:]), zip(words[w], words[w][1:]))
            counts.pop(pair, None)
            for p in changed - {pair}:
                if counts.get(p, 0) > 0:
                    heapq.heappush(heap, (-counts[p], p))
        return cls(merges)

    def _encode_piece(self, piece: bytes) -> list[int]:
        """Apply merges to one piece, always the earliest-learned pair first (GPT-2's rule)."""
        if piece in self._cache:
            return self._cache[piece]
        ids = list(piece)
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            ids = merge(ids, pair, 256 + self.ranks[pair])
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Text -> token ids; every text can be encoded (its UTF-8 bytes are in the vocabulary)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return [i for piece in self.split(text) for i in self._encode_piece(piece.encode("utf-8"))]

    def decode(self, ids) -> str:
        """Token ids (list or 1-D tensor) -> text. Bytes that are not valid UTF-8 become "\ufffd"."""
        ids = ids_list(ids, "decode")
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids must be ints in [0, {self.vocab_size}), got {bad[:5]}")
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def to_tokenizers(self):
        """The same tokenizer as a ``tokenizers.Tokenizer`` (BPE model + ByteLevel pre-tokenizer and decoder).

        The library writes bytes as printable characters (GPT-2's byte-to-unicode table); ids stay ours.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        byte_char = _bytes_to_unicode()
        spell = ["".join(byte_char[b] for b in token) for token in self.vocab]   # id -> its bytes as characters
        model = models.BPE(vocab={s: i for i, s in enumerate(spell)},
                           merges=[(spell[a], spell[b]) for a, b in self.merges])
        tok = Tokenizer(model)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return tok


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: printable bytes stand for themselves, the others are moved to chr(256 + k)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, k = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + k)
            k += 1
    return table
