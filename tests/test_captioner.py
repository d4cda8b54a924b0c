"""vitlib.captioner: the cache (words' and image's keys and values) gives the logits of a full pass and projects the
image once; the decoding loops drive a bound captioner (greedy as a hand-written loop, beam search per image); it
learns a tiny task; the zoo round trip; the bad-input table. And the recipe's protocol and pieces."""

import pytest
import torch

from vitlib import zoo
from vitlib.captioner import BoundCaptioner, Captioner, CaptionerConfig
from vitlib.data import WordTokenizer
from vitlib.decoding import beam_search, greedy, sample
from tiny_models import spread

V, S, D_IMAGE = 23, 5, 12
TOKENIZER = WordTokenizer(list("abcdefghijklmnopqr"))   # 18 words + 5 special tokens = V ids; <bos> 1, <eos> 3
BOS, EOS = TOKENIZER.bos_id, TOKENIZER.eos_id


def _config(**overrides) -> CaptionerConfig:
    return CaptionerConfig(**(dict(vocab_size=V, max_len=40, d_model=32, n_heads=4, n_layers=2, d_image=D_IMAGE)
                              | overrides))


def _model(seed=0, **overrides) -> Captioner:
    torch.manual_seed(seed)
    model = Captioner(_config(**overrides)).eval()
    spread(model)
    return model


def _images(B=3, seed=1) -> torch.Tensor:
    return torch.randn(B, S, D_IMAGE, generator=torch.Generator().manual_seed(seed)) * 2   # the image matters


def _start(B=3) -> torch.Tensor:
    return torch.full((B, 1), BOS)


def test_cached_logits_equal_a_full_pass_over_a_whole_generation():
    model, image = _model(), _images()
    seq = greedy(model.bind(image), torch.tensor([[BOS, 5], [BOS, 6], [BOS, 7]]), 20)    # (3, 22), no eos
    full = model(seq, image)                                                            # (3, 22, V)
    logits, past = model(seq[:, :2], image, use_cache=True)
    steps = [logits]
    for t in range(2, seq.shape[1]):
        logits, past = model(seq[:, t:t + 1], past_kv=past, use_cache=True)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    (k, v), (k_image, v_image) = past[0]
    assert k.shape == v.shape == (3, 4, 22, 8) and k_image.shape == v_image.shape == (3, 4, S, 8)
    assert full.argmax(-1)[:, 1:-1].eq(seq[:, 2:]).all(), "the generation followed these logits"


def test_cross_attention_from_the_cached_image_equals_multihead_attention():
    block, image = _model().blocks[0], _images()
    words = torch.randn(3, 7, 32)
    torch.testing.assert_close(block.cross_attend(words, block.image_kv(image)),
                               block.cross_attn(words, context=image), atol=1e-6, rtol=0)


def test_the_image_keys_and_values_are_computed_once_per_caption():
    model, image = _model(), _images()
    calls = []
    for block in model.blocks:
        for proj in (block.cross_attn.k_proj, block.cross_attn.v_proj):
            proj.register_forward_hook(lambda *_: calls.append(1))
    greedy(model.bind(image), _start(), 10)
    assert len(calls) == 2 * 2, "one k and one v projection per layer, at the first step only"
    calls.clear()
    beam_search(model.bind(image), _start(), 10, num_beams=4)
    assert len(calls) == 2 * 2
    calls.clear()
    greedy(model.bind(image), _start(), 10, use_cache=False)
    assert len(calls) == 10 * 2 * 2, "without the cache: every step projects the image again"


def test_a_mean_pooling_captioner_reads_the_average_image_token():
    pooled = _model(image_pool="mean")
    plain = Captioner(_config()).eval()
    plain.load_state_dict(pooled.state_dict())   # the same weights; only the reading of the image differs
    image, ids = _images(), torch.tensor([[BOS, 5, 6], [BOS, 7, 8], [BOS, 9, 4]])
    torch.testing.assert_close(pooled(ids, image), plain(ids, image.mean(dim=1, keepdim=True)), atol=1e-6, rtol=0)
    assert not torch.allclose(pooled(ids, image), plain(ids, image), atol=1e-3), "pooling changed nothing"
    (_, (k_image, _)), *_ = pooled(ids, image, use_cache=True)[1]
    assert k_image.shape == (3, 4, 1, 8), "the cache keeps the one pooled token"
    shuffled = image[:, torch.randperm(S, generator=torch.Generator().manual_seed(0))]
    torch.testing.assert_close(pooled(ids, shuffled), pooled(ids, image), atol=1e-5, rtol=0)


