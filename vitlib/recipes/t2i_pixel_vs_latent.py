"""Chapter 09's controlled comparison of pixel and latent diffusion: the two UNets of ``t2i_shapes`` (3x32x32) and
``t2i_shapes_latent`` (4x8x8 latents of "ae-shapes") trained the same way for the same number of steps, both
predicting v, and judged by the same protocol (guidance chosen on validation prompts from ``t2i_shapes.SCALES``,
test prompts reported with Wilson intervals), with the seconds per training step and per sampled test set.

The shipped checkpoints differ in more than their space: t2i-shapes predicts the noise (as chapter 08's DDPM) and
t2i-shapes-latent predicts v. This run holds the prediction type fixed, so the gap it measures is the space's.
EMA decay 0.99 (0.999 would still hold much of the initial weights after a short run).

    python -m vitlib.recipes.t2i_pixel_vs_latent      # one CPU core; writes data/results/t2i-pixel-vs-latent.json
"""

from __future__ import annotations

import argparse

import torch

from . import results_json, t2i_shapes, t2i_shapes_latent
from .shapes_judge import NAME as JUDGE_NAME
from .t2i_l2_baseline import judged
from .. import zoo
from ..classifier import ATTRIBUTES
from ..unet import UNet, UNetConfig
from ..utils import Timer, count_parameters

RESULTS = "t2i-pixel-vs-latent"
STEPS = 1000
EMA_DECAY = 0.99


def latent_config() -> UNetConfig:
    """The latent arm's UNet: 8 -> 4, widths (64, 128), attention at both levels (2.25M parameters). The shipped
    t2i-shapes-latent is wider; this run keeps the smaller one it was measured with."""
    return UNetConfig(in_channels=4, out_channels=4, sample_size=8, channels=(64, 128), attention_levels=(0, 1),
                      cond_dim=64, n_heads=4, num_timesteps=1000)


def arms() -> dict:
    """{name: (data, model, space)} of the two arms, both predicting v."""
    pixels = t2i_shapes.Space(prediction_type="v_prediction", clip_sample=True)
    return {"pixels": (t2i_shapes.training_data(), UNet(t2i_shapes.config()), pixels),
            "latents": (t2i_shapes_latent.training_data(), UNet(latent_config()), t2i_shapes_latent.space())}


def judge_arm(model, space, judge_model, encoder_) -> dict:
    """Guidance chosen on validation colour+shape (then CLIPScore); test figures and sampling time at that scale."""
    sched = t2i_shapes.schedule()
    val_scenes, val_texts = t2i_shapes.scene_prompts("val")
    val = {}
    for s in t2i_shapes.SCALES:
        images = t2i_shapes.draw(model, sched, val_texts, s, encoder_=encoder_, space=space)
        val[str(s)] = judged(judge_model, images, val_scenes, ATTRIBUTES)["color+shape"]["accuracy"]
    best = max(t2i_shapes.SCALES, key=lambda s: val[str(s)])
    scenes, texts = t2i_shapes.scene_prompts("test")
    with Timer() as timer:
        images = t2i_shapes.draw(model, sched, texts, best, encoder_=encoder_, space=space)
    return {"val_color_shape_by_scale": val, "best_scale": best,
            "test": judged(judge_model, images, scenes, ATTRIBUTES), "sample_seconds_test": round(timer.seconds, 2)}


def run(steps: int = STEPS, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    judge_model, encoder_ = zoo.load(JUDGE_NAME), t2i_shapes.text_encoder()
    results = {}
    for name, (data, model, space) in arms().items():
        with Timer() as timer:
            ema, history = t2i_shapes.train(steps, seed, "cpu", False, data=data, model=model, space=space,
                                            eval_every=None, ema_decay=EMA_DECAY)
        results[name] = {"parameters": count_parameters(ema), "train_seconds": round(timer.seconds, 1),
                         "seconds_per_step": round(timer.seconds / steps, 3),
                         "final_loss": round(sum(history["loss"][-50:]) / 50, 4),
                         **judge_arm(ema, space, judge_model, encoder_)}
        print(name, results[name], flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = run(args.steps, args.seed)
    print("wrote", results_json.save(RESULTS, {"steps": args.steps, "seed": args.seed, "ema_decay": EMA_DECAY,
                                               "prediction_type": "v_prediction"}, results))


if __name__ == "__main__":
    main()
