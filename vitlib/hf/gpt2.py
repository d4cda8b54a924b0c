"""GPT <-> transformers' GPT2LMHeadModel (chapter 03).

``to_hf_gpt2(model)`` builds a ``transformers.GPT2LMHeadModel`` with the same weights as a ``vitlib.transformer.GPT``,
so that the two give the same logits and the same greedy tokens. The architectures agree block for block (pre-LN,
learned positions, tied LM head); only the storage differs: GPT-2 keeps its linear layers as ``Conv1D`` with the
weight transposed, (in, out), and fuses the query, key and value projections into one ``c_attn`` of width 3 * d_model:

    c_attn.weight = [W_q; W_k; W_v]^T  (d_model, 3 d_model),     c_proj.weight = W^T,     wte = E (= lm_head)

``from_hf_gpt2(hf_model)`` reads them back: c_attn split in three, every Conv1D weight transposed to (out, in).
"""

from __future__ import annotations

import sys

import torch

from ..checks import check_id, describe
from ..transformer import GPT, GPTConfig

__all__ = ["to_hf_gpt2", "from_hf_gpt2", "activation_from_hf"]

# our activation -> transformers' ACT2FN name. nn.GELU() is the exact (erf) GELU, "gelu"; GPT-2's "gelu_new" is its
# tanh approximation, which transformers writes out by hand ("gelu_pytorch_tanh" calls PyTorch's: equal up to rounding)
ACTIVATION_TO_HF = {"gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_new", "quick_gelu": "quick_gelu"}
_ACTIVATION_FROM_HF = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                       "quick_gelu": "quick_gelu"}


def activation_from_hf(name, field: str) -> str:
    """Our activation for transformers' ``name``, read from the config field ``field``; ValueError if we lack it."""
    if name not in _ACTIVATION_FROM_HF:
        raise ValueError(f"{field}={name!r} has no vitlib activation; allowed: {', '.join(_ACTIVATION_FROM_HF)}")
    return _ACTIVATION_FROM_HF[name]


