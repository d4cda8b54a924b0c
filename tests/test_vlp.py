"""vitlib.vlp: hard-negative sampling, masking, ITM pairs, the text encoder, the combined loss, re-ranking."""

import pytest
import torch
import torch.nn.functional as F

from vitlib.contrastive import clip_loss, similarity
from vitlib.constants import IGNORE_INDEX
from vitlib.metrics import rerank
from vitlib.transformer import TextTransformer
from vitlib.vlp import ITMHead, MLMHead, VLPConfig, VLPModel, itm_pairs, mask_tokens, sample_hard_negatives


def test_heads_shapes():
    fused = torch.randn(2, 5, 16)
    assert ITMHead(16)(fused).shape == (2, 2)
    assert MLMHead(16, 30)(fused).shape == (2, 5, 30)


def test_the_text_encoder_is_a_bidirectional_text_transformer_with_a_mask_id():
    """VLP's text tower is GPT's and CLIP's TextTransformer without the causal mask (BERT's): <bos>, read for ITC,
    sees every word; it embeds one more id than the tokenizer, [MASK]."""
    model = VLPModel(VLPConfig(vocab_size=12, max_len=8, image_size=8, cnn_channels=(4, 8), text_width=8, n_heads=2,
                               embed_dim=8)).eval()
    assert isinstance(model.text, TextTransformer) and not model.text.causal
    assert model.text.token_emb.num_embeddings == 13 and model.mask_id == 12
    ids, mask = torch.tensor([[1, 5, 6, 3]]), torch.ones(1, 4, dtype=torch.bool)
    pooled, tokens = model.encode_text(ids, mask)
    torch.testing.assert_close(pooled, model.text_proj(model.text(ids, mask)[:, 0]))
    changed = ids.clone()
    changed[0, 2] = model.mask_id
    assert not torch.allclose(model.encode_text(changed, mask)[0], pooled), "<bos> sees the last words"


def test_hard_negatives_follow_the_softmax_and_never_pick_the_positive():
    sim = torch.tensor([[5.0, 2.0, 1.0, 0.0], [0.5, 4.0, 0.0, 1.5], [3.0, 0.0, 6.0, 1.0], [0.0, 0.0, 2.0, 5.0]])
    g = torch.Generator().manual_seed(0)
    n = 2000
    counts_t, counts_i = torch.zeros(4, 4), torch.zeros(4, 4)
    for _ in range(n):
        t, i = sample_hard_negatives(sim, g)
        counts_t[torch.arange(4), t] += 1
        counts_i[torch.arange(4), i] += 1   # row j: the images drawn for text j
    off = ~torch.eye(4, dtype=torch.bool)
    assert counts_t[~off].sum() == 0 and counts_i[~off].sum() == 0
    expected_t = sim.masked_fill(~off, float("-inf")).softmax(dim=1)
    expected_i = sim.T.masked_fill(~off, float("-inf")).softmax(dim=1)
    torch.testing.assert_close(counts_t / n, expected_t, atol=0.04, rtol=0)
    torch.testing.assert_close(counts_i / n, expected_i, atol=0.04, rtol=0)


def test_hard_negatives_uniform_for_zero_logits_exclude_and_reproducible():
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_hard_negatives(torch.zeros(3, 3), g)[0] for _ in range(1500)])  # (1500, 3)
    for row in range(3):
        freq = torch.bincount(draws[:, row], minlength=3).float() / 1500
        assert freq[row] == 0 and (freq[torch.arange(3) != row] - 0.5).abs().max() < 0.05
    exclude = torch.zeros(3, 3, dtype=torch.bool)
    exclude[0, 1] = exclude[1, 0] = True   # texts 0 and 1 are the same caption
    for _ in range(200):
        t, i = sample_hard_negatives(torch.zeros(3, 3), g, exclude)
        assert t[0] == 2 and t[1] == 2 and i[0] == 2 and i[1] == 2
    sim = torch.randn(6, 6)
    a = sample_hard_negatives(sim, torch.Generator().manual_seed(5))
    b = sample_hard_negatives(sim, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_hard_negatives_bad_input():
    with pytest.raises(ValueError, match="square"):
        sample_hard_negatives(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch >= 2"):
        sample_hard_negatives(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="no allowed negative"):
        sample_hard_negatives(torch.zeros(2, 2), exclude=torch.ones(2, 2, dtype=torch.bool))


def test_itm_pairs():
    image_idx, text_idx, labels = itm_pairs(torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0]))
    assert image_idx.tolist() == [0, 1, 2, 0, 1, 2, 1, 2, 0]
    assert text_idx.tolist() == [0, 1, 2, 2, 0, 1, 0, 1, 2]
    assert labels.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="two"):
        itm_pairs(torch.tensor([1, 0]), torch.tensor([1, 0, 2]))


