"""Bad input into the model modules fails at once, with an error that names what was expected and what came.

One table per module: (a call that must fail, the exception, a pattern its message must match). Every model here is
tiny and built once, so the whole table runs in a few seconds; a test times it, so that no hang can hide in it.
"""

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from vitlib import (attention, checks, classifier, clip, contrastive, decoding, fusion, hf, lm, metrics, positional,
                    transformer, vision, vlp)

META = torch.device("meta")   # a stand-in for a second device: tensors there have shapes but no data


def long(*rows):
    return torch.tensor(rows, dtype=torch.long)


def build(cls, config):
    torch.manual_seed(0)
    return cls(config).eval()


GPT = build(transformer.GPT, transformer.GPTConfig(vocab_size=11, d_model=8, n_layers=1, n_heads=2, max_len=6))
MHA = attention.MultiHeadAttention(8, 2)
ENCODER = transformer.Encoder(8, 2, 1)
VIT = build(vision.ViT, vision.ViTConfig(image_size=8, patch_size=4, d_model=8, n_layers=1, n_heads=2))
CNN = build(vision.CNNEncoder, vision.CNNConfig(channels=(4, 8)))
CLIP_CONFIG = dict(vocab_size=12, max_len=8, eos_id=3, embed_dim=8, image_size=8, patch_size=4, vision_width=8,
                   vision_heads=2, text_width=8, text_layers=1, text_heads=2)
CLIP = build(clip.CLIP, clip.CLIPConfig(**CLIP_CONFIG))
VLP = build(vlp.VLPModel, vlp.VLPConfig(vocab_size=12, max_len=8, image_size=8, cnn_channels=(4, 8), text_width=8,
                                        n_heads=2, embed_dim=8))
CLASSIFIER = build(classifier.AttributeClassifier, classifier.AttributeClassifierConfig(
    "cnn", {"channels": [4, 8]}, 8))
IMAGES = torch.rand(2, 3, 8, 8)
TEXT = long([1, 5, 6, 3], [1, 7, 3, 0])            # <bos> words <eos> (padding)
TEXT_MASK = torch.tensor([[True] * 4, [True] * 3 + [False]])
E = torch.randn(4, 8)                               # embeddings of 4 pairs
NEXT = lambda ids, scores: scores                   # noqa: E731  a logits processor that changes nothing

POSITIONAL = [
    (lambda: positional.sinusoidal_encoding(8, 4, base=0.0), ValueError, r"base must be > 0\.0, got 0\.0"),
    (lambda: positional.sinusoidal_encoding(8, 4, base=-2.0), ValueError, r"base must be > 0\.0, got -2\.0"),
    (lambda: positional.sinusoidal_encoding(8, 4, base=math.nan), ValueError, r"base must be > 0\.0, got nan"),
    (lambda: positional.sinusoidal_encoding(8, 4, base="1e4"), TypeError, r"base must be a real number, got str"),
    (lambda: positional.sinusoidal_encoding(2**31, 4), ValueError, r"max_len must be at most 1048576, got 2147483648"),
    (lambda: positional.sinusoidal_encoding(True, 4), ValueError, r"max_len must be a positive int, got True"),
    (lambda: positional.sinusoidal_encoding(8, 6.0), ValueError, r"d_model must be a positive int, got 6\.0"),
    (lambda: positional.frequencies(4, base=-1.0), ValueError, r"base must be > 0\.0, got -1\.0"),
    (lambda: positional.frequencies(2**40), ValueError, r"at most 1048576, got 1099511627776"),
    (lambda: positional.apply_rope(torch.randn(3, 4), torch.arange(3), base=0), ValueError, r"base must be > 0\.0, got 0"),
    (lambda: positional.apply_rope(torch.randn(3, 4), torch.tensor([True, False, True])), TypeError,
     r"positions must be a tensor of integers or floats, got torch\.bool \(3,\)"),
    (lambda: positional.apply_rope(torch.randn(3, 4), [0, 1, 2]), TypeError, r"positions must be .*, got list"),
    (lambda: positional.LearnedPositionalEmbedding(4, 2**31), ValueError, r"d_model must be at most 1048576"),
    (lambda: positional.LearnedPositionalEmbedding(4, 4)(torch.ones(2, 3, 4, dtype=torch.long)), TypeError,
     r"floating-point tensor \(\.\.\., T, 4\), got torch\.int64 \(2, 3, 4\)"),
    (lambda: positional.LearnedPositionalEmbedding(4, 4)(torch.randn(2, 3, 4), offset=1.5), ValueError,
     r"offset must be an int >= 0, got 1\.5"),
]

