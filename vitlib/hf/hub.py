"""Real pretrained checkpoints from the Hugging Face Hub, when the reader is online (chapter 13).

``pretrained(name, kind)`` returns the transformers model (in eval mode) and its tokenizer or processor, or None
after printing one line that says why, when the Hub cannot be reached: ``HF_HUB_OFFLINE=1`` (as in the course's
tests) and no copy in the local cache, or no network. A chapter's online cells therefore run everywhere: online they
load ``gpt2`` or ``openai/clip-vit-base-patch32`` and convert it with ``from_hf_gpt2`` / ``from_hf_clip``; offline
they say so and skip.
"""

from __future__ import annotations

import os

from ..checks import check_one_of

__all__ = ["KINDS", "pretrained", "offline"]

KINDS = {"gpt2": ("GPT2LMHeadModel", "AutoTokenizer"), "clip": ("CLIPModel", "CLIPProcessor")}


def offline() -> bool:
    """Whether the Hub is switched off for this process (HF_HUB_OFFLINE, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def pretrained(name: str, kind: str):
    """(model, tokenizer or processor) for the Hub checkpoint ``name`` of ``kind`` (KINDS), or None when it cannot
    be had here; the reason is printed in one line. Offline, only the local cache is tried."""
    check_one_of(kind, "kind", KINDS)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a Hub model id such as 'gpt2', got {name!r}")
    import transformers

    model_cls, helper_cls = (getattr(transformers, c) for c in KINDS[kind])
    try:
        model = model_cls.from_pretrained(name, local_files_only=offline())
        helper = helper_cls.from_pretrained(name, local_files_only=offline())
    except OSError as error:   # what transformers raises for a missing file, a missing cache or no connection
        why = "HF_HUB_OFFLINE=1, no local copy" if offline() else f"the Hub did not answer ({type(error).__name__})"
        print(f"skipped, {name} not loaded: {why}")   # one line, narrow enough for the book's page
        return None
    return model.eval(), helper
