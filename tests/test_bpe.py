"""Byte-level BPE (vitlib.data.bpe): merge steps, exact round trips, and agreement with the `tokenizers` library."""

import random

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from vitlib.data.bpe import BPETokenizer, _bytes_to_unicode, count_pairs, course_text, merge

MIXED = ("Héllo wörld — naïve café, e\u0301 (combining accent). 你好，世界！ Привет. 🙂🚀 tabs\tand\r\nnew lines\n\n"
         "  spaces   it's I'LL we've 3.14159 x_1 = y__2 <eos> ½ ²")


@pytest.fixture(scope="module")
def corpus():
    return course_text()


@pytest.fixture(scope="module")
def ours(corpus):
    return BPETokenizer.train(corpus, 768)


@pytest.fixture(scope="module")
def library(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=768, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([corpus], trainer)
    return tok


def test_count_pairs_and_merge():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert count_pairs([5, 5, 5]) == {(5, 5): 2}
    assert merge([5, 5, 5], (5, 5), 9) == [9, 5]
    assert merge([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert merge([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge([], (1, 2), 9) == []


def test_training_on_a_small_text_by_hand():
    tok = BPETokenizer.train("aaabdaaabac", 259)
    # pairs: aa 4, ab 2, ...: merge aa -> 256; then ab and (256, a) tie at 2: the smaller pair (97, 98) wins;
    # then "aa" "ab" d "aa" "ab" a c has (256, 257) twice
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.vocab[256:] == [b"aa", b"ab", b"aaab"]
    assert tok.encode("aaab") == [258]
    assert BPETokenizer(tok.merges[:2]).encode("aaab") == [256, 257]


def test_merges_never_cross_the_split():
    tok = BPETokenizer.train("ab. ab. ab. ab.", 300)
    assert all(b"." not in t or t.strip(b".") == b"" for t in tok.vocab[256:])
    assert BPETokenizer.split("Hello, world! it's") == ["Hello", ",", " world", "!", " it", "'s"]


def test_split_matches_gpt2_regex_of_the_library(corpus):
    table = {c: b for b, c in _bytes_to_unicode().items()}
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for text in (corpus, MIXED.replace("½ ²", "")):   # re counts ½ and ² as letters, \p{N} as numbers
        theirs = [bytes(table[c] for c in piece).decode("utf-8") for piece, _ in pre.pre_tokenize_str(text)]
        assert BPETokenizer.split(text) == theirs


def test_bytes_to_unicode_is_the_library_alphabet():
    assert sorted(_bytes_to_unicode().values()) == sorted(pre_tokenizers.ByteLevel.alphabet())


def test_round_trip_is_exact_on_any_text(ours, corpus):
    rng = random.Random(0)
    texts = [corpus, MIXED, "", " ", "\n\n\n", "🙂" * 5]
    code_points = [c for c in range(0x20, 0x30000) if not 0xD800 <= c < 0xE000]
    texts += ["".join(chr(rng.choice(code_points)) for _ in range(rng.randint(1, 60))) for _ in range(200)]
    for text in texts:
        ids = ours.encode(text)
        assert all(0 <= i < ours.vocab_size for i in ids)
        assert ours.decode(ids) == text
    assert ours.decode(torch.tensor(ours.encode(MIXED))) == MIXED


def test_learned_tokens_compress(ours, corpus):
    n_bytes = len(corpus.encode("utf-8"))
    assert ours.vocab_size == 768 and len(ours.merges) == 512
    assert len(ours.encode(corpus)) < 0.5 * n_bytes
    assert BPETokenizer.train(corpus, 256).encode("héllo") == list("héllo".encode("utf-8"))


def test_matches_the_library(ours, library, corpus):
    """Both round-trip exactly; ours compresses within 5% of the library's trainer on the same text and size."""
    ids, lib_ids = ours.encode(corpus), library.encode(corpus).ids
    assert library.get_vocab_size() == ours.vocab_size
    assert ours.decode(ids) == corpus and library.decode(lib_ids) == corpus
    assert library.decode(library.encode(MIXED).ids) == MIXED
    n_bytes = len(corpus.encode("utf-8"))
    ratio = (len(ids) / n_bytes) / (len(lib_ids) / n_bytes)
    assert abs(ratio - 1) < 0.05, ratio
    spelled = {"".join(_bytes_to_unicode()[b] for b in t) for t in ours.vocab}
    assert len(spelled & set(library.get_vocab())) > 0.95 * ours.vocab_size


def test_library_encodes_exactly_like_ours_given_our_merges(ours, corpus):
    exported = ours.to_tokenizers()
    for text in (corpus, MIXED, "unseen words: tokenisation, perplexity, rotary."):
        assert exported.encode(text).ids == ours.encode(text)
        assert exported.decode(ours.encode(text)) == text


def test_training_is_deterministic(corpus):
    assert BPETokenizer.train(corpus, 400).merges == BPETokenizer.train(corpus, 400).merges


def test_bad_input():
    tok = BPETokenizer.train("hello", 260)
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match=r"\[0, 260\)|\[0, 25"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("hello", 100)
    with pytest.raises(ValueError, match="outside"):
        BPETokenizer([(0, 400)])
    assert "<unk>" not in tok.decode(tok.encode("zzz"))


def test_incremental_counts_give_the_merges_of_plain_recounting(corpus):
    """The plain algorithm: recount every pair after each merge. Training updates counts instead; same merges."""
    words = {}
    for piece in BPETokenizer.split(corpus):
        key = tuple(piece.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    words, merges = list(words.items()), []
    for new_id in range(256, 420):
        counts = {}
        for ids, f in words:
            for pair, c in count_pairs(ids).items():
                counts[pair] = counts.get(pair, 0) + c * f
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        words = [(tuple(merge(list(ids), best, new_id)), f) for ids, f in words]
    assert BPETokenizer.train(corpus, 420).merges == merges


def test_count_pairs_and_merge_take_a_tensor_as_its_ids():
    """A tensor's elements hash by identity, so counting them used to give one entry per position, not per pair."""
    ids = [1, 2, 3, 1, 2]
    assert count_pairs(torch.tensor(ids)) == count_pairs(ids) == count_pairs(tuple(ids))
    assert merge(torch.tensor(ids), (1, 2), 9) == merge(ids, (1, 2), 9) == [9, 3, 9]


def test_merges_must_be_distinct_pairs_of_known_tokens():
    with pytest.raises(ValueError, match=r"merge 1 = \(97, 98\) repeats merge 0"):   # encode would skip id 256
        BPETokenizer([(97, 98), (97, 98)])
    with pytest.raises(ValueError, match="over the limit of 1048576"):   # each merge doubles the token
        BPETokenizer([(97, 97)] + [(256 + i, 256 + i) for i in range(40)])
    long = BPETokenizer.train("a" * 5000, 300)   # a learned token is at most a piece of its text
    assert max(len(t) for t in long.vocab) == 5000 and long.encode("a" * 5000) == [long.vocab_size - 1]
