"""LLaVA: a frozen vision tower, a projector and a language model that reads image tokens as words (chapter 11).

    Z = (z_0, z_1 .. z_L)     the ViT's hidden states (B, 1 + S, w): z_0 the embeddings, z_l after block l
    V = Z[feature_layer]      without the class token ("patch", LLaVA's "default") or with it ("full") (B, N, w);
                              with image_pool="mean" the one token (1/N) sum_n v_n (B, 1, w)
    H = Projector(V)          W_2 GELU(W_1 V) ("mlp", LLaVA-1.5) or W V ("linear", LLaVA): (B, N, d_model)
    x_t = E[w_t], except at the N <image> positions of each row, which take h_1 .. h_N in order       splice
    p(w_(t+1) | w_<=t, I) = GPT(x)_t,    L = mean over t with y_(t+1) != IGNORE_INDEX of -log p(y_(t+1) | ...)

The prompt holds one <image> id per image token, as transformers' processor expands it (``vitlib.instruct``);
``select_features`` and ``splice`` live in ``vitlib.image_tokens`` and are importable from here too. The vision
tower stays frozen and in eval mode; the projector learns alone in stage 1 (alignment:
``model.lm.requires_grad_(False)``) and with the LM in stage 2 (instruction tuning).
``VLM.bind(images)`` fixes the images, so that the loops of ``vitlib.decoding`` drive the model as they drive a GPT.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import torch
from torch import nn

from .captioner import IMAGE_POOLS
from .checks import check_id, check_int, check_like, check_one_of, check_token_ids, describe
from .clip import CLIP
from .data.language import tokenizer as shapes_tokenizer
from .data.tokenizer import WordTokenizer
from .decoding import greedy
from .fusion import PROJECTOR_KINDS, Projector
from .image_tokens import FEATURE_SELECTS, select_features, splice
from .instruct import IMAGE, prompt_ids
from .lm import cross_entropy
from .transformer import GPT, GPTConfig
from .vision import ViT, ViTConfig, check_images
from .zoo import register_model

__all__ = ["VLMConfig", "VLM", "BoundVLM", "select_features", "splice", "next_token_loss", "answer", "chat",
           "FEATURE_SELECTS"]

@dataclass
class VLMConfig:
    """The LM's GPT sizes, the vision tower's sizes as ``CLIPConfig`` stores them (the course CLIP's by default),
    and how the image enters: ``projector`` (PROJECTOR_KINDS), ``feature_layer`` (-1 the last hidden state, -2 the
    one before, ... as LLaVA's ``vision_feature_layer``; 0 the embeddings), ``feature_select`` ("patch" drops the
    class token, "full" keeps it), ``image_pool`` ("mean": one averaged token), ``image_token_id`` (<image>)."""

    vocab_size: int
    max_len: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int | None = None
    activation: str = "gelu"
    norm_eps: float = 1e-5
    image_size: int = 24
    patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 1
    vision_heads: int = 4
    projector: str = "mlp"
    feature_layer: int = -1
    feature_select: str = "patch"
    image_pool: str = "none"
    image_token_id: int = 4

    def __post_init__(self):
        self.d_ff = self.gpt_config().d_ff   # GPTConfig checks the LM's sizes and fills in d_ff = 4 d_model
        self.vision_config()                 # ViTConfig checks the tower's
        check_one_of(self.projector, "projector", PROJECTOR_KINDS)
        L = self.vision_layers
        if isinstance(self.feature_layer, bool) or not isinstance(self.feature_layer, int) or \
                not -(L + 1) <= self.feature_layer <= L:
            raise ValueError(f"feature_layer must be an int in [{-(L + 1)}, {L}] (the embeddings and {L} layers' "
                             f"hidden states), got {self.feature_layer!r}")
        check_one_of(self.feature_select, "feature_select", FEATURE_SELECTS)
        check_one_of(self.image_pool, "image_pool", IMAGE_POOLS)
        check_id(self.image_token_id, "image_token_id", self.vocab_size)
        if self.n_image_tokens >= self.max_len:
            raise ValueError(f"max_len={self.max_len} leaves no room for words after {self.n_image_tokens} image "
                             "tokens")

    @property
    def n_image_tokens(self) -> int:
        """N, the image tokens a prompt holds: S patches (+1 with "full"), or 1 when pooled."""
        S = (self.image_size // self.patch_size) ** 2
        return 1 if self.image_pool == "mean" else S + (self.feature_select == "full")

    def vision_config(self) -> ViTConfig:
        """The vision tower: CLIP's ViT (a LayerNorm before the encoder), so that ``load_vision`` can fill it."""
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, d_model=self.vision_width,
                         n_layers=self.vision_layers, n_heads=self.vision_heads, pre_norm=True)

    def gpt_config(self) -> GPTConfig:
        return GPTConfig(vocab_size=self.vocab_size, d_model=self.d_model, n_layers=self.n_layers,
                         n_heads=self.n_heads, max_len=self.max_len, d_ff=self.d_ff, activation=self.activation,
                         norm_eps=self.norm_eps)


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L = mean over t with y_(t+1) != IGNORE_INDEX of -log p(y_(t+1) | x_<=t): logits (B, T, V) at position t
    score label t + 1 (B, T), as transformers shifts them (``vitlib.lm.cross_entropy`` checks the labels)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits must be (B, T, V), got {describe(logits)}")
    return cross_entropy(logits[:, :-1].float(), labels[:, 1:])            # (B, T - 1, V) against (B, T - 1)


