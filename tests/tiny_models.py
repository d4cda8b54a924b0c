"""Small models and inputs that several test files share."""

import torch

from vitlib.transformer import GPT, GPTConfig


def tiny_gpt(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=23, d_model=32, n_layers=2, n_heads=4, max_len=40) | overrides
    model = GPT(GPTConfig(**cfg)).eval()
    with torch.no_grad():  # spread the weights so that outputs differ visibly between positions and tokens
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def ids(B=3, T=9, V=23, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
