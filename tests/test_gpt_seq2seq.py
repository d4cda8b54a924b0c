"""The encoder-decoder of chapter 03: shapes, a causal decoder that reads every source token, bad input."""

import pytest
import torch

from vitlib.seq2seq import EncoderDecoder


def model():
    torch.manual_seed(0)
    return EncoderDecoder(vocab_size=11, max_len=8, d_model=16, n_heads=2, n_layers=2).eval()


def test_shapes_causal_decoder_and_cross_attention():
    m, g = model(), torch.Generator().manual_seed(0)
    src, tgt = torch.randint(0, 11, (2, 6), generator=g), torch.randint(0, 11, (2, 5), generator=g)
    logits = m(src, tgt)
    assert logits.shape == (2, 5, 11)
    changed = tgt.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 11
    torch.testing.assert_close(m(src, changed)[:, :3], logits[:, :3])     # targets >= 3 unseen by 0..2
    other = src.clone()
    other[:, -1] = (other[:, -1] + 1) % 11
    assert (m(other, tgt)[:, 0] - logits[:, 0]).abs().max() > 1e-4     # the first target sees the last source


def test_padding_of_the_source_is_ignored():
    m = model()
    src, tgt = torch.tensor([[1, 2, 3, 0, 0]]), torch.tensor([[4, 5]])
    mask = torch.tensor([[True, True, True, False, False]])
    padded_otherwise = torch.tensor([[1, 2, 3, 7, 9]])
    torch.testing.assert_close(m(src, tgt, mask), m(padded_otherwise, tgt, mask))


BAD = [
    (lambda m: m(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)), ValueError,
     r"src_ids must be a LongTensor \(batch, length\), got"),
    (lambda m: m(torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), 11)), ValueError,
     r"token ids must be in \[0, 11\), got values in \[11, 11\]"),
    (lambda m: m(torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)), ValueError,
     r"src_ids must have 1 to 8 tokens, got \(2, 9\)"),
    (lambda m: m(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 3, dtype=torch.long)), ValueError,
     r"src_ids and tgt_ids must have the same batch size, got 2 and 3"),
    (lambda m: EncoderDecoder(0, 8, 16, 2, 1), ValueError, r"vocab_size must be a positive int, got 0"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=range(len(BAD)))
def test_bad_input_names_what_was_expected(call, error, message):
    with pytest.raises(error, match=message):
        call(model())
