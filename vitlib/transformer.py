"""The transformer: feed-forward network, pre-LN block, encoder, and a GPT decoder with KV cache (chapter 03).

    FFN(x) = act(x W_1 + b_1) W_2 + b_2                       act = GELU (GPT) or ReLU (the original transformer)
    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta      over the last (feature) dimension
    pre-LN block:   x <- x + MHA(LN_1(x));   x <- x + FFN(LN_2(x))

An ``Encoder`` stacks non-causal blocks (the ViT of chapter 04 and the text tower of chapter 05 reuse it). ``GPT``
adds token and learned position embeddings, causal blocks, a final LayerNorm and an LM head tied to the token
embedding:  p(x_t | x_<t) = softmax(LN(h_t) E^T).  ``GPT.generate`` decodes greedily, with or without the KV cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .checks import (MAX_SIZE, check_divisible, check_id, check_int, check_like, check_number, check_one_of,
                     check_positive_ints, check_probability, check_token_ids, describe)
from .zoo import register_model

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class FeedForward(nn.Module):
    """Position-wise FFN(x) = act(x W_1 + b_1) W_2 + b_2: (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", dropout: float = 0.0):
        super().__init__()
        check_int(d_model, "d_model")
        check_int(d_ff, "d_ff", maximum=4 * MAX_SIZE)
        check_one_of(activation, "activation", ACTIVATIONS)
        check_probability(dropout, "dropout")
        self.fc1, self.act, self.fc2 = nn.Linear(d_model, d_ff), ACTIVATIONS[activation](), nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_like(x, "x", self.fc1.weight)
        if x.dim() < 1 or x.shape[-1] != self.fc1.in_features:
            raise ValueError(f"x must have shape (..., {self.fc1.in_features}), got {tuple(x.shape)}")
        return self.drop(self.fc2(self.act(self.fc1(x))))  # (B, T, d_ff) inside, (B, T, d_model) out


class Block(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)), then x + FFN(LN(x)). ``causal`` hides future positions."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 causal: bool = False, activation: str = "gelu", norm_eps: float = 1e-5):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        check_number(norm_eps, "norm_eps", 0.0, low_open=True)   # eps <= 0 can divide by zero: NaN
        check_probability(dropout, "dropout")
        self.causal = causal
        self.norm1 = nn.LayerNorm(d_model, eps=norm_eps)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model, eps=norm_eps)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)

    def forward(self, x, attention_mask=None, past_kv=None, use_cache: bool = False):
        """x (B, T, d_model) -> (B, T, d_model); with ``use_cache`` also this layer's (k, v), each (B, H, P+T, Dh).

        attention_mask: (B, P+T) bool, True for real tokens (False = padding, never attended to).
        """
        out = self.attn(self.norm1(x), attention_mask=attention_mask, is_causal=self.causal,
                        past_kv=past_kv, use_cache=use_cache)
        out, kv = out if use_cache else (out, None)
        x = x + self.drop(out)              # residual around attention
        x = x + self.ffn(self.norm2(x))     # residual around the FFN
        return (x, kv) if use_cache else x


def torch_stack_settings(stack: nn.Module, expected: type) -> tuple[nn.Module, str]:
    """Check that a PyTorch ``nn.TransformerEncoder``/``nn.TransformerDecoder`` can be copied into a vitlib stack
    (pre-LN, batch-first, a final LayerNorm, GELU or ReLU); return its first layer and the activation's name."""
    if not isinstance(stack, expected):
        raise TypeError(f"expected nn.{expected.__name__}, got {type(stack).__name__}")
    layer = stack.layers[0]
    if not (layer.norm_first and layer.self_attn.batch_first and isinstance(stack.norm, nn.LayerNorm)):
        raise ValueError(f"only norm_first=True, batch_first=True {expected.__name__}s with a final LayerNorm are "
                         "supported")
    act = {F.gelu: "gelu", F.relu: "relu"}.get(layer.activation)
    if act is None:
        raise ValueError(f"activation {layer.activation!r} is not supported; use 'gelu' or 'relu'")
    return layer, act


