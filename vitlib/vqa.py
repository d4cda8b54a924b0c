"""Visual question answering on ShapesWorld: one fusion operator between a frozen image encoder and a frozen text
encoder, one answer head, so that operators can be compared on the same footing (chapter 07).

    V = (v_1 .. v_S)   the course CLIP's patch tokens (B, S, d_image), S = 9 at 24x24 with 8x8 patches
    X = (x_1 .. x_T)   its text tower's states of the question (B, T, d_text), x_eos the state at <eos>
    h = fuse(V, X)     (B, d_model), by one of OPERATORS
    p(answer) = softmax(W_2 GELU(W_1 h))  over every answer the world can give              the answer head

OPERATORS (vitlib.fusion):
    "concat"           h = ConcatFusion(mean_j v_j, x_eos)                       pooled image, pooled question
    "attention"        h = ConcatFusion(AttentionFusion(V, x_eos), x_eos)        the question picks the patches
    "cross_attention"  h = reader(CrossAttentionFusion(X, V))[eos]               every word reads the patches
    "gated"            h = reader(GatedCrossAttention(X, V))[eos]                the same, behind tanh gates
    "resampler"        h = reader([Resampler(V) ; X])[eos]                       K learned queries, K image tokens
    "projector"        h = reader([Projector(V) ; X])[eos]                       LLaVA: every patch becomes a token

The reader is one pre-LN transformer block and a LayerNorm over the tokens (the "language model" the image
enters), read at the question's <eos>. The two vector operators have no reader: they fuse pooled vectors, as
seed 001 writes them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_int, check_like, check_one_of, describe
from .data.language import NUMBERS, POSITIONS
from .fusion import (AttentionFusion, ConcatFusion, CrossAttentionFusion, GatedCrossAttention, Projector,
                     Resampler)
from .metrics import accuracy_with_interval
from .transformer import Block
from .zoo import register_model

__all__ = ["OPERATORS", "QUESTION_TYPES", "VQAConfig", "VQAModel", "answer_vocabulary", "encode_questions",
           "image_tokens", "qa_pairs", "accuracy_by_type"]

OPERATORS = ("concat", "attention", "cross_attention", "gated", "resampler", "projector")
QUESTION_TYPES = ("color", "shape", "exists", "count", "position", "relation")
MAX_TOKENS = 16


def answer_vocabulary(world) -> tuple[str, ...]:
    """Every answer ``world.questions`` can give: colours, shapes, position names, yes/no, counts 0..max_objects."""
    return (*world.colors, *world.shapes, *(p for row in POSITIONS for p in row), "yes", "no",
            *NUMBERS[:world.max_objects + 1])


@dataclass
class VQAConfig:
    """operator: one of OPERATORS; d_image, d_text: the frozen encoders' widths; d_model: the fused width (the
    reader's); n_heads; n_queries: the resampler's K; hidden: the answer head's width; answers: the classes."""

    operator: str = "cross_attention"
    d_image: int = 64
    d_text: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_queries: int = 4
    hidden: int = 128
    answers: tuple[str, ...] = ()

    def __post_init__(self):
        check_one_of(self.operator, "operator", OPERATORS)
        for name in ("d_image", "d_text", "d_model", "n_heads", "n_queries", "hidden"):
            check_int(getattr(self, name), name)
        if isinstance(self.answers, str) or len(self.answers) < 2 or \
                not all(isinstance(a, str) and a for a in self.answers) or len(set(self.answers)) != len(self.answers):
            raise ValueError(f"answers must be at least two distinct non-empty strings (answer_vocabulary(world)), "
                             f"got {self.answers!r}")
        self.answers = tuple(self.answers)


