"""vitlib.executor and vitlib.policy_gradient: the instruction-executing policy, behaviour cloning, DAgger's data,
and REINFORCE's estimator."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from vitlib import agent as A
from vitlib import executor as X
from vitlib import policy_gradient as PG


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return X.InstructionExecutor(X.ExecutorConfig(d_model=32, n_layers=2)).eval()


def observations(n, split="train"):
    env = A.ShapesGridEnv(split=split)
    return [env.reset(seed=s)[0] for s in range(n)]


def test_padding_after_the_words_changes_nothing(model):
    images, ids = X.encode_observations(observations(4))
    padded = torch.cat([ids, torch.zeros(4, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(images, padded), model(images, ids), atol=1e-6, rtol=0)
    assert model(images, ids).shape == (4, len(A.ACTIONS))


def test_observations_encode_alike_one_by_one_as_a_list_and_from_a_vector_env():
    vec = gym.vector.SyncVectorEnv([lambda: A.ShapesGridEnv() for _ in range(3)])
    batch, _ = vec.reset(seed=0)
    one_by_one = [X.encode_observations(o) for o in observations(3)]
    as_list = X.encode_observations(observations(3))
    from_vec = X.encode_observations(batch)
    for (images, ids), k in zip(one_by_one, range(3)):
        assert torch.equal(images[0], as_list[0][k]) and torch.equal(images[0], from_vec[0][k])
        n = ids.shape[1]
        assert torch.equal(ids[0], as_list[1][k, :n]) and not as_list[1][k, n:].any()
    assert torch.equal(as_list[1], from_vec[1])


def test_collect_labels_every_state_with_the_expert():
    data = X.collect(20, "heldout", seed=3)
    assert data["success"] == 1.0 and len(data["images"]) == len(data["actions"]) == len(data["instructions"])
    env = A.ShapesGridEnv(split="heldout")
    obs, info = env.reset(seed=3)
    assert data["instructions"][0] == obs["instruction"] and data["actions"][0] == info["expert_action"]
    assert np.array_equal(data["images"][0], obs["image"])


def test_a_learner_visits_its_own_states_and_the_expert_labels_them(model):
    data = X.collect(10, "train", seed=0, policy=model)
    expert = X.collect(10, "train", seed=0)
    assert data["success"] < 1.0 and len(data["actions"]) > len(expert["actions"])   # an untrained policy wanders
    env = A.ShapesGridEnv()
    obs, info = env.reset(seed=0)
    for image, text, label in zip(data["images"], data["instructions"], data["actions"]):
        if text != obs["instruction"]:
            break
        assert np.array_equal(image, obs["image"]) and label == info["expert_action"]
        obs, _, terminated, _, info = env.step(int(X.act(model, obs)[0]))


def test_with_beta_one_the_expert_does_all_the_acting(model):
    mixed = X.collect(6, "train", seed=2, policy=model, beta=1.0)
    expert = X.collect(6, "train", seed=2)
    assert np.array_equal(mixed["images"], expert["images"]) and mixed["success"] == 1.0
    half = X.collect(6, "train", seed=2, policy=model, beta=0.5)
    assert not np.array_equal(half["actions"][:len(expert["actions"])], expert["actions"])


def test_collect_stops_at_the_labelling_budget():
    data = X.collect(50, "train", seed=0, max_states=37)
    assert len(data["actions"]) == len(data["images"]) == 37
    assert data["episodes"] == len(data["outcomes"]) and all(data["outcomes"])   # finished episodes only
    full = X.collect(data["episodes"] + 1, "train", seed=0)
    assert np.array_equal(full["actions"][:37], data["actions"])


@pytest.mark.parametrize("visits", X.VISITS)
def test_dagger_adds_the_same_budget_of_labelled_states_whoever_visits_them(model, visits):
    start = X.collect(3, "train", seed=0)
    learner = X.InstructionExecutor(model.config)
    learner.load_state_dict(model.state_dict())
    data, curve = X.dagger(learner, start, rounds=2, states=25, steps=3, seed=1, visits=visits,
                           evaluate=lambda m: {"ok": 1.0})
    assert [c["states"] for c in curve] == [len(start["actions"]) + 25, len(start["actions"]) + 50]
    assert all(c["ok"] == 1.0 for c in curve) and len(data["actions"]) == curve[-1]["states"]
    added = data["actions"][len(start["actions"]):len(start["actions"]) + 25]
    if visits == "expert":
        assert np.array_equal(added, X.collect(25, "train", 100_000, max_states=25)["actions"])


def test_behaviour_cloning_fits_the_experts_actions():
    torch.manual_seed(0)
    small = X.InstructionExecutor(X.ExecutorConfig(d_model=32, n_layers=1))
    data = X.collect(8, "train", seed=0)                               # 42 states, to fit in a few seconds
    losses = X.clone(small, data, 200, lr=3e-3, batch_size=32)
    images, ids = X.encode_observations({"image": data["images"], "instruction": data["instructions"]})
    with torch.no_grad():
        accuracy = (small(images, ids).argmax(-1).numpy() == data["actions"]).mean()
    majority = np.bincount(data["actions"]).max() / len(data["actions"])
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:5]) and accuracy > majority + 0.25


@pytest.mark.parametrize("steps", range(1, 13))
def test_short_cloning_runs_keep_a_finite_schedule(model, steps):
    data = X.collect(2, "train", seed=0)
    losses = X.clone(model, data, steps, batch_size=4)
    assert len(losses) == steps and np.isfinite(losses).all()


def test_reinforce_loss_writes_out_returns_to_go_and_the_baseline():
    log_probs = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.2, -0.3]], requires_grad=True)
    rewards = torch.tensor([[-0.01, -0.01, 1.0], [-0.01, 1.0, 5.0]])
    alive = torch.tensor([[True, True, True], [True, True, False]])   # the second episode ended at t = 1
    G = torch.tensor([[0.98, 0.99, 1.0], [0.99, 1.0, 0.0]])          # sum_{k >= t} r_k, alive steps only
    b = (0.98 + 0.99) / 2
    want = -(((G - b) * log_probs.detach() * alive).sum(1)).mean()
    torch.testing.assert_close(PG.reinforce_loss(log_probs, rewards, alive), want)
    want_plain = -((G * log_probs.detach() * alive).sum(1)).mean()
    torch.testing.assert_close(PG.reinforce_loss(log_probs, rewards, alive, baseline=False), want_plain)
    values = torch.tensor([[0.5, 0.7, 0.9], [0.2, 0.6, 3.0]], requires_grad=True)   # v(s) per state
    want_value = -(((G - values.detach()) * log_probs.detach() * alive).sum(1)).mean()
    loss = PG.reinforce_loss(log_probs, rewards, alive, baseline=values)
    torch.testing.assert_close(loss, want_value)
    loss.backward()
    assert values.grad is None                                         # the critic learns from its own loss


def test_the_reinforce_gradient_estimates_the_gradient_of_the_expected_return():
    # a one-step policy pi = softmax(theta) with fixed rewards: E[R] = sum_a pi_a r_a, whose gradient is exact
    torch.manual_seed(0)
    theta = torch.tensor([0.3, -0.2, 0.1, 0.0], requires_grad=True)
    r = torch.tensor([1.0, 0.0, 0.5, -0.3])
    exact, = torch.autograd.grad((theta.softmax(0) * r).sum(), theta)
    n = 200_000
    a = torch.multinomial(theta.softmax(0).detach(), n, replacement=True)
    log_probs = theta.log_softmax(0)[a][:, None]                     # (E, 1)
    for baseline in (False, True):
        alive = torch.ones(n, 1, dtype=torch.bool)
        loss = PG.reinforce_loss(log_probs, r[a][:, None], alive, baseline)
        estimate, = torch.autograd.grad(-loss, theta, retain_graph=True)
        torch.testing.assert_close(estimate, exact, atol=6e-3, rtol=0)


def test_reinforce_runs_episodes_and_reports_them(model):
    before = [p.detach().clone() for p in model.parameters()]
    history = PG.reinforce(model, updates=2, batch_episodes=4, seed=1)     # with a learned value baseline
    assert len(history) == 2 and all(-1 <= h["return"] <= 1 and 0 <= h["success"] <= 1 for h in history)
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_reinforce_on_the_head_leaves_the_representation_alone_and_reports_evaluations():
    torch.manual_seed(0)
    small = X.InstructionExecutor(X.ExecutorConfig(d_model=32, n_layers=1))
    before = {k: v.clone() for k, v in small.state_dict().items()}
    history = PG.reinforce(small, updates=3, batch_episodes=2, lr=0.1, seed=2, baseline="mean", train="head",
                           evaluate=lambda m: {"probe": 1.0}, every=2)
    after = small.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}
    assert all(p.requires_grad for p in small.parameters())                       # unfrozen again
    assert ["probe" in h for h in history] == [False, True, False]


def test_sampled_success_is_seeded_and_carries_its_interval(model):
    first, again = (PG.sampled_success(model, "train", 6, seed=11, batch=4) for _ in range(2))
    assert first == again and first["n"] == 6
    assert first["interval"][0] <= first["success"] <= first["interval"][1]


def test_success_rate_carries_its_interval(model):
    result = X.success_rate(model, "heldout", 10)
    low, high = result["interval"]
    assert result["n"] == 10 and low <= result["success"] <= high


@pytest.mark.parametrize("call, error, match", [
    (lambda m: X.InstructionExecutor("cfg"), TypeError, "expects an ExecutorConfig, got str"),
    (lambda m: X.ExecutorConfig(d_model=0), ValueError, "d_model must be a positive int, got 0"),
    (lambda m: m(torch.rand(2, 3, 32, 32), torch.ones(2, 4, dtype=torch.long)), ValueError, "24"),
    (lambda m: m(torch.rand(2, 3, 24, 24).double(), torch.ones(2, 4, dtype=torch.long)), (TypeError, ValueError),
     "float64"),
    (lambda m: m(torch.rand(2, 3, 24, 24), torch.ones(3, 4, dtype=torch.long)), ValueError, "one row per image"),
    (lambda m: m(torch.rand(2, 3, 24, 24), torch.ones(2, 40, dtype=torch.long)), ValueError, r"\(B, 1..16\)"),
    (lambda m: m(torch.rand(0, 3, 24, 24), torch.ones(0, 4, dtype=torch.long)), ValueError, "B >= 1"),
    (lambda m: m(torch.rand(2, 3, 24, 24), torch.zeros(2, 4, dtype=torch.long)), ValueError, "at least one word"),
    (lambda m: m(torch.rand(2, 3, 24, 24), torch.full((2, 4), 99)), ValueError, "99"),
    (lambda m: X.encode_observations("place the red circle"), TypeError, "observation dict"),
    (lambda m: X.clone(m, {"images": np.zeros((0, 24, 24, 3), np.uint8), "instructions": [],
                           "actions": np.zeros(0, int)}, 5), ValueError, "empty data set"),
    (lambda m: X.clone(m, X.collect(1), 5, lr=-1.0), ValueError, "lr"),
    (lambda m: X.collect(0), ValueError, "n_episodes must be a positive int, got 0"),
    (lambda m: X.collect(2, max_states=0), ValueError, "max_states must be a positive int, got 0"),
    (lambda m: X.collect(2, policy=m, beta=1.5), ValueError, "beta"),
    (lambda m: X.dagger(m, X.collect(1), 1, 5, 1, visits="teacher"), ValueError,
     "unknown visits 'teacher'; allowed: learner, expert"),
    (lambda m: X.success_rate(m, "test"), ValueError, "unknown split 'test'"),
    (lambda m: PG.reinforce_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3, 2, dtype=torch.bool)), ValueError,
     r"must all be \(E, T\)"),
    (lambda m: PG.reinforce_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool),
                                baseline=torch.zeros(3)), ValueError, r"baseline tensor must be \(E, T\)"),
    (lambda m: PG.reinforce(m, 1, baseline="critic"), ValueError, "unknown baseline 'critic'; allowed: value"),
    (lambda m: PG.reinforce(m, 1, train="encoder"), ValueError, "unknown train 'encoder'; allowed: all, head"),
    (lambda m: PG.reinforce(m, 1, every=-1), ValueError, "every must be an int >= 0, got -1"),
    (lambda m: PG.sampled_success(m, "train", 0), ValueError, "n_episodes must be a positive int, got 0"),
])
def test_bad_input_is_named(model, call, error, match):
    with pytest.raises(error, match=match):
        call(model)


def test_sampled_episodes_replay_step_by_step(model):
    """What REINFORCE learns from: the observation of each step is the one its action was taken in."""
    envs = [A.ShapesGridEnv() for _ in range(3)]
    batch = PG.sample_episodes(model, envs, [5, 6, 7], torch.Generator().manual_seed(0))
    T = len(batch["actions"])
    assert batch["rewards"].shape == batch["alive"].shape == (T, 3) and len(batch["observations"]) == T
    for e, seed in enumerate([5, 6, 7]):
        env = A.ShapesGridEnv()
        obs, _ = env.reset(seed=seed)
        for t in range(T):
            if not batch["alive"][t, e]:
                break
            assert np.array_equal(batch["observations"][t][e]["image"], obs["image"]), (e, t)
            obs, reward, terminated, _, _ = env.step(int(batch["actions"][t, e]))
            assert reward == batch["rewards"][t, e]
        assert batch["success"][e] == terminated


def test_an_episode_for_the_viewer_is_the_experts_when_no_policy_is_given():
    shown = X.episode(seed=4, split="heldout")
    data = X.collect(1, "heldout", seed=4)
    assert shown["success"] and len(shown["frames"]) == len(shown["actions"]) + 1 == len(data["actions"]) + 1
    assert [A.ACTIONS.index(a) for a in shown["actions"]] == data["actions"].tolist()
    assert np.array_equal(shown["frames"][:-1], data["images"])