@register_model(config_cls=VLMConfig)
class VLM(nn.Module):
    """(input_ids (B, T) with N <image> ids per row, images (B, 3, H, W)) -> next-token logits (B, T, V).

    ``vision`` (frozen ViT) -> ``projector`` -> spliced into the input embeddings of ``lm`` (a GPT). The cache
    (``use_cache``) is the GPT's: the image tokens enter it at the first step, so later steps take no images."""

    def __init__(self, config: VLMConfig):
        super().__init__()
        if not isinstance(config, VLMConfig):
            raise TypeError(f"VLM expects a VLMConfig, got {describe(config)}")
        c = self.config = config
        self.vision = ViT(c.vision_config()).requires_grad_(False).eval()
        self.projector = Projector(c.vision_width, c.d_model, c.projector)
        self.lm = GPT(c.gpt_config())

    def train(self, mode: bool = True) -> VLM:
        """Train the projector and the LM; the frozen tower stays in eval mode (no dropout: its features are fixed)."""
        super().train(mode)
        self.vision.eval()
        return self

    def check_images(self, images, batch: int | None = None) -> None:
        """images must be finite floats (B, 3, image_size, image_size) in [0, 1] like the weights (B = ``batch``)."""
        check_images(images, 3, self.config.image_size)
        check_like(images, "images", self.vision.pos_emb)
        if images.shape[0] == 0 or (batch is not None and images.shape[0] != batch):
            raise ValueError(f"images must have {batch or 'at least one'} row(s), one per prompt, got "
                             f"{describe(images)}")
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise ValueError("images must hold finite values in [0, 1] (the renderer's range), got "
                             f"[{images.min().item():.3g}, {images.max().item():.3g}]")

    def vision_states(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Z = (z_0 .. z_L), each (B, 1 + S, w): the tower's blocks run one by one to keep every hidden state (the
        encoder's final LayerNorm belongs to CLIP's pooled output, not to them, as in transformers' CLIP)."""
        v = self.vision
        x = v.patch_embed(images)                                              # (B, S, w)
        z = v.drop(v.pre_norm(torch.cat([v.cls_token.expand(len(x), -1, -1), x], dim=1) + v.pos_emb))   # z_0
        states = [z]                                                           # (B, 1 + S, w) each
        for block in v.encoder.blocks:
            states.append(block(states[-1]))
        return states

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1] -> H = Projector(V) (B, n_image_tokens, d_model)."""
        c = self.config
        self.check_images(images)
        V = select_features(self.vision_states(images), c.feature_layer, c.feature_select)   # (B, N, w)
        if c.image_pool == "mean":
            V = V.mean(dim=1, keepdim=True)                                    # (B, 1, w)
        return self.projector(V)                                               # (B, N, d_model)

    def forward(self, input_ids, images=None, labels=None, attention_mask=None, past_kv=None,
                use_cache: bool = False):
        """-> logits (B, T, V); (loss, logits) with ``labels`` (B, T) (shifted inside: position t predicts label
        t + 1; IGNORE_INDEX skipped); the new cache appended with ``use_cache``. ``images`` are required whenever
        input_ids hold <image> ids, and must be None with ``past_kv`` (the cache holds them)."""
        c = self.config
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {describe(use_cache)}")
        check_token_ids(input_ids, c.vocab_size, self.lm.transformer.token_emb.weight.device)
        if 0 in input_ids.shape:
            raise ValueError(f"input_ids must have batch, length >= 1, got {tuple(input_ids.shape)}")
        image_mask = input_ids == c.image_token_id                             # (B, T)
        if past_kv is not None and images is not None:
            raise ValueError("past_kv already holds the image tokens; pass images=None with past_kv")
        if images is None and image_mask.any():
            raise ValueError(f"input_ids hold {int(image_mask.sum())} <image> ids (id {c.image_token_id}) but no "
                             + ("images were given" if past_kv is None else "image can enter after the first step"))
        if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape):
            raise ValueError(f"labels must be shaped like input_ids {tuple(input_ids.shape)}, got {describe(labels)}")
        x = self.lm.transformer.token_emb(input_ids)                          # (B, T, d_model): E[w_t]
        if images is not None:
            self.check_images(images, batch=input_ids.shape[0])
            x = splice(x, self.image_features(images), image_mask)             # image tokens at the <image> ids
        out = self.lm(inputs_embeds=x, attention_mask=attention_mask, past_kv=past_kv, use_cache=use_cache)
        logits, cache = out if use_cache else (out, None)                     # (B, T, V)
        if labels is None:
            return out
        loss = next_token_loss(logits, labels)
        return (loss, logits, cache) if use_cache else (loss, logits)

    def bind(self, images: torch.Tensor) -> BoundVLM:
        """This VLM with ``images`` (B, 3, H, W) fixed: what ``vitlib.decoding``'s loops can drive."""
        return BoundVLM(self, images)

    def load_vision(self, clip) -> None:
        """Copy a vitlib CLIP's vision tower (chapter 05) in; its sizes must be this config's."""
        if not isinstance(clip, CLIP):
            raise TypeError(f"load_vision expects a vitlib.clip.CLIP, got {describe(clip)}")
        theirs, ours = clip.config.vision_config(), self.config.vision_config()
        if theirs != ours:
            raise ValueError(f"the CLIP's vision tower {theirs} does not match this VLM's {ours}")
        self.vision.load_state_dict(clip.vision.state_dict())

    def load_lm(self, gpt) -> None:
        """Copy a vitlib GPT (chapter 03) in as the language model; its sizes must be this config's."""
        if not isinstance(gpt, GPT):
            raise TypeError(f"load_lm expects a vitlib.transformer.GPT, got {describe(gpt)}")
        theirs, ours = replace(gpt.config, dropout=0.0), self.config.gpt_config()   # dropout is no size
        if theirs != ours:
            raise ValueError(f"the GPT's sizes {theirs} do not match this VLM's {ours}")
        self.lm.load_state_dict(gpt.state_dict())


