"""The transformer: feed-forward network, pre-LN block, encoder, text transformer and GPT with KV cache (chapter 03).

    FFN(x) = act(x W_1 + b_1) W_2 + b_2                       act = GELU (GPT) or ReLU (the original transformer)
                                                              (and GPT-2's, CLIP's approximations: vitlib.activations)
    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta      over the last (feature) dimension
    pre-LN block:   x <- x + MHA(LN_1(x));   x <- x + FFN(LN_2(x))

An ``Encoder`` stacks non-causal blocks (the ViT of chapter 04 reuses it). A ``TextTransformer`` puts token and
position embeddings under causal or bidirectional blocks: the text tower of GPT, CLIP (ch. 05) and VLP (ch. 06).
``GPT`` ties an LM head to its token embedding: p(x_t | x_<t) = softmax(LN(h_t) E^T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ACTIVATIONS
from .attention import MultiHeadAttention
from .checks import (MAX_SIZE, check_divisible, check_int, check_like, check_number, check_one_of,
                     check_positive_ints, check_probability, check_token_ids, describe)
from .decoding import beam_search, greedy, sample
from .zoo import register_model


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
            for mine, theirs in ((block.norm1, ref.norm1), (block.norm2, ref.norm2), (block.ffn.fc1, ref.linear1),
                                 (block.ffn.fc2, ref.linear2)):
                mine.load_state_dict(theirs.state_dict())
        ours.norm.load_state_dict(encoder.norm.state_dict())
        return ours.to(encoder.norm.weight.device)


class TextTransformer(nn.Module):
    """Token and learned position embeddings, pre-LN blocks, a final LayerNorm: ids (B, T) -> h (B, T, d_model).

        h_0 = E[x_t] + P[t],   h_l = Block_l(h_(l-1)),   h = LN(h_L)

    The text tower of three models, which agree on this maths and differ in the rest:
      GPT (ch. 03)   causal; dropout; GPT-2's initialisation (``GPT._init_weights``); an LM head tied to E.
      CLIP (ch. 05)  causal; E ~ N(0, 0.02) but P ~ N(0, 0.01), as CLIP; PyTorch's init elsewhere; read at <eos>.
      VLP (ch. 06)   bidirectional (``causal=False``, as BERT); PyTorch's init, embeddings N(0, 1); one more id,
                     [MASK]; read at <bos> (BERT's [CLS]) and by the fusion encoder.
    ``embedding_std`` = (std of E, std of P) redraws the embeddings; None keeps PyTorch's N(0, 1). ``inputs_embeds``
    (B, T, d_model) replace E[x] (chapter 11 splices image tokens in). A causal tower keeps a KV cache: ``past_kv``
    holds positions 0..P-1 and the new tokens sit at P..P+T-1.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int | None = None, dropout: float = 0.0, causal: bool = True, activation: str = "gelu",
                 norm_eps: float = 1e-5, embedding_std: tuple[float, float] | None = None):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_len", max_len), ("d_model", d_model),
                            ("n_layers", n_layers)):
            check_int(value, name)
        if embedding_std is not None and not (isinstance(embedding_std, (tuple, list)) and len(embedding_std) == 2
                                              and all(isinstance(s, float) and s > 0 for s in embedding_std)):
            raise ValueError(f"embedding_std must be None or (std of E, std of P), floats > 0, got {embedding_std!r}")
        self.vocab_size, self.max_len, self.d_model, self.causal = vocab_size, max_len, d_model, causal
        self.token_emb = nn.Embedding(vocab_size, d_model)   # E
        self.pos_emb = nn.Embedding(max_len, d_model)        # P
        if embedding_std is not None:
            nn.init.normal_(self.token_emb.weight, std=embedding_std[0])
            nn.init.normal_(self.pos_emb.weight, std=embedding_std[1])
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout, causal, activation, norm_eps)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)

    def forward(self, input_ids=None, attention_mask=None, past_kv=None, use_cache: bool = False,
                inputs_embeds=None):
        """input_ids (B, T), or inputs_embeds (B, T, d_model) -> h (B, T, d_model); with ``use_cache`` also the new
        cache, one (k, v) per layer, each (B, H, P+T, Dh). attention_mask (B, P+T): True (or 1) for real tokens."""
        past_len = self._check_cache(past_kv, use_cache)
        x, name = self._embed(input_ids, inputs_embeds, past_len)              # (B, T, d_model): E[x_t]
        B, T = x.shape[:2]
        mask = self._check_mask(attention_mask, (B, past_len + T), past_len, x.device, name)
        x = self.drop(x + self.pos_emb(torch.arange(past_len, past_len + T, device=x.device)))   # + P[t], t = P..P+T-1
        cache = []
        for i, block in enumerate(self.blocks):
            out = block(x, mask, None if past_kv is None else past_kv[i], use_cache)
            x, kv = out if use_cache else (out, None)
            cache.append(kv)
        return (self.norm(x), tuple(cache)) if use_cache else self.norm(x)

    def _embed(self, input_ids, inputs_embeds, past_len: int) -> tuple[torch.Tensor, str]:
        """(E[x] (B, T, d_model), the input's name) from exactly one of input_ids and inputs_embeds, checked."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"pass exactly one of input_ids (B, T) and inputs_embeds (B, T, {self.d_model}), got "
                             f"{'neither' if input_ids is None else 'both'}")
        if input_ids is not None:
            check_token_ids(input_ids, self.vocab_size, self.token_emb.weight.device)
            name, wanted, shape = "input_ids", "(batch, length)", tuple(input_ids.shape)
        else:
            check_like(inputs_embeds, "inputs_embeds", self.token_emb.weight)
            name, wanted, shape = "inputs_embeds", f"(batch, length, {self.d_model})", tuple(inputs_embeds.shape)
            if len(shape) != 3 or shape[-1] != self.d_model:
                raise ValueError(f"inputs_embeds must have shape {wanted}, got {shape}")
        if 0 in shape[:2]:   # an empty batch or sequence: nothing to compute
            raise ValueError(f"{name} must have shape {wanted} with batch, length >= 1, got {shape}")
        if past_len + shape[1] > self.max_len:
            raise ValueError(f"sequence length {past_len + shape[1]} exceeds max_len={self.max_len}")
        return (self.token_emb(input_ids) if inputs_embeds is None else inputs_embeds), name

    def _check_cache(self, past_kv, use_cache: bool) -> int:
        """P, the number of cached positions: past_kv holds one (k, v) of (B, H, P, Dh) per layer (or is None)."""
        if (past_kv is not None or use_cache) and not self.causal:
            raise ValueError("a KV cache needs causal attention: in a bidirectional tower every token attends to the "
                             "later ones, so the keys and values of earlier tokens change with each new one")
        n = len(self.blocks)
        if past_kv is not None and not (isinstance(past_kv, (tuple, list)) and len(past_kv) == n and all(
                isinstance(kv, (tuple, list)) and len(kv) == 2 and all(isinstance(t, torch.Tensor) and t.dim() == 4
                                                                      for t in kv) for kv in past_kv)):
            got = f"{len(past_kv)} entries" if isinstance(past_kv, (tuple, list)) else describe(past_kv)
            raise ValueError(f"past_kv must be the cache an earlier call returned, one (k, v) pair of 4-D tensors "
                             f"per layer ({n}), got {got}")
        return 0 if past_kv is None else past_kv[0][0].shape[2]

    @staticmethod
    def _check_mask(attention_mask, shape: tuple, past_len: int, device, name: str) -> torch.Tensor | None:
        """attention_mask (B, P+T), bool or 0/1 (1 = real token), on the inputs' device -> bool, or None."""
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, torch.Tensor):
            raise TypeError(f"attention_mask must be a bool or 0/1 tensor {shape}, got {describe(attention_mask)}")
        if tuple(attention_mask.shape) != shape:
            of = f"the shape of {name}" if past_len == 0 else "shape (batch, cached + new length) ="
            raise ValueError(f"attention_mask must have {of} {shape}, got {tuple(attention_mask.shape)}")
        if attention_mask.device != device:
            raise ValueError(f"attention_mask is on {attention_mask.device} but {name} on {device}")
        if attention_mask.dtype != torch.bool and ((attention_mask != 0) & (attention_mask != 1)).any():
            raise ValueError(f"attention_mask must be bool or 0/1 (1 = real token), got {describe(attention_mask)} "
                             "with other values")
        return attention_mask.to(torch.bool)


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
    """Decoder-only language model: a causal ``TextTransformer`` read by an LM head tied to its token embedding E,
    ids (B, T) -> next-token logits (B, T, vocab_size) = h E^T."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.transformer = TextTransformer(c.vocab_size, c.max_len, c.d_model, c.n_layers, c.n_heads, c.d_ff,
                                           c.dropout, causal=True, activation=c.activation, norm_eps=c.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation (Radford et al., 2019, sec. 2.3; nanoGPT): Linear and Embedding weights ~ N(0, 0.02),
        biases 0, except the projections that write into the residual stream, attention's W^O and the FFN's W_2
        (GPT-2's ``c_proj``): N(0, 0.02 / sqrt(2 n_layers)), since the stream sums 2 n_layers of them."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.transformer.blocks:
            for proj in (block.attn.out_proj, block.ffn.fc2):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.config.n_layers))

    def forward(self, input_ids=None, attention_mask=None, past_kv=None, use_cache: bool = False,
                inputs_embeds=None, return_hidden: bool = False):
        """input_ids (B, T), or inputs_embeds (B, T, d_model) -> logits (B, T, V); with ``use_cache`` also the new
        cache. past_kv: the cache of an earlier call (tokens 0..P-1); attention_mask (B, P+T): True for real tokens.
        ``return_hidden`` appends h (B, T, d_model), the last states after the final LayerNorm: (logits, [cache,] h)
        (chapter 10's MAGIC compares them)."""
        if not isinstance(return_hidden, bool):
            raise TypeError(f"return_hidden must be a bool, got {describe(return_hidden)}")
        out = self.transformer(input_ids, attention_mask, past_kv, use_cache, inputs_embeds)
        h, cache = out if use_cache else (out, None)                # h (B, T, d_model), after the final LayerNorm
        logits = F.linear(h, self.transformer.token_emb.weight)     # tied head: (B, T, V)
        if return_hidden:
            return (logits, cache, h) if use_cache else (logits, h)
        return (logits, cache) if use_cache else logits

    def generate(self, input_ids, max_new_tokens: int, use_cache: bool = True, logits_processor=None,
                 eos_token_id: int | None = None, *, do_sample: bool = False, generator=None, num_beams: int = 1,
                 length_penalty: float = 1.0) -> torch.Tensor:
        """Extend input_ids (B, T) by up to ``max_new_tokens`` tokens with ``vitlib.decoding``: ``greedy`` by
        default, ``sample`` with ``do_sample`` (drawing with ``generator``), the best sequence of ``beam_search``
        with ``num_beams`` > 1 (its scores: call ``beam_search`` itself)."""
        if not isinstance(do_sample, bool):
            raise TypeError(f"do_sample must be a bool, got {type(do_sample).__name__}")
        if generator is not None and not do_sample:
            raise ValueError("a generator was given with do_sample=False: greedy and beam search draw nothing")
        if num_beams != 1:
            if do_sample:
                raise ValueError(f"do_sample=True with num_beams={num_beams}: beam sampling is not implemented; "
                                 "use one or the other")
            return beam_search(self, input_ids, max_new_tokens, num_beams, length_penalty, eos_token_id,
                               logits_processor, use_cache)[0]
        if do_sample:
            return sample(self, input_ids, max_new_tokens, generator, logits_processor, eos_token_id, use_cache)
        return greedy(self, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache)

    def parameter_groups(self) -> dict[str, int]:
        """Parameter counts by part: embeddings (token + position; the head is tied), attention, FFN, norms."""
        def count(params) -> int:
            return sum(p.numel() for p in params)

        t = self.transformer
        return {"embeddings": count([t.token_emb.weight, t.pos_emb.weight]),
                "attention": count(p for b in t.blocks for p in b.attn.parameters()),
                "ffn": count(p for b in t.blocks for p in b.ffn.parameters()),
                "norms": count([*(p for b in t.blocks for n in (b.norm1, b.norm2) for p in n.parameters()),
                                *t.norm.parameters()])}
