"""CLIP <-> transformers' CLIPModel (chapter 05).

``to_hf_clip(model)`` builds a ``transformers.CLIPModel`` with the weights of a ``vitlib.clip.CLIP``. The blocks agree
one for one (``vitlib.transformer.Block`` <-> ``CLIPEncoderLayer``); CLIP's patch projection is a bias-free Conv2d,
so our patch bias moves into the patch position embeddings:  x_p W + b + E_pos,p = x_p W + (E_pos,p + b).
``from_hf_clip(hf_model)`` reads a CLIPModel back, with b = 0; so from_hf_clip(to_hf_clip(m)) is m with b folded in.
"""

from __future__ import annotations

import sys

import torch
from einops import rearrange

from ..checks import check_id, describe
from ..clip import CLIP, CLIPConfig
from .gpt2 import ACTIVATION_TO_HF, activation_from_hf

__all__ = ["to_hf_clip", "from_hf_clip"]

_BLOCK = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.q_proj": "attn.q_proj",
          "self_attn.k_proj": "attn.k_proj", "self_attn.v_proj": "attn.v_proj", "self_attn.out_proj": "attn.out_proj",
          "mlp.fc1": "ffn.fc1", "mlp.fc2": "ffn.fc2"}   # CLIPEncoderLayer's sub-layers -> a vitlib Block's


def _copy_block(block, layer) -> None:
    """A vitlib pre-LN Block -> a transformers CLIPEncoderLayer (the same sub-layers under other names)."""
    for theirs, ours in _BLOCK.items():
        layer.get_submodule(theirs).load_state_dict(block.get_submodule(ours).state_dict())


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

    common = dict(hidden_act=ACTIVATION_TO_HF[c.activation], layer_norm_eps=1e-5, attention_dropout=0.0,
                  projection_dim=c.embed_dim)
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


def _check_tower(name: str, tower) -> None:
    """ValueError unless a text or vision config has what our towers hard-wire: d_ff = 4 d, eps 1e-5, no dropout."""
    for field, value, wanted in (("intermediate_size", tower.intermediate_size, 4 * tower.hidden_size),
                                 ("layer_norm_eps", tower.layer_norm_eps, 1e-5),
                                 ("attention_dropout", tower.attention_dropout, 0.0)):
        if value != wanted:
            raise ValueError(f"{name}.{field}={value!r} cannot be converted: vitlib's CLIP has {field}={wanted!r}")


def from_hf_clip(hf_model) -> CLIP:
    """A vitlib CLIP (eval mode, on the model's device and dtype) with the weights of a ``transformers.CLIPModel``:
    the same image and text features and logits from the same inputs. Neither model normalises images: pass
    ``pixel_values`` as CLIP's processor gives them, already normalised with CLIP's mean and std.

    The text is pooled where CLIPModel pools it: at the first ``eos_token_id``. Under transformers' legacy rule for
    ``eos_token_id == 2`` (OpenAI's checkpoints) it pools at each text's largest id, which is the first <eos> when
    <eos> is the vocabulary's last id (49407 there): so eos_id = vocab_size - 1, and texts must contain it.
    Refused with a ValueError naming the field: what our CLIP hard-wires otherwise (``_check_tower``), towers with
    different activations, images of other than 3 channels.
    """
    # a CLIPModel exists only once transformers is imported: anything else is refused without importing it
    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(hf_model, transformers.CLIPModel):
        raise TypeError(f"from_hf_clip expects a transformers CLIPModel, got {describe(hf_model)}")
    t, v = hf_model.config.text_config, hf_model.config.vision_config
    for name, tower in (("text_config", t), ("vision_config", v)):
        _check_tower(name, tower)
    activation = activation_from_hf(t.hidden_act, "text_config.hidden_act")
    if activation_from_hf(v.hidden_act, "vision_config.hidden_act") != activation:
        raise ValueError(f"text_config.hidden_act={t.hidden_act!r} and vision_config.hidden_act={v.hidden_act!r} "
                         "differ: vitlib's CLIP has one activation for both towers")
    if v.num_channels != 3:
        raise ValueError(f"vision_config.num_channels={v.num_channels!r} cannot be converted: vitlib's CLIP reads RGB")
    if isinstance(t.eos_token_id, bool) or not isinstance(t.eos_token_id, int):
        raise ValueError(f"text_config.eos_token_id must be one int id to pool at, got {t.eos_token_id!r}")
    eos_id = t.vocab_size - 1 if t.eos_token_id == 2 else t.eos_token_id   # the legacy rule: the largest id
    ours = CLIP(CLIPConfig(
        vocab_size=t.vocab_size, max_len=t.max_position_embeddings, eos_id=eos_id,
        embed_dim=hf_model.config.projection_dim, image_size=v.image_size, patch_size=v.patch_size,
        vision_width=v.hidden_size, vision_layers=v.num_hidden_layers, vision_heads=v.num_attention_heads,
        text_width=t.hidden_size, text_layers=t.num_hidden_layers, text_heads=t.num_attention_heads,
        activation=activation))

    src = {k: w.detach() for k, w in hf_model.state_dict().items()}
    names = {"text_model.embeddings.token_embedding.weight": "text.token_emb.weight",
             "text_model.embeddings.position_embedding.weight": "text.pos_emb.weight",
             "visual_projection.weight": "visual_projection.weight", "text_projection.weight": "text_projection.weight",
             "logit_scale": "logit_scale"}
    for theirs, mine in (("text_model.final_layer_norm", "text.norm"), ("vision_model.pre_layrnorm", "vision.pre_norm"),
                         ("vision_model.post_layernorm", "vision.encoder.norm")):
        names |= {f"{theirs}.{p}": f"{mine}.{p}" for p in ("weight", "bias")}
    for theirs, mine, n in (("text_model", "text", t.num_hidden_layers),
                            ("vision_model", "vision.encoder", v.num_hidden_layers)):
        names |= {f"{theirs}.encoder.layers.{i}.{a}.{p}": f"{mine}.blocks.{i}.{b}.{p}"
                  for i in range(n) for a, b in _BLOCK.items() for p in ("weight", "bias")}
    state = {mine: src[theirs] for theirs, mine in names.items()}
    embed = "vision_model.embeddings."
    conv = src[embed + "patch_embedding.weight"]                                        # (D, C, P, P), no bias
    state["vision.patch_embed.proj.weight"] = rearrange(conv, "d c p1 p2 -> d (p1 p2 c)")   # (D, P*P*C)
    state["vision.patch_embed.proj.bias"] = conv.new_zeros(v.hidden_size)
    state["vision.cls_token"] = src[embed + "class_embedding"].view(1, 1, -1)              # (1, 1, D)
    state["vision.pos_emb"] = src[embed + "position_embedding.weight"].unsqueeze(0)        # (1, 1 + N, D)
    ours.load_state_dict(state, strict=True)
    return ours.to(device=conv.device, dtype=conv.dtype).eval()
