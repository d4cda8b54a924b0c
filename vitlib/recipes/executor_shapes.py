"""Recipe for chapter 12's instruction executor: behaviour cloning of the shortest-path expert on ShapesGrid.

    data     N_EXPERT expert episodes of the training instructions (env seeds 0 .. N_EXPERT - 1), every state
             labelled with the expert's action a*(s)
    model    vitlib.executor.InstructionExecutor: the image's nine cells and the instruction's words in one
             3-layer encoder, d_model 64 (chapter 07's single-stream fusion), an action head
    loss     L = -(1/B) sum_i log pi(a*(s_i) | s_i), STEPS AdamW steps, one-cycle learning rate LR, batch BATCH_SIZE
    measure  greedy success on N_EVAL training-instruction episodes and N_EVAL held-out-composition episodes, env
             seeds no training episode used, with Wilson 95% intervals

    python -m vitlib.recipes.executor_shapes --save     # one CPU core, writes data/zoo/executor-shapes.*
"""

from __future__ import annotations

import sys

from . import cli
from ..data import ShapesWorld
from ..executor import ExecutorConfig, InstructionExecutor, clone, collect, success_rate
from ..utils import seed_everything

NAME = "executor-shapes"
STEPS = 8000
N_EXPERT = 20000
BATCH_SIZE, LR = 128, 2e-3
N_EVAL = 500
EVAL_SEEDS = {"train": 1_000_000, "heldout": 2_000_000}


def world() -> ShapesWorld:
    """The environment's default world: 24x24 images, one 8x8 patch per cell."""
    return ShapesWorld(image_size=24, max_objects=3)


def config() -> ExecutorConfig:
    return ExecutorConfig()


def train(steps: int = STEPS, seed: int = 0, device="cpu", progress: bool = False, n_expert: int = N_EXPERT):
    """Expert episodes, then ``steps`` steps of behaviour cloning. -> (model, {"loss": [...]})."""
    data = collect(n_expert, "train", seed=0)
    seed_everything(seed)
    model = InstructionExecutor(config()).to(device)
    losses = clone(model, data, steps, lr=LR, batch_size=BATCH_SIZE, seed=seed)
    return model, {"loss": losses}


def evaluate(model: InstructionExecutor) -> dict:
    """Greedy success on training instructions and on held-out compositions (N_EVAL episodes each)."""
    return {split: success_rate(model, split, N_EVAL, seed) for split, seed in EVAL_SEEDS.items()}


def main(argv=None) -> None:
    cli.run(sys.modules[__name__], cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS).parse_args(argv))


if __name__ == "__main__":
    main()
