"""vitlib.agent: the ShapesGrid environment (gymnasium API), its instructions and held-out compositions, the expert."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vitlib import agent as A
from vitlib.data import ShapesWorld
from vitlib.data.language import RELATIONS, position_name


def run_expert(env, seed):
    obs, info = env.reset(seed=seed)
    for step in range(1, env.max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if terminated or truncated:
            return terminated, step, reward
    raise AssertionError("the episode neither terminated nor truncated within max_steps")


def test_passes_gymnasiums_env_checker():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(A.ShapesGridEnv(render_mode="rgb_array"))
    # the checker cannot try other render modes on an env built without gym.make; anything else is a finding
    assert [str(w.message) for w in caught if "spec" not in str(w.message)] == []


def test_is_registered_with_a_time_limit_and_runs_vectorised():
    env = gym.make(A.ENV_ID)
    assert env.spec.max_episode_steps == A.MAX_STEPS and isinstance(env.unwrapped, A.ShapesGridEnv)
    vec = gym.vector.SyncVectorEnv([lambda: gym.make(A.ENV_ID) for _ in range(3)])
    obs, _ = vec.reset(seed=0)
    assert obs["image"].shape == (3, 24, 24, 3) and len(obs["instruction"]) == 3
    assert len(set(obs["instruction"])) > 1                  # seeds 0, 1, 2: three different tasks
    _, reward, terminated, truncated, _ = vec.step(np.zeros(3, dtype=np.int64))
    assert reward.shape == (3,) and not terminated.any() and not truncated.any()


def test_same_seed_same_episode():
    a, b = A.ShapesGridEnv(), A.ShapesGridEnv()
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    assert oa["instruction"] == ob["instruction"] and np.array_equal(oa["image"], ob["image"])
    for action in (3, 1, 4, 2, 5):
        sa, sb = a.step(action), b.step(action)
        assert np.array_equal(sa[0]["image"], sb[0]["image"]) and sa[1:4] == sb[1:4]


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_the_expert_finishes_every_task_by_a_shortest_way(split):
    env = A.ShapesGridEnv(split=split)
    lengths = []
    for seed in range(200):
        terminated, steps, reward = run_expert(env, seed)
        assert terminated and reward == 1.0, (seed, env.task.text)
        lengths.append(steps)
    # walk + pick + carry + drop: never below 3 actions, never more than a walk across the grid twice + 2
    assert min(lengths) >= 3 and max(lengths) <= 2 * 4 + 2 + 2


def test_held_out_compositions_are_unseen_in_training_but_their_parts_are_seen():
    seen, held = set(), set()
    for split, bucket in (("train", seen), ("heldout", held)):
        env = A.ShapesGridEnv(split=split)
        for seed in range(600):
            obs, info = env.reset(seed=seed)
            assert A.parse(obs["instruction"]) == info["task"]
            bucket.add(info["task"].composition)
    assert held == set(A.HELDOUT) and not seen & A.HELDOUT
    parts = {p for comp in seen for p in comp}
    assert all(part in parts for comp in A.HELDOUT for part in comp)


def test_actions_change_the_state_as_documented():
    env = A.ShapesGridEnv()
    env.reset(seed=0)
    env.objects = {(0, 0): A.Obj("circle", "red", "large", (0, 0)), (0, 1): A.Obj("square", "blue", "small", (0, 1))}
    env.task, env.agent, env.held = A.Task("red", "circle", relation=RELATIONS[3], reference=("blue", "square")), \
        (0, 0), None
    assert env.target() == (1, 1)                       # below the blue square
    env.step(0)
    assert env.agent == (0, 0)                          # off the grid: no move
    env.step(5)
    assert env.held is None and len(env.objects) == 2   # a drop with an empty hand does nothing
    env.step(4)
    assert env.held.color == "red" and (0, 0) not in env.objects
    env.step(3)
    assert env.agent == (0, 0)                          # holding, the occupied cell is closed
    env.step(1), env.step(3)
    _, reward, terminated, _, info = env.step(5)
    assert terminated and reward == 1.0 and info["success"] and env.objects[(1, 1)].color == "red"


def test_the_image_shows_the_agent_and_what_it_holds():
    env = A.ShapesGridEnv(world=ShapesWorld(image_size=48, max_objects=3))
    obs, _ = env.reset(seed=2)
    cell = 16
    r, c = env.agent
    corner = obs["image"][r * cell, c * cell]
    assert tuple(corner) == A.FRAME[False]
    target = env._find(env.task.color, env.task.shape)
    env.agent, env.held = target, env.objects.pop(target)
    image = env._obs()["image"]
    assert tuple(image[target[0] * cell, target[1] * cell]) == A.FRAME[True]
    centre = image[target[0] * cell + cell // 2, target[1] * cell + cell // 2]
    assert tuple(centre) == env.world.colors[env.held.color]   # carried in the agent's cell


def test_instructions_read_in_the_worlds_words():
    task = A.Task("red", "circle", place=(1, 1))
    assert task.text == "place the red circle in the center" and A.parse(task.text) == task
    task = A.Task("blue", "square", relation="to the left of", reference=("green", "triangle"))
    assert task.text == "place the blue square to the left of the green triangle" and A.parse(task.text) == task
    assert all(A.parse(A.Task("red", "circle", place=(r, c)).text).place == (r, c) for r in range(3) for c in range(3))
    assert position_name((0, 0)) in A.Task("red", "circle", place=(0, 0)).text


@pytest.mark.parametrize("call, error, match", [
    (lambda: A.ShapesGridEnv(world="shapes"), TypeError, "world must be a ShapesWorld, got str"),
    (lambda: A.ShapesGridEnv(max_steps=0), ValueError, "max_steps must be a positive int, got 0"),
    (lambda: A.ShapesGridEnv(max_steps=2.5), ValueError, "max_steps must be a positive int, got 2.5"),
    (lambda: A.ShapesGridEnv(render_mode="human"), ValueError, "unknown render_mode 'human'; allowed: rgb_array"),
    (lambda: A.ShapesGridEnv(split="test"), ValueError, "unknown split 'test'; allowed: train, heldout, all"),
    (lambda: A.ShapesGridEnv().step(0), RuntimeError, r"call reset\(\) before step\(\)"),
    (lambda: A.expert_action("env"), TypeError, "expert_action needs a ShapesGridEnv, got str"),
    (lambda: A.parse(3), TypeError, "an instruction must be a str, got int"),
    (lambda: A.parse("go to the red circle"), ValueError, "expected 'place the <color> <shape> ...'"),
    (lambda: A.parse("place the red circle near the blue square"), ValueError, "expected a place"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("action", [6, -1, 1.5, "up", None])
def test_a_bad_action_is_named(action):
    env = A.ShapesGridEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an int in 0..5 \(up, down, left, right, pick, drop\)"):
        env.step(action)
