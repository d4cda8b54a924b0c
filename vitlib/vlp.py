"""Vision-language pre-training: image-text matching with hard negatives, masked LM, their sum (chapter 06).

    ITC:    s_ij = cos(W_v v_i, W_t t_j) / tau,   L_ITC = the symmetric InfoNCE of chapter 05
    fusion: h <- h + SA(LN_1 h);  h <- h + CA(LN_2 h, V);  h <- h + FFN(LN_3 h)       (V: the image tokens)
    ITM:    p(match | I, T) = softmax(W h_[CLS] + b);  negatives: for image i, text j != i ~ softmax_j(s_ij)
    MLM:    L_MLM = -mean over masked positions m of log p(x_m | x_masked, I)
    L = L_ITC + L_ITM + L_MLM

Swap negatives (``vitlib.binding``): a batch may carry, per pair (I_i, T_i), an edited scene with two attributes
exchanged: its caption T'_i (false for I_i) and image I'_i (false for T_i). ITM then also classifies (I_i, T'_i, 0)
and (I'_i, T_i, 0) beside BLIP's sampled negatives; with ``swap_itc`` they also join ITC's softmaxes (NegCLIP).

ALBEF's and BLIP's layout: image and text encoders aligned by ITC; a fusion encoder (``vitlib.fusion``) whose words
cross-attend to the image tokens, read by the ITM and MLM heads. The text encoder is the ``TextTransformer`` of
``vitlib.transformer`` run bidirectionally (as BERT), with one more id, [MASK], and pooled at <bos> (BERT's [CLS]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .checks import (check_divisible, check_id, check_int, check_number, check_one_of, check_positive_ints,
                     check_token_ids, describe)
from .constants import IGNORE_INDEX, LOGIT_SCALE_INIT
from .contrastive import clamp_logit_scale_, clip_loss, clip_loss_with_negatives, similarity
from .fusion import FusionEncoder
from .transformer import TextTransformer
from .vision import CNNConfig, CNNEncoder, ViT, ViTConfig, check_images
from .zoo import register_model


class ITMHead(nn.Linear):
    """Image-text matching: the fused state at <bos> (BERT's [CLS]) -> logits (B, 2) for (no match, match)."""

    def __init__(self, d_model: int):
        super().__init__(d_model, 2)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return super().forward(fused[:, 0])   # (B, T, d) -> (B, 2)


class MLMHead(nn.Sequential):
    """BERT's prediction head: dense, GELU, LayerNorm, then scores over the vocabulary: (B, T, d) -> (B, T, V)."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model), nn.Linear(d_model, vocab_size))


@torch.no_grad()
def sample_hard_negatives(sim: torch.Tensor, generator: torch.Generator | None = None,
                          exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BLIP's hard negatives from the ITC logits sim (B_images, B_texts) = s_ij / tau of matching pairs (i, i):
    for image i a text j != i ~ softmax_j(s_ij), for text j an image i != j ~ softmax_i(s_ij); ``exclude`` (B, B)
    bool marks more pairs that are no negatives (e.g. equal captions). All-zero logits give uniform draws.
    Returns (negative text per image (B,), negative image per text (B,)), long."""
    if not isinstance(sim, torch.Tensor) or sim.dim() != 2 or sim.shape[0] != sim.shape[1] or len(sim) < 2:
        raise ValueError(f"sim must be a square (batch, batch) tensor with batch >= 2, got {describe(sim)}")
    if not sim.is_floating_point() or not sim.isfinite().all():   # softmax would give NaN, multinomial fail deep
        raise ValueError(f"sim must hold finite floating-point logits, got {describe(sim)} with NaN or inf")
    forbidden = torch.eye(len(sim), dtype=torch.bool, device=sim.device)   # the positives
    if exclude is not None:
        if getattr(exclude, "shape", None) != sim.shape or exclude.dtype != torch.bool or exclude.device != sim.device:
            raise ValueError(f"exclude must be a bool tensor of shape {tuple(sim.shape)}, got {describe(exclude)}")
        forbidden = forbidden | exclude
    if forbidden.all(dim=1).any() or forbidden.all(dim=0).any():
        raise ValueError("some image or text has no allowed negative in the batch (all pairs excluded)")
    logits = sim.float().masked_fill(forbidden, float("-inf"))                   # (B, B)
    text_for_image = torch.multinomial(logits.softmax(dim=1), 1, generator=generator)[:, 0]    # (B,) row-wise
    image_for_text = torch.multinomial(logits.T.softmax(dim=1), 1, generator=generator)[:, 0]  # (B,) column-wise
    return text_for_image, image_for_text


def itm_pairs(text_for_image: torch.Tensor, image_for_text: torch.Tensor):
    """The 3B (image, text, label) triples of ITM: B positives (i, i, 1), then (i, text_for_image[i], 0), then
    (image_for_text[j], j, 0). Returns (image index (3B,), text index (3B,), labels (3B,)), long."""
    pair, B = (text_for_image, image_for_text), len(text_for_image)   # float indices would pass through silently
    if not (all(isinstance(x, torch.Tensor) and x.dtype == torch.long and x.dim() == 1 for x in pair)
            and pair[0].shape == pair[1].shape and pair[0].device == pair[1].device):
        raise ValueError(f"need two LongTensors (B,) of indices on one device, got {describe(pair[0])}, "
                         f"{describe(pair[1])}")
    if B and ((both := torch.cat(pair)).min() < 0 or both.max() >= B):
        raise ValueError(f"indices must be in [0, {B}) (the batch), got values in [{both.min().item()}, "
                         f"{both.max().item()}]")
    i = torch.arange(len(text_for_image), device=text_for_image.device)
    labels = torch.cat([torch.ones_like(i), torch.zeros_like(i), torch.zeros_like(i)])
    return torch.cat([i, i, image_for_text]), torch.cat([i, text_for_image, i]), labels


def mask_tokens(input_ids: torch.Tensor, mask_id: int, vocab_size: int, mask_prob: float = 0.15,
                maskable: torch.Tensor | None = None, generator: torch.Generator | None = None,
                replace_probs: tuple[float, float] = (0.8, 0.1)):
    """BERT's masking: choose each maskable token with probability ``mask_prob``; of the chosen, a fraction
    replace_probs[0] becomes ``mask_id``, replace_probs[1] a uniformly random id < vocab_size, the rest stays.
    Draws, in order: u = rand(B, T) (chosen: u < mask_prob), r = rand(B, T), randint for the random ids.
    Returns (masked ids (B, T), labels (B, T): the original id where chosen, IGNORE_INDEX elsewhere)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError(f"input_ids must be a LongTensor (batch, length), got {describe(input_ids)}")
    check_int(mask_id, "mask_id", minimum=0, maximum=None)   # a vocabulary's [MASK], or the id just past it
    check_int(vocab_size, "vocab_size", maximum=None)
    if input_ids.numel() and input_ids.min() < 0:
        raise ValueError(f"input_ids must be token ids >= 0, got a minimum of {input_ids.min().item()}")
    check_number(mask_prob, "mask_prob", 0.0, 1.0, low_open=True, high_open=True)
    if not (isinstance(replace_probs, (tuple, list)) and len(replace_probs) == 2):
        raise ValueError(f"replace_probs must be two numbers (p_mask, p_random), got {replace_probs!r}")
    for j, p in enumerate(replace_probs):
        check_number(p, f"replace_probs[{j}]", 0.0, 1.0)
    p_mask, p_random = replace_probs
    if p_mask + p_random > 1:
        raise ValueError(f"replace_probs must be two numbers >= 0 adding up to at most 1, got {replace_probs!r}")
    if maskable is not None and (getattr(maskable, "shape", None) != input_ids.shape or maskable.dtype != torch.bool
                                 or maskable.device != input_ids.device):
        raise ValueError(f"maskable must be a bool tensor of shape {tuple(input_ids.shape)}, got {describe(maskable)}")
    kw = dict(generator=generator, device=input_ids.device)
    chosen = (torch.rand(input_ids.shape, **kw) < mask_prob) & (True if maskable is None else maskable)  # (B, T)
    r = torch.rand(input_ids.shape, **kw)
    random_ids = torch.randint(0, vocab_size, input_ids.shape, **kw)
    masked = torch.where(chosen & (r < p_mask), mask_id, input_ids)
    masked = torch.where(chosen & (r >= p_mask) & (r < p_mask + p_random), random_ids, masked)
    return masked, input_ids.masked_fill(~chosen, IGNORE_INDEX)


@dataclass
class VLPConfig:
    """Sizes of the three encoders (flat). The [MASK] token gets id ``vocab_size``, one row past the tokenizer's."""

    vocab_size: int = 80
    max_len: int = 48
    bos_id: int = 1
    eos_id: int = 3
    image_encoder: str = "cnn"              # "cnn": feature-map cells as tokens; "vit": patch tokens
    image_size: int = 32
    cnn_channels: tuple = (16, 32, 64, 64)  # 4 stages: a 4x4 map of 64-d tokens at 32x32
    patch_size: int = 8                     # ViT only, like vision_layers
    vision_width: int = 64                  # the ViT's d_model; set to cnn_channels[-1] for "cnn"
    vision_layers: int = 1
    text_width: int = 64
    text_layers: int = 1
    fusion_layers: int = 1
    n_heads: int = 4
    embed_dim: int = 64
    mask_prob: float = 0.3

    def __post_init__(self):
        check_one_of(self.image_encoder, "image_encoder", ("vit", "cnn"))
        if self.image_encoder == "cnn":
            self.cnn_channels = CNNConfig(channels=self.cnn_channels).channels   # checked, as a tuple
            self.vision_width = self.cnn_channels[-1]
        check_positive_ints(self, ["vocab_size", "max_len", "image_size", "patch_size", "vision_width", "vision_layers",
                                   "text_width", "text_layers", "fusion_layers", "n_heads", "embed_dim"])
        check_id(self.bos_id, "bos_id", self.vocab_size)
        check_id(self.eos_id, "eos_id", self.vocab_size)
        check_number(self.mask_prob, "mask_prob", 0.0, 1.0, low_open=True, high_open=True)
        check_divisible(self.text_width, "text_width", self.n_heads, "n_heads")
        if self.image_encoder == "vit":
            self.vision_config()   # checks image_size % patch_size and vision_width % n_heads
        elif self.image_size % (stride := 2 ** (len(self.cnn_channels) - 1)):   # each stage after the first halves
            g, n = -(-self.image_size // stride), self.image_size // stride     # the CNN's grid; the cell positions
            raise ValueError(f"image_size={self.image_size} is not divisible by {stride}, as {len(self.cnn_channels)} "
                             f"CNN stages need: their {g}x{g} feature map would not fit {n}x{n} cell positions")

    def vision_config(self) -> ViTConfig:
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, d_model=self.vision_width,
                         n_layers=self.vision_layers, n_heads=self.n_heads)


@register_model(config_cls=VLPConfig)
class VLPModel(nn.Module):
    """Image encoder + text encoder (ITC) + fusion encoder with ITM and MLM heads; ``losses`` gives all three."""

    def __init__(self, config: VLPConfig):
        super().__init__()
        if not isinstance(config, VLPConfig):
            raise TypeError(f"VLPModel expects a VLPConfig, got {type(config).__name__}")
        c = self.config = config
        self.mask_id = c.vocab_size
        if c.image_encoder == "vit":
            self.vision = ViT(c.vision_config())
        else:   # the feature map's cells become tokens: learned positions and a LayerNorm, as in a ViT
            self.vision = CNNEncoder(CNNConfig(channels=c.cnn_channels))
            n_cells = (c.image_size // 2 ** (len(c.cnn_channels) - 1)) ** 2   # each stage after the first halves H, W
            self.cell_pos = nn.Parameter(torch.randn(1, n_cells, c.vision_width) * 0.02)
            self.cell_norm = nn.LayerNorm(c.vision_width)
        self.text = TextTransformer(c.vocab_size + 1, c.max_len, c.text_width, c.text_layers, c.n_heads,
                                    causal=False)   # + [MASK]; bidirectional, PyTorch's initialisation
        self.fusion = FusionEncoder(c.text_width, c.n_heads, c.fusion_layers, d_context=c.vision_width)
        self.image_proj, self.text_proj = nn.Linear(c.vision_width, c.embed_dim), nn.Linear(c.text_width, c.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))   # log(1 / tau), tau = 0.07 at first
        self.itm_head, self.mlm_head = ITMHead(c.text_width), MLMHead(c.text_width, c.vocab_size)

    def scale(self) -> torch.Tensor:   # 1 / tau = exp(logit_scale); kept <= 100 by clamp_logit_scale_
        return self.logit_scale.exp()

    def clamp_logit_scale_(self) -> None:
        """Keep tau >= 0.01; call it after each optimiser step (``vitlib.contrastive.clamp_logit_scale_``)."""
        clamp_logit_scale_(self.logit_scale)

    def encode_image(self, images: torch.Tensor):
        """images (B, 3, H, W) -> (ITC embedding (B, embed_dim), image tokens (B, S, vision_width))."""
        check_images(images, 3, self.config.image_size)   # the CNN would take any size, and its grid might fit
        if self.config.image_encoder == "vit":
            pooled, tokens = self.vision(images, return_tokens=True)     # (B, D), (B, 1 + N, D)
        else:
            pooled, fmap = self.vision(images, return_feature_map=True)  # (B, D), (B, D, h, w)
            tokens = self.cell_norm(rearrange(fmap, "b d h w -> b (h w) d") + self.cell_pos)   # (B, h*w, D)
        return self.image_proj(pooled), tokens

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """ids (B, T) starting with <bos> -> (ITC embedding (B, embed_dim), text tokens (B, T, text_width))."""
        tokens = self.text(input_ids, attention_mask)                    # (B, T, text_width)
        return self.text_proj(tokens[:, 0]), tokens                      # pooled at <bos>, BERT's [CLS]

    def itm_logits(self, image_tokens, text_tokens, attention_mask) -> torch.Tensor:   # row-aligned pairs -> (B, 2)
        return self.itm_head(self.fusion(text_tokens, image_tokens, attention_mask))

    def forward(self, images, input_ids, attention_mask) -> torch.Tensor:
        """The alignment scores s = f(v, t): ITC logits (B_images, B_texts) = cos(v_i, t_j) / tau."""
        self._check(images, input_ids, attention_mask)
        return similarity(self.encode_image(images)[0], self.encode_text(input_ids, attention_mask)[0]) * self.scale()

    def _check(self, images, input_ids, attention_mask) -> None:
        check_token_ids(input_ids, self.config.vocab_size, self.logit_scale.device)
        if not 0 < input_ids.shape[1] <= self.config.max_len:
            raise ValueError(f"text length must be in 1..{self.config.max_len} (max_len), got {input_ids.shape[1]}")
        if getattr(attention_mask, "dtype", None) != torch.bool or attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must be bool {tuple(input_ids.shape)}, got {describe(attention_mask)}")
        if not (input_ids[:, 0] == self.config.bos_id).all():
            raise ValueError(f"every text must start with <bos> (id {self.config.bos_id}): encoders read position 0")
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] != input_ids.shape[0]:
            raise ValueError(f"images must be (B, 3, H, W) with B = {input_ids.shape[0]} (one per text), got "
                             f"{describe(images)}")

    def _swaps(self, batch: dict, ids: torch.Tensor):
        """The batch's swap negatives (rows that have one): (images (K, 3, H, W), ids (K, T), mask (K, T), rows (K,)),
        or None when the batch carries none."""
        keys = ("swap_images", "swap_input_ids", "swap_attention_mask", "has_swap")
        if not any(k in batch for k in keys):
            return None
        if missing := [k for k in keys if k not in batch]:
            raise ValueError(f"a batch with swap negatives needs all of {list(keys)}; it lacks {missing}")
        images, swap_ids, mask, has = (batch[k] for k in keys)
        if getattr(has, "dtype", None) != torch.bool or has.shape != ids.shape[:1]:
            raise ValueError(f"has_swap must be a bool tensor ({len(ids)},), got {describe(has)}")
        if getattr(swap_ids, "shape", None) != ids.shape:
            raise ValueError(f"swap_input_ids must have the shape of input_ids {tuple(ids.shape)} (pad both "
                             f"together), got {describe(swap_ids)}")
        self._check(images, swap_ids, mask)
        rows = has.nonzero()[:, 0]                                       # (K,)
        return images[rows], swap_ids[rows], mask[rows], rows

    def losses(self, batch: dict, negatives: str = "hard", generator: torch.Generator | None = None,
               swap_itc: bool = False) -> dict:
        """batch {"images" (B, 3, H, W), "input_ids" (B, T), "attention_mask" (B, T) bool} of matching pairs,
        optionally "image_ids" (B,) (equal ids: the same image, never a negative), and swap negatives
        {"swap_images" (B, 3, H, W), "swap_input_ids" (B, T), "swap_attention_mask" (B, T), "has_swap" (B,) bool}
        -> {"itc", "itm", "mlm", "total"}. ``negatives``: "hard" (BLIP's sampling) or "random" (uniform) for ITM;
        ``swap_itc``: the swap negatives also join ITC (NegCLIP), not only ITM."""
        if negatives not in ("hard", "random"):
            raise ValueError(f"negatives must be 'hard' or 'random', got {negatives!r}")
        if not isinstance(swap_itc, bool):
            raise TypeError(f"swap_itc must be a bool, got {type(swap_itc).__name__}")
        if missing := {"images", "input_ids", "attention_mask"} - set(batch):
            raise ValueError(f"batch lacks {sorted(missing)}; it needs images, input_ids and attention_mask")
        images, ids, mask = batch["images"], batch["input_ids"], batch["attention_mask"]
        self._check(images, ids, mask)
        if "image_ids" in batch and getattr(batch["image_ids"], "shape", None) != ids.shape[:1]:
            raise ValueError(f"image_ids must be a tensor ({len(ids)},), got {describe(batch['image_ids'])}")
        swaps = self._swaps(batch, ids)
        if swap_itc and swaps is None:
            raise ValueError("swap_itc=True needs a batch with swap negatives (swap_images, swap_input_ids, ...)")
        if swaps is not None and not len(swaps[3]):   # no row of this batch has a swap: nothing to add
            swaps = None
        c, (image_emb, image_tokens) = self.config, self.encode_image(images)   # (B, E), (B, S, Dv)
        text_emb, text_tokens = self.encode_text(ids, mask)            # (B, E), (B, T, Dt)
        if swaps is not None:
            swap_images, swap_ids, swap_mask, rows = swaps
            swap_image_emb, swap_image_tokens = self.encode_image(swap_images)   # (K, E), (K, S, Dv)
            swap_text_emb, swap_text_tokens = self.encode_text(swap_ids, swap_mask)   # (K, E), (K, T, Dt)
        if swap_itc and swaps is not None:
            itc = clip_loss_with_negatives(image_emb, text_emb, self.scale().log(), swap_text_emb, swap_image_emb)
        else:
            itc = clip_loss(image_emb, text_emb, self.scale().log())

        with torch.no_grad():   # negatives: drawn from the ITC similarities, never a caption equal to the positive
            sim = similarity(image_emb, text_emb) * self.scale()                       # (B, B)
            sim = sim if negatives == "hard" else torch.zeros_like(sim)                 # zeros: uniform draws
            same = (ids[:, None] == ids[None]).all(dim=-1)                              # (B, B): equal captions
            if "image_ids" in batch:                                                    # the same image twice
                same |= batch["image_ids"][:, None] == batch["image_ids"][None]
            image_idx, text_idx, labels = itm_pairs(*sample_hard_negatives(sim, generator, same))
        fused_images, fused_texts, fused_mask = image_tokens[image_idx], text_tokens[text_idx], mask[text_idx]
        if swaps is not None:   # (I_i, T'_i, 0) and (I'_i, T_i, 0) after the 3B sampled triples
            fused_images = torch.cat([fused_images, image_tokens[rows], swap_image_tokens])   # (3B + 2K, S, Dv)
            fused_texts = torch.cat([fused_texts, swap_text_tokens, text_tokens[rows]])       # (3B + 2K, T, Dt)
            fused_mask = torch.cat([fused_mask, swap_mask, mask[rows]])                       # (3B + 2K, T)
            labels = torch.cat([labels, labels.new_zeros(2 * len(rows))])                     # (3B + 2K,)
        itm = F.cross_entropy(self.itm_logits(fused_images, fused_texts, fused_mask), labels)

        maskable = mask & (ids != c.bos_id) & (ids != c.eos_id)   # words only: no <bos>, <eos> or padding
        masked_ids, mlm_labels = mask_tokens(ids, self.mask_id, c.vocab_size, c.mask_prob, maskable, generator)
        _, masked_tokens = self.encode_text(masked_ids, mask)
        mlm_logits = self.mlm_head(self.fusion(masked_tokens, image_tokens, mask))   # (B, T, V)
        mlm = F.cross_entropy(mlm_logits.flatten(0, 1), mlm_labels.flatten(), ignore_index=IGNORE_INDEX)  # (B T, V)
        mlm = mlm.nan_to_num(0.0)   # a batch with nothing masked gives 0/0: no MLM signal
        return {"itc": itc, "itm": itm, "mlm": mlm, "total": itc + itm + mlm}
