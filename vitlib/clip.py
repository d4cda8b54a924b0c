"""CLIP: a dual encoder that maps images and texts into one space, trained contrastively (chapter 05).

    v = W_v ViT(I),   t = W_t h_eos,   s_ij = cos(v_i, t_j),   logits_ij = s_ij exp(logit_scale) [+ logit_bias]

The architecture follows CLIP (and transformers' ``CLIPModel``): a ViT vision tower with a LayerNorm before its
encoder, pooled at the class token; a causal ``vitlib.transformer.TextTransformer`` (GPT's, with CLIP's embedding
initialisation; its docstring says where the two differ) pooled at each text's first <eos>; bias-free projections.

Temperature: ``logit_scale`` = ln(1 / tau) is learned, from ln(1 / 0.07). The logits use exp(logit_scale) as it
is, and ``clamp_logit_scale_()`` keeps it in [0, ln 100] (tau >= 0.01), called by the training loop after each
optimiser step: OpenCLIP's order (``logit_scale.clamp_(0, math.log(100))`` after ``optimizer.step()``).
transformers' ``CLIPModel`` does not clamp at all. Clamping inside forward instead, exp(min(logit_scale, ln 100)),
gives a zero gradient once logit_scale passes ln 100, so that learning could never bring it back down.

SigLIP: with ``CLIPConfig.logit_bias`` set (-10 in the SigLIP paper) the model learns a bias b as well, saved with
its weights: logits = s exp(logit_scale) + b, and ``loss`` is the sigmoid loss (a bias shared by all logits cancels
in InfoNCE's softmax, so it means something only there). The losses live in ``vitlib.contrastive``; zero-shot
classification and retrieval only compare embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checks import (check_divisible, check_int, check_number, check_one_of, check_positive_ints, check_token_ids,
                     describe)
from .constants import LOGIT_SCALE_INIT
from .contrastive import clamp_logit_scale_, clip_loss, siglip_loss, similarity
from .transformer import ACTIVATIONS, TextTransformer
from .vision import ViT, ViTConfig
from .zoo import register_model

__all__ = ["CLIPConfig", "CLIP", "zero_shot_classify", "encode_texts", "score_pairs", "search_images"]

SIZES = ("vocab_size", "max_len", "embed_dim", "image_size", "patch_size", "vision_width", "vision_layers",
         "vision_heads", "text_width", "text_layers", "text_heads")


@dataclass
class CLIPConfig:
    """Sizes of both towers (flat, so a checkpoint's JSON config reads at a glance), and SigLIP's initial bias.

    The defaults are the course CLIP: 24x24 images cut into 3x3 patches of 8x8 pixels, one patch per cell of the
    ShapesWorld grid (chapter 05 shows why that matters), and texts of up to 40 tokens. ``logit_bias``: None for
    CLIP (InfoNCE); a number, e.g. -10, for a learnable SigLIP bias starting there. ``activation``: the FFNs' in
    both towers, one of ``vitlib.activations.ACTIVATIONS``: "gelu", or OpenAI's "quick_gelu", x sigmoid(1.702 x).
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
    logit_bias: float | None = None
    activation: str = "gelu"

    def __post_init__(self):
        check_positive_ints(self, SIZES)
        check_positive_ints(self, ["eos_id"], minimum=0)
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"eos_id={self.eos_id} is outside the vocabulary of {self.vocab_size}")
        check_divisible(self.text_width, "text_width", self.text_heads, "text_heads")
        if self.logit_bias is not None:
            check_number(self.logit_bias, "logit_bias")
        check_one_of(self.activation, "activation", ACTIVATIONS)
        self.vision_config()  # ViTConfig checks image_size % patch_size and vision_width % vision_heads

    def vision_config(self) -> ViTConfig:
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, d_model=self.vision_width,
                         n_layers=self.vision_layers, n_heads=self.vision_heads, pre_norm=True,
                         activation=self.activation)


