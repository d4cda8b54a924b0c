"""Tests of vitlib.utils: seeding, device choice, timer, history and the training loop."""

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from vitlib.utils import History, Timer, count_parameters, get_device, seed_everything, to_device, train


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


def test_history_log_last_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    h = History()
    h.log(1, loss=2.0, acc=torch.tensor(0.5))
    h.log(2, loss=1.0)
    assert h["loss"] == [2.0, 1.0] and h.steps("loss") == [1, 2]
    assert h.last("acc") == 0.5 and h.names == ["loss", "acc"]
    with pytest.raises(KeyError, match="'bleu'.*loss"):
        h.last("bleu")
    ax = h.plot(names=["loss"])
    assert len(ax.lines) == 1


def test_to_device_handles_containers():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), "text"), "list": [torch.ones(1)], "n": 3}
    moved = to_device(batch, "cpu")
    assert moved["n"] == 3 and moved["pair"][1] == "text"
    assert isinstance(moved["pair"], tuple) and isinstance(moved["list"], list)
    assert torch.equal(moved["x"], batch["x"])


def regression_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_train_reduces_loss_and_logs_every_step():
    seed_everything(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    evals = []

    def eval_fn(m):
        evals.append((m.training, torch.is_grad_enabled()))
        return {"val_mse": mse(m, regression_data()[0]).item()}

    h = train(model, regression_data(), mse, opt, steps=50, eval_fn=eval_fn, eval_every=20, progress=False)
    assert h.steps("loss") == list(range(1, 51))
    assert h.last("loss") < 0.1 * h["loss"][0]
    assert h.steps("val_mse") == [20, 40, 50]  # every 20 steps and after the last
    assert evals[0] == (False, False) and model.training
    assert h.last("val_mse") < 0.05


def test_train_epochs_and_grad_clipping():
    model = nn.Linear(3, 1)
    h = train(model, regression_data(), mse, torch.optim.SGD(model.parameters(), lr=0.1), epochs=3,
              progress=False, clip_grad_norm=1.0)
    assert len(h["loss"]) == 3 * 4 and len(h["grad_norm"]) == 12


def test_train_argument_errors():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        train(model, regression_data(), mse, opt, progress=False)
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        train(model, regression_data(), mse, opt, steps=2, epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train(model, [], mse, opt, steps=3, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train(model, torch.utils.data.DataLoader([]), mse, opt, epochs=1, progress=False)
    with pytest.raises(ValueError, match="re-iterable"):
        train(model, iter(regression_data()), mse, opt, steps=10, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        train(model, regression_data(), lambda m, b: m(b[0]), opt, steps=1, progress=False)


def test_train_non_finite_loss_names_the_step():
    model = nn.Linear(3, 1)
    calls = iter(range(100))

    def exploding(m, batch):
        return mse(m, batch) * (math.inf if next(calls) == 2 else 1.0)

    with pytest.raises(RuntimeError, match="step 3"):
        train(model, regression_data(), exploding, torch.optim.SGD(model.parameters(), lr=0.1), steps=5,
              progress=False)


def test_count_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2 + 2
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4 * 2 + 2
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters([1, 2])


def test_train_validates_numbers():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for kwargs in ({"steps": 0}, {"steps": 2, "log_every": None}, {"epochs": 1.5}, {"steps": 2, "clip_grad_norm": 0}):
        with pytest.raises(ValueError):
            train(model, regression_data(), mse, opt, progress=False, **kwargs)
    with pytest.raises(TypeError, match="scalar tensor, got a float"):
        train(model, regression_data(), lambda m, b: 1.0, opt, steps=1, progress=False)


def test_train_names_the_wrong_kind_of_argument():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
        train("model", regression_data(), mse, opt, steps=1, progress=False)
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer \(zero_grad and step\), got str"):
        train(model, regression_data(), mse, "sgd", steps=1, progress=False)
    with pytest.raises(TypeError, match="loss_fn .* must be callables, got str"):
        train(model, regression_data(), "mse", opt, steps=1, progress=False)
    with pytest.raises(TypeError, match="clip_grad_norm must be a real number, got str"):
        train(model, regression_data(), mse, opt, steps=1, clip_grad_norm="1", progress=False)
