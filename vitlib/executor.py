"""The InstructionExecutor: a policy over ShapesGrid's actions from the image and the instruction, and the three
ways chapter 12 teaches it (seed 002: a = argmax_a P(a | s), learned by imitation, improved by reward).

    V = PatchEmbedding(image) + P_v       the nine cells as tokens (B, 9, d), trained: CLIP never saw the frame
    X = E[w] + P_w                        the instruction's words (B, T, d)
    h = Encoder([c; X; V])_0              one stream, chapter 07's "projector" fusion: the cells read as words
    pi(a | s) = softmax(W h)              (B, 6), acted on greedily: a = argmax_a pi(a | s)

    behaviour cloning   min  E_{s ~ d_expert} [ -log pi(a*(s) | s) ]          the expert's states
    DAgger              min  E_{s ~ d_pi} [ -log pi(a*(s) | s) ]              the learner's states, the expert's labels

Learning from the reward alone (REINFORCE) is ``vitlib.policy_gradient``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .agent import ACTIONS, MAX_STEPS, SPLITS, ShapesGridEnv
from .checks import check_int, check_like, check_number, check_one_of, check_positive_ints, check_token_ids, describe
from .data import to_tensor
from .data.language import tokenizer as shapes_tokenizer
from .metrics import accuracy_with_interval
from .transformer import Encoder
from .vision import PatchEmbedding, check_images
from .zoo import register_model

__all__ = ["ExecutorConfig", "InstructionExecutor", "encode_observations", "act", "collect", "episode", "merge",
           "clone", "success_rate", "success_summary", "VISITS", "dagger"]


@dataclass
class ExecutorConfig:
    """Sizes: the world's vocabulary, the longest instruction in words, the image and its patches (one per cell)."""

    vocab_size: int = 80
    max_words: int = 16
    image_size: int = 24
    patch_size: int = 8
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 3
    n_actions: int = len(ACTIONS)

    def __post_init__(self):
        check_positive_ints(self, ["vocab_size", "max_words", "image_size", "patch_size", "d_model", "n_heads",
                                   "n_layers", "n_actions"])


