"""Recipe for the autoencoder of chapter 09's latent diffusion: ShapesWorld renders 32x32x3 <-> latents 8x8x4.

    z = s * E(x),  x_hat = D(z / s)                 vitlib.autoencoder.Autoencoder, f = 4: 3072 -> 256 numbers (12x)
    L = mean (x - x_hat)^2 + LAMBDA * mean E(x)^2    reconstruction and a tiny L2 penalty on the latent
    s = 1 / std E(x) over the training renders       measured after training, stored in the config

Data: one-object train scenes of chapter 09's world (``t2i_shapes.world``: 32x32, its held-out colour+shape pairs
never shown), rendered as they are (no augmentation). LAMBDA is small enough to cost no reconstruction quality (at
the end the MSE term is about 1e-5, the penalty below 1e-6). Evaluation on the 46 test and the 72 held-out
one-object scenes (every one of them; never used to choose anything): reconstruction MSE, and the attribute
accuracy (Wilson intervals) that chapter 09's judge (zoo "shapes-judge") reads in the reconstructions, beside what
it reads in the real renders; the encode and decode time of a batch of 256 on one thread.

Measured (5000 steps of 16 renders, seed 0; 555 s of CPU time on one thread, evaluation included, 830 s of wall time
on a 2-core machine shared with other jobs; 428k parameters, 1.7 MB): s = 9.57. Test MSE 6e-5, held-out 8.7e-5.
The judge reads the reconstructions exactly as it reads the renders: on the 46 test scenes colour, size and
position 46/46 [0.92, 1.00] and shape 45/46 [0.89, 1.00] in both; on the 72 held-out pairs every attribute 72/72
[0.95, 1.00] in both. (At the CLIP chapter's 24x24, f = 4 gave 6x6x4 latents and lost two held-out shapes of 72;
at 32x32 none.) Encoding a batch of 256 takes 0.57 s, decoding it 0.45 s (one thread, the same shared machine).

    python -m vitlib.recipes.autoencoder_shapes --save   # trains on one CPU core, writes data/zoo/ae-shapes.*
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from . import cli
from .shapes_judge import NAME as JUDGE_NAME
from .t2i_l2_baseline import judged
from .t2i_shapes import world
from .. import zoo
from ..autoencoder import Autoencoder, AutoencoderConfig
from ..classifier import ATTRIBUTES
from ..data import one_object_scenes, to_tensor
from ..train import param_groups, train as run_training
from ..utils import count_parameters, get_device, seed_everything

__all__ = ["NAME", "STEPS", "world", "config", "train", "evaluate", "latent_std", "speed", "main"]

NAME = "ae-shapes"
STEPS = 5000
BATCH_SIZE = 16
N_TRAIN = 4000
LAMBDA = 1e-4          # weight of the L2 penalty on E(x)
SPEED_BATCH = 256
SPEED_REPEATS = 5


def config(scaling_factor: float = 1.0) -> AutoencoderConfig:
    """24x24x3 -> 6x6x4 (f = 4), widths 32 at 24x24 and 64 at 12x12."""
    return AutoencoderConfig(in_channels=3, image_size=32, latent_channels=4, channels=(32, 64), n_res_blocks=1,
                             groups=8, scaling_factor=scaling_factor)


def training_images(n: int = N_TRAIN) -> torch.Tensor:
    """Renders of the first ``n`` one-object train scenes: float (n, 3, 24, 24) in [0, 1]."""
    w = world()
    return to_tensor(w.render_batch(w.scenes(n, "train")))


@torch.no_grad()
def latent_std(model: Autoencoder, images: torch.Tensor, batch_size: int = 512) -> float:
    """std of E(x) (unscaled) over every number of every latent of ``images``."""
    h = torch.cat([model.encode_unscaled(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    return h.std().item()


def train(steps: int = STEPS, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
          batch_size: int = BATCH_SIZE, lr: float = 2e-3, n_train: int = N_TRAIN, penalty: float = LAMBDA):
    """Train E and D on ``n_train`` train renders, then set ``scaling_factor`` = 1 / std E(x) over them."""
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    x = training_images(n_train)
    model = Autoencoder(config()).to(device)

    def batches():
        while True:
            yield x[torch.randint(len(x), (batch_size,), generator=generator)]

    def loss_fn(model, batch):
        h = model.encode_unscaled(batch)                                    # (B, 4, 6, 6)
        mse, l2 = F.mse_loss(model.decode_unscaled(h), batch), h.pow(2).mean()
        return {"loss": mse + penalty * l2, "mse": mse, "l2": l2}

    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    history = run_training(model, batches(), loss_fn, optimizer, steps=steps, scheduler=schedule, progress=progress)
    model.eval()
    model.config.scaling_factor = 1.0 / latent_std(model, x.to(device))
    return model, history


@torch.no_grad()
def speed(model: Autoencoder, batch_size: int = SPEED_BATCH, repeats: int = SPEED_REPEATS) -> dict:
    """Median seconds to encode and to decode a batch of ``batch_size`` renders, on the model's device (the recipe
    runs it on one CPU thread)."""
    device = next(model.parameters()).device
    w = world()
    x = to_tensor(w.render_batch(w.scenes(batch_size, "train"))).to(device)
    z = model.encode(x)
    times = {"encode": [], "decode": []}
    for _ in range(repeats):
        for what, run in (("encode", lambda: model.encode(x)), ("decode", lambda: model.decode(z))):
            start = time.perf_counter()
            run()
            times[what].append(time.perf_counter() - start)
    return {f"{k}_seconds_per_{batch_size}": round(statistics.median(v), 4) for k, v in times.items()}


@torch.no_grad()
def evaluate(model: Autoencoder, judge_model=None, timing: bool = True) -> dict:
    """The figures the checkpoint states (see the module docstring); ``timing=False`` leaves out the speed."""
    judge_model = zoo.load(JUDGE_NAME, device="cpu") if judge_model is None else judge_model
    model = model.cpu().eval()
    w = world()
    figures = {}
    for split in ("test", "heldout"):
        scenes = one_object_scenes(w, split)
        real = to_tensor(w.render_batch(scenes))
        reconstructed = model(real)
        figures[f"{split}_mse"] = round(F.mse_loss(reconstructed, real).item(), 6)
        figures[f"judged_{split}_reconstructions"] = judged(judge_model, reconstructed, scenes, ATTRIBUTES)
        figures[f"judged_{split}_renders"] = judged(judge_model, real, scenes, ATTRIBUTES)
        figures[f"n_{split}"] = len(scenes)
    scaled = torch.cat([model.encode(x) for x in training_images().split(512)])
    figures.update({
        "latent_shape": list(model.config.latent_shape), "numbers_per_image": 3 * model.config.image_size**2,
        "numbers_per_latent": scaled[0].numel(), "scaling_factor": model.config.scaling_factor,
        "train_latent_std": round(scaled.std().item(), 4), "train_latent_mean": round(scaled.mean().item(), 4),
        "parameters": count_parameters(model),
    })
    if timing:
        figures.update(speed(model))
    return figures


def main(argv=None) -> None:
    args = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS).parse_args(argv)
    torch.set_num_threads(1)
    load, cpu_start = os.getloadavg()[0], time.process_time()
    model, _, metrics = cli.train_and_evaluate(sys.modules[__name__], steps=args.steps, seed=args.seed,
                                               device="cpu", progress=False)
    metrics.update({"train_cpu_seconds": round(time.process_time() - cpu_start, 1), "threads": 1,
                    "load_average_at_start": round(load, 2), "seed": args.seed,
                    "command": f"python -m vitlib.recipes.autoencoder_shapes --steps {args.steps} --seed {args.seed}"
                               + " --save" * args.save})
    cli.report(model, metrics, NAME, args.save, args.overwrite)


if __name__ == "__main__":
    main()
