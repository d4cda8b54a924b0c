"""vitlib.train: the one training loop (schedules, loss parts, clipping, accumulation, evaluation) and
param_groups (chapter 03)."""

import copy
import math

import pytest
import torch
from torch import nn

from vitlib.train import History, param_groups, train
from vitlib.utils import seed_everything


def regression_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]



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


def test_train_validates_numbers():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for kwargs in ({"steps": 0}, {"steps": 2, "log_every": None}, {"epochs": 1.5}, {"steps": 2, "clip_grad_norm": 0}):
        with pytest.raises(ValueError):
            train(model, regression_data(), mse, opt, progress=False, **kwargs)
    with pytest.raises(TypeError, match=r"scalar tensor .*got float"):
        train(model, regression_data(), lambda m, b: 1.0, opt, steps=1, progress=False)


def test_train_names_the_wrong_kind_of_argument():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
        train("model", regression_data(), mse, opt, steps=1, progress=False)
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer, got str"):
        train(model, regression_data(), mse, "sgd", steps=1, progress=False)
    with pytest.raises(TypeError, match="loss_fn must be callable, got str"):
        train(model, regression_data(), "mse", opt, steps=1, progress=False)
    with pytest.raises(TypeError, match="clip_grad_norm must be a real number, got str"):
        train(model, regression_data(), mse, opt, steps=1, clip_grad_norm="1", progress=False)


def test_the_scheduler_follows_every_optimizer_step():
    """The learning rate of step k is the schedule's k-th value: what the recipes did by hand before."""
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (k + 1))
    seen = []
    train(model, regression_data(), lambda m, b: (seen.append(opt.param_groups[0]["lr"]), mse(m, b))[1], opt,
          steps=5, scheduler=schedule, progress=False)
    assert seen == pytest.approx([0.1 / k for k in range(1, 6)])


def test_loss_parts_are_logged_and_only_loss_is_minimised():
    model = nn.Linear(3, 1)

    def parts(m, batch):
        loss = mse(m, batch)
        return {"loss": loss, "half": loss / 2, "constant": 7.0}

    h = train(model, regression_data(), parts, torch.optim.SGD(model.parameters(), lr=0.1), steps=6, progress=False)
    assert h.names == ["loss", "half", "constant"]
    assert h["half"] == pytest.approx([x / 2 for x in h["loss"]]) and h["constant"] == [7.0] * 6
    with pytest.raises(ValueError, match="under 'loss'"):
        train(model, regression_data(), lambda m, b: {"total": mse(m, b)}, torch.optim.SGD(model.parameters()),
              steps=1, progress=False)


def test_accumulation_equals_one_big_batch():
    """Two accumulated batches of 16 take the same step as one batch of 32 (a mean loss)."""
    seed_everything(0)
    base = nn.Linear(3, 1)
    small, big = copy.deepcopy(base), copy.deepcopy(base)
    data = regression_data()
    joined = [(torch.cat([data[i][0], data[i + 1][0]]), torch.cat([data[i][1], data[i + 1][1]])) for i in (0, 2)]
    h_small = train(small, data, mse, torch.optim.SGD(small.parameters(), lr=0.1), steps=2, accumulate=2,
                    progress=False)
    train(big, joined, mse, torch.optim.SGD(big.parameters(), lr=0.1), steps=2, progress=False)
    for a, b in zip(small.parameters(), big.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert h_small.steps("loss") == [1, 2]


def test_after_step_runs_after_each_optimizer_step():
    model = nn.Linear(3, 1)
    calls = []
    train(model, regression_data(), mse, torch.optim.SGD(model.parameters(), lr=0.1), steps=3, accumulate=2,
          after_step=lambda m: calls.append(m), progress=False)
    assert calls == [model] * 3


def test_param_groups_decay_matrices_only():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 4)
            self.lin = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.logit_scale = nn.Parameter(torch.tensor(2.0))
            self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)

    model = Tiny()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.emb.weight), id(model.lin.weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model.lin.bias), id(model.norm.weight), id(model.norm.bias),
                                                   id(model.logit_scale)}
    torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3)  # the groups are what AdamW takes
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, -1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        param_groups([model.lin.weight], 0.1)


def test_warmup_cosine_follows_its_formula():
    import math

    from vitlib.train import warmup_cosine

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, steps=100, warmup=10)
    seen = []
    for _ in range(101):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for s in (0, 5, 9, 10, 50, 100):
        assert seen[s] == pytest.approx(2.0 * min(1, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / 100)))
    assert seen[0] < seen[9] and seen[100] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="warmup"):
        warmup_cosine(opt, steps=100, warmup=0)
