"""transformers' ViTModel -> ViT (chapter 04).

``from_hf_vit(hf_model)`` builds a ``vitlib.vision.ViT`` with the weights of a ``transformers.ViTModel``, so that
both give the same token states and attention maps. The blocks agree one for one (pre-LN, GELU, biased q/k/v);
transformers embeds patches with a Conv2d of kernel = stride = P, ours with a Linear on flattened patches:

    W_linear (D, P*P*C) = rearrange(W_conv (D, C, P, P), "d c p1 p2 -> d (p1 p2 c)")     (chapter 04 proves it)
"""

from __future__ import annotations

import sys

from einops import rearrange

from ..checks import describe
from ..vision import ViT, ViTConfig

__all__ = ["from_hf_vit"]

_BLOCK = {"attention.q_proj": "attn.q_proj", "attention.k_proj": "attn.k_proj", "attention.v_proj": "attn.v_proj",
          "attention.o_proj": "attn.out_proj", "layernorm_before": "norm1", "layernorm_after": "norm2",
          "mlp.fc1": "ffn.fc1", "mlp.fc2": "ffn.fc2"}   # transformers 5's names -> ours, per layer


def from_hf_vit(hf_model) -> ViT:
    """A ViT (on the model's device and dtype) with the weights of a transformers ``ViTModel`` (GELU, biased
    q/k/v). Its pooler, if it has one, is left out: our ViT reads the class token's final state."""
    # a ViTModel exists only once transformers is imported: anything else is refused without importing it (3 s)
    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(hf_model, transformers.ViTModel):
        raise TypeError(f"from_hf_vit expects a transformers ViTModel, got {describe(hf_model)}")
    hf = hf_model.config
    if hf.hidden_act != "gelu" or not hf.qkv_bias:
        raise ValueError(f"need hidden_act='gelu' and qkv_bias=True, got {hf.hidden_act!r}, {hf.qkv_bias!r}")
    ours = ViT(ViTConfig(image_size=hf.image_size, patch_size=hf.patch_size, in_channels=hf.num_channels,
                         d_model=hf.hidden_size, n_layers=hf.num_hidden_layers, n_heads=hf.num_attention_heads,
                         d_ff=hf.intermediate_size, norm_eps=hf.layer_norm_eps))
    names = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_emb",
             "layernorm.weight": "encoder.norm.weight", "layernorm.bias": "encoder.norm.bias"}
    for i in range(hf.num_hidden_layers):
        for theirs, mine in _BLOCK.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{theirs}.{p}"] = f"encoder.blocks.{i}.{mine}.{p}"
    src = hf_model.state_dict()
    state = {mine: src[theirs] for theirs, mine in names.items()}
    conv = src["embeddings.patch_embeddings.projection.weight"]                        # (D, C, P, P)
    state["patch_embed.proj.weight"] = rearrange(conv, "d c p1 p2 -> d (p1 p2 c)")     # (D, P*P*C)
    state["patch_embed.proj.bias"] = src["embeddings.patch_embeddings.projection.bias"]
    ours.load_state_dict(state, strict=True)
    return ours.to(conv.device, conv.dtype)
