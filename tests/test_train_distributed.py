"""vitlib.train beyond one process: 2 CPU processes (gloo) take equal shares of every global batch and train exactly
as 1 process does; `python -m vitlib.train` runs a recipe in one process or under torchrun and saves from rank 0."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from vitlib import zoo
from vitlib.contrastive import clip_loss
from vitlib.recipes import gpt_shapes
from vitlib.train import train
from vitlib.train.__main__ import main
from vitlib.train.distributed import all_gather, launch, shard
from vitlib.transformer import GPTConfig

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STEPS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_gpt(micro_batches: int = 1) -> list[float]:
    """20 steps of the course GPT recipe at width 32, one layer, a global batch of 8 documents: the loss curve."""
    cfg = GPTConfig(vocab_size=gpt_shapes.world().tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2, max_len=64)
    with launch(micro_batches):
        _, history = gpt_shapes.train(steps=STEPS, seed=0, device="cpu", progress=False, cfg=cfg, batch_size=8,
                                      n_train=200, eval_every=STEPS)
    return history["loss"]


class TwoTowers(nn.Module):
    """A CLIP in miniature: two linear encoders and a learnt log temperature."""

    def __init__(self):
        super().__init__()
        self.image, self.text = nn.Linear(6, 4), nn.Linear(5, 4)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))


def contrastive(steps: int = 5) -> tuple[list[float], dict]:
    """InfoNCE over a global batch of 8 pairs, each rank's embeddings gathered (`all_gather`) before the loss."""
    torch.manual_seed(0)
    model = TwoTowers()
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 6, generator=g), torch.randn(8, 5, generator=g)) for _ in range(steps)]

    def loss_fn(m, batch):
        return clip_loss(all_gather(m.image(batch[0])), all_gather(m.text(batch[1])), m.logit_scale)

    history = train(model, data, loss_fn, torch.optim.AdamW(model.parameters(), lr=0.05), steps=steps,
                    progress=False)
    return history["loss"], {k: v.tolist() for k, v in model.state_dict().items()}


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {"gpt": tiny_gpt(), "gpt_micro": tiny_gpt(micro_batches=2), "contrastive": contrastive()}
        model = nn.Linear(2, 1)
        try:   # a global batch of 5 cannot be split in 2 equal shares
            train(model, [(torch.ones(5, 2), torch.ones(5, 1))], lambda m, b: (m(b[0]) - b[1]).pow(2).mean(),
                  torch.optim.SGD(model.parameters(), lr=0.1), steps=1, progress=False)
        except ValueError as err:
            results["odd_batch"] = str(err)
        if rank == 0:
            Path(out).write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "results.json"
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return json.loads(out.read_text())


def test_two_processes_follow_the_one_process_loss_curve(two_processes):
    one = tiny_gpt()
    assert len(two_processes["gpt"]) == STEPS
    torch.testing.assert_close(torch.tensor(two_processes["gpt"]), torch.tensor(one), atol=1e-5, rtol=0)
    # each rank's 4 documents in 2 micro-batches of 2, weighted by their tokens: still the same step
    torch.testing.assert_close(torch.tensor(two_processes["gpt_micro"]), torch.tensor(one), atol=1e-5, rtol=0)


def test_gathered_contrastive_loss_is_the_global_batch_loss(two_processes):
    losses, state = contrastive()
    torch.testing.assert_close(torch.tensor(two_processes["contrastive"][0]), torch.tensor(losses), atol=1e-6, rtol=0)
    for name, value in state.items():
        torch.testing.assert_close(torch.tensor(two_processes["contrastive"][1][name]), torch.tensor(value),
                                   atol=1e-6, rtol=0)


def test_a_batch_that_does_not_split_evenly_is_refused(two_processes):
    assert "global batch of 5 examples" in two_processes["odd_batch"]
    assert "expected a multiple of 2, got 5" in two_processes["odd_batch"]
    with pytest.raises(ValueError, match="expected a multiple of 4, got 6"):
        shard({"x": torch.zeros(6, 3)}, rank=0, world=2, parts=2)
    with pytest.raises(ValueError, match=r"one leading \(batch\) size, got sizes \[3, 4\]"):
        shard((torch.zeros(4), torch.zeros(3)), rank=0, world=2)
    assert [p["x"].tolist() for p in shard({"x": torch.arange(8)}, rank=1, world=2, parts=2)] == [[4, 5], [6, 7]]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The gpt recipe for 2 steps from the command line: in one process, and under torchrun in two (at once)."""
    where = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VITLIB_DEVICE": "cpu"}
    args = ["gpt", "--steps", "2", "--seed", "0", "--save"]
    runs = [subprocess.Popen([sys.executable, "-m", "vitlib.train", *args, str(where / "one")], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            subprocess.Popen([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
                              "-m", "vitlib.train", *args, str(where / "two")], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]
    return where, outputs


def test_command_line_runs_a_recipe_in_one_process(checkpoints):
    where, (one, _) = checkpoints
    assert "'steps': 2" in one and "'processes': 1" in one and "wrote" in one
    assert zoo.load_config(where / "one")["metrics"]["steps"] == 2


def test_checkpoint_of_two_processes_loads_and_evaluates_as_one(checkpoints):
    where, (_, two) = checkpoints
    assert two.count("wrote") == 1 and "'processes': 2" in two   # rank 0 alone reports and saves
    one, both = zoo.load(where / "one"), zoo.load(where / "two")
    for name, value in one.state_dict().items():
        torch.testing.assert_close(both.state_dict()[name], value, atol=1e-5, rtol=0)
    a, b = (gpt_shapes.evaluate(m, n_samples=50) for m in (one, both))
    assert a["parse_rate"] == b["parse_rate"]
    assert a["val_perplexity"] == pytest.approx(b["val_perplexity"], rel=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["gpts"], "invalid choice: 'gpts' (choose from 'gpt', 'clip'"),
    (["gpt", "--bf16"], "--bf16 autocasts to bfloat16 on a CUDA GPU: expected a cuda device, got cpu"),
    (["gpt", "--accumulate", "0"], "--accumulate expects a positive number of micro-batches, got 0"),
])
def test_command_line_refuses_bad_input(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("VITLIB_DEVICE", "cpu")
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_a_one_process_recipe_is_refused_under_torchrun(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        main(["executor"])
    assert "runs in one process only" in capsys.readouterr().err