def to_hf_gpt2(model: GPT, bos_token_id: int | None = None, eos_token_id: int | None = None,
               pad_token_id: int | None = None):
    """A ``transformers.GPT2LMHeadModel`` (eval mode, on the model's device) computing what ``model`` computes.

    The special-token ids (e.g. those of ``world.tokenizer``) go into its config, where ``generate`` reads them.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"to_hf_gpt2 expects a vitlib.transformer.GPT, got {type(model).__name__}")
    c = model.config
    for name, value in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        check_id(value, name, c.vocab_size, optional=True)
    from transformers import GPT2Config, GPT2LMHeadModel  # lazy, after the checks: transformers is slow to import

    hf_config = GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.max_len, n_embd=c.d_model, n_layer=c.n_layers, n_head=c.n_heads,
        n_inner=c.d_ff, activation_function=ACTIVATION_TO_HF[c.activation], layer_norm_epsilon=c.norm_eps,
        resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout, tie_word_embeddings=True,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
    )
    hf = GPT2LMHeadModel(hf_config)
    t = model.transformer
    sd = {"transformer.wte.weight": t.token_emb.weight, "transformer.wpe.weight": t.pos_emb.weight,
          "transformer.ln_f.weight": t.norm.weight, "transformer.ln_f.bias": t.norm.bias}
    for i, block in enumerate(t.blocks):
        p, attn, ffn = f"transformer.h.{i}.", block.attn, block.ffn
        sd |= {
            p + "ln_1.weight": block.norm1.weight, p + "ln_1.bias": block.norm1.bias,
            # Conv1D computes x @ W + b with W (in, out): our (out, in) Linear weights, transposed
            p + "attn.c_attn.weight": torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).T,
            p + "attn.c_attn.bias": torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]),
            p + "attn.c_proj.weight": attn.out_proj.weight.T, p + "attn.c_proj.bias": attn.out_proj.bias,
            p + "ln_2.weight": block.norm2.weight, p + "ln_2.bias": block.norm2.bias,
            p + "mlp.c_fc.weight": ffn.fc1.weight.T, p + "mlp.c_fc.bias": ffn.fc1.bias,
            p + "mlp.c_proj.weight": ffn.fc2.weight.T, p + "mlp.c_proj.bias": ffn.fc2.bias,
        }
    expected = {k for k in hf.state_dict() if k != "lm_head.weight"}  # the head is tied to wte
    if set(sd) != expected:
        raise RuntimeError(f"weight names do not line up with GPT2LMHeadModel: missing {sorted(expected - set(sd))}, "
                           f"unexpected {sorted(set(sd) - expected)}")
    hf.load_state_dict({k: v.detach().contiguous() for k, v in sd.items()}, strict=False)
    hf.tie_weights()
    return hf.to(device=t.token_emb.weight.device, dtype=t.token_emb.weight.dtype).eval()


# config fields of GPT-2 that our GPT has no counterpart for, and the only value it can take
_FIXED = {"scale_attn_weights": True,                # scores / sqrt(d_head), as ours; False: unscaled
          "scale_attn_by_inverse_layer_idx": False,  # True: layer l's scores divided by l + 1 as well
          "reorder_and_upcast_attn": False,          # True: K scaled before q k^T, in float32 (another rounding)
          "add_cross_attention": False}              # True: a cross-attention layer in every block


def from_hf_gpt2(hf_model) -> GPT:
    """A GPT (eval mode, on the model's device and dtype) with the weights of a ``transformers.GPT2LMHeadModel``,
    giving its logits. Refused with a ValueError naming the field: what our GPT cannot compute (an activation it
    lacks, a config field of ``_FIXED`` at another value, an lm_head other than wte) or store (three different
    dropout rates: ours has one, used in the same three places)."""
    # a GPT2LMHeadModel exists only once transformers is imported: anything else is refused without importing it
    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(hf_model, transformers.GPT2LMHeadModel):
        raise TypeError(f"from_hf_gpt2 expects a transformers GPT2LMHeadModel, got {describe(hf_model)}")
    hf = hf_model.config
    for field, wanted in _FIXED.items():
        if getattr(hf, field) != wanted:
            raise ValueError(f"{field}={getattr(hf, field)!r} cannot be converted: vitlib's GPT supports only {field}="
                             f"{wanted}")
    rates = {"resid_pdrop": hf.resid_pdrop, "embd_pdrop": hf.embd_pdrop, "attn_pdrop": hf.attn_pdrop}
    if len(set(rates.values())) != 1:
        raise ValueError(f"vitlib's GPT has one dropout rate for resid_pdrop, embd_pdrop and attn_pdrop, got {rates}")
    t = hf_model.transformer
    if not torch.equal(hf_model.lm_head.weight, t.wte.weight):
        raise ValueError(f"tie_word_embeddings={hf.tie_word_embeddings!r} with an lm_head.weight other than "
                         "transformer.wte.weight cannot be converted: vitlib's GPT ties its head to the embedding")
    ours = GPT(GPTConfig(vocab_size=hf.vocab_size, d_model=hf.n_embd, n_layers=hf.n_layer, n_heads=hf.n_head,
                         max_len=hf.n_positions, d_ff=hf.n_inner, dropout=float(hf.resid_pdrop),
                         activation=activation_from_hf(hf.activation_function, "activation_function"),
                         norm_eps=hf.layer_norm_epsilon))
    state = {"transformer.token_emb.weight": t.wte.weight, "transformer.pos_emb.weight": t.wpe.weight,
             "transformer.norm.weight": t.ln_f.weight, "transformer.norm.bias": t.ln_f.bias}
    for i, layer in enumerate(t.h):
        p, attn, mlp = f"transformer.blocks.{i}.", layer.attn, layer.mlp
        w_q, w_k, w_v = attn.c_attn.weight.T.chunk(3)   # (3 d_model, d_model) -> three (d_model, d_model)
        b_q, b_k, b_v = attn.c_attn.bias.chunk(3)
        state |= {
            p + "norm1.weight": layer.ln_1.weight, p + "norm1.bias": layer.ln_1.bias,
            p + "attn.q_proj.weight": w_q, p + "attn.k_proj.weight": w_k, p + "attn.v_proj.weight": w_v,
            p + "attn.q_proj.bias": b_q, p + "attn.k_proj.bias": b_k, p + "attn.v_proj.bias": b_v,
            p + "attn.out_proj.weight": attn.c_proj.weight.T, p + "attn.out_proj.bias": attn.c_proj.bias,
            p + "norm2.weight": layer.ln_2.weight, p + "norm2.bias": layer.ln_2.bias,
            p + "ffn.fc1.weight": mlp.c_fc.weight.T, p + "ffn.fc1.bias": mlp.c_fc.bias,
            p + "ffn.fc2.weight": mlp.c_proj.weight.T, p + "ffn.fc2.bias": mlp.c_proj.bias,
        }
    ours.load_state_dict({k: v.detach() for k, v in state.items()}, strict=True)
    return ours.to(device=t.wte.weight.device, dtype=t.wte.weight.dtype).eval()