def test_mask_tokens():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (200, 30), generator=g)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False
    masked, labels = mask_tokens(ids, 99, 50, 0.3, maskable, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, 0].any()
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(masked[~chosen], ids[~chosen])
    assert abs(chosen[:, 1:].float().mean().item() - 0.3) < 0.02
    is_mask, kept = masked[chosen] == 99, masked[chosen] == ids[chosen]
    assert abs(is_mask.float().mean().item() - 0.8) < 0.03
    assert abs(kept.float().mean().item() - 0.1 - 0.1 / 50) < 0.03   # kept, or drawn at random to itself
    again = mask_tokens(ids, 99, 50, 0.3, maskable, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels)
    # mask only: the same choice of positions (the first draw), every one replaced by the mask id
    only, labels_only = mask_tokens(ids, 99, 50, 0.3, maskable, torch.Generator().manual_seed(1), (1.0, 0.0))
    assert torch.equal(labels_only, labels) and (only[chosen] == 99).all()


def test_mask_tokens_bad_input():
    ids = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="LongTensor"):
        mask_tokens(ids.float(), 9, 10)
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(ids, 9, 10, mask_prob=1.5)
    with pytest.raises(ValueError, match="replace_probs"):
        mask_tokens(ids, 9, 10, replace_probs=(0.8, 0.4))
    with pytest.raises(ValueError, match="maskable"):
        mask_tokens(ids, 9, 10, maskable=torch.ones(2, 3))


def _batch(B=6, T=7, image_size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 80, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 1, 3
    mask = torch.ones(B, T, dtype=torch.bool)
    ids[0, -2:], mask[0, -2:] = torch.tensor([3, 0]), torch.tensor([True, False])   # a shorter caption, padded
    return {"images": torch.rand(B, 3, image_size, image_size, generator=g), "input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("image_encoder,negatives", [("vit", "hard"), ("cnn", "hard"), ("vit", "random")])
def test_losses_are_the_documented_sums(image_encoder, negatives):
    torch.manual_seed(0)
    model = VLPModel(VLPConfig(image_encoder=image_encoder, vision_width=32, text_width=32, embed_dim=16,
                               n_heads=2, mask_prob=0.4)).eval()
    batch = _batch()
    out = model.losses(batch, negatives, torch.Generator().manual_seed(3))
    # recompute each term from the parts, with the same random draws in the same order
    g = torch.Generator().manual_seed(3)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    image_emb, image_tokens = model.encode_image(batch["images"])
    text_emb, text_tokens = model.encode_text(ids, mask)
    torch.testing.assert_close(out["itc"], clip_loss(image_emb, text_emb, model.logit_scale))
    sim = similarity(image_emb, text_emb) * model.scale()
    sim = sim if negatives == "hard" else torch.zeros_like(sim)   # random negatives: uniform draws
    image_idx, text_idx, labels = itm_pairs(*sample_hard_negatives(sim, g))
    itm_logits = model.itm_head(model.fusion(text_tokens[text_idx], image_tokens[image_idx], mask[text_idx]))
    torch.testing.assert_close(out["itm"], F.cross_entropy(itm_logits, labels))
    maskable = mask & (ids != 1) & (ids != 3) & (ids != 0)
    masked, mlm_labels = mask_tokens(ids, model.mask_id, 80, 0.4, maskable, g)
    assert (mlm_labels != IGNORE_INDEX).any()
    logits = model.mlm_head(model.fusion(model.encode_text(masked, mask)[1], image_tokens, mask))
    chosen = mlm_labels != IGNORE_INDEX
    torch.testing.assert_close(out["mlm"], F.cross_entropy(logits[chosen], mlm_labels[chosen]))
    torch.testing.assert_close(out["total"], out["itc"] + out["itm"] + out["mlm"])
    out["total"].backward()
    assert all(p.grad is not None for p in model.parameters()), "some parameter gets no gradient"
    assert model(batch["images"], ids, mask).shape == (6, 6)


def test_image_ids_are_never_negatives_of_each_other():
    torch.manual_seed(0)
    model = VLPModel(VLPConfig(vision_width=32, text_width=32, embed_dim=16, n_heads=2)).eval()
    batch = _batch(B=4)
    batch["image_ids"] = torch.tensor([0, 0, 0, 0])   # one image four times: no negative anywhere
    with pytest.raises(ValueError, match="no allowed negative"):
        model.losses(batch)


def test_vlp_bad_input():
    model = VLPModel(VLPConfig(vision_width=32, text_width=32, embed_dim=16, n_heads=2))
    batch = _batch(B=2)
    with pytest.raises(ValueError, match="negatives"):
        model.losses(batch, negatives="easy")
    with pytest.raises(ValueError, match="lacks"):
        model.losses({"images": batch["images"]})
    with pytest.raises(ValueError, match="bool"):
        model.losses({**batch, "attention_mask": batch["attention_mask"].long()})
    with pytest.raises(ValueError, match="<bos>"):
        model.losses({**batch, "input_ids": batch["input_ids"].roll(1, dims=1)})
    with pytest.raises(ValueError, match="one per text"):
        model.losses({**batch, "images": batch["images"][:1]})
    with pytest.raises(ValueError, match="max_len"):
        model(torch.rand(1, 3, 32, 32), torch.ones(1, 60, dtype=torch.long), torch.ones(1, 60, dtype=torch.bool))
    with pytest.raises(TypeError, match="VLPConfig"):
        VLPModel({"vocab_size": 80})
    with pytest.raises(ValueError, match="image_encoder"):
        VLPConfig(image_encoder="resnet")
    with pytest.raises(ValueError, match="divisible"):
        VLPConfig(text_width=30, n_heads=4)


def test_rerank():
    sim = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.2, 0.1, 0.7, 0.6]])   # queries' targets: 1 and 3 (second best)
    prefer = torch.tensor([1, 3])
    reranked = rerank(sim, 2, lambda q, c: (c == prefer[q]).float())
    assert reranked.argmax(dim=1).tolist() == [1, 3]
    assert reranked[0].argsort(descending=True).tolist() == [1, 0, 2, 3]   # the rest keep ITC's order, below
    same = rerank(sim, 3, lambda q, c: sim[q, c] * 10 - 50)
    assert torch.equal(same.argsort(dim=1, descending=True), sim.argsort(dim=1, descending=True))
    with pytest.raises(ValueError, match="1 <= k"):
        rerank(sim, 5, lambda q, c: q.float())


