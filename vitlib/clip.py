"""CLIP: a dual encoder that maps images and texts into one space, trained contrastively (chapter 05).

    v = W_v ViT(I),   t = W_t TextTransformer(T)[eos],   s_ij = cos(v_i, t_j),   logits = s * exp(logit_scale)

The architecture follows CLIP (and transformers' ``CLIPModel``): a ViT vision tower with a LayerNorm before its
encoder, pooled at the class token; a causal text transformer pooled at the first <eos>; bias-free projections; a
learnable ``logit_scale`` = log(1 / tau), initialised to log(1 / 0.07) and clamped at log(100). The losses live in
``vitlib.contrastive``; zero-shot classification and retrieval only compare embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .contrastive import clip_loss, hinge_loss, recall_at_k, siglip_loss, similarity
from .checks import check_divisible, check_id, check_int, check_positive_ints, check_token_ids, describe
from .transformer import Block
from .vision import ViT, ViTConfig
from .zoo import register_model
from .constants import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX

__all__ = ["CLIPConfig", "CLIP", "TextTransformer", "zero_shot_classify", "encode_texts", "search_images",
           "LOGIT_SCALE_INIT", "LOGIT_SCALE_MAX",
           "clip_loss", "hinge_loss", "siglip_loss", "similarity", "recall_at_k"]  # the losses, re-exported



@dataclass
class CLIPConfig:
    """Sizes of both towers (flat, so a checkpoint's JSON config reads at a glance).

    The defaults are the course CLIP: 24x24 images cut into 3x3 patches of 8x8 pixels, one patch per cell of the
    ShapesWorld grid (chapter 05 shows why that matters), and texts of up to 40 tokens.
    """

    vocab_size: int = 80
    max_len: int = 40
    eos_id: int = 3
    embed_dim: int = 64
    image_size: int = 24
    patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 1
    vision_heads: int = 4
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4

    def __post_init__(self):
        check_positive_ints(self, [name for name in vars(self) if name != "eos_id"])
        check_positive_ints(self, ["eos_id"], minimum=0)
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"eos_id={self.eos_id} is outside the vocabulary of {self.vocab_size}")
        check_divisible(self.text_width, "text_width", self.text_heads, "text_heads")
        self.vision_config()  # ViTConfig checks image_size % patch_size and vision_width % vision_heads

    def vision_config(self) -> ViTConfig:
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, d_model=self.vision_width,
                         n_layers=self.vision_layers, n_heads=self.vision_heads, pre_norm=True)


class TextTransformer(nn.Module):
    """Token + position embeddings, causal pre-LN blocks, a final LayerNorm; pooled at each row's first <eos>."""

    def __init__(self, vocab_size: int, max_len: int, width: int, n_layers: int, n_heads: int, eos_id: int):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_len", max_len), ("n_layers", n_layers)):
            check_int(value, name)
        check_id(eos_id, "eos_id", vocab_size)
        self.vocab_size, self.max_len, self.eos_id = vocab_size, max_len, eos_id
        self.token_emb = nn.Embedding(vocab_size, width)
        self.pos_emb = nn.Embedding(max_len, width)
        nn.init.normal_(self.token_emb.weight, std=0.02)  # CLIP's initialisation of the two embeddings
        nn.init.normal_(self.pos_emb.weight, std=0.01)
        self.blocks = nn.ModuleList(Block(width, n_heads, causal=True) for _ in range(n_layers))
        self.norm = nn.LayerNorm(width)

    def _check(self, input_ids, attention_mask) -> torch.Tensor | None:
        check_token_ids(input_ids, self.vocab_size, self.token_emb.weight.device)
        if input_ids.shape[1] > self.max_len:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_len={self.max_len}")
        if not (input_ids == self.eos_id).any(dim=1).all():
            raise ValueError(f"every text must contain <eos> (id {self.eos_id}) to pool at; encode with add_eos=True")
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got "
                             f"{tuple(getattr(attention_mask, 'shape', ())) or type(attention_mask).__name__}")
        if attention_mask.device != input_ids.device:
            raise ValueError(f"attention_mask is on {attention_mask.device} but input_ids on {input_ids.device}")
        if attention_mask.dtype != torch.bool and ((attention_mask != 0) & (attention_mask != 1)).any():
            raise ValueError(f"attention_mask must be bool or 0/1 (1 = real token), got {describe(attention_mask)} "
                             "with other values")
        return attention_mask.to(torch.bool)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_tokens: bool = False):
        """input_ids (B, T) -> pooled (B, width); with ``return_tokens`` also every position (B, T, width).

        attention_mask (B, T): True (or 1) for real tokens. Padding after <eos> never changes the pooled state,
        since attention is causal; the mask keeps the states of the padding positions clean too.
        """
        attention_mask = self._check(input_ids, attention_mask)
        B, T = input_ids.shape
        x = self.token_emb(input_ids) + self.pos_emb(torch.arange(T, device=input_ids.device))  # (B, T, width)
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask)
        x = self.norm(x)
        first_eos = (input_ids == self.eos_id).int().argmax(dim=1)            # (B,): argmax finds the first max
        pooled = x[torch.arange(B, device=x.device), first_eos]               # (B, width)
        return (pooled, x) if return_tokens else pooled


