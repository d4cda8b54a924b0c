"""What every recipe shares (chapters 03-06): the protocol and its command line (``--steps``, ``--seed``, ``--save``,
``--overwrite``). A recipe is a module with

    NAME            the checkpoint's name in the zoo
    STEPS           the default number of training steps
    world()         the ShapesWorld it learns from
    config()        the model's configuration
    train(steps=..., seed=..., device=..., progress=...) -> (model, history)
    evaluate(model) -> {metric: value}, what the checkpoint states and its test recomputes
    main(argv)      ``run(this module, parser(...).parse_args(argv))``

so that ``python -m vitlib.recipes.NAME --save`` trains on the CPU, prints the metrics and writes the checkpoint;
``reevaluate(recipe)`` recomputes a shipped checkpoint's metrics (a recipe's ``--reevaluate``).
"""

from __future__ import annotations

import argparse

import torch

from .. import zoo
from ..utils import Timer


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


def train_and_evaluate(recipe, **options) -> tuple[torch.nn.Module, object, dict]:
    """``recipe.train(**options)`` then ``recipe.evaluate``: (model, history, metrics), the metrics with the number
    of steps taken and the training time. What a recipe's command line runs, and what a chapter calls."""
    with Timer() as timer:
        model, history = recipe.train(**options)
    metrics = {**recipe.evaluate(model), "steps": len(history["loss"]), "train_seconds": round(timer.seconds, 1)}
    return model, history, metrics


def run(recipe, args: argparse.Namespace, **train_options) -> dict:
    """Train ``recipe`` on the CPU with one thread (small models: a second thread costs more than it saves, and
    one keeps the checkpoint reproducible), evaluate it, report; return the metrics. ``args`` come from
    ``parser(...)`` (a recipe may have added options of its own, passed on as ``train_options``)."""
    torch.set_num_threads(1)
    model, _, metrics = train_and_evaluate(recipe, steps=args.steps, seed=args.seed, device="cpu", progress=False,
                                           **train_options)
    report(model, metrics, recipe.NAME, args.save, args.overwrite)
    return metrics


def reevaluate(recipe) -> dict:
    """Recompute the shipped checkpoint's figures with ``recipe.evaluate`` (after a new judge, say) and rewrite its
    record; the weights, the steps and the training time stay."""
    torch.set_num_threads(1)
    model, record = zoo.load(recipe.NAME), zoo.load_config(recipe.NAME)
    kept = {k: record["metrics"][k] for k in ("steps", "train_seconds")}
    metrics = {**recipe.evaluate(model), **kept}
    report(model, metrics, recipe.NAME, save=True, overwrite=True)
    return metrics
