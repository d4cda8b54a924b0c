"""Small models and inputs that several test files share."""

import torch

from vitlib.transformer import GPT, GPTConfig


def spread(model: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """``model`` with noise added to every weight, biases and norms included: a freshly initialised model has zero
    biases, unit norms and small weights, under which a wrong piece can hide; spread, every piece moves the output."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def tiny_gpt(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=23, d_model=32, n_layers=2, n_heads=4, max_len=40) | overrides
    return spread(GPT(GPTConfig(**cfg)).eval())


def ids(B=3, T=9, V=23, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