@register_model(config_cls=CLIPConfig)
class CLIP(nn.Module):
    """The dual encoder. ``encode_image`` / ``encode_text`` return projected, not yet normalised, embeddings."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        if not isinstance(config, CLIPConfig):
            raise TypeError(f"CLIP expects a CLIPConfig, got {type(config).__name__}")
        c = self.config = config
        self.vision = ViT(c.vision_config())
        self.text = TextTransformer(c.vocab_size, c.max_len, c.text_width, c.text_layers, c.text_heads, c.eos_id)
        self.visual_projection = nn.Linear(c.vision_width, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, image_size, image_size) in [0, 1] -> v (B, embed_dim)."""
        return self.visual_projection(self.vision(images))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) with an <eos> in every row -> t (B, embed_dim)."""
        return self.text_projection(self.text(input_ids, attention_mask))

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) = 1 / tau, with logit_scale clamped at log(100) as in CLIP."""
        return self.logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        """logits_per_image (B_images, B_texts) = cos(v_i, t_j) / tau."""
        return similarity(self.encode_image(images), self.encode_text(input_ids, attention_mask)) * self.scale()

    def loss(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        """The symmetric InfoNCE loss of a batch of matching (image, text) pairs."""
        return clip_loss(self.encode_image(images), self.encode_text(input_ids, attention_mask),
                         self.logit_scale.clamp(max=LOGIT_SCALE_MAX))


def encode_texts(model: CLIP, tokenizer, texts: list[str], device=None) -> torch.Tensor:
    """Tokenise (with <bos>/<eos>), pad and encode a list of texts: (len(texts), embed_dim)."""
    if not isinstance(model, CLIP):
        raise TypeError(f"model must be a vitlib.clip.CLIP, got {describe(model)}")
    if isinstance(texts, str) or not texts:
        raise ValueError(f"encode_texts needs a non-empty list of texts, got {texts!r}")
    device = next(model.parameters()).device if device is None else device
    batch = tokenizer(list(texts), add_bos=True, add_eos=True)
    return model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))


def _class_embeddings(model: CLIP, tokenizer, class_texts, device) -> torch.Tensor:
    """One unit vector per class: (K, D). A class given as a list of prompts gets their normalised mean."""
    if isinstance(class_texts, str) or not class_texts:
        raise ValueError(f"class_texts must be a non-empty list (one text, or a list of texts, per class), "
                         f"got {class_texts!r}")
    prompts = [[c] if isinstance(c, str) else list(c) for c in class_texts]
    if any(not p or not all(isinstance(t, str) for t in p) for p in prompts):
        raise ValueError("each class must be a text or a non-empty list of texts")
    flat = F.normalize(encode_texts(model, tokenizer, [t for p in prompts for t in p], device), dim=-1)
    per_class = torch.split(flat, [len(p) for p in prompts])                  # K tensors (n_prompts, D)
    return F.normalize(torch.stack([e.mean(dim=0) for e in per_class]), dim=-1)  # (K, D)


@torch.no_grad()
def zero_shot_classify(model: CLIP, tokenizer, images: torch.Tensor, class_texts) -> torch.Tensor:
    """The index of the class text most similar to each image: LongTensor (B,). No training on the classes.

    ``class_texts``: one text per class ("a red circle."), or a list of texts per class, whose embeddings are
    averaged (CLIP's prompt ensembling).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a float tensor (B, 3, H, W), got {tuple(getattr(images, 'shape', ()))}")
    text = _class_embeddings(model, tokenizer, class_texts, images.device)  # (K, D)
    image = F.normalize(model.encode_image(images), dim=-1)                   # (B, D)
    return (image @ text.T).argmax(dim=1)


@torch.no_grad()
def search_images(model: CLIP, tokenizer, query: str, images: torch.Tensor, k: int = 5):
    """Text -> image retrieval: (indices (k,), cosine similarities (k,)) of the k images closest to ``query``."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty text, got {query!r}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a float tensor (N, 3, H, W), got {describe(images)}")
    check_int(k, "k", maximum=None)
    if k > len(images):
        raise ValueError(f"k must be in 1..{len(images)} (the number of images), got {k}")
    s = similarity(encode_texts(model, tokenizer, [query], images.device), model.encode_image(images))[0]  # (N,)
    top = s.topk(k)
    return top.indices, top.values