class Encoder(nn.Module):
    """A stack of non-causal pre-LN blocks and a final LayerNorm: (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, d_ff: int | None = None, dropout: float = 0.0,
                 activation: str = "gelu", norm_eps: float = 1e-5):
        super().__init__()
        check_int(n_layers, "n_layers")
        self.d_model = d_model
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout, causal=False, activation=activation,
                                          norm_eps=norm_eps) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        check_like(x, "x", self.norm.weight)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (batch, length, {self.d_model}), got {tuple(x.shape)}")
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask)
        return self.norm(x)

    @classmethod
    def from_torch(cls, encoder: nn.TransformerEncoder) -> "Encoder":
        """An Encoder with the weights of a pre-LN (``norm_first=True``), batch-first ``nn.TransformerEncoder``
        whose final ``norm`` is a LayerNorm."""
        layer, act = torch_stack_settings(encoder, nn.TransformerEncoder)
        ours = cls(layer.self_attn.embed_dim, layer.self_attn.num_heads, len(encoder.layers),
                   layer.linear1.out_features, layer.dropout.p, act, layer.norm1.eps)
        for block, ref in zip(ours.blocks, encoder.layers):
            block.attn = MultiHeadAttention.from_torch(ref.self_attn)
            block.norm1.load_state_dict(ref.norm1.state_dict())
            block.norm2.load_state_dict(ref.norm2.state_dict())
            block.ffn.fc1.load_state_dict(ref.linear1.state_dict())
            block.ffn.fc2.load_state_dict(ref.linear2.state_dict())
        ours.norm.load_state_dict(encoder.norm.state_dict())
        return ours.to(encoder.norm.weight.device)


@dataclass
class GPTConfig:
    """Sizes of a GPT. ``d_ff`` defaults to 4 * d_model; ``max_len`` is the number of learned positions."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    max_len: int
    d_ff: int | None = None
    dropout: float = 0.0
    activation: str = "gelu"
    norm_eps: float = 1e-5

    def __post_init__(self):
        check_positive_ints(self, ("vocab_size", "d_model", "n_layers", "n_heads", "max_len"))
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_positive_ints(self, ["d_ff"], maximum=4 * MAX_SIZE)
        check_divisible(self.d_model, "d_model", self.n_heads, "n_heads")
        check_one_of(self.activation, "activation", ACTIVATIONS)
        check_probability(self.dropout, "dropout")
        check_number(self.norm_eps, "norm_eps", 0.0, low_open=True)