def test_greedy_through_bind_equals_a_hand_written_loop():
    model, image = _model(), _images()
    ids = _start()
    for _ in range(15):   # argmax of the last position, the whole sequence recomputed each step, no cache
        ids = torch.cat([ids, model(ids, image)[:, -1].argmax(-1, keepdim=True)], dim=1)
    for use_cache in (True, False):
        assert torch.equal(greedy(model.bind(image), _start(), 15, use_cache=use_cache), ids)
    assert len({tuple(row) for row in ids.tolist()}) == 3, "each image gets its own caption"


@pytest.mark.parametrize("eos", [None, EOS])
def test_beam_search_over_several_images_equals_each_image_alone(eos):
    model, image = _model(), _images(B=3)
    together, scores = beam_search(model.bind(image), _start(3), 12, num_beams=4, eos_token_id=eos)
    assert len({tuple(row) for row in together.tolist()}) == 3, "the images lead to different captions"
    for b in range(3):
        alone, score = beam_search(model.bind(image[b:b + 1]), _start(1), 12, num_beams=4, eos_token_id=eos)
        n = alone.shape[1]
        assert torch.equal(together[b, :n], alone[0]) and (eos is None or (together[b, n:] == eos).all())
        torch.testing.assert_close(scores[b], score[0], atol=1e-5, rtol=0)
    uncached, _ = beam_search(model.bind(image), _start(3), 12, num_beams=4, eos_token_id=eos, use_cache=False)
    assert torch.equal(uncached, together)


def test_caption_decodes_strings_with_any_decoding_function():
    model, image = _model(), _images()
    texts = model.caption(image, TOKENIZER, max_new_tokens=8)
    ids = greedy(model.bind(image), _start(), 8, eos_token_id=EOS)
    expected = [TOKENIZER.decode(row[:row.index(EOS)] if EOS in row else row) for row in ids[:, 1:].tolist()]
    assert texts == expected and len(texts) == 3 and all(isinstance(t, str) for t in texts)
    beams = model.caption(image, TOKENIZER, max_new_tokens=8, decoding=beam_search, num_beams=3)
    drawn = model.caption(image, TOKENIZER, max_new_tokens=8, decoding=sample,
                          generator=torch.Generator().manual_seed(0))
    assert len(beams) == len(drawn) == 3 and all(isinstance(t, str) for t in beams + drawn)


def test_decoding_keeps_the_captioners_mode():
    model, image = _model(dropout=0.1), _images()
    model.train()
    first = greedy(model.bind(image), _start(), 6)
    assert model.training, "decoding runs in eval mode and then restores training mode"
    assert torch.equal(first, greedy(model.bind(image), _start(), 6)), "no dropout while decoding"
    model.eval()
    greedy(model.bind(image), _start(), 6)
    assert not model.training


