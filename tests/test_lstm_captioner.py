"""vitlib.lstm_captioner: with one image token the attention fusion returns it, and the captioner is PyTorch's
nn.LSTM run over [E[y_t] ; v] from (h_0, c_0); the cache continues a caption exactly; vitlib.decoding's loops drive
it through bind; it learns a tiny task; the zoo round trip; the bad-input table."""

import pytest
import torch

from vitlib import zoo
from vitlib.decoding import beam_search, greedy
from vitlib.lstm_captioner import LSTMCaptioner, LSTMCaptionerConfig

V, S, D_IMAGE, BOS, EOS = 23, 5, 12, 1, 3


def _model(seed=0, **overrides) -> LSTMCaptioner:
    torch.manual_seed(seed)
    config = LSTMCaptionerConfig(**(dict(vocab_size=V, max_len=40, d_image=D_IMAGE, d_embed=8, d_hidden=16)
                                    | overrides))
    return LSTMCaptioner(config).eval()


def _images(B=3, S=S, seed=1) -> torch.Tensor:
    return torch.randn(B, S, D_IMAGE, generator=torch.Generator().manual_seed(seed))


def _ids(B=3, T=7, seed=2) -> torch.Tensor:
    return torch.randint(4, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_with_one_image_token_it_is_torch_lstm_over_word_and_image():
    model, image, ids = _model(), _images(S=1), _ids()
    lstm = torch.nn.LSTM(8 + D_IMAGE, 16, batch_first=True)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(lstm, f"{name}_l0").data.copy_(getattr(model.cell, name))
    inputs = torch.cat([model.embed(ids), image.expand(-1, ids.shape[1], -1)], dim=-1)   # (B, T, 8 + d_image)
    h0, c0 = model.init_state(image)
    states, _ = lstm(inputs, (h0[None], c0[None]))                                        # (B, T, 16)
    torch.testing.assert_close(model(ids, image), model.out(states), atol=1e-6, rtol=0)


def test_the_state_picks_the_patches():
    model, image, ids = _model(), _images(), _ids()
    shuffled = image[:, torch.randperm(S, generator=torch.Generator().manual_seed(0))]
    torch.testing.assert_close(model(ids, shuffled), model(ids, image), atol=1e-5, rtol=0)   # a set of patches
    other = image.clone()
    other[:, 0] += 3
    assert not torch.allclose(model(ids, other), model(ids, image), atol=1e-3), "the image is read"


def test_the_cache_continues_a_caption_exactly():
    model, image, ids = _model(), _images(), _ids(T=9)
    logits, past = model(ids[:, :4], image, use_cache=True)
    rest, past = model(ids[:, 4:], past_kv=past, use_cache=True)
    torch.testing.assert_close(torch.cat([logits, rest], dim=1), model(ids, image), atol=1e-6, rtol=0)
    h, c, cached_image = past
    assert h.shape == c.shape == (3, 16) and cached_image is image


def test_decoding_loops_drive_it_through_bind():
    model, image = _model(), _images()
    start = torch.full((3, 1), BOS)
    ids, state, by_hand = start, model.init_state(image), [start]
    for _ in range(10):
        logits, state = model.step(ids[:, -1], state, image)
        ids = logits.argmax(dim=-1, keepdim=True)
        by_hand.append(ids)
    assert torch.equal(greedy(model.bind(image), start, 10), torch.cat(by_hand, dim=1))
    sequences, scores = beam_search(model.bind(image), start, 10, num_beams=3)
    assert sequences.shape == (3, 11) and scores.shape == (3,)
    texts = model.caption(image, type("T", (), {"bos_id": BOS, "eos_id": EOS, "decode": staticmethod(str)})(), 5)
    assert len(texts) == 3


def test_learns_to_name_the_colour_of_the_image():
    """Each image is one of 4 random token sets; the caption is <bos> word <eos>, the word fixed by the set."""
    torch.manual_seed(0)
    prototypes = torch.randn(4, S, D_IMAGE)
    model = _model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        label = torch.randint(0, 4, (32,))
        image = prototypes[label] + 0.1 * torch.randn(32, S, D_IMAGE)
        ids = torch.stack([torch.full((32,), BOS), label + 10, torch.full((32,), EOS)], dim=1)   # (32, 3)
        logits = model(ids[:, :-1], image)                                                      # (32, 2, V)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = greedy(model.eval().bind(prototypes), torch.full((4, 1), BOS), 2)
    assert torch.equal(out[:, 1], torch.arange(4) + 10) and (out[:, 2] == EOS).all(), out


def test_zoo_round_trip(tmp_path):
    model, image = _model(), _images()
    zoo.save(model, "lstm", model.config, {}, directory=tmp_path)
    loaded = zoo.load("lstm", directory=tmp_path)
    assert isinstance(loaded, LSTMCaptioner) and torch.equal(loaded(_ids(), image), model(_ids(), image))


@pytest.mark.parametrize("make, error, message", [
    (lambda: LSTMCaptionerConfig(V, 40, 0), ValueError, "d_image"),
    (lambda: LSTMCaptionerConfig(V, 40, D_IMAGE, d_hidden=-1), ValueError, "d_hidden"),
    (lambda: LSTMCaptionerConfig(V, 40, D_IMAGE, d_embed=2.5), ValueError, "d_embed"),
    (lambda: LSTMCaptioner({"vocab_size": V}), TypeError, "LSTMCaptionerConfig"),
    (lambda: _model()(_ids().float(), _images()), ValueError, "LongTensor"),
    (lambda: _model()(torch.full((3, 2), V), _images()), ValueError, r"token ids must be in \[0, 23\)"),
    (lambda: _model()(_ids(B=0), _images()), ValueError, "batch, length >= 1"),
    (lambda: _model()(_ids(), torch.randn(3, S, 8)), ValueError, r"image must be tokens \(batch, S, 12\)"),
    (lambda: _model()(_ids(), torch.randn(3, 0, D_IMAGE)), ValueError, "image must be tokens"),
    (lambda: _model()(_ids(), _images(B=2)), ValueError, "one image per caption"),
    (lambda: _model()(_ids(), _images().double()), TypeError, "float64"),
    (lambda: _model()(_ids(), _images().index_fill(1, torch.tensor([2]), float("nan"))), ValueError, "NaN"),
    (lambda: _model()(_ids()), ValueError, "pass the image tokens"),
    (lambda: _model()(_ids(), _images(), past_kv=(1, 2, 3)), ValueError, "pass image=None"),
    (lambda: _model()(_ids(), past_kv=(torch.zeros(2, 16),) * 3), ValueError, "for these 3 rows"),
    (lambda: _model()(_ids(), _images(), use_cache=1), TypeError, "use_cache must be a bool"),
])
def test_lstm_captioner_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()