@register_model(config_cls=ExecutorConfig)
class InstructionExecutor(nn.Module):
    """(images (B, 3, H, W) in [0, 1], instruction ids (B, T), <pad> = 0 after the words) -> action logits (B, A)."""

    def __init__(self, config: ExecutorConfig):
        super().__init__()
        if not isinstance(config, ExecutorConfig):
            raise TypeError(f"InstructionExecutor expects an ExecutorConfig, got {describe(config)}")
        c = self.config = config
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, 3, c.d_model)
        n_cells = (c.image_size // c.patch_size) ** 2
        self.cell_pos = nn.Parameter(torch.randn(n_cells, c.d_model) * 0.02)           # P_v
        self.word_emb = nn.Embedding(c.vocab_size, c.d_model)                            # E
        self.word_pos = nn.Parameter(torch.randn(c.max_words, c.d_model) * 0.02)        # P_w
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.encoder = Encoder(c.d_model, c.n_heads, c.n_layers)
        self.head = nn.Linear(c.d_model, c.n_actions)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        c = self.config
        check_images(images, 3, c.image_size)
        check_like(images, "images", self.head.weight)
        check_token_ids(input_ids, c.vocab_size, self.head.weight.device)
        B, T = input_ids.shape
        if B == 0 or T == 0 or T > c.max_words or images.shape[0] != B:
            raise ValueError(f"input_ids must be (B, 1..{c.max_words}) with B >= 1, one row per image; got "
                             f"{describe(input_ids)} for {describe(images)}")
        words = input_ids != 0                                                           # (B, T): not <pad>
        if not words[:, 0].all():
            raise ValueError("every instruction needs at least one word (row of input_ids starting with <pad>)")
        V = self.patch_embed(images) + self.cell_pos                                     # (B, 9, d)
        X = self.word_emb(input_ids) + self.word_pos[:T]                                 # (B, T, d)
        h = torch.cat([self.cls.expand(B, -1, -1), X, V], dim=1)                        # (B, 1 + T + 9, d)
        mask = torch.cat([words.new_ones(B, 1), words, words.new_ones(B, V.shape[1])], dim=1)
        return self.head(self.encoder(h, attention_mask=mask)[:, 0])                     # (B, A)


def encode_observations(observations, device=None, tokenizer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """ShapesGrid observations -> (images (B, 3, H, W) in [0, 1], ids (B, T)). ``observations``: one obs dict, a
    vector env's batched dict, or a list of obs dicts."""
    tokenizer = shapes_tokenizer() if tokenizer is None else tokenizer
    if isinstance(observations, dict):
        images, texts = observations.get("image"), observations.get("instruction")
        if isinstance(texts, str):
            images, texts = images[None], [texts]
    elif isinstance(observations, (list, tuple)) and observations and all(isinstance(o, dict) for o in observations):
        images, texts = np.stack([o["image"] for o in observations]), [o["instruction"] for o in observations]
    else:
        raise TypeError(f"expected an observation dict or a list of them, got {describe(observations)}")
    if not isinstance(images, np.ndarray) or images.ndim != 4 or len(texts) != len(images):
        raise ValueError(f"expected images (B, H, W, 3) and B instructions, got {describe(images)} and "
                         f"{len(texts)} instructions")
    ids = tokenizer(list(texts), add_bos=False, add_eos=False)["input_ids"]                # (B, T), <pad> = 0
    return to_tensor(np.ascontiguousarray(images)).to(device), ids.to(device)


@torch.no_grad()
def act(model: InstructionExecutor, observations, greedy: bool = True, generator=None) -> np.ndarray:
    """a = argmax_a pi(a | s) (or a ~ pi(. | s) with ``greedy=False``) for each observation: int64 (B,)."""
    device = model.head.weight.device
    logits = model(*encode_observations(observations, device))
    a = logits.argmax(-1) if greedy else torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
    return a.cpu().numpy()


def collect(n_episodes: int, split: str = "train", seed: int = 0, policy=None, world=None,
            max_states: int | None = None, beta: float = 0.0) -> dict:
    """Roll out ``policy`` (None: the expert) for ``n_episodes`` episodes (env seeds seed, seed + 1, ...); every state
    visited is labelled with the expert's action. ``beta``: at each step the expert acts instead, with that
    probability (DAgger's mixture beta pi* + (1 - beta) pi). With ``max_states``, stop once that many states are
    labelled (so that two ways of collecting can be given the same labelling budget). -> {"images" uint8 (N, H, W,
    3), "instructions", "actions" (N,), "success" (the actor's rate over the episodes it finished), "episodes"}."""
    check_int(n_episodes, "n_episodes")
    check_number(beta, "beta", 0.0, 1.0)
    if max_states is not None:
        check_int(max_states, "max_states")
    coin = random.Random(seed)
    env = ShapesGridEnv(world=world, split=split)
    images, texts, labels, wins = [], [], [], []
    for episode in range(n_episodes):
        if max_states is not None and len(labels) >= max_states:
            break
        obs, info = env.reset(seed=seed + episode)
        wins.append(False)
        for _ in range(MAX_STEPS):
            if max_states is not None and len(labels) >= max_states:
                wins.pop()                                              # cut short: neither a success nor a failure
                break
            images.append(obs["image"])
            texts.append(obs["instruction"])
            labels.append(info["expert_action"])
            expert = policy is None or (beta > 0 and coin.random() < beta)
            obs, _, terminated, _, info = env.step(labels[-1] if expert else int(act(policy, obs)[0]))
            if terminated:
                wins[-1] = True
                break
    return {"images": np.stack(images), "instructions": texts, "actions": np.array(labels),
            "success": float(np.mean(wins)) if wins else 0.0, "outcomes": wins, "episodes": len(wins)}


def episode(policy=None, seed: int = 0, split: str = "heldout", world=None) -> dict:
    """One episode, greedy (``policy`` None: the expert), for the episode viewer: {"instruction", "frames" (T + 1,
    H, W, 3) uint8, "actions" (T names), "success"}."""
    env = ShapesGridEnv(world=world, split=split)
    obs, info = env.reset(seed=seed)
    frames, actions, success = [obs["image"]], [], False
    for _ in range(MAX_STEPS):
        action = info["expert_action"] if policy is None else int(act(policy, obs)[0])
        obs, _, success, _, info = env.step(action)
        frames.append(obs["image"])
        actions.append(ACTIONS[action])
        if success:
            break
    return {"instruction": env.task.text, "frames": np.stack(frames), "actions": actions, "success": success}


def merge(a: dict, b: dict) -> dict:
    """Two ``collect`` results as one data set (DAgger's aggregation D <- D u D_i)."""
    return {"images": np.concatenate([a["images"], b["images"]]), "instructions": a["instructions"] + b["instructions"],
            "actions": np.concatenate([a["actions"], b["actions"]]), "success": b["success"],
            "outcomes": b["outcomes"], "episodes": a["episodes"] + b["episodes"]}


def clone(model: InstructionExecutor, data: dict, steps: int, lr: float = 2e-3, batch_size: int = 128,
          seed: int = 0) -> list[float]:
    """Behaviour cloning: ``steps`` AdamW steps (one-cycle learning rate) of the cross-entropy between pi(. | s) and
    the expert's action, on batches drawn from ``data``. Returns the losses; leaves the model in eval mode."""
    check_int(steps, "steps")
    check_number(lr, "lr", 0.0, low_open=True)
    if len(data["actions"]) == 0:
        raise ValueError("clone needs at least one labelled state, got an empty data set")
    device = model.head.weight.device
    images, ids = encode_observations({"image": data["images"], "instruction": data["instructions"]}, device)
    actions = torch.as_tensor(data["actions"], device=device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    # a 10% warm-up; OneCycleLR divides by zero when the warm-up is exactly one step (steps == 10)
    warmup = 0.1 if steps > 10 else 0.3
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=warmup)
    losses = []
    model.train()
    for _ in range(steps):
        rows = torch.randint(len(actions), (batch_size,), generator=generator).to(device)
        loss = F.cross_entropy(model(images[rows], ids[rows]), actions[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


def success_rate(model: InstructionExecutor, split: str = "heldout", n_episodes: int = 200, seed: int = 1_000_000,
                 world=None) -> dict:
    """Greedy episodes on ``split`` (env seeds seed ...): {"success", "interval" (Wilson 95%), "n"}."""
    check_one_of(split, "split", SPLITS)
    return success_summary(collect(n_episodes, split, seed, policy=model, world=world)["outcomes"])


def success_summary(outcomes) -> dict:
    """Episode outcomes (True for a success) -> {"success", "interval" (Wilson 95%), "n"}, rounded to 4 places."""
    rate, interval = accuracy_with_interval(list(outcomes))
    return {"success": round(rate, 4), "interval": [round(x, 4) for x in interval], "n": len(outcomes)}


VISITS = ("learner", "expert")


def dagger(model: InstructionExecutor, data: dict, rounds: int, states: int, steps: int, seed: int = 0,
           visits: str = "learner", evaluate=None, beta: float = 0.0) -> tuple[dict, list[dict]]:
    """DAgger (Ross et al., 2011): each round, roll out the current policy on training tasks until it has visited
    ``states`` states (env seeds from 100,000 (round + 1) + seed), label each with the expert's action, add them to
    ``data`` and clone again on all of it (``steps`` steps). ``visits="expert"`` is the comparison: the expert's own
    episodes, the same labelling budget (env seeds from 100,000 (round + 1)). -> (the aggregated data, per round
    {"states", "collect_success", **evaluate(model)}). ``beta``: the expert's share of the acting in the learner's
    rounds (Ross et al.'s mixture; 0, the learner alone)."""
    check_int(rounds, "rounds")
    check_one_of(visits, "visits", VISITS)
    curve = []
    for r in range(rounds):
        first = 100_000 * (r + 1)
        new = collect(states, "train", first + seed, policy=model, max_states=states, beta=beta) \
            if visits == "learner" else collect(states, "train", first, max_states=states)
        data = merge(data, new)
        clone(model, data, steps, seed=seed + r + 1)
        curve.append({"states": len(data["actions"]), "collect_success": new["success"],
                      **(evaluate(model) if evaluate is not None else {})})
    return data, curve
