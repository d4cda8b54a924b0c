"""Train a course recipe (chapters 03-12) from the command line, in one process or in several (torchrun, DDP).

    python -m vitlib.train gpt --steps 1200 --seed 0 --save runs/gpt               # one process, CUDA if present
    torchrun --nproc_per_node 4 -m vitlib.train gpt --save runs/gpt --bf16          # 4 GPUs, 1/4 of each batch each

Under torchrun every rank runs the recipe with the same seed, so it builds the same data stream; `vitlib.train.train`
then gives each rank its share of every batch (`vitlib.train.distributed`). Processes talk over NCCL on CUDA (rank
r's GPU is LOCAL_RANK) and gloo on the CPU. Rank 0 alone shows progress, evaluates, prints the metrics and writes
the checkpoint (safetensors weights and a JSON record, `vitlib.zoo.save`).
"""

from __future__ import annotations

import argparse
import importlib
import os

import torch
import torch.distributed as dist

from .. import zoo
from ..utils import Timer, get_device
from .distributed import launch

# short name -> recipe module (vitlib/recipes/*.py); each has NAME, STEPS, world, config, train and evaluate
RECIPES = {"gpt": "gpt_shapes", "clip": "clip_shapes", "classifier": "classifier_shapes", "vlp": "vlp_shapes",
           "ddpm": "ddpm_digits", "t2i": "t2i_shapes", "vlm": "vlm_shapes", "vqa": "vqa_shapes",
           "captioner": "captioner_shapes", "executor": "executor_shapes"}
ONE_PROCESS = {"executor": "it trains with its own loop (vitlib.executor.clone), not vitlib.train's"}
EXTRAS = {"ddpm": lambda recipe: {"schedule": recipe.schedule()}}   # what a recipe's own --save keeps beside it


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vitlib.train", description=__doc__.split("\n")[0])
    p.add_argument("recipe", choices=list(RECIPES), help="the course model to train")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the recipe's STEPS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="PATH", default=None,
                   help="write the checkpoint PATH.safetensors and PATH.json (a bare name: in the zoo directory)")
    p.add_argument("--overwrite", action="store_true", help="with --save: replace a checkpoint there")
    p.add_argument("--accumulate", type=int, default=1, metavar="K",
                   help="cut each process's share of a batch into K micro-batches (same result, less memory)")
    p.add_argument("--bf16", action="store_true", help="compute the loss under bfloat16 autocast (CUDA only)")
    return p


def _device(world: int) -> torch.device:
    """Under torchrun: this rank's GPU (LOCAL_RANK) or the CPU; in one process `get_device()` (VITLIB_DEVICE)."""
    if world > 1 or "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else \
            torch.device("cpu")
    return get_device()


def main(argv=None) -> dict | None:
    """Run the recipe; return the metrics on rank 0 (None on the other ranks)."""
    p = parser()
    args = p.parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", 1))        # torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*
    if world > 1 and args.recipe in ONE_PROCESS:
        p.error(f"recipe {args.recipe!r} runs in one process only ({ONE_PROCESS[args.recipe]}); got {world} processes")
    if args.accumulate < 1:
        p.error(f"--accumulate expects a positive number of micro-batches, got {args.accumulate}")
    device = _device(world)
    if args.bf16 and device.type != "cuda":
        p.error(f"--bf16 autocasts to bfloat16 on a CUDA GPU: expected a cuda device, got {device} "
                "(drop --bf16 on the CPU)")
    recipe = importlib.import_module(f"..recipes.{RECIPES[args.recipe]}", __package__)
    if "WORLD_SIZE" in os.environ:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        rank = dist.get_rank() if dist.is_initialized() else 0
        options = {"seed": args.seed, "device": device, "progress": rank == 0}
        if args.steps is not None:
            options["steps"] = args.steps
        with launch(args.accumulate, torch.bfloat16 if args.bf16 else None), Timer() as timer:
            model, history = recipe.train(**options)
        if rank != 0:
            return None
        metrics = {**recipe.evaluate(model), "steps": len(history["loss"]), "train_seconds": round(timer.seconds, 1),
                   "processes": world}
        print(metrics)
        if args.save:
            extras = EXTRAS[args.recipe](recipe) if args.recipe in EXTRAS else None
            print("wrote", zoo.save(model, args.save, model.config, metrics, overwrite=args.overwrite, extras=extras))
        return metrics
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
