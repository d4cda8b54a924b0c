"""CLIP -> transformers' CLIPModel (chapter 05).

``to_hf_clip(model)`` builds a ``transformers.CLIPModel`` with the weights of a ``vitlib.clip.CLIP``. The blocks agree
one for one (``vitlib.transformer.Block`` <-> ``CLIPEncoderLayer``); CLIP's patch projection is a bias-free Conv2d,
so our patch bias moves into the patch position embeddings:  x_p W + b + E_pos,p = x_p W + (E_pos,p + b).
"""

from __future__ import annotations

import torch
from einops import rearrange

from ..checks import check_id
from ..clip import CLIP

__all__ = ["to_hf_clip"]


def _copy_block(block, layer) -> None:
    """A vitlib pre-LN Block -> a transformers CLIPEncoderLayer (the same sub-layers under other names)."""
    for ours, theirs in ((block.norm1, layer.layer_norm1), (block.norm2, layer.layer_norm2),
                         (block.attn.q_proj, layer.self_attn.q_proj), (block.attn.k_proj, layer.self_attn.k_proj),
                         (block.attn.v_proj, layer.self_attn.v_proj), (block.attn.out_proj, layer.self_attn.out_proj),
                         (block.ffn.fc1, layer.mlp.fc1), (block.ffn.fc2, layer.mlp.fc2)):
        theirs.load_state_dict(ours.state_dict())


@torch.no_grad()
def to_hf_clip(model, bos_token_id: int | None = None, pad_token_id: int | None = None):
    """A ``transformers.CLIPModel`` (eval mode, on the model's device) with the weights of a vitlib CLIP: the same
    image and text features (``get_image_features`` / ``get_text_features``) and the same logits.

    It takes the same inputs: ``pixel_values`` are our images in [0, 1] (no further normalisation), ``input_ids``
    our token ids; it pools the text at the first ``config.eos_id``.

    Refused: an ``eos_id`` of 2, since transformers keeps a legacy rule for text configs with ``eos_token_id == 2``
    (a value older CLIP configs carried by mistake) and pools each text at its largest token id, not at its first
    <eos>; and a ``logit_bias`` (SigLIP's), which CLIPModel does not have.
    """
    if not isinstance(model, CLIP):
        raise TypeError(f"to_hf_clip expects a vitlib.clip.CLIP, got {type(model).__name__}")
    c = model.config
    if c.eos_id == 2:
        raise ValueError("eos_id=2 cannot be exported: transformers' CLIPTextTransformer keeps a legacy rule for "
                         "eos_token_id == 2 and pools each text at its largest token id, not at its first <eos>, so "
                         "its text features would differ from ours. Give the model's tokenizer another <eos> id "
                         "(the course tokenizer's is 3) and retrain, or permute the token embedding rows together with "
                         "the tokenizer's ids so that <eos> is not 2")
    if model.logit_bias is not None:
        raise ValueError("a CLIP with a logit_bias (SigLIP's) cannot be exported: transformers' CLIPModel has no bias, "
                         "so its logits would differ from ours by it; export a model built with logit_bias=None")
    for name, value in (("bos_token_id", bos_token_id), ("pad_token_id", pad_token_id)):
        check_id(value, name, c.vocab_size, optional=True)
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
    hf.logit_scale.copy_(model.logit_scale)  # used as it is by both; training clamps it between steps
    return hf
