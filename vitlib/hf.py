"""Interop with Hugging Face transformers: export course models to their transformers counterparts (chapters 03, 05).

``to_hf_gpt2(model)`` builds a ``transformers.GPT2LMHeadModel`` with the same weights as a ``vitlib.transformer.GPT``,
so that the two give the same logits and the same greedy tokens. The architectures agree block for block (pre-LN,
learned positions, tied LM head); only the storage differs: GPT-2 keeps its linear layers as ``Conv1D`` with the
weight transposed, (in, out), and fuses the query, key and value projections into one ``c_attn`` of width 3 * d_model.

``to_hf_clip(model)`` builds a ``transformers.CLIPModel`` with the weights of a ``vitlib.clip.CLIP``: the same image
and text features (``get_image_features`` / ``get_text_features``) and the same logits. The blocks agree one for one;
CLIP's patch projection is a bias-free Conv2d, so our patch bias moves into the patch position embeddings.
"""

from __future__ import annotations

import torch

from .checks import check_id
from .transformer import GPT

__all__ = ["to_hf_gpt2", "to_hf_clip"]

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
    sd = {"transformer.wte.weight": model.tok_emb.weight, "transformer.wpe.weight": model.pos_emb.weight,
          "transformer.ln_f.weight": model.norm.weight, "transformer.ln_f.bias": model.norm.bias}
    for i, block in enumerate(model.blocks):
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
    device = model.tok_emb.weight.device
    return hf.to(device=device, dtype=model.tok_emb.weight.dtype).eval()


# ----- CLIP (chapter 05) ------------------------------------------------------------------------------------------
def _copy_block(block, layer) -> None:
    """A vitlib pre-LN Block -> a transformers CLIPEncoderLayer (the same sub-layers under other names)."""
    for ours, theirs in ((block.norm1, layer.layer_norm1), (block.norm2, layer.layer_norm2),
                         (block.attn.q_proj, layer.self_attn.q_proj), (block.attn.k_proj, layer.self_attn.k_proj),
                         (block.attn.v_proj, layer.self_attn.v_proj), (block.attn.out_proj, layer.self_attn.out_proj),
                         (block.ffn.fc1, layer.mlp.fc1), (block.ffn.fc2, layer.mlp.fc2)):
        theirs.load_state_dict(ours.state_dict())


@torch.no_grad()
def to_hf_clip(model, bos_token_id: int | None = None, pad_token_id: int | None = None):
    """A ``transformers.CLIPModel`` (eval mode, on the model's device) with the weights of a vitlib CLIP.

    It takes the same inputs: ``pixel_values`` are our images in [0, 1] (no further normalisation), ``input_ids``
    our token ids; it pools the text at the first ``config.eos_id``. The ViT's patch projection is a Linear with a
    bias and CLIP's a bias-free Conv2d: the bias is added to every patch's position embedding instead, the same sum.

    An ``eos_id`` of 2 is refused: transformers keeps a legacy rule for text configs with ``eos_token_id == 2``
    (a value older CLIP configs carried by mistake) and pools each text at its largest token id, not its first <eos>.
    """
    from .clip import CLIP, LOGIT_SCALE_MAX  # lazy, like transformers: exporting a GPT needs no vision code

    if not isinstance(model, CLIP):
        raise TypeError(f"to_hf_clip expects a vitlib.clip.CLIP, got {type(model).__name__}")
    c = model.config
    if c.eos_id == 2:
        raise ValueError("eos_id=2 cannot be exported: transformers' CLIPTextTransformer keeps a legacy rule for "
                         "eos_token_id == 2 and pools each text at its largest token id, not at its first <eos>, so "
                         "its text features would differ from ours. Give the model's tokenizer another <eos> id "
                         "(the course tokenizer's is 3) and retrain, or permute the token embedding rows together with "
                         "the tokenizer's ids so that <eos> is not 2")
    for name, value in (("bos_token_id", bos_token_id), ("pad_token_id", pad_token_id)):
        check_id(value, name, c.vocab_size, optional=True)
    from einops import rearrange
    from transformers import CLIPConfig as HFCLIPConfig
    from transformers import CLIPModel

    common = dict(hidden_act="gelu", layer_norm_eps=1e-5, attention_dropout=0.0, projection_dim=c.embed_dim)
    config = HFCLIPConfig(
        text_config=dict(vocab_size=c.vocab_size, hidden_size=c.text_width, intermediate_size=4 * c.text_width,
                         num_hidden_layers=c.text_layers, num_attention_heads=c.text_heads,
                         max_position_embeddings=c.max_len, eos_token_id=c.eos_id, bos_token_id=bos_token_id,
                         pad_token_id=pad_token_id, **common),
        vision_config=dict(hidden_size=c.vision_width, intermediate_size=4 * c.vision_width,
                           num_hidden_layers=c.vision_layers, num_attention_heads=c.vision_heads,
                           image_size=c.image_size, patch_size=c.patch_size, num_channels=3, **common),
        projection_dim=c.embed_dim)
    hf = CLIPModel(config).to(device=model.logit_scale.device, dtype=model.logit_scale.dtype).eval()
    text, vision = hf.text_model, hf.vision_model
    text.embeddings.token_embedding.weight.copy_(model.text.token_emb.weight)
    text.embeddings.position_embedding.weight.copy_(model.text.pos_emb.weight)
    for block, layer in zip(model.text.blocks, text.encoder.layers, strict=True):
        _copy_block(block, layer)
    text.final_layer_norm.load_state_dict(model.text.norm.state_dict())

    vit, patch = model.vision, model.vision.patch_embed.proj
    vision.embeddings.patch_embedding.weight.copy_(  # Linear (D, P*P*C), flattened (p1 p2 c) -> Conv2d (D, C, P, P)
        rearrange(patch.weight, "d (p1 p2 c) -> d c p1 p2", p1=c.patch_size, p2=c.patch_size))
    vision.embeddings.class_embedding.copy_(vit.cls_token[0, 0])
    position = vit.pos_emb[0].clone()  # (1 + N, D): class token first, then the patches row by row
    position[1:] += patch.bias
    vision.embeddings.position_embedding.weight.copy_(position)
    vision.pre_layrnorm.load_state_dict(vit.pre_norm.state_dict())
    for block, layer in zip(vit.encoder.blocks, vision.encoder.layers, strict=True):
        _copy_block(block, layer)
    vision.post_layernorm.load_state_dict(vit.encoder.norm.state_dict())

    hf.visual_projection.weight.copy_(model.visual_projection.weight)
    hf.text_projection.weight.copy_(model.text_projection.weight)
    hf.logit_scale.copy_(model.logit_scale.clamp(max=LOGIT_SCALE_MAX))  # ours is clamped when used; theirs is not
    return hf
