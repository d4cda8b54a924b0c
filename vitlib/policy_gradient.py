"""REINFORCE: the InstructionExecutor improved by the reward alone (chapter 12; seed 002's pi* = argmax_pi E[R]).

    J(theta) = E_{tau ~ pi_theta}[R(tau)],   R = sum_t r_t
    grad J = E[ sum_t grad log pi(a_t | s_t) G_t ],   G_t = sum_{k >= t} r_k        (Williams, 1992)
           = E[ sum_t grad log pi(a_t | s_t) (G_t - b(s_t)) ]                       any b that ignores a_t

The expectation is estimated from episodes sampled from pi itself; the baseline b (the batch's mean return, or a
learned value v(s) fitted to G_t) lowers the estimate's variance and leaves its mean unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .agent import MAX_STEPS, ShapesGridEnv
from .checks import check_int, check_one_of, describe
from .executor import InstructionExecutor, act, encode_observations, success_summary

__all__ = ["returns_to_go", "reinforce_loss", "sample_episodes", "sampled_success", "BASELINES", "TRAINABLE",
           "reinforce"]


def returns_to_go(rewards: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """G_et = sum_{k >= t} r_ek over the steps the episode was alive: rewards, alive (E, T) -> (E, T)."""
    return (rewards * alive).flip(1).cumsum(1).flip(1)


def reinforce_loss(log_probs: torch.Tensor, rewards: torch.Tensor, alive: torch.Tensor, baseline=True) -> torch.Tensor:
    """-(1/E) sum_e sum_t (G_et - b_et) log pi(a_et | s_et): log_probs, rewards, alive (E, T) (alive False after an
    episode ended). ``baseline``: True, b = the batch's mean return G_e0; False, b = 0; a tensor (E, T), a learned
    value v(s_et) per state (Sutton and Barto's REINFORCE with baseline). A baseline that does not depend on the
    action leaves the gradient's mean unchanged and lowers its variance."""
    if log_probs.shape != rewards.shape or alive.shape != rewards.shape or log_probs.dim() != 2:
        raise ValueError(f"log_probs, rewards and alive must all be (E, T), got {describe(log_probs)}, "
                         f"{describe(rewards)}, {describe(alive)}")
    G = returns_to_go(rewards, alive)                                                   # (E, T)
    if isinstance(baseline, torch.Tensor):
        if baseline.shape != G.shape:
            raise ValueError(f"a baseline tensor must be (E, T) like the rewards {tuple(G.shape)}, got "
                             f"{describe(baseline)}")
        b = baseline.detach()
    else:
        b = G[:, 0].mean() if baseline else 0.0
    return -((G - b).detach() * log_probs * alive).sum(1).mean()


def sample_episodes(model: InstructionExecutor, envs: list, seeds: list[int], generator=None) -> dict:
    """One episode per env (reset with its seed), actions sampled a ~ pi(. | s), all envs stepped together.
    -> {"observations": per step the E observations, "actions", "rewards", "alive": (T, E), "success": (E,)}."""
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    E = len(envs)
    alive, wins = np.ones(E, bool), np.zeros(E, bool)
    out = {"observations": [], "actions": [], "rewards": [], "alive": []}
    for _ in range(MAX_STEPS):
        actions = act(model, obs, greedy=False, generator=generator)
        r = np.zeros(E, np.float32)
        out["observations"].append(list(obs))                             # a copy: obs changes below
        for e, env in enumerate(envs):
            if alive[e]:
                obs[e], r[e], terminated, _, _ = env.step(int(actions[e]))
                wins[e] |= terminated
        out["actions"].append(actions)
        out["rewards"].append(r)
        out["alive"].append(alive.copy())
        alive &= ~wins
        if not alive.any():
            break
    return {**{k: np.stack(v) for k, v in out.items() if k != "observations"},
            "observations": out["observations"], "success": wins}


def sampled_success(model: InstructionExecutor, split: str = "heldout", n_episodes: int = 256, seed: int = 1_000_000,
                    batch: int = 128) -> dict:
    """The success of the *stochastic* policy a ~ pi(. | s), the J that REINFORCE climbs (with R = success), on
    ``n_episodes`` episodes of ``split`` (env seeds seed ...; the sampling seeded too): {"success", "interval", "n"}."""
    check_int(n_episodes, "n_episodes")
    check_int(batch, "batch")
    generator, wins = torch.Generator().manual_seed(seed), []
    for start in range(0, n_episodes, batch):
        envs = [ShapesGridEnv(split=split) for _ in range(min(batch, n_episodes - start))]
        wins += sample_episodes(model, envs, [seed + start + e for e in range(len(envs))], generator)["success"].tolist()
    return success_summary(wins)


BASELINES = ("value", "mean", "none")
TRAINABLE = ("all", "head")


def reinforce(model: InstructionExecutor, updates: int, batch_episodes: int = 32, lr: float = 3e-4,
              split: str = "train", seed: int = 0, baseline: str = "value", train: str = "all", evaluate=None,
              every: int = 0) -> list[dict]:
    """Policy gradient on ShapesGrid: each update samples ``batch_episodes`` episodes from pi (env seeds seed, seed +
    1, ...), then one AdamW step on ``reinforce_loss``. ``baseline`` (BASELINES): "value", a critic v(s) of the
    executor's architecture with one output, fitted to the returns G_t by least squares alongside; "mean", the
    batch's mean return; "none". ``train`` (TRAINABLE): "all" the weights, or only the action "head" W, the
    representation h kept as it is (fewer parameters, a less noisy gradient). Returns per update {"return",
    "success"} of its episodes, with ``evaluate(model)``'s dict merged in after every ``every``-th update."""
    check_int(updates, "updates")
    check_int(batch_episodes, "batch_episodes")
    check_int(every, "every", minimum=0)
    check_one_of(baseline, "baseline", BASELINES)
    check_one_of(train, "train", TRAINABLE)
    envs = [ShapesGridEnv(split=split) for _ in range(batch_episodes)]
    trained = model.head.parameters() if train == "head" else model.parameters()
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    critic = None
    if baseline == "value":
        with torch.random.fork_rng(devices=[]):   # a seeded critic, without resetting the caller's random stream
            torch.manual_seed(seed)
            net = InstructionExecutor(replace(model.config, n_actions=1)).to(model.head.weight.device)
        critic = (net, torch.optim.AdamW(net.parameters(), lr=1e-3))
    generator, history = torch.Generator().manual_seed(seed), []
    heads = {id(p) for p in model.head.parameters()}
    frozen = [p for p in model.parameters() if train == "head" and id(p) not in heads and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)                 # no gradient to compute, or to keep, for the representation
    try:
        for u in range(updates):
            seeds = [seed + u * batch_episodes + e for e in range(batch_episodes)]
            history.append(_update(model, optimizer, critic, baseline, envs, seeds, generator))
            if evaluate is not None and every and (u + 1) % every == 0:
                model.eval()
                history[-1].update(evaluate(model))
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.eval()
    return history


def _update(model, optimizer, critic, baseline: str, envs: list, seeds: list[int], generator) -> dict:
    """One REINFORCE step: sample an episode per env from pi, fit the critic (if any) to the returns, then one
    optimiser step on ``reinforce_loss``. -> {"return", "success"} of the sampled episodes."""
    device = model.head.weight.device
    model.eval()
    batch = sample_episodes(model, envs, seeds, generator)
    model.train()
    images, ids = zip(*(encode_observations(o, device) for o in batch["observations"]))
    images, ids = torch.cat(images), torch.cat(ids)                                  # step-major: row t E + e
    logits = model(images, ids)                                                      # (T E, A)
    taken = torch.as_tensor(batch["actions"].reshape(-1), device=device)             # (T E,), step-major
    log_probs = logits.log_softmax(-1).gather(1, taken[:, None])[:, 0]              # (T E,)
    log_probs = log_probs.view(len(batch["actions"]), -1).T                          # (E, T)
    R, M = (torch.as_tensor(batch[k].T.copy(), device=device) for k in ("rewards", "alive"))   # (E, T)
    b = baseline == "mean"
    if critic is not None:
        net, critic_optimizer = critic
        b = net(images, ids)[:, 0].view(len(batch["actions"]), -1).T                    # (E, T): v(s)
        critic_loss = ((b - returns_to_go(R, M)) ** 2 * M).sum() / M.sum()
        critic_optimizer.zero_grad()
        critic_loss.backward()
        critic_optimizer.step()
    loss = reinforce_loss(log_probs, R, M, b)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"return": float((batch["rewards"] * batch["alive"]).sum(0).mean()), "success": float(batch["success"].mean())}