LM = [
    (lambda: lm.BigramCounts(5, alpha=math.nan), ValueError, r"alpha .* must be >= 0\.0, got nan"),
    (lambda: lm.BigramCounts(5, alpha=-1.0), ValueError, r"alpha .* must be >= 0\.0, got -1\.0"),
    (lambda: lm.BigramCounts(5, alpha=math.inf), ValueError, r"alpha .* must be >= 0\.0, got inf"),
    (lambda: lm.BigramCounts(5, alpha="0.5"), TypeError, r"alpha .* must be a real number, got str"),
    (lambda: lm.BigramCounts(2**20), ValueError, r"vocab_size must be at most 32768, got 1048576"),
    (lambda: lm.BigramCounts(5).fit([[0, 1.5]]), TypeError, r"token ids must be ints, got torch\.float32"),
    (lambda: lm.BigramCounts(5).fit([[0, 1]]).nll([[0, -1]]), ValueError, r"\[0, 5\), got values in \[-1, 0\]"),
    (lambda: lm.NeuralBigram(5)(torch.tensor([7])), ValueError, r"\[0, 5\), got values in \[7, 7\]"),
    (lambda: lm.NeuralBigram(5)(torch.tensor([1.0])), TypeError, r"LongTensor of token ids, got torch\.float32"),
    (lambda: lm.NeuralBigram(5).nll([[0, 9]]), ValueError, r"\[0, 5\), got values in \[0, 9\]"),
    (lambda: lm.cross_entropy(torch.randn(3, 5), long(0, 5, 1)), ValueError,
     r"targets must be ids in \[0, 5\) or ignore_index=-100, got values in \[0, 5\]"),
    (lambda: lm.cross_entropy(torch.randn(3, 5), long(0, -3, 1)), ValueError, r"in \[0, 5\) .* got values in \[-3, 1\]"),
    (lambda: lm.cross_entropy(torch.randn(3, 5).long(), long(0, 1, 2)), TypeError,
     r"logits must be a floating-point tensor \(\.\.\., V\), got torch\.int64 \(3, 5\)"),
    (lambda: lm.cross_entropy(torch.randn(3, 5), [0, 1, 2]), TypeError, r"targets must be a LongTensor .*, got list"),
    (lambda: lm.cross_entropy(torch.randn(0, 5), long()), ValueError, r"nothing to score: logits \(0, 5\), targets \(0,\)"),
    (lambda: lm.cross_entropy(torch.randn(3, 5), long(0, 1, 2).to(META)), ValueError, r"targets are on meta but logits on cpu"),
    (lambda: metrics.perplexity(math.nan), ValueError, r"nll is NaN"),
    (lambda: metrics.perplexity(torch.tensor([])), ValueError, r"non-empty real tensor, got torch\.float32 \(0,\)"),
    (lambda: metrics.perplexity([1.0, 2.0]), TypeError, r"a tensor of per-token NLLs or a number, got list"),
    (lambda: lm.sample_bigram(torch.zeros(3, 3), 2, 0, 7), ValueError, r"eos_id must be a token id in \[0, 3\), got 7"),
    (lambda: lm.sample_bigram(torch.zeros(3, 3), 2.0, 0, 1), ValueError, r"n must be a positive int, got 2\.0"),
    (lambda: lm.sample_bigram(torch.zeros(3, 3), 2, 0, 1, max_len=0), ValueError, r"max_len must be a positive int, got 0"),
    (lambda: lm.sample_bigram(torch.full((3, 3), math.nan), 2, 0, 1), ValueError, r"no NaN or \+inf"),
    (lambda: lm.sample_bigram(torch.full((3, 3), -math.inf), 2, 0, 1), ValueError, r"no row all -inf"),
    (lambda: lm.sample_bigram(torch.zeros(3, 3).long(), 2, 0, 1), TypeError,
     r"floating-point \(V, V\) tensor, got torch\.int64 \(3, 3\)"),
]