def test_learns_to_name_the_colour_of_the_image():
    """Caption = the colour token of the image: a few hundred steps must fit it."""
    torch.manual_seed(0)
    colours = torch.arange(5, 9)                                             # four colour words
    palette = torch.randn(len(colours), D_IMAGE) * 2

    def batch(B=64):
        c = torch.randint(len(colours), (B,))
        image = torch.randn(B, S, D_IMAGE) * 0.5
        image[torch.arange(B), torch.randint(S, (B,))] += palette[c]         # the colour sits in one patch
        return torch.stack([torch.full((B,), BOS), colours[c], torch.full((B,), EOS)], dim=1), image

    model = Captioner(_config(n_layers=1)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        ids, image = batch()
        loss = torch.nn.functional.cross_entropy(model(ids, image)[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids, image = batch(256)
    out = greedy(model.bind(image), _start(256), 3, eos_token_id=EOS)
    accuracy = (out[:, 1:3] == ids[:, 1:3]).all(dim=1).float().mean().item()   # the colour, then <eos>
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f}"


def test_zoo_round_trip(tmp_path):
    model, image = _model(), _images()
    zoo.save(model, "captioner", model.config, {"bleu": 1.0}, directory=tmp_path)
    loaded = zoo.load("captioner", directory=tmp_path)
    assert isinstance(loaded, Captioner) and loaded.config == model.config
    assert torch.equal(loaded(_start(), image), model(_start(), image))
    assert torch.equal(greedy(loaded.bind(image), _start(), 10), greedy(model.bind(image), _start(), 10))


def _past():
    return _model()(_start(), _images(), use_cache=True)[1]


@pytest.mark.parametrize("make, error, message", [
    (lambda: _config(vocab_size=0), ValueError, "vocab_size"),
    (lambda: _config(max_len=-1), ValueError, "max_len"),
    (lambda: _config(d_image=0), ValueError, "d_image"),
    (lambda: _config(d_model=30), ValueError, "not divisible by n_heads"),
    (lambda: _config(n_layers=1.5), ValueError, "n_layers"),
    (lambda: _config(d_ff=0), ValueError, "d_ff"),
    (lambda: _config(activation="swish"), ValueError, "unknown activation"),
    (lambda: _config(dropout=1.0), ValueError, "dropout"),
    (lambda: _config(norm_eps=0.0), ValueError, "norm_eps"),
    (lambda: _config(image_pool="max"), ValueError, "unknown image_pool 'max'"),
    (lambda: CaptionerConfig(V, 40, 32, 4, 2), TypeError, "d_image"),
    (lambda: Captioner({"vocab_size": V}), TypeError, "CaptionerConfig"),
    (lambda: _model()(torch.tensor([[1, V]] * 3), _images()), ValueError, r"token ids must be in \[0, 23\)"),
    (lambda: _model()(torch.tensor([[1, -1]] * 3), _images()), ValueError, "token ids must be in"),
    (lambda: _model()(_start().float(), _images()), ValueError, "LongTensor"),
    (lambda: _model()(_start()[0], _images()), ValueError, r"LongTensor \(batch, length\)"),
    (lambda: _model()(_start(0), _images()), ValueError, "batch, length >= 1"),
    (lambda: _model()(_start(), torch.randn(3, S, 8)), ValueError, r"image must be tokens \(batch, S, 12\)"),
    (lambda: _model()(_start(), torch.randn(3, 0, D_IMAGE)), ValueError, "image must be tokens"),
    (lambda: _model()(_start(), torch.randn(3 * S, D_IMAGE)), ValueError, "image must be tokens"),
    (lambda: _model()(_start(), _images(B=2)), ValueError, "one image per caption"),
    (lambda: _model()(_start(), _images().double()), TypeError, "image has dtype torch.float64"),
    (lambda: _model()(_start(), _images().index_fill(1, torch.tensor([2]), float("nan"))), ValueError, "NaN"),
    (lambda: _model()(_start(), _images().numpy()), TypeError, "image must be a tensor"),
    (lambda: _model()(_start()), ValueError, "pass the image tokens"),
    (lambda: _model()(_start(), _images(), past_kv=_past()), ValueError, "pass image=None"),
    (lambda: _model()(_start(), past_kv=_past()[:1]), ValueError, "past_kv must be the cache"),
    (lambda: _model()(_start(2), past_kv=_past()), ValueError, "for these 2 rows"),
    (lambda: _model()(torch.full((3, 41), BOS), _images()), ValueError, "exceeds max_len=40"),
    (lambda: _model()(_start(), _images(), use_cache="yes"), TypeError, "use_cache must be a bool"),
    (lambda: _model().bind(_images()[0]), ValueError, "image must be tokens"),
    (lambda: BoundCaptioner(torch.nn.Linear(2, 2), _images()), TypeError, "must be a CaptionDecoder"),
    (lambda: _model().bind(_images(B=2))(_start(3)), ValueError, "multiple of the 2 bound images"),
    (lambda: greedy(_model().bind(_images()), _start(), 40), ValueError, "exceeds max_len=40"),
    (lambda: _model().caption(_images(), TOKENIZER, decoding="beam"), TypeError, "decoding must be a function"),
    (lambda: _model().caption(_images(), None), TypeError, "tokenizer must have bos_id"),
    (lambda: _model().caption(_images(), TOKENIZER, num_beam=3), TypeError, "unexpected keyword argument"),
    (lambda: _model().caption(_images(), TOKENIZER, max_new_tokens=0.5), ValueError, "max_new_tokens"),
])
def test_captioner_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ----------------------------------------------------------------------------------------------- the recipe


def test_recipe_follows_the_protocol_and_its_world_is_biased():
    import inspect

    from vitlib.recipes import captioner_shapes as recipe

    assert recipe.NAME == "captioner-shapes" and isinstance(recipe.STEPS, int)
    for fn in ("world", "config", "train", "evaluate", "main"):
        assert callable(getattr(recipe, fn, None)), f"captioner_shapes has no {fn}()"
    assert {"steps", "seed", "device", "progress"} <= set(inspect.signature(recipe.train).parameters)
    w = recipe.world()
    assert (w.image_size, w.max_objects) == (24, 3) and recipe.bias_pair() == (("red", "circle"), ("blue", "square"))
    co = w.cooccurrence(w.scenes(3000, "train"), *recipe.bias_pair())
    assert co["p_partner_given_trigger"] > 0.85 > 0.15 > co["p_partner_given_no_trigger"], co
    assert recipe.config().vocab_size == w.tokenizer.vocab_size


def test_the_pooled_recipe_changes_only_how_the_image_is_read():
    import dataclasses

    from vitlib.recipes import captioner_shapes, captioner_shapes_pooled as pooled

    assert pooled.NAME == "captioner-shapes-pooled" and pooled.STEPS == captioner_shapes.STEPS
    assert pooled.config().image_pool == "mean" and captioner_shapes.config().image_pool == "none"
    assert dataclasses.replace(pooled.config(), image_pool="none") == captioner_shapes.config()
    assert pooled.world().bias_pairs == captioner_shapes.world().bias_pairs
    model, history = pooled.train(steps=2, n_train=64, batch_size=32, eval_every=None, progress=False)
    assert model.config.image_pool == "mean" and len(history["loss"]) == 2


def test_recipe_batches_loss_and_references():
    import random

    from vitlib.recipes import captioner_shapes as recipe

    w = recipe.world()
    scenes = w.scenes(10, "train")
    tokens = torch.randn(10, 9, 64)
    stream = recipe.batches(scenes, tokens, 4, torch.Generator().manual_seed(0), random.Random(0))
    first, second = next(stream), next(stream)
    assert first["image"].shape == (4, 9, 64) and first["input_ids"][:, 0].eq(w.tokenizer.bos_id).all()
    assert not torch.equal(first["image"], second["image"])
    ids = first["input_ids"]
    for row, labels in zip(ids.tolist(), first["labels"].tolist()):   # <bos> caption <eos>, labels -100 on padding
        n = row.index(w.tokenizer.eos_id) + 1
        assert w.parse_caption(w.tokenizer.decode(row[:n])) and all(x == -100 for x in labels[n:])
    model = Captioner(CaptionerConfig(vocab_size=w.tokenizer.vocab_size, max_len=40, d_model=16, n_heads=2,
                                      n_layers=1, d_image=64))
    assert abs(recipe.caption_loss(model, first).item() - torch.log(torch.tensor(80.0)).item()) < 0.5
    with pytest.raises(ValueError, match="at least batch_size=16 scenes"):
        next(recipe.batches(scenes, tokens, 16, torch.Generator(), random.Random(0)))
    refs = recipe.references(scenes[:3])
    assert all(len(set(r)) == recipe.N_REFERENCES for r in refs)
    assert all(w.parse_caption(t) == s.pairs() for r, s in zip(refs, scenes) for t in r)