class BoundVLM(nn.Module):
    """A VLM with its images fixed: forward(input_ids, past_kv=None, use_cache=False) -> logits (and cache), with
    the ``config.vocab_size`` and ``config.max_len`` that ``vitlib.decoding`` reads.

    Beam search sends R = K B rows, batch-major: the first step repeats each image K times; later steps read the
    image tokens from the cache, whose rows beam search reorders within each image's beams. A reply never holds
    <image>: its logit is -inf, since a generated image id would have no image to stand for."""

    def __init__(self, vlm: VLM, images: torch.Tensor):
        super().__init__()
        if not isinstance(vlm, VLM):
            raise TypeError(f"vlm must be a VLM, got {describe(vlm)}")
        vlm.check_images(images)
        self.vlm, self.images, self.config = vlm, images, vlm.config
        self.training = vlm.training   # decoding restores this flag afterwards: the VLM's own

    def forward(self, input_ids, past_kv=None, use_cache: bool = False):
        images = None                                                         # with past_kv, the cache has them
        if past_kv is None:
            check_token_ids(input_ids, self.config.vocab_size)
            B, R = len(self.images), input_ids.shape[0]
            if R == 0 or R % B:
                raise ValueError(f"input_ids must have a multiple of the {B} bound images as rows (K per image), "
                                 f"got {describe(input_ids)}")
            images = self.images.repeat_interleave(R // B, dim=0)             # (R, 3, H, W)
        out = self.vlm(input_ids, images, past_kv=past_kv, use_cache=use_cache)
        logits, cache = out if use_cache else (out, None)
        logits = logits.index_fill(-1, torch.tensor([self.config.image_token_id], device=logits.device),
                                   float("-inf"))                             # (R, T, V): never emit <image>
        return (logits, cache) if use_cache else logits


def _checked(model, tokenizer) -> WordTokenizer:
    """The tokenizer (ShapesWorld's by default), once model and tokenizer are what answer and chat need."""
    tokenizer = shapes_tokenizer() if tokenizer is None else tokenizer
    if not isinstance(model, VLM) or not isinstance(tokenizer, WordTokenizer):
        raise TypeError(f"expected a VLM and a WordTokenizer, got {describe(model)} and {describe(tokenizer)}")
    return tokenizer


def _generate(model: VLM, images, prompts: list[torch.Tensor], tokenizer, max_new_tokens: int) -> list[str]:
    """Greedy replies, one per (image, prompt), cut at <eos>: words only (<pad>, <bos>, <unk> never chosen), so that
    a reply can go back into the history. The decoding loops take one (B, T) block and no attention mask, and left
    padding would shift the learned positions of the shorter prompts: so the prompts are batched by length, one call
    per length. max_new_tokens is cut to what max_len leaves."""
    check_int(max_new_tokens, "max_new_tokens")
    model.check_images(images, batch=len(prompts))
    eos, groups, replies = tokenizer.eos_id, defaultdict(list), [""] * len(prompts)
    specials = torch.tensor([tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id], device=images.device)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    for T, rows in groups.items():
        n = min(max_new_tokens, model.config.max_len - T)
        if n < 1:
            raise ValueError(f"a prompt of {T} tokens leaves no room to reply within max_len={model.config.max_len}")
        ids = torch.stack([prompts[i] for i in rows]).to(images.device)       # (b, T)
        out = greedy(model.bind(images[rows]), ids, n, eos, lambda _, s: s.index_fill(-1, specials, float("-inf")))
        for i, row in zip(rows, out[:, T:].tolist()):
            replies[i] = tokenizer.decode(row[:row.index(eos)] if eos in row else row)
    return replies


def answer(model: VLM, images: torch.Tensor, questions: list[str], tokenizer=None, max_new_tokens: int = 8):
    """One short answer per (image (B, 3, H, W), question), greedy, batched: "red" where the data writes "red."."""
    tokenizer = _checked(model, tokenizer)
    if isinstance(questions, str) or not isinstance(questions, (list, tuple)) or not questions or \
            not all(isinstance(q, str) for q in questions):
        raise TypeError(f"questions must be a non-empty list of str, one per image, got {questions!r:.80}")
    prompts = [prompt_ids([], f"{IMAGE} {q}", tokenizer, model.config.n_image_tokens) for q in questions]
    return [a.removesuffix(".").strip() for a in _generate(model, images, prompts, tokenizer, max_new_tokens)]


def chat(model: VLM, image: torch.Tensor, message: str, history=None, tokenizer=None, max_new_tokens: int = 40):
    """One turn about ``image`` (3, H, W): (reply, history + the two new turns). ``history``: the turns so far
    ({"role", "content"} dicts); the first message gets "<image> " prepended when it has none."""
    tokenizer = _checked(model, tokenizer)
    history = [] if history is None else history
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError(f"image must be one float image (3, H, W), got {describe(image)}")
    if isinstance(message, str) and not history and IMAGE not in message:
        message = f"{IMAGE} {message}"
    prompt = prompt_ids(history, message, tokenizer, model.config.n_image_tokens)   # checks history and message
    reply = _generate(model, image[None], [prompt], tokenizer, max_new_tokens)[0]
    return reply, [*history, {"role": "user", "content": message}, {"role": "assistant", "content": reply}]