@pytest.mark.parametrize("bad, message", [
    (dict(text_layers=0), "text_layers must be a positive int, got 0"),
    (dict(embed_dim=0), "embed_dim must be a positive int, got 0"),
    (dict(n_heads=0), "n_heads must be a positive int, got 0"),   # was a ZeroDivisionError
    (dict(image_size=30), r"image_size=30 is not divisible by 8, .* 4x4 feature map would not fit 3x3 cell positions"),
    (dict(image_encoder="vit", image_size=30), "image_size=30 is not divisible by patch_size=8"),
    (dict(eos_id=80), r"eos_id must be a token id in \[0, 80\), got 80"),
])
def test_config_refuses_what_would_build_a_broken_model(bad, message):
    """text_layers=0 or embed_dim=0 built a model silently; image_size=30 built one whose CNN grid (4x4) did not
    match its cell positions (3x3), which crashed in the first forward."""
    with pytest.raises(ValueError, match=message):
        VLPConfig(**bad)


def test_the_image_size_is_checked_even_where_the_cnn_would_take_it():
    model = VLPModel(VLPConfig(vision_width=32, text_width=32, embed_dim=16, n_heads=2)).eval()
    batch = _batch(B=2)
    with pytest.raises(ValueError, match="images must be 32x32, got 30x30"):   # a 30x30 image gives a 4x4 grid too
        model(batch["images"][..., :30, :30], batch["input_ids"], batch["attention_mask"])


def test_mask_tokens_and_itm_pairs_refuse_ids_that_would_pass_through_silently():
    ids = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="mask_id must be an int >= 0, got -7"):   # -7 landed in the masked ids
        mask_tokens(ids, -7, 10)
    with pytest.raises(ValueError, match=r"LongTensors \(B,\) .* got torch.float32 \(2,\), torch.float32 \(2,\)"):
        itm_pairs(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 0.0]))     # came back as float "indices"
    with pytest.raises(ValueError, match=r"in \[0, 2\) \(the batch\), got values in \[0, 5\]"):
        itm_pairs(torch.tensor([5, 0]), torch.tensor([1, 0]))


def _with_swaps(batch, has, seed=1):
    """The batch with swap negatives: other captions and images, one per row; ``has`` marks the rows that have one."""
    other = _batch(B=len(batch["input_ids"]), T=batch["input_ids"].shape[1], seed=seed)
    return {**batch, "swap_images": other["images"], "swap_input_ids": other["input_ids"],
            "swap_attention_mask": other["attention_mask"], "has_swap": torch.tensor(has)}


