"""Interop with Hugging Face transformers, one module per model family (chapters 03, 04, 05).

    to_hf_gpt2(GPT) -> transformers.GPT2LMHeadModel          vitlib.hf.gpt2   (chapter 03)
    from_hf_gpt2(transformers.GPT2LMHeadModel) -> GPT        vitlib.hf.gpt2   (chapter 03)
    from_hf_vit(transformers.ViTModel) -> ViT                vitlib.hf.vit    (chapter 04)
    to_hf_clip(CLIP) -> transformers.CLIPModel               vitlib.hf.clip   (chapter 05)
    from_hf_clip(transformers.CLIPModel) -> CLIP             vitlib.hf.clip   (chapter 05)
    pretrained("gpt2", "gpt2") -> (model, tokenizer) or None  vitlib.hf.hub    (chapter 13: real weights, online)

Each converts weights only; the tests prove that both sides then compute the same outputs. A from_hf_* refuses, with
a ValueError naming the config field, what our model would compute differently. transformers is imported only inside
the functions that build its models, after their input checks: it is slow to import, and no course model needs it to
run; the from_hf_* functions never import it (a transformers model exists only once it is imported).
"""

from .clip import from_hf_clip, to_hf_clip
from .gpt2 import from_hf_gpt2, to_hf_gpt2
from .hub import offline, pretrained
from .vit import from_hf_vit

__all__ = ["to_hf_gpt2", "from_hf_gpt2", "to_hf_clip", "from_hf_clip", "from_hf_vit", "pretrained", "offline"]