@register_model(config_cls=CLIPConfig)
class CLIP(nn.Module):
    """The dual encoder. ``encode_image`` / ``encode_text`` return projected, not yet normalised, embeddings."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        if not isinstance(config, CLIPConfig):
            raise TypeError(f"CLIP expects a CLIPConfig, got {type(config).__name__}")
        c = self.config = config
        self.vision = ViT(c.vision_config())
        self.text = TextTransformer(c.vocab_size, c.max_len, c.text_width, c.text_layers, c.text_heads, causal=True,
                                    activation=c.activation, embedding_std=(0.02, 0.01))   # CLIP's init of E and P
        self.visual_projection = nn.Linear(c.vision_width, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self.register_parameter("logit_bias", None if c.logit_bias is None else
                                nn.Parameter(torch.tensor(float(c.logit_bias))))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, image_size, image_size) in [0, 1] -> v (B, embed_dim)."""
        return self.visual_projection(self.vision(images))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) with an <eos> in every row -> t = W_t h_eos (B, embed_dim), h_eos the text tower's state
        at the row's first <eos>. Padding after it never changes t, since attention is causal; attention_mask (B, T)
        (True or 1 for real tokens) keeps the states of the padding positions clean too."""
        eos = self.config.eos_id
        check_token_ids(input_ids, self.config.vocab_size, self.logit_scale.device)
        if not (input_ids == eos).any(dim=1).all():
            raise ValueError(f"every text must contain <eos> (id {eos}) to pool at; encode with add_eos=True")
        h = self.text(input_ids, attention_mask)                          # (B, T, text_width)
        first_eos = (input_ids == eos).int().argmax(dim=1)                # (B,): argmax finds the first maximum
        return self.text_projection(h[torch.arange(len(h), device=h.device), first_eos])   # (B, embed_dim)

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) = 1 / tau, as it is: ``clamp_logit_scale_`` keeps it in [1, 100] between steps."""
        return self.logit_scale.exp()

    def clamp_logit_scale_(self) -> None:
        """Clamp ``logit_scale`` in place to [0, ln 100], i.e. 0.01 <= tau <= 1; call it after each optimiser step.

        OpenCLIP clamps here, after the step; clamping inside forward would zero the gradient above ln 100."""
        clamp_logit_scale_(self.logit_scale)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        """logits_per_image (B_images, B_texts) = cos(v_i, t_j) / tau, + logit_bias when the model has one."""
        logits = similarity(self.encode_image(images), self.encode_text(input_ids, attention_mask)) * self.scale()
        return logits if self.logit_bias is None else logits + self.logit_bias

    def loss(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        """The symmetric InfoNCE loss of a batch of matching (image, text) pairs; with a ``logit_bias``, SigLIP's
        sigmoid loss."""
        v, t = self.encode_image(images), self.encode_text(input_ids, attention_mask)
        if self.logit_bias is None:
            return clip_loss(v, t, self.logit_scale)
        return siglip_loss(v, t, self.logit_scale, self.logit_bias)


def encode_texts(model: CLIP, tokenizer, texts: list[str], device=None) -> torch.Tensor:
    """Tokenise (with <bos>/<eos>), pad and encode a list of texts: (len(texts), embed_dim)."""
    if not isinstance(model, CLIP):
        raise TypeError(f"model must be a vitlib.clip.CLIP, got {describe(model)}")
    if isinstance(texts, str) or not texts:
        raise ValueError(f"encode_texts needs a non-empty list of texts, got {texts!r}")
    device = next(model.parameters()).device if device is None else device
    batch = tokenizer(list(texts), add_bos=True, add_eos=True)
    return model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))


@torch.no_grad()
def score_pairs(model: CLIP, tokenizer, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """cos(v_i, t_i) of row-aligned pairs: images float (N, 3, H, W) in [0, 1] and N texts -> (N,). The score
    ``vitlib.binding.swap_accuracy`` asks for."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a float tensor (N, 3, H, W), got {describe(images)}")
    if isinstance(texts, str) or len(texts) != len(images):
        raise ValueError(f"texts must be a list of one text per image ({len(images)}), got {texts!r:.80}")
    device = next(model.parameters()).device if isinstance(model, CLIP) else None
    t = F.normalize(encode_texts(model, tokenizer, texts, device), dim=-1)          # (N, D)
    v = F.normalize(model.encode_image(images.to(device)), dim=-1)                  # (N, D)
    return (v * t).sum(dim=-1)


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
