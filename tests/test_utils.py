"""Tests of vitlib.utils: seeding, device choice, timer, history and the training loop."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from vitlib.utils import Timer, count_parameters, get_device, seed_everything, to_device


def draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_same_seed_same_draws_and_generator():
    g1 = seed_everything(7)
    a = draws()
    g2 = seed_everything(7)
    b = draws()
    assert a == b
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    seed_everything(8)
    assert draws() != a


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), (True, TypeError)])
def test_seed_validation(bad, error):
    with pytest.raises(error, match="seed"):
        seed_everything(bad)


def test_get_device_env_override_and_prefer(monkeypatch):
    monkeypatch.setenv("VITLIB_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("CPU") == torch.device("cpu")
    monkeypatch.delenv("VITLIB_DEVICE")
    assert get_device().type in ("cpu", "cuda", "mps")


def test_get_device_rejects_unknown_and_unavailable(monkeypatch):
    monkeypatch.setenv("VITLIB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="VITLIB_DEVICE.*'cpu', 'cuda'.*'tpu'"):
        get_device()
    with pytest.raises(ValueError, match="prefer"):
        get_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="only \\['cpu'"):
            get_device("cuda")


def test_timer_measures_and_prints():
    with Timer() as t:
        sum(range(10_000))
    assert 0 < t.seconds < 5
    assert str(t).endswith(("ms", " s"))
    assert repr(t).startswith("Timer(")


def test_to_device_handles_containers():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), "text"), "list": [torch.ones(1)], "n": 3}
    moved = to_device(batch, "cpu")
    assert moved["n"] == 3 and moved["pair"][1] == "text"
    assert isinstance(moved["pair"], tuple) and isinstance(moved["list"], list)
    assert torch.equal(moved["x"], batch["x"])


def test_count_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2 + 2
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4 * 2 + 2
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters([1, 2])


