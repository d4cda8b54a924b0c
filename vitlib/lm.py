"""Language models as products of next-token probabilities; bigram models, counted and learned (chapter 01).

Chain rule (exact, for any sequence x_1 .. x_T ending in <eos>):
    p(x_1, ..., x_T) = prod_t p(x_t | x_<t)
Bigram (Markov) assumption: the last token stands for the whole past,
    p(x_t | x_<t) ~ p(x_t | x_{t-1})
Counted bigram (maximum likelihood, add-alpha smoothing):
    p(b | a) = (C[a, b] + alpha) / (sum_b' C[a, b'] + alpha V)
Neural bigram: one trained table W in R^(V x V) of logits, p(. | a) = softmax(W[a]), fit by cross-entropy
    NLL = -(1/N) sum_t log p(x_t | x_{t-1})
and perplexity, the number of equally likely choices that would be as surprising:
    PPL = exp(NLL)
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

__all__ = ["cross_entropy", "perplexity", "bigram_pairs", "BigramCounts", "NeuralBigram", "sample_bigram"]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean negative log-likelihood of ``targets`` (...,) under softmax(``logits``) (..., V).

    NLL = -log softmax(z)_y = logsumexp(z) - z_y; positions whose target is ``ignore_index`` do not count.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits (..., V) and targets (...) must agree: logits {tuple(logits.shape)}, "
                         f"targets {tuple(targets.shape)}")
    if targets.dtype != torch.long:
        raise TypeError(f"targets must be token ids of dtype torch.long, got {targets.dtype}")
    keep = targets != ignore_index                                                   # (...)
    if not keep.any():
        raise ValueError("every target is ignore_index: there is nothing to score")
    y = torch.where(keep, targets, 0)                                                # (...), ignored -> any id
    log_p = torch.log_softmax(logits, dim=-1)                                        # (..., V): z - logsumexp(z)
    nll = -log_p.gather(-1, y[..., None])[..., 0]                                    # (...)
    return (nll * keep).sum() / keep.sum()


def perplexity(nll) -> float:
    """exp(mean NLL) from per-token negative log-likelihoods (a tensor, in nats) or their mean (a number)."""
    mean = nll.double().mean().item() if isinstance(nll, torch.Tensor) else float(nll)
    return math.exp(mean)


def bigram_pairs(sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (previous, next) pair of token ids in a list of sequences -> two LongTensors (N,), (N,)."""
    prev = [a for s in sequences for a in s[:-1]]
    nxt = [b for s in sequences for b in s[1:]]
    if not prev:
        raise ValueError("the sequences hold no pair of neighbouring tokens (each needs at least 2 ids)")
    return torch.tensor(prev, dtype=torch.long), torch.tensor(nxt, dtype=torch.long)


class BigramCounts:
    """A counted bigram model: ``fit(sequences)``, then ``log_probs`` (V, V) with log p(b | a) in row a."""

    def __init__(self, vocab_size: int, alpha: float = 0.0):
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        if alpha < 0:
            raise ValueError(f"alpha (add-alpha smoothing) must be >= 0, got {alpha}")
        self.vocab_size, self.alpha = vocab_size, alpha
        self.counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)         # C[a, b]

    def fit(self, sequences) -> BigramCounts:
        prev, nxt = bigram_pairs(sequences)
        if max(prev.max(), nxt.max()) >= self.vocab_size or min(prev.min(), nxt.min()) < 0:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        self.counts.zero_()
        self.counts.index_put_((prev, nxt), torch.ones(len(prev), dtype=torch.float64), accumulate=True)
        return self

    @property
    def log_probs(self) -> torch.Tensor:
        """(V, V): log (C[a, b] + alpha) / (sum_b C[a, b] + alpha V); a row never seen is uniform."""
        c = self.counts + self.alpha
        total = c.sum(dim=1, keepdim=True)                                           # (V, 1)
        p = torch.where(total > 0, c / total.clamp_min(1e-300), 1.0 / self.vocab_size)
        return p.log().float()

    def nll(self, sequences) -> torch.Tensor:
        """Per-token negative log-likelihoods (N,) of every next token in ``sequences``."""
        prev, nxt = bigram_pairs(sequences)
        return -self.log_probs[prev, nxt]


class NeuralBigram(nn.Module):
    """logits of the next token = W[previous token]: an embedding table of size V x V, trained by cross-entropy.

    Starts at W = 0 (every next token equally likely, perplexity V).
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        self.logits = nn.Embedding(vocab_size, vocab_size)
        nn.init.zeros_(self.logits.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (...) -> logits of the next token (..., V)."""
        return self.logits(ids)

    @property
    def log_probs(self) -> torch.Tensor:
        """(V, V): log softmax of each row, the same layout as ``BigramCounts.log_probs``."""
        return torch.log_softmax(self.logits.weight.detach(), dim=-1)

    def nll(self, sequences) -> torch.Tensor:
        """Per-token negative log-likelihoods (N,), on the CPU, of every next token in ``sequences``."""
        prev, nxt = bigram_pairs(sequences)
        return -self.log_probs[prev.to(self.logits.weight.device), nxt.to(self.logits.weight.device)].cpu()


def sample_bigram(log_probs: torch.Tensor, n: int, bos_id: int, eos_id: int, max_len: int = 30,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """Draw ``n`` sequences x_t ~ p(. | x_{t-1}) from a (V, V) table, starting after <bos>, stopping at <eos>.

    Returns the ids between <bos> and <eos> (a sequence that reaches ``max_len`` tokens is cut there).
    """
    if log_probs.dim() != 2 or log_probs.shape[0] != log_probs.shape[1]:
        raise ValueError(f"log_probs must be a (V, V) table, got shape {tuple(log_probs.shape)}")
    probs = log_probs.detach().float().exp().cpu()                                  # (V, V)
    current = torch.full((n,), bos_id, dtype=torch.long)                             # (n,)
    steps = []
    for _ in range(max_len):
        current = torch.multinomial(probs[current], 1, generator=generator)[:, 0]    # (n,)
        steps.append(current)
    ids = rearrange(torch.stack(steps), "t n -> n t").tolist()                       # (n, max_len)
    return [s[:s.index(eos_id)] if eos_id in s else s for s in ids]