@register_model(config_cls=GPTConfig)
class GPT(nn.Module):
    """Decoder-only transformer language model: ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.max_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.d_model, c.n_heads, c.d_ff, c.dropout, causal=True,
                                          activation=c.activation, norm_eps=c.norm_eps) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _check_ids(self, input_ids, past_len: int) -> None:
        check_token_ids(input_ids, self.config.vocab_size, self.tok_emb.weight.device)
        if 0 in input_ids.shape:   # an empty batch or sequence: nothing to predict from
            raise ValueError(f"input_ids must have shape (batch, length) with batch, length >= 1, got "
                             f"{tuple(input_ids.shape)}")
        if past_len + input_ids.shape[1] > self.config.max_len:
            raise ValueError(f"sequence length {past_len + input_ids.shape[1]} exceeds max_len={self.config.max_len}")

    def forward(self, input_ids, attention_mask=None, past_kv=None, use_cache: bool = False):
        """input_ids (B, T) -> logits (B, T, V); with ``use_cache`` also the new cache (one (k, v) per layer).

        past_kv: the cache from an earlier call (the first P tokens); input_ids are then tokens P..P+T-1.
        attention_mask: (B, P+T) bool or 0/1, True for real tokens.
        """
        if past_kv is not None:
            self._check_cache(past_kv)
        past_len = 0 if past_kv is None else past_kv[0][0].shape[2]
        self._check_ids(input_ids, past_len)
        T = input_ids.shape[1]
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor):
                raise TypeError(f"attention_mask must be a bool or 0/1 tensor (batch, length), got "
                                f"{describe(attention_mask)}")
            attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.bool)
        positions = torch.arange(past_len, past_len + T, device=input_ids.device)  # (T,)
        x = self.drop(self.tok_emb(input_ids) + self.pos_emb(positions))           # (B, T, d_model)
        cache = []
        for i, block in enumerate(self.blocks):
            out = block(x, attention_mask, None if past_kv is None else past_kv[i], use_cache)
            x, kv = out if use_cache else (out, None)
            cache.append(kv)
        logits = F.linear(self.norm(x), self.tok_emb.weight)  # tied head: (B, T, V)
        return (logits, tuple(cache)) if use_cache else logits

    @torch.no_grad()
    def generate(self, input_ids, max_new_tokens: int, use_cache: bool = True,
                 logits_processor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 eos_token_id: int | None = None) -> torch.Tensor:
        """Extend input_ids (B, T) by up to ``max_new_tokens`` tokens; returns (B, T + new).

        Each step picks argmax of the last position's scores, after ``logits_processor(ids, scores)`` if given
        (a callable as in transformers, (B, t) and (B, V) -> (B, V): temperature, top-k, or a sampler that masks
        all but the drawn token). A sequence that produced ``eos_token_id`` continues with eos; generation stops
        early when every sequence has. With ``use_cache`` each step feeds only the newest token and reuses the
        keys and values of the earlier ones; without it, the whole sequence is recomputed at every step.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        self._check_ids(input_ids, 0)
        check_id(eos_token_id, "eos_token_id", self.config.vocab_size, optional=True)
        if logits_processor is not None and not callable(logits_processor):
            raise TypeError(f"logits_processor must be a callable (ids, scores) -> scores, got "
                            f"{describe(logits_processor)}")
        if input_ids.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                             f"max_len={self.config.max_len}")
        was_training = self.training
        self.eval()
        ids, past = input_ids, None
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            if use_cache:
                logits, past = self(ids if past is None else ids[:, -1:], past_kv=past, use_cache=True)
            else:
                logits = self(ids)
            scores = logits[:, -1]  # (B, V)
            if logits_processor is not None:
                scores = self._check_scores(logits_processor(ids, scores), scores.shape, done)
            next_id = scores.argmax(dim=-1)  # (B,)
            if eos_token_id is not None:
                next_id = next_id.masked_fill(done, eos_token_id)
                done = done | (next_id == eos_token_id)
            ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, t + 1)
            if eos_token_id is not None and done.all():
                break
        self.train(was_training)
        return ids

    def _check_cache(self, past_kv) -> None:
        """One (k, v) pair of (B, H, P, Dh) tensors per layer; each layer's attention checks the sizes."""
        n = len(self.blocks)
        pairs = isinstance(past_kv, (tuple, list)) and len(past_kv) == n and all(
            isinstance(kv, (tuple, list)) and len(kv) == 2 and all(isinstance(t, torch.Tensor) and t.dim() == 4
                                                                  for t in kv) for kv in past_kv)
        if not pairs:
            got = f"{len(past_kv)} entries" if isinstance(past_kv, (tuple, list)) else describe(past_kv)
            raise ValueError(f"past_kv must be the cache an earlier call returned, one (k, v) pair of 4-D tensors "
                             f"per layer ({n}), got {got}")

    @staticmethod
    def _check_scores(scores, shape, done) -> torch.Tensor:
        """A logits processor's output: (B, V) like its input (a wider one would let argmax pick an id >= V), and
        for each unfinished row a number argmax can choose by (NaN, or every token at -inf, picks an arbitrary id)."""
        if not isinstance(scores, torch.Tensor) or scores.shape != shape:
            raise ValueError(f"logits_processor must return scores of shape {tuple(shape)} (batch, vocab_size), got "
                             f"{describe(scores)}")
        if ((scores.isnan().any(dim=-1) | scores.isneginf().all(dim=-1)) & ~done).any():
            raise ValueError("logits_processor returned NaN scores, or -inf for every token, in some row: argmax "
                             "would pick an arbitrary token")
        return scores

    def parameter_groups(self) -> dict[str, int]:
        """Parameter counts by part: embeddings (token + position; the head is tied), attention, FFN, norms."""
        def count(params) -> int:
            return sum(p.numel() for p in params)

        return {"embeddings": count([self.tok_emb.weight, self.pos_emb.weight]),
                "attention": count(p for b in self.blocks for p in b.attn.parameters()),
                "ffn": count(p for b in self.blocks for p in b.ffn.parameters()),
                "norms": count([*(p for b in self.blocks for n in (b.norm1, b.norm2) for p in n.parameters()),
                                *self.norm.parameters()])}
