"""GPT -> transformers' GPT2LMHeadModel (chapter 03).

``to_hf_gpt2(model)`` builds a ``transformers.GPT2LMHeadModel`` with the same weights as a ``vitlib.transformer.GPT``,
so that the two give the same logits and the same greedy tokens. The architectures agree block for block (pre-LN,
learned positions, tied LM head); only the storage differs: GPT-2 keeps its linear layers as ``Conv1D`` with the
weight transposed, (in, out), and fuses the query, key and value projections into one ``c_attn`` of width 3 * d_model:

    c_attn.weight = [W_q; W_k; W_v]^T  (d_model, 3 d_model),     c_proj.weight = W^T,     wte = E (= lm_head)
"""

from __future__ import annotations

import torch

from ..checks import check_id
from ..transformer import GPT

__all__ = ["to_hf_gpt2"]

_HF_ACTIVATION = {"gelu": "gelu", "relu": "relu"}  # nn.GELU() is the exact (erf) GELU: "gelu", not "gelu_new"


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
        n_inner=c.d_ff, activation_function=_HF_ACTIVATION[c.activation], layer_norm_epsilon=c.norm_eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
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
