"""The command line every recipe shares: ``--steps``, ``--seed``, ``--save`` (``--overwrite``); train on the CPU, print the metrics,
and write the checkpoint to the zoo when asked."""

from __future__ import annotations

import argparse

import torch

from .. import zoo


def parser(description: str, name: str, steps: int | None, steps_help: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the shared options; a recipe may add its own before parsing."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=steps, help=steps_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", action="store_true", help=f"write the checkpoint data/zoo/{name}.*")
    p.add_argument("--overwrite", action="store_true", help="with --save: replace a checkpoint of that name")
    return p


def report(model: torch.nn.Module, metrics: dict, name: str, save: bool, overwrite: bool = False) -> None:
    """Print the metrics; with ``save``, write the model, its config and the metrics to the zoo
    (an existing checkpoint only with ``overwrite``)."""
    print(metrics)
    if save:
        print("wrote", zoo.save(model, name, model.config, metrics, overwrite=overwrite))
