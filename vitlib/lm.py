"""Language models as products of next-token probabilities; bigram models, counted and learned (chapter 01).

Chain rule (exact, for any sequence x_1 .. x_T ending in <eos>):
    p(x_1, ..., x_T) = prod_t p(x_t | x_<t)
Bigram (Markov) assumption: the last token stands for the whole past,
    p(x_t | x_<t) ~ p(x_t | x_{t-1})
Counted bigram (maximum likelihood, add-alpha smoothing):
    p(b | a) = (C[a, b] + alpha) / (sum_b' C[a, b'] + alpha V)
Neural bigram: one trained table W in R^(V x V) of logits, p(. | a) = softmax(W[a]), fit by cross-entropy
    NLL = -(1/N) sum_t log p(x_t | x_{t-1})
and perplexity (``vitlib.metrics.perplexity``), the number of equally likely choices that would be as surprising:
    PPL = exp(NLL)
The same loss trains the GPT of chapter 03: ``collate`` pads documents, ``lm_loss`` scores position t's logits
against token t + 1, ``token_nll`` gives the NLL of every predicted token of a set of documents.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .checks import check_id, check_int, check_number, describe
from .constants import IGNORE_INDEX

__all__ = ["cross_entropy", "collate", "lm_loss", "predicted_tokens", "token_nll", "bigram_pairs", "BigramCounts",
           "NeuralBigram", "sample_bigram"]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean negative log-likelihood of ``targets`` (...,) under softmax(``logits``) (..., V).

    NLL = -log softmax(z)_y = logsumexp(z) - z_y; positions whose target is ``ignore_index`` do not count.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise TypeError(f"logits must be a floating-point tensor (..., V), got {describe(logits)}")
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a LongTensor of token ids, got {describe(targets)}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits (..., V) and targets (...) must agree: logits {tuple(logits.shape)}, "
                         f"targets {tuple(targets.shape)}")
    if targets.dtype != torch.long:
        raise TypeError(f"targets must be token ids of dtype torch.long, got {targets.dtype}")
    check_int(ignore_index, "ignore_index", minimum=-(2**63), maximum=None)
    if targets.device != logits.device:
        raise ValueError(f"targets are on {targets.device} but logits on {logits.device}")
    if targets.numel() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"nothing to score: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}")
    keep = targets != ignore_index                                                   # (...)
    if not keep.any():
        raise ValueError("every target is ignore_index: there is nothing to score")
    V, scored = logits.shape[-1], targets[keep]
    if scored.min() < 0 or scored.max() >= V:   # gather would fail deep inside, or read another row
        raise ValueError(f"targets must be ids in [0, {V}) or ignore_index={ignore_index}, got values in "
                         f"[{scored.min().item()}, {scored.max().item()}]")
    y = torch.where(keep, targets, 0)                                                # (...), ignored -> any id
    log_p = torch.log_softmax(logits, dim=-1)                                        # (..., V): z - logsumexp(z)
    nll = -log_p.gather(-1, y[..., None])[..., 0]                                    # (...)
    return (nll * keep).sum() / keep.sum()


def bigram_pairs(sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (previous, next) pair of token ids in a list of sequences -> two LongTensors (N,), (N,)."""
    prev = [a for s in sequences for a in s[:-1]]
    nxt = [b for s in sequences for b in s[1:]]
    if not prev:
        raise ValueError("the sequences hold no pair of neighbouring tokens (each needs at least 2 ids)")
    ids = torch.tensor(prev + nxt)   # the dtype torch infers: ids that are not ints would be truncated silently
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"token ids must be ints, got {ids.dtype} values")
    return ids[:len(prev)].long(), ids[len(prev):].long()


def _check_pairs(prev: torch.Tensor, nxt: torch.Tensor, vocab_size: int) -> None:
    if min(prev.min(), nxt.min()) < 0 or max(prev.max(), nxt.max()) >= vocab_size:  # -1 would read the last row
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got values in "
                         f"[{min(prev.min(), nxt.min()).item()}, {max(prev.max(), nxt.max()).item()}]")


def _check_vocab_size(vocab_size) -> None:
    check_int(vocab_size, "vocab_size", minimum=2, maximum=2**15)   # the (V, V) table grows as V^2


class BigramCounts:
    """A counted bigram model: ``fit(sequences)``, then ``log_probs`` (V, V) with log p(b | a) in row a."""

    def __init__(self, vocab_size: int, alpha: float = 0.0):
        _check_vocab_size(vocab_size)
        check_number(alpha, "alpha (add-alpha smoothing)", 0.0)   # NaN or inf would make every probability NaN
        self.vocab_size, self.alpha = vocab_size, alpha
        self.counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)         # C[a, b]

    def fit(self, sequences) -> BigramCounts:
        prev, nxt = bigram_pairs(sequences)
        _check_pairs(prev, nxt, self.vocab_size)
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
        _check_pairs(prev, nxt, self.vocab_size)
        return -self.log_probs[prev, nxt]