@pytest.mark.parametrize("swap_itc", [False, True])
def test_swap_negatives_join_itm_after_the_sampled_ones_and_itc_as_negclip(swap_itc):
    torch.manual_seed(0)
    model = VLPModel(VLPConfig(vision_width=32, text_width=32, embed_dim=16, n_heads=2)).eval()
    batch = _with_swaps(_batch(), [True, False, True, True, False, True])
    out = model.losses(batch, "hard", torch.Generator().manual_seed(3), swap_itc=swap_itc)
    plain = model.losses(_batch(), "hard", torch.Generator().manual_seed(3))
    torch.testing.assert_close(out["mlm"], plain["mlm"])      # the same draws, in the same order
    rows = torch.tensor([0, 2, 3, 5])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    image_emb, image_tokens = model.encode_image(batch["images"])
    text_emb, text_tokens = model.encode_text(ids, mask)
    swap_image_emb, swap_image_tokens = model.encode_image(batch["swap_images"][rows])
    swap_text_emb, swap_text_tokens = model.encode_text(batch["swap_input_ids"][rows],
                                                        batch["swap_attention_mask"][rows])
    s = similarity(image_emb, text_emb) * model.scale()
    if swap_itc:   # NegCLIP: T'_k are extra columns for every image, I'_k for every text
        targets = torch.arange(6)
        i2t = torch.cat([s, similarity(image_emb, swap_text_emb) * model.scale()], dim=1)   # (6, 10)
        t2i = torch.cat([s.T, similarity(text_emb, swap_image_emb) * model.scale()], dim=1)  # (6, 10)
        torch.testing.assert_close(out["itc"], (F.cross_entropy(i2t, targets) + F.cross_entropy(t2i, targets)) / 2)
    else:
        torch.testing.assert_close(out["itc"], plain["itc"])
    g = torch.Generator().manual_seed(3)
    image_idx, text_idx, labels = itm_pairs(*sample_hard_negatives(s.detach(), g))
    sampled = model.itm_logits(image_tokens[image_idx], text_tokens[text_idx], mask[text_idx])      # (18, 2)
    text_swaps = model.itm_logits(image_tokens[rows], swap_text_tokens, batch["swap_attention_mask"][rows])
    image_swaps = model.itm_logits(swap_image_tokens, text_tokens[rows], mask[rows])                 # (4, 2)
    logits = torch.cat([sampled, text_swaps, image_swaps])
    torch.testing.assert_close(out["itm"], F.cross_entropy(logits, torch.cat([labels, torch.zeros(8).long()])),
                               atol=1e-5, rtol=1e-5)


def test_a_batch_without_any_swap_gives_the_plain_losses():
    torch.manual_seed(0)
    model = VLPModel(VLPConfig(vision_width=32, text_width=32, embed_dim=16, n_heads=2)).eval()
    out = model.losses(_with_swaps(_batch(), [False] * 6), "hard", torch.Generator().manual_seed(3), swap_itc=True)
    plain = model.losses(_batch(), "hard", torch.Generator().manual_seed(3))
    for name in ("itc", "itm", "mlm"):
        torch.testing.assert_close(out[name], plain[name])


SWAP_BAD = [   # (change to a batch with swaps, keyword arguments, error, message)
    (lambda b: {k: v for k, v in b.items() if k != "has_swap"}, {}, ValueError, r"lacks \['has_swap'\]"),
    (lambda b: {**b, "has_swap": b["has_swap"].long()}, {}, ValueError, r"has_swap must be a bool tensor \(2,\)"),
    (lambda b: {**b, "swap_input_ids": b["swap_input_ids"][:, :-1]}, {}, ValueError,
     r"shape of input_ids \(2, 7\) \(pad both together\)"),
    (lambda b: {**b, "swap_images": b["swap_images"][:1]}, {}, ValueError, r"images must be \(B, 3, H, W\) with B = 2"),
    (lambda b: {k: v for k, v in b.items() if not k.startswith(("swap", "has"))}, {"swap_itc": True}, ValueError,
     r"swap_itc=True needs a batch with swap negatives"),
    (lambda b: b, {"swap_itc": 1}, TypeError, r"swap_itc must be a bool, got int"),
]


@pytest.mark.parametrize("change, kwargs, error, message", SWAP_BAD)
def test_swap_negatives_bad_input(change, kwargs, error, message):
    model = VLPModel(VLPConfig(vision_width=32, text_width=32, embed_dim=16, n_heads=2))
    with pytest.raises(error, match=message):
        model.losses(change(_with_swaps(_batch(B=2), [True, False])), **kwargs)