@register_model(config_cls=VQAConfig)
class VQAModel(nn.Module):
    """(patch tokens (B, S, d_image), question states (B, T, d_text), question mask (B, T) bool) -> answer logits
    (B, len(answers)). The encoders stay outside: the model sees their outputs only."""

    def __init__(self, config: VQAConfig):
        super().__init__()
        if not isinstance(config, VQAConfig):
            raise TypeError(f"VQAModel expects a VQAConfig, got {describe(config)}")
        c = self.config = config
        op = c.operator
        if op in ("concat", "attention"):
            self.attend = AttentionFusion(c.d_image, c.d_text) if op == "attention" else None
            self.fuse = ConcatFusion(c.d_image, c.d_text, c.d_model)
        else:
            self.text_in = nn.Linear(c.d_text, c.d_model) if c.d_text != c.d_model else nn.Identity()
            self.fuse = {"cross_attention": lambda: CrossAttentionFusion(c.d_model, c.n_heads, c.d_image),
                         "gated": lambda: GatedCrossAttention(c.d_model, c.n_heads, c.d_image),
                         "resampler": lambda: Resampler(c.d_model, c.n_heads, c.n_queries, c.d_image),
                         "projector": lambda: Projector(c.d_image, c.d_model)}[op]()
            self.reader, self.reader_norm = Block(c.d_model, c.n_heads), nn.LayerNorm(c.d_model)
        self.head = nn.Sequential(nn.Linear(c.d_model, c.hidden), nn.GELU(), nn.Linear(c.hidden, len(c.answers)))

    def _check(self, image, text, text_mask) -> None:
        c, weight = self.config, self.head[0].weight
        check_like(image, "image", weight)
        check_like(text, "text", weight)
        if image.dim() != 3 or image.shape[-1] != c.d_image or 0 in image.shape:
            raise ValueError(f"image must be patch tokens (B, S, {c.d_image}) with B, S >= 1, got {describe(image)}")
        if text.dim() != 3 or text.shape[0] != image.shape[0] or text.shape[-1] != c.d_text or text.shape[1] == 0:
            raise ValueError(f"text must be question states ({image.shape[0]}, T, {c.d_text}), got {describe(text)}")
        if getattr(text_mask, "shape", None) != text.shape[:2] or text_mask.dtype != torch.bool or \
                not text_mask[:, 0].all():
            raise ValueError(f"text_mask must be bool {tuple(text.shape[:2])}, True on each question's tokens "
                             f"(from the first), got {describe(text_mask)}")

    def forward(self, image: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        self._check(image, text, text_mask)
        rows = torch.arange(len(text), device=text.device)
        eos = text_mask.sum(dim=1) - 1                                     # (B,): the last real token
        if self.config.operator in ("concat", "attention"):
            x_eos = text[rows, eos]                                         # (B, d_text)
            v = image.mean(dim=1) if self.attend is None else self.attend(image, x_eos)   # (B, d_image)
            return self.head(self.fuse(v, x_eos))
        x = self.text_in(text)                                              # (B, T, d_model)
        if self.config.operator in ("cross_attention", "gated"):
            mask = text_mask
            x = self.fuse(x, image)
        else:
            prefix = self.fuse(image)                                       # (B, K or S, d_model)
            x = torch.cat([prefix, x], dim=1)                               # (B, P + T, d_model)
            mask = torch.cat([text_mask.new_ones(prefix.shape[:2]), text_mask], dim=1)
            eos = eos + prefix.shape[1]
        x = self.reader_norm(self.reader(x, attention_mask=mask))
        return self.head(x[rows, eos])

    @torch.no_grad()
    def attention(self, image: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Where the question looks. The patch weights (B, H, T, S) of every word (cross_attention, gated), or of
        the question vector (B, 1, 1, S) (attention)."""
        self._check(image, text, text_mask)
        op = self.config.operator
        if op == "attention":
            x_eos = text[torch.arange(len(text), device=text.device), text_mask.sum(dim=1) - 1]
            return self.attend.weights(image, x_eos)[:, None, None]        # (B, 1, 1, S)
        if op not in ("cross_attention", "gated"):
            raise ValueError(f"attention maps exist for 'attention', 'cross_attention' and 'gated', not {op!r}")
        return self.fuse.attention(self.text_in(text), image)


@torch.no_grad()
def image_tokens(clip, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The frozen CLIP vision tower's patch tokens (N, S, width), the class token dropped."""
    return torch.cat([clip.vision(images[i:i + batch_size], return_tokens=True)[1][:, 1:]
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def encode_questions(clip, tokenizer, questions: list[str], max_tokens: int = MAX_TOKENS):
    """(states (N, max_tokens, width) zero after <eos>, mask (N, max_tokens) bool) of the frozen text tower."""
    from .t2i import text_states   # t2i sits above this module in the course; its encoder serves both

    states = text_states(clip, tokenizer, questions, max_tokens)
    lengths = tokenizer(list(questions), add_bos=True, add_eos=True)["attention_mask"].sum(dim=1)   # (N,)
    mask = torch.arange(max_tokens)[None] < lengths[:, None]               # (N, max_tokens)
    return states, mask.to(states.device)


def qa_pairs(world, scenes, seed: int = 0) -> list[tuple[int, str, str, str]]:
    """(scene index, question, answer, type) for every question ``world.questions`` asks of each scene."""
    rng = random.Random(seed)
    return [(i, q, a, t) for i, scene in enumerate(scenes) for q, a, t in world.questions(scene, rng)]


def accuracy_by_type(correct, types) -> dict[str, dict]:
    """{type: {"accuracy", "interval", "n"}} and "all", with Wilson 95% intervals."""
    correct = torch.as_tensor(correct, dtype=torch.bool).tolist()
    if len(correct) != len(types) or not correct:
        raise ValueError(f"correct and types must have the same non-zero length, got {len(correct)} and {len(types)}")
    groups = defaultdict(list)
    for ok, t in zip(correct, types):
        groups[t].append(ok)
        groups["all"].append(ok)
    out = {}
    for t, oks in groups.items():
        acc, (lo, hi) = accuracy_with_interval(torch.tensor(oks))
        out[t] = {"accuracy": round(acc, 4), "interval": [round(lo, 4), round(hi, 4)], "n": len(oks)}
    return out