class NeuralBigram(nn.Module):
    """logits of the next token = W[previous token]: an embedding table of size V x V, trained by cross-entropy.

    Starts at W = 0 (every next token equally likely, perplexity V).
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        _check_vocab_size(vocab_size)
        self.logits = nn.Embedding(vocab_size, vocab_size)
        nn.init.zeros_(self.logits.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (...) -> logits of the next token (..., V)."""
        V = self.logits.num_embeddings
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int32):
            raise TypeError(f"ids must be a LongTensor of token ids, got {describe(ids)}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"token ids must lie in [0, {V}), got values in [{ids.min().item()}, {ids.max().item()}]")
        return self.logits(ids)

    @property
    def log_probs(self) -> torch.Tensor:
        """(V, V): log softmax of each row, the same layout as ``BigramCounts.log_probs``."""
        return torch.log_softmax(self.logits.weight.detach(), dim=-1)

    def nll(self, sequences) -> torch.Tensor:
        """Per-token negative log-likelihoods (N,), on the CPU, of every next token in ``sequences``."""
        prev, nxt = bigram_pairs(sequences)
        _check_pairs(prev, nxt, self.logits.num_embeddings)
        return -self.log_probs[prev.to(self.logits.weight.device), nxt.to(self.logits.weight.device)].cpu()


def sample_bigram(log_probs: torch.Tensor, n: int, bos_id: int, eos_id: int, max_len: int = 30,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """Draw ``n`` sequences x_t ~ p(. | x_{t-1}) from a (V, V) table, starting after <bos>, stopping at <eos>.

    Returns the ids between <bos> and <eos> (a sequence that reaches ``max_len`` tokens is cut there).
    """
    if not isinstance(log_probs, torch.Tensor) or not log_probs.is_floating_point():
        raise TypeError(f"log_probs must be a floating-point (V, V) tensor, got {describe(log_probs)}")
    if log_probs.dim() != 2 or log_probs.shape[0] != log_probs.shape[1]:
        raise ValueError(f"log_probs must be a (V, V) table, got shape {tuple(log_probs.shape)}")
    V = log_probs.shape[0]
    check_int(n, "n")
    check_id(bos_id, "bos_id", V)
    check_id(eos_id, "eos_id", V)
    check_int(max_len, "max_len")
    if log_probs.isnan().any() or log_probs.isposinf().any() or log_probs.isneginf().all(dim=1).any():
        raise ValueError("log_probs must be log-probabilities: no NaN or +inf, and no row all -inf (probability 0 "
                         "for every next token)")
    probs = log_probs.detach().float().exp().cpu()                                  # (V, V)
    current = torch.full((n,), bos_id, dtype=torch.long)                             # (n,)
    steps = []
    for _ in range(max_len):
        current = torch.multinomial(probs[current], 1, generator=generator)[:, 0]    # (n,)
        steps.append(current)
    ids = rearrange(torch.stack(steps), "t n -> n t").tolist()                       # (n, max_len)
    return [s[:s.index(eos_id)] if eos_id in s else s for s in ids]


def collate(seqs: list[list[int]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a batch of id lists; labels are the ids themselves with padding replaced by IGNORE_INDEX."""
    if not seqs or not all(isinstance(s, (list, tuple)) and len(s) > 0 for s in seqs):
        raise ValueError(f"seqs must be a non-empty list of non-empty id lists, got {describe(seqs)}")
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), T), IGNORE_INDEX, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
        labels[b, :len(s)] = torch.tensor(s)
    return {"input_ids": ids, "labels": labels}


def lm_loss(model: nn.Module, batch: dict, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy: the logits at position t predict the label at t + 1 (IGNORE_INDEX skipped)."""
    logits = model(batch["input_ids"])[:, :-1]  # (B, T-1, V): predictions for tokens 1..T-1
    targets = batch["labels"][:, 1:]            # (B, T-1)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                       ignore_index=IGNORE_INDEX, reduction=reduction)


def predicted_tokens(batch: dict) -> torch.Tensor:
    """How many tokens `lm_loss` averages over: labels at positions 1..T-1 that are not IGNORE_INDEX. The training
    loop's `count_fn` for a token-mean loss (split over processes, each share is weighted by its tokens)."""
    return (batch["labels"][:, 1:] != IGNORE_INDEX).sum()


@torch.no_grad()
def token_nll(model: nn.Module, seqs: list[list[int]], batch_size: int = 256) -> torch.Tensor:
    """The NLL (nats) of every predicted token of the documents ``seqs``, (N_tokens,): perplexity's input."""
    check_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(seqs), batch_size):
        batch = {k: v.to(device) for k, v in collate(seqs[i:i + batch_size]).items()}
        nll = lm_loss(model, batch, reduction="none")                 # (B (T-1),), 0 where ignored
        out.append(nll[batch["labels"][:, 1:].reshape(-1) != IGNORE_INDEX].cpu())
    return torch.cat(out)

