"""Recipe for chapter 10's second captioner: ``captioner_shapes`` with one change, the image read as the mean of the
CLIP's 9 patch tokens (``CaptionerConfig(image_pool="mean")``), one vector per image as the first neural captioners
read one CNN feature. Same world with its bias, data, steps, optimiser and evaluation.

The bottleneck is the point: from 9 tokens the captioner binds each colour to its shape and almost never names an
object that is not there; from their average it must guess the binding, and its guesses follow the captions it was
trained on. This is the captioner on which chapter 10's decoding table measures hallucination.

    python -m vitlib.recipes.captioner_shapes_pooled --save    # one CPU core, writes data/zoo/captioner-shapes-pooled.*
"""

from __future__ import annotations

import dataclasses
import sys

from . import captioner_shapes, cli
from ..captioner import CaptionerConfig
from .captioner_shapes import STEPS, evaluate, world

__all__ = ["NAME", "STEPS", "world", "config", "train", "evaluate", "main"]   # the recipe protocol (cli)

NAME = "captioner-shapes-pooled"


def config() -> CaptionerConfig:
    return dataclasses.replace(captioner_shapes.config(), image_pool="mean")


def train(steps: int = STEPS, seed: int = 0, device="cpu", progress: bool = True, **options):
    """``captioner_shapes.train`` with the pooled config (``options``: its other settings, n_train and so on)."""
    return captioner_shapes.train(steps=steps, seed=seed, device=device, progress=progress, cfg=config(), **options)


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    cli.run(sys.modules[__name__], parser.parse_args(argv))


if __name__ == "__main__":
    main()