ATTENTION = [
    (lambda: attention.MultiHeadAttention(8, 0), ValueError, r"n_heads must be a positive int, got 0"),
    (lambda: attention.MultiHeadAttention(8, 3), ValueError, r"d_model=8 is not divisible by n_heads=3"),
    (lambda: attention.MultiHeadAttention(8.0, 2), ValueError, r"d_model must be a positive int, got 8\.0"),
    (lambda: attention.MultiHeadAttention(8, 2, impl="cuda"), ValueError, r"unknown impl 'cuda'; allowed: naive, fused"),
    (lambda: attention.MultiHeadAttention(8, 2, dropout=1.0), ValueError, r"dropout must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: attention.MultiHeadAttention(8, 2, d_context=0), ValueError, r"d_context must be a positive int, got 0"),
    (lambda: MHA(torch.ones(2, 3, 8, dtype=torch.long)), TypeError,
     r"x has dtype torch\.int64 but the module's weights are torch\.float32"),
    (lambda: MHA(torch.randn(2, 3, 8).double()), TypeError,
     r"x has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: MHA(torch.randn(2, 3, 8, device=META)), ValueError, r"x is on meta but the module's weights are on cpu"),
    (lambda: MHA([1, 2]), TypeError, r"x must be a tensor, got list"),
    (lambda: MHA(torch.randn(2, 3, 8), context=torch.randn(2, 3, 8).double()), TypeError,
     r"context has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: MHA(torch.randn(2, 3, 8), past_kv=(torch.randn(2, 2, 1, 5), torch.randn(2, 2, 1, 5))), ValueError,
     r"past_kv must be .* each torch\.float32 \(2, 2, P, 4\) on cpu; got \['torch\.float32 \(2, 2, 1, 5\)'"),
    (lambda: MHA(torch.randn(2, 3, 8), past_kv=torch.randn(2)), ValueError, r"past_kv must be .*; got torch\.float32 \(2,\)"),
    (lambda: MHA(torch.randn(2, 3, 8), attn_mask=[[True]]), ValueError, r"attn_mask must have shape \(3, 3\) .*, got list"),
    (lambda: MHA(torch.randn(2, 3, 8), attention_mask=[True]), ValueError,
     r"attention_mask must be a bool tensor of shape \(2, 3\) .*, got list"),
    (lambda: attention.scaled_dot_product_attention(E[None], E[None], E[None], dropout_p="0.1"), TypeError,
     r"dropout_p must be a real number, got str"),
    (lambda: attention.scaled_dot_product_attention(E[None], E[None], E[None], scale=math.nan), ValueError,
     r"scale must be finite, got nan"),
    (lambda: attention.scaled_dot_product_attention(E[None], E[None], E[None], is_causal="yes"), TypeError,
     r"is_causal must be a bool, got str"),
    (lambda: attention.attention_weights(torch.randn(2, 3, 4), torch.randn(2, 3, 5)), ValueError,
     r"query and key feature sizes differ: q \(2, 3, 4\) vs k \(2, 3, 5\)"),
    (lambda: attention.attention_weights([1], torch.randn(2, 3, 5)), TypeError, r"q must be a tensor, got list"),
]

TRANSFORMER = [
    (lambda: transformer.GPTConfig(10, 16, 1, 0, 8), ValueError, r"n_heads must be a positive int, got 0"),
    (lambda: transformer.GPTConfig(10, 16, 1, 2, 8, norm_eps=-1), ValueError, r"norm_eps must be > 0\.0, got -1"),
    (lambda: transformer.GPTConfig(10, 16, 1, 2, 8, norm_eps=math.nan), ValueError, r"norm_eps must be > 0\.0, got nan"),
    (lambda: transformer.GPTConfig(10, 16, 1, 2, 8, dropout=1.5), ValueError, r"dropout must be in \[0\.0, 1\.0\), got 1\.5"),
    (lambda: transformer.GPTConfig(10, 16, 1, 2, 8, dropout="0.1"), TypeError, r"dropout must be a real number, got str"),
    (lambda: transformer.GPTConfig(10, 2**30, 1, 2, 8), ValueError, r"d_model must be at most 1048576, got 1073741824"),
    (lambda: transformer.GPTConfig(2**40, 16, 1, 2, 8), ValueError, r"vocab_size must be at most 1048576"),
    (lambda: transformer.GPTConfig(10, 16, 1, 2, 8, activation="relu6"), ValueError,
     r"unknown activation 'relu6'; allowed: gelu, relu"),
    (lambda: GPT(torch.zeros(0, 3, dtype=torch.long)), ValueError, r"batch, length >= 1, got \(0, 3\)"),
    (lambda: GPT(torch.zeros(2, 0, dtype=torch.long)), ValueError, r"batch, length >= 1, got \(2, 0\)"),
    (lambda: GPT(torch.zeros(1, 3, dtype=torch.long, device=META)), ValueError, r"input_ids are on meta but the model is on cpu"),
    (lambda: GPT(torch.zeros(1, 3, dtype=torch.int32)), ValueError, r"LongTensor \(batch, length\), got torch\.int32 \(1, 3\)"),
    (lambda: GPT(long([1, 2]), past_kv=[1]), ValueError, r"one \(k, v\) pair of 4-D tensors per layer \(1\), got 1 entries"),
    (lambda: GPT(long([1, 2]), attention_mask=[[1, 1]]), TypeError, r"attention_mask must be a bool or 0/1 tensor .*, got list"),
    (lambda: GPT.generate(long([1, 2]), 2, eos_token_id=11), ValueError, r"eos_token_id must be a token id in \[0, 11\) or None, got 11"),
    (lambda: GPT.generate(long([1, 2]), 2, eos_token_id=-1), ValueError, r"in \[0, 11\) or None, got -1"),
    (lambda: GPT.generate(long([1, 2]), 2, eos_token_id=True), ValueError, r"in \[0, 11\) or None, got True"),
    (lambda: GPT.generate(long([1, 2]), 1, logits_processor=lambda i, s: torch.cat([s, s + 1], -1)), ValueError,
     r"scores of shape \(1, 11\) \(batch, vocab_size\), got torch\.float32 \(1, 22\)"),
    (lambda: GPT.generate(long([1, 2]), 1, logits_processor=lambda i, s: None), ValueError, r"scores of shape .*, got NoneType"),
    (lambda: GPT.generate(long([1, 2]), 1, logits_processor=lambda i, s: s * math.nan), ValueError, r"NaN scores"),
    (lambda: GPT.generate(long([1, 2]), 1, logits_processor=lambda i, s: s - math.inf), ValueError, r"-inf for every token"),
    (lambda: GPT.generate(long([1, 2]), 1, logits_processor="top_k"), TypeError, r"a callable .*, got str"),
    (lambda: GPT.generate(torch.zeros(0, 2, dtype=torch.long), 2), ValueError, r"batch, length >= 1, got \(0, 2\)"),
    (lambda: GPT(long([1, 2]), inputs_embeds=torch.randn(1, 2, 8)), ValueError,
     r"exactly one of input_ids \(B, T\) and inputs_embeds \(B, T, 8\), got both"),
    (lambda: GPT(inputs_embeds=torch.randn(1, 2, 4)), ValueError, r"inputs_embeds must have shape \(batch, length, 8\), got \(1, 2, 4\)"),
    (lambda: GPT(inputs_embeds=torch.randn(1, 2, 8, device=META)), ValueError, r"inputs_embeds is on meta but the module's weights are on cpu"),
    (lambda: GPT(inputs_embeds=torch.randn(1, 7, 8)), ValueError, r"sequence length 7 exceeds max_len=6"),
    (lambda: GPT(long([1, 2]), attention_mask=torch.ones(1, 2, dtype=torch.bool, device=META)), ValueError,
     r"attention_mask is on meta but input_ids on cpu"),
    (lambda: transformer.TextTransformer(80, 40, 64, 1, 0), ValueError, r"n_heads must be a positive int, got 0"),
    (lambda: transformer.TextTransformer(80, 40, 64, -1, 4), ValueError, r"n_layers must be a positive int, got -1"),
    (lambda: transformer.TextTransformer(80, 40, 2**31, 1, 4), ValueError, r"d_model must be at most 1048576"),
    (lambda: transformer.TextTransformer(80, 40, 64, 1, 4, embedding_std=(0.02, -1.0)), ValueError,
     r"embedding_std must be None or \(std of E, std of P\), floats > 0, got \(0\.02, -1\.0\)"),
    (lambda: transformer.TextTransformer(12, 8, 8, 1, 2, causal=False)(long([1, 2]), use_cache=True), ValueError,
     r"a KV cache needs causal attention"),
    (lambda: transformer.Encoder(8, 2, -1), ValueError, r"n_layers must be a positive int, got -1"),
    (lambda: transformer.Encoder(8, 2, 1, norm_eps=-1.0), ValueError, r"norm_eps must be > 0\.0, got -1\.0"),
    (lambda: transformer.Encoder(8, 2, 1, dropout=2.0), ValueError, r"dropout must be in \[0\.0, 1\.0\), got 2\.0"),
    (lambda: ENCODER(torch.randn(2, 3, 8).double()), TypeError, r"x has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: ENCODER([1]), TypeError, r"x must be a tensor, got list"),
    (lambda: transformer.FeedForward(8, 0), ValueError, r"d_ff must be a positive int, got 0"),
    (lambda: transformer.FeedForward(8, 16, activation="relu6"), ValueError, r"unknown activation 'relu6'"),
    (lambda: transformer.FeedForward(8, 16)(torch.randn(2, 5)), ValueError, r"x must have shape \(\.\.\., 8\), got \(2, 5\)"),
]

VISION = [
    (lambda: vision.patchify(IMAGES, 4.0), ValueError, r"patch_size must be a positive int, got 4\.0"),
    (lambda: vision.patchify(IMAGES, 0), ValueError, r"patch_size must be a positive int, got 0"),
    (lambda: vision.patchify(IMAGES, -4), ValueError, r"patch_size must be a positive int, got -4"),
    (lambda: vision.patchify(IMAGES, True), ValueError, r"patch_size must be a positive int, got True"),
    (lambda: vision.patchify(IMAGES, 3), ValueError, r"image size 8x8 is not divisible by patch_size=3"),
    (lambda: vision.patchify([1], 4), ValueError, r"images must be a tensor \(B, C, H, W\), got list"),
    (lambda: vision.CNNConfig(channels=16), ValueError, r"non-empty tuple of positive ints, got 16"),
    (lambda: vision.CNNConfig(channels=(16, 0)), ValueError, r"channels\[1\] must be a positive int, got 0"),
    (lambda: vision.CNNConfig(padding_mode="reflect"), ValueError, r"unknown padding_mode 'reflect'; allowed: zeros, circular"),
    (lambda: vision.CNNConfig(channels=(16, 2**30)), ValueError, r"channels\[1\] must be at most 1048576"),
    (lambda: vision.CNNConfig(norm="layer"), ValueError, r"unknown norm 'layer'; allowed: batch, group"),
    (lambda: CNN(IMAGES.double()), TypeError, r"images has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: CNN(torch.rand(2, 3, 8, 8, device=META)), ValueError, r"images is on meta but the module's weights are on cpu"),
    (lambda: CNN(torch.rand(2, 3, 0, 8)), ValueError, r"at least one pixel in each direction, got \(2, 3, 0, 8\)"),
    (lambda: vision.ViTConfig(norm_eps=-1), ValueError, r"norm_eps must be > 0\.0, got -1"),
    (lambda: vision.ViTConfig(n_heads=0), ValueError, r"n_heads must be a positive int, got 0"),
    (lambda: vision.ViTConfig(image_size=2**12, patch_size=1), ValueError,
     r"image_size=4096 with patch_size=1 gives 16777216 patches; at most 1048576"),
    (lambda: VIT(IMAGES.double()), TypeError, r"images has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: VIT(torch.rand(2, 3, 16, 16)), ValueError, r"images must be 8x8, got 16x16"),
    (lambda: vision.PatchEmbedding(8, 4, 3, 2**31), ValueError, r"d_model must be at most 1048576"),
]

CONTRASTIVE = [
    (lambda: contrastive.clip_loss(E, E, "2.0"), TypeError, r"logit_scale must be a real number, got str"),
    (lambda: contrastive.clip_loss(E, E, True), TypeError, r"logit_scale must be a real number, got bool"),
    (lambda: contrastive.clip_loss(E, E, math.nan), ValueError, r"logit_scale must be finite, got nan"),
    (lambda: contrastive.clip_loss(E, E, torch.tensor([1.0, 2.0])), ValueError,
     r"logit_scale must be a scalar \(one-element\) tensor or a number, got torch\.float32 \(2,\)"),
    (lambda: contrastive.clip_loss(E, E, torch.tensor([2.0]).to(META)), ValueError, r"logit_scale is on meta but the embeddings are on cpu"),
    (lambda: contrastive.clip_loss(E, E.double(), 2.0), ValueError,
     r"share the feature size, dtype and device: torch\.float32 \(4, 8\) on cpu vs torch\.float64 \(4, 8\) on cpu"),
    (lambda: contrastive.clip_loss(E, E.to(META), 2.0), ValueError, r"torch\.float32 \(4, 8\) on cpu vs torch\.float32 \(4, 8\) on meta"),
    (lambda: contrastive.clip_loss(E.long(), E.long(), 2.0), TypeError, r"floating-point embeddings, got torch\.int64 \(4, 8\)"),
    (lambda: contrastive.clip_loss(E[:, :0], E[:, :0], 2.0), ValueError, r"at least one feature, got torch\.float32 \(4, 0\)"),
    (lambda: contrastive.siglip_loss(E, E, 2.0, "0"), TypeError, r"logit_bias must be a real number, got str"),
    (lambda: contrastive.hinge_loss(E, E, margin=math.inf), ValueError, r"margin must be >= 0\.0, got inf"),
    (lambda: contrastive.hinge_loss(E, E, margin="0.2"), TypeError, r"margin must be a real number, got str"),
    (lambda: contrastive.similarity(E, torch.randn(3, 7)), ValueError, r"torch\.float32 \(4, 8\) on cpu vs torch\.float32 \(3, 7\)"),
    (lambda: contrastive.similarity([1], E), ValueError, r"image_embeds must be a 2-D tensor \(batch, dim\), got list"),
    (lambda: metrics.recall_at_k(torch.randn(3, 3), 1, targets=long(0, 5, 1)), ValueError,
     r"column indices in \[0, 3\), got values in \[0, 5\]"),
    (lambda: metrics.recall_at_k(torch.randn(3, 3), 1, targets=torch.tensor([0.0, 1.0, 1.0])), ValueError,
     r"\(3,\) column indices \(long\), got torch\.float32 \(3,\)"),
    (lambda: metrics.recall_at_k(torch.randn(3, 3), 1, targets=[0, 1, 2]), TypeError, r"targets must be None, .*, got list"),
    (lambda: metrics.recall_at_k(torch.randn(0, 3), 1), ValueError, r"similarities has no queries"),
    (lambda: metrics.recall_at_k(torch.full((3, 3), math.nan), 1), ValueError, r"similarities holds NaN"),
]

CLIP_ROWS = [
    (lambda: clip.CLIPConfig(embed_dim=0), ValueError, r"embed_dim must be a positive int, got 0"),
    (lambda: clip.CLIPConfig(text_heads=0), ValueError, r"text_heads must be a positive int, got 0"),
    (lambda: clip.CLIPConfig(vocab_size=2**40), ValueError, r"vocab_size must be at most 1048576"),
    (lambda: clip.CLIPConfig(eos_id=True), ValueError, r"eos_id must be an int >= 0, got True"),
    (lambda: clip.CLIPConfig(eos_id=80), ValueError, r"eos_id=80 is outside the vocabulary of 80"),
    (lambda: clip.CLIPConfig(logit_bias="-10"), TypeError, r"logit_bias must be a real number, got str"),
    (lambda: clip.CLIPConfig(logit_bias=-math.inf), ValueError, r"logit_bias must be finite, got -inf"),
    (lambda: CLIP.encode_text(long([1, 5, 6])), ValueError, r"every text must contain <eos> \(id 3\) to pool at"),
    (lambda: CLIP.encode_text(TEXT.to(META)), ValueError, r"input_ids are on meta but the model is on cpu"),
    (lambda: CLIP.encode_text(TEXT, TEXT_MASK.to(META)), ValueError, r"attention_mask is on meta but input_ids on cpu"),
    (lambda: CLIP.encode_text(TEXT, torch.full((2, 4), 2.0)), ValueError,
     r"bool or 0/1 \(1 = real token\), got torch\.float32 \(2, 4\) with other values"),
    (lambda: CLIP.encode_text(TEXT + 20), ValueError, r"token ids must be in \[0, 12\), got values in \[20, 27\]"),
    (lambda: CLIP.encode_image(IMAGES.double()), TypeError, r"images has dtype torch\.float64 but the module's weights"),
    (lambda: CLIP.loss(IMAGES, TEXT[:1]), ValueError, r"pair up one to one: image \(2, 8\) vs text \(1, 8\)"),
    (lambda: clip.encode_texts(nn.Linear(2, 2), None, ["a"]), TypeError, r"model must be a vitlib\.clip\.CLIP, got Linear"),
    (lambda: clip.search_images(CLIP, None, "a red circle.", IMAGES, k=1.5), ValueError, r"k must be a positive int, got 1\.5"),
    (lambda: clip.search_images(CLIP, None, "a red circle.", [IMAGES], k=1), ValueError,
     r"images must be a float tensor \(N, 3, H, W\), got list"),
]

VLP_ROWS = [
    (lambda: vlp.VLPConfig(text_layers=0), ValueError, r"text_layers must be a positive int, got 0"),
    (lambda: vlp.VLPConfig(embed_dim=0), ValueError, r"embed_dim must be a positive int, got 0"),
    (lambda: vlp.VLPConfig(n_heads=0), ValueError, r"n_heads must be a positive int, got 0"),
    (lambda: vlp.VLPConfig(fusion_layers=-1), ValueError, r"fusion_layers must be a positive int, got -1"),
    (lambda: vlp.VLPConfig(image_size=30), ValueError,
     r"image_size=30 is not divisible by 8, as 4 CNN stages need: their 4x4 feature map would not fit 3x3 cell"),
    (lambda: vlp.VLPConfig(image_encoder="vit", image_size=30), ValueError, r"image_size=30 is not divisible by patch_size=8"),
    (lambda: vlp.VLPConfig(image_encoder="vit", vision_width=30), ValueError, r"d_model=30 is not divisible by n_heads=4"),
    (lambda: vlp.VLPConfig(image_encoder="resnet"), ValueError, r"unknown image_encoder 'resnet'; allowed: vit, cnn"),
    (lambda: vlp.VLPConfig(cnn_channels=()), ValueError, r"channels must be a non-empty tuple of positive ints, got \(\)"),
    (lambda: vlp.VLPConfig(bos_id=80), ValueError, r"bos_id must be a token id in \[0, 80\), got 80"),
    (lambda: vlp.VLPConfig(eos_id=-1), ValueError, r"eos_id must be a token id in \[0, 80\), got -1"),
    (lambda: vlp.VLPConfig(mask_prob=0), ValueError, r"mask_prob must be in \(0\.0, 1\.0\), got 0"),
    (lambda: vlp.mask_tokens(TEXT, -7, 10), ValueError, r"mask_id must be an int >= 0, got -7"),
    (lambda: vlp.mask_tokens(TEXT, 9.5, 10), ValueError, r"mask_id must be an int >= 0, got 9\.5"),
    (lambda: vlp.mask_tokens(TEXT, 9, 0), ValueError, r"vocab_size must be a positive int, got 0"),
    (lambda: vlp.mask_tokens(TEXT - 5, 9, 10), ValueError, r"token ids >= 0, got a minimum of -5"),
    (lambda: vlp.mask_tokens(TEXT, 9, 10, mask_prob="0.2"), TypeError, r"mask_prob must be a real number, got str"),
    (lambda: vlp.mask_tokens(TEXT, 9, 10, replace_probs=(0.8,)), ValueError, r"two numbers \(p_mask, p_random\), got \(0\.8,\)"),
    (lambda: vlp.mask_tokens(TEXT, 9, 10, replace_probs=(math.nan, 0.1)), ValueError, r"replace_probs\[0\] must be in \[0\.0, 1\.0\], got nan"),
    (lambda: vlp.mask_tokens(TEXT, 9, 10, maskable=TEXT_MASK.to(META)), ValueError,
     r"maskable must be a bool tensor of shape \(2, 4\), got torch\.bool \(2, 4\) on meta"),
    (lambda: vlp.itm_pairs(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 0.0])), ValueError,
     r"two LongTensors \(B,\) of indices on one device, got torch\.float32 \(2,\), torch\.float32 \(2,\)"),
    (lambda: vlp.itm_pairs(long(5, 0), long(1, 0)), ValueError, r"indices must be in \[0, 2\) \(the batch\), got values in \[0, 5\]"),
    (lambda: vlp.itm_pairs(long(-1, 0), long(1, 0)), ValueError, r"got values in \[-1, 1\]"),
    (lambda: vlp.itm_pairs([0, 1], [1, 0]), ValueError, r"got list, list"),
    (lambda: vlp.sample_hard_negatives(torch.full((3, 3), math.nan)), ValueError, r"finite floating-point logits, got torch\.float32 \(3, 3\)"),
    (lambda: vlp.sample_hard_negatives(torch.zeros(3, 3).long()), ValueError, r"got torch\.int64 \(3, 3\)"),
    (lambda: vlp.sample_hard_negatives(torch.zeros(3, 3), exclude=torch.zeros(3, 3, dtype=torch.bool, device=META)),
     ValueError, r"exclude must be a bool tensor of shape \(3, 3\), got torch\.bool \(3, 3\) on meta"),
    (lambda: VLP(torch.rand(2, 3, 6, 6), TEXT, TEXT_MASK), ValueError, r"images must be 8x8, got 6x6"),
    (lambda: VLP(IMAGES, TEXT + 20, TEXT_MASK), ValueError, r"token ids must be in \[0, 12\), got values in \[20, 27\]"),
    (lambda: VLP(IMAGES, TEXT.to(META), TEXT_MASK), ValueError, r"input_ids are on meta but the model is on cpu"),
    (lambda: VLP.losses({"images": IMAGES, "input_ids": TEXT, "attention_mask": TEXT_MASK, "image_ids": long(0, 1, 2)}),
     ValueError, r"image_ids must be a tensor \(2,\), got torch\.int64 \(3,\)"),
]

FUSION = [
    (lambda: fusion.FusionEncoder(8, 0, 1), ValueError, r"n_heads must be a positive int, got 0"),
    (lambda: fusion.FusionEncoder(8, 2, 0), ValueError, r"n_layers must be a positive int, got 0"),
    (lambda: fusion.FusionLayer(8, 2, norm_eps=0.0), ValueError, r"norm_eps must be > 0\.0, got 0\.0"),
    (lambda: VLP.fusion(torch.randn(2, 3, 8).double(), torch.randn(2, 4, 8)), TypeError,
     r"text has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: VLP.fusion(torch.randn(2, 3, 8), [1]), TypeError, r"image must be a tensor, got list"),
    (lambda: VLP.fusion(torch.randn(2, 3, 8), torch.randn(3, 4, 8)), ValueError, r"image must have shape \(2, S, 8\), got \(3, 4, 8\)"),
]

DECODING = [
    (lambda: decoding.generate(nn.Linear(2, 2), long([1, 2]), 2), TypeError,
     r"model must be an nn\.Module whose config gives vocab_size and max_len, .* got Linear"),
    (lambda: decoding.generate(GPT, long([1, 2]), 1.5), ValueError, r"max_new_tokens must be an int >= 0, got 1\.5"),
    (lambda: decoding.generate(GPT, long([1, 2]), 5), ValueError, r"prompt length 2 \+ max_new_tokens 5 exceeds max_len=6"),
    (lambda: decoding.generate(GPT, long([1, 11]), 2), ValueError, r"token ids must be in \[0, 11\), got values in \[1, 11\]"),
    (lambda: decoding.generate(GPT, long([1, 2]), 2, use_cache=1), TypeError, r"use_cache must be a bool, got int"),
    (lambda: decoding.TemperatureProcessor(0), ValueError, r"temperature must be > 0\.0, got 0"),
    (lambda: decoding.TemperatureProcessor("1"), TypeError, r"temperature must be a real number, got str"),
    (lambda: decoding.SampleProcessor(torch.Generator(), temperature=-1.0), ValueError, r"temperature must be > 0\.0, got -1\.0"),
    (lambda: decoding.SampleProcessor(None), TypeError, r"generator must be a CPU torch\.Generator .*, got NoneType"),
    (lambda: decoding.LogitsProcessorList([NEXT, 3]), TypeError, r"processor 1 must be a callable \(input_ids, scores\) -> scores, got int"),
]

CLASSIFIER_ROWS = [
    (lambda: classifier.AttributeClassifierConfig(encoder_config={"bogus": 1}), ValueError,
     r"encoder_config has fields \['bogus'\] that CNNConfig does not; it has \['in_channels', 'channels', 'norm', "
     r"'padding_mode'\]"),
    (lambda: classifier.AttributeClassifierConfig(encoder_config=[1]), TypeError,
     r"encoder_config must be a dict of CNNConfig fields, got list"),
    (lambda: classifier.AttributeClassifierConfig("vit", {"image_size": 16}, 32), ValueError,
     r"image_size=32 differs from the ViT's 16"),
    (lambda: classifier.AttributeClassifierConfig(encoder_config={"channels": ()}), ValueError,
     r"channels must be a non-empty tuple of positive ints, got \(\)"),
    (lambda: classifier.AttributeClassifierConfig("rnn"), ValueError, r"unknown encoder 'rnn'; allowed: cnn, vit"),
    (lambda: classifier.AttributeClassifier(vision.CNNEncoder(vision.CNNConfig(in_channels=1, channels=(4,)))), ValueError,
     r"RGB images \(in_channels=3\), got in_channels=1"),
    (lambda: CLASSIFIER(IMAGES.double()), TypeError, r"images has dtype torch\.float64 but the module's weights are torch\.float32"),
    (lambda: CLASSIFIER.predict([1]), TypeError, r"float tensor \(B, 3, H, W\) or a uint8 array \(B, H, W, 3\), got list"),
    (lambda: CLASSIFIER.predict(np.zeros((2, 8, 8, 3))), TypeError, r"uint8 numpy array of images, got float64"),
    (lambda: classifier.scene_labels([1]), TypeError, r"scene_labels needs ShapesWorld scenes, got a int"),
]

HF = [
    (lambda: hf.to_hf_clip(build(clip.CLIP, clip.CLIPConfig(**(CLIP_CONFIG | dict(eos_id=2))))), ValueError,
     r"eos_id=2 cannot be exported: .* legacy rule for eos_token_id == 2 .* largest token id"),
    (lambda: hf.to_hf_clip(CLIP, pad_token_id=12), ValueError, r"pad_token_id must be a token id in \[0, 12\) or None, got 12"),
    (lambda: hf.to_hf_gpt2(GPT, eos_token_id=11), ValueError, r"eos_token_id must be a token id in \[0, 11\) or None, got 11"),
    (lambda: hf.to_hf_gpt2(GPT, bos_token_id=-1), ValueError, r"bos_token_id must be a token id in \[0, 11\) or None, got -1"),
    (lambda: hf.to_hf_gpt2(nn.Linear(2, 2)), TypeError, r"expects a vitlib\.transformer\.GPT, got Linear"),
    (lambda: hf.to_hf_clip(build(clip.CLIP, clip.CLIPConfig(**(CLIP_CONFIG | dict(logit_bias=-10.0))))), ValueError,
     r"a CLIP with a logit_bias \(SigLIP's\) cannot be exported"),
    (lambda: hf.from_hf_vit(VIT), TypeError, r"from_hf_vit expects a transformers ViTModel, got ViT"),
]

CHECKS = [
    (lambda: checks.check_int(True, "n"), ValueError, r"n must be a positive int, got True"),
    (lambda: checks.check_int(3.0, "n"), ValueError, r"n must be a positive int, got 3\.0"),
    (lambda: checks.check_int(-1, "offset", minimum=0), ValueError, r"offset must be an int >= 0, got -1"),
    (lambda: checks.check_int(2**21, "d_model"), ValueError, r"d_model must be at most 1048576, got 2097152"),
    (lambda: checks.check_divisible(10, "d_model", 3, "n_heads"), ValueError, r"d_model=10 is not divisible by n_heads=3"),
    (lambda: checks.check_one_of("relu6", "activation", ("gelu", "relu")), ValueError,
     r"unknown activation 'relu6'; allowed: gelu, relu"),
    (lambda: checks.check_one_of(None, "norm", ("batch",)), ValueError, r"unknown norm None; allowed: batch"),
    (lambda: checks.check_number(math.inf, "eps", 0.0, low_open=True), ValueError, r"eps must be > 0\.0, got inf"),
    (lambda: checks.check_number(2.0, "p", high=1.0), ValueError, r"p must be <= 1\.0, got 2\.0"),
    (lambda: checks.check_number(math.nan, "x"), ValueError, r"x must be finite, got nan"),
    (lambda: checks.check_number(torch.tensor(1.0), "x"), TypeError, r"x must be a real number, got torch\.float32 \(\)"),
    (lambda: checks.check_probability(1.0, "dropout"), ValueError, r"dropout must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: checks.check_id(5, "eos_id", 5), ValueError, r"eos_id must be a token id in \[0, 5\), got 5"),
    (lambda: checks.check_id(None, "eos_id", 5), ValueError, r"eos_id must be a token id in \[0, 5\), got None"),
    (lambda: checks.check_token_ids(long(1, 2), 5), ValueError, r"LongTensor \(batch, length\), got torch\.int64 \(2,\)"),
    (lambda: checks.check_token_ids(long([1, 7]), 5), ValueError, r"in \[0, 5\), got values in \[1, 7\]"),
    (lambda: checks.check_like(torch.ones(2).half(), "x", torch.ones(2)), TypeError,
     r"x has dtype torch\.float16 but the module's weights are torch\.float32; pass x\.to\(torch\.float32\)"),
]

TABLES = {"positional": POSITIONAL, "lm": LM, "attention": ATTENTION, "transformer": TRANSFORMER, "vision": VISION,
          "contrastive": CONTRASTIVE, "clip": CLIP_ROWS, "vlp": VLP_ROWS, "fusion": FUSION, "decoding": DECODING,
          "classifier": CLASSIFIER_ROWS, "hf": HF, "checks": CHECKS}


def _raises(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call, error, message", POSITIONAL)
def test_positional(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", LM)
def test_lm(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", ATTENTION)
def test_attention(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", TRANSFORMER)
def test_transformer(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", VISION)
def test_vision(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", CONTRASTIVE)
def test_contrastive(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", CLIP_ROWS)
def test_clip(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", VLP_ROWS)
def test_vlp(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", FUSION)
def test_fusion(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", DECODING)
def test_decoding(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", CLASSIFIER_ROWS)
def test_classifier(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", HF)
def test_hf(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", CHECKS)
def test_checks(call, error, message):
    _raises(call, error, message)


def test_describe():
    assert checks.describe(torch.zeros(2, 3, dtype=torch.long)) == "torch.int64 (2, 3)"
    assert checks.describe(torch.zeros(2, device=META)) == "torch.float32 (2,) on meta"
    assert checks.describe([1]) == "list" and checks.describe(None) == "NoneType"


def test_the_whole_table_fails_fast():
    """Every bad call fails within a few seconds all together: none hangs or allocates its way to an error."""
    start = time.perf_counter()
    for name, rows in TABLES.items():
        for call, error, _ in rows:
            with pytest.raises(error):
                call()
    seconds = time.perf_counter() - start
    assert seconds < 5, f"the table of {sum(map(len, TABLES.values()))} bad calls took {seconds:.1f} s"
