"""Recipe for chapter 08's DDPM: an epsilon-predicting UNet on scikit-learn's 8x8 digits, and its judge.

Training (Ho et al., 2020, Algorithm 1): x_0 from the train split (``vitlib.digits``, [-1, 1]), t ~ U{0..T-1},
eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, L = ||eps - eps_theta(x_t, t)||^2.
AdamW with a warm-up then cosine learning rate, and an exponential moving average (EMA) of the weights,
theta_ema <- d theta_ema + (1 - d) theta after each step (d = 0.999), which is what is evaluated and shipped:
single-step weights give visibly noisier samples.

The schedule: squaredcos_cap_v2 (Nichol & Dhariwal's cosine), chosen over linear (Ho et al.) by a cheap probe,
800 steps with each, judged on validation digits with the cheap protocol below (``--probe``; stored in
data/results/ddpm-digits-schedule-probe.json): relative confident share 0.60 [0.55, 0.65] vs 0.51 [0.46, 0.57],
coverage 0.96 vs 0.93, Fréchet distance 129 vs 204. The linear schedule leaves little signal over its last 300
steps (sqrt(alpha_bar_700) = 0.08, against 0.45 for the cosine one), so fewer of the model's steps see a digit.

Judging (``vitlib.sample_quality``): samples are clamped to [-1, 1] and judged by the ``digits-judge`` CNN against
the 350 held-out test digits, beside three baselines: real-vs-real (the 350 val digits), Gaussian noise and a
per-pixel Gaussian fitted to the train split. Two protocols, both seeded: the expensive one (DDPM, all 1000 steps)
and the cheap one the checkpoint's test repeats (DDIM, eta = 0, ``CHEAP_STEPS`` steps), 350 samples each.

    python -m vitlib.recipes.ddpm_digits --judge --save    # the judge: ~20 s, data/zoo/digits-judge.*
    python -m vitlib.recipes.ddpm_digits --save            # the DDPM on one CPU core, data/zoo/ddpm-digits.*
    python -m vitlib.recipes.ddpm_digits --speed           # DDPM 1000 vs DDIM 100/50/20/10, data/results/
"""

from __future__ import annotations

import time

import torch

from . import cli, results_json
from .. import digits, zoo
from ..diffusion import NoiseSchedule, sample
from ..diffusion_training import EMA, denoising_loss
from ..sample_quality import quality_report
from ..train import param_groups, warmup_cosine
from ..train import train as run_training
from ..unet import UNet, UNetConfig
from ..utils import Timer, count_parameters, seed_everything

NAME = "ddpm-digits"
JUDGE_NAME = "digits-judge"
STEPS = 4000
SCHEDULES = ("linear", "squaredcos_cap_v2")
N_SAMPLES = 350          # = the test split, the Fréchet reference: every row of the table has the same N
CHEAP_STEPS = 20         # DDIM steps of the cheap protocol (the test's)
SAMPLE_SEED = 0
SPEED_STEPS = (None, 100, 50, 20, 10)   # None: DDPM with all 1000 steps
PROBE_STEPS = 800


def config() -> UNetConfig:
    """8x8 digits, two levels (8x8 and 4x4, attention at 4x4); ~0.42 M parameters, a 1.7 MB checkpoint."""
    return UNetConfig(in_channels=1, out_channels=1, sample_size=8, channels=(32, 56), layers_per_level=1,
                      attention_levels=(1,), n_heads=4, time_dim=64, norm_groups=8)


def schedule(beta_schedule: str = "squaredcos_cap_v2") -> NoiseSchedule:
    return NoiseSchedule(num_train_timesteps=1000, beta_schedule=beta_schedule)


def judge() -> digits.DigitJudge:
    return zoo.load(JUDGE_NAME)


@torch.no_grad()
def draw(model, sched: NoiseSchedule, n: int = N_SAMPLES, steps: int | None = CHEAP_STEPS, seed: int = SAMPLE_SEED,
         method: str | None = None, batch_size: int = 350) -> torch.Tensor:
    """n samples (n, 1, 8, 8) clamped to [-1, 1]: DDIM (eta 0) with ``steps`` steps, or DDPM with all 1000 when
    steps is None. Seeded: the same seed gives the same images."""
    method = method or ("ddpm" if steps is None else "ddim")
    generator = torch.Generator().manual_seed(seed)
    out = [sample(model, sched, (min(batch_size, n - i), 1, 8, 8), steps=steps, method=method, generator=generator)
           for i in range(0, n, batch_size)]
    return torch.cat(out).clamp(-1, 1)


def baselines(judge_model=None, seed: int = 0) -> dict[str, dict]:
    """The quality table's reference rows: real val digits, N(0, I) noise and a per-pixel Gaussian N(mu_ij, sd_ij^2)
    fitted to the train split, both clamped to [-1, 1] as samples are."""
    judge_model = judge() if judge_model is None else judge_model
    train_x, _ = digits.load("train")
    test_x, _ = digits.load("test")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(N_SAMPLES, 1, 8, 8, generator=g).clamp(-1, 1)
    mu, sd = train_x.mean(0), train_x.std(0)                                  # (1, 8, 8) each
    pixel_gauss = (mu + sd * torch.randn(N_SAMPLES, 1, 8, 8, generator=g)).clamp(-1, 1)
    rows = {"real (val)": digits.load("val")[0], "gaussian noise": noise, "per-pixel gaussian": pixel_gauss}
    return {name: quality_report(judge_model, x, test_x, train_x) for name, x in rows.items()}


def quality(model, sched: NoiseSchedule, steps: int | None = CHEAP_STEPS, judge_model=None, split: str = "test",
            seed: int = SAMPLE_SEED) -> dict:
    """``quality_report`` of ``N_SAMPLES`` seeded samples against the held-out ``split``."""
    judge_model = judge() if judge_model is None else judge_model
    samples = draw(model, sched, steps=steps, seed=seed)
    return quality_report(judge_model, samples, digits.load(split)[0], digits.load("train")[0])


def evaluate(model: UNet, beta_schedule: str | None = None) -> dict:
    """The expensive (DDPM 1000 steps) and cheap (DDIM ``CHEAP_STEPS``) quality figures, with their settings."""
    sched = schedule(beta_schedule or getattr(model, "beta_schedule", "squaredcos_cap_v2"))
    j = judge()
    with Timer() as t_full:
        full = quality(model, sched, steps=None, judge_model=j)
    with Timer() as t_cheap:
        cheap = quality(model, sched, steps=CHEAP_STEPS, judge_model=j)
    return {"ddpm_1000": {**full, "seconds": round(t_full.seconds, 1)},
            f"ddim_{CHEAP_STEPS}": {**cheap, "seconds": round(t_cheap.seconds, 1)},
            "cheap_protocol": {"method": "ddim", "eta": 0.0, "steps": CHEAP_STEPS, "n": N_SAMPLES,
                               "seed": SAMPLE_SEED, "clamp": [-1, 1], "reference": "test"},
            "beta_schedule": sched.beta_schedule, "parameters": count_parameters(model)}


def train(steps: int = STEPS, seed: int = 0, device="cpu", progress: bool = True,
          beta_schedule: str = "squaredcos_cap_v2", batch_size: int = 128, lr: float = 2e-3,
          ema_decay: float = 0.999, eval_every: int | None = 1000):
    """Train the DDPM; return (the EMA model, history). The history holds the loss of every step and, every
    ``eval_every`` steps, the cheap protocol's quality of the EMA model on validation digits."""
    if beta_schedule not in SCHEDULES:
        raise ValueError(f"unknown beta_schedule {beta_schedule!r}; allowed: {', '.join(SCHEDULES)}")
    generator = seed_everything(seed)
    sched = schedule(beta_schedule)
    x0_all, _ = digits.load("train")                                          # (N, 1, 8, 8) in [-1, 1]
    model = UNet(config()).to(device)
    ema = EMA(model, ema_decay)
    ema.model.beta_schedule = sched.beta_schedule
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=lr)
    scheduler = warmup_cosine(optimizer, steps, min(200, steps // 10 + 1))
    j = judge()

    def batches():
        while True:
            x0 = x0_all[torch.randint(len(x0_all), (batch_size,), generator=generator)]          # (B, 1, 8, 8)
            t = torch.randint(sched.num_train_timesteps, (batch_size,), generator=generator)      # (B,)
            yield x0, t, torch.randn(x0.shape, generator=generator)                               # eps (B, 1, 8, 8)

    def loss_fn(m, batch):
        return denoising_loss(m, sched, *batch)                              # ||eps - eps_theta(x_t, t)||^2

    def eval_fn(_):
        q = quality(ema.model, sched, judge_model=j, split="val", seed=1)
        return {"val_relative_confidence": q["relative_confidence"], "val_coverage": q["coverage"],
                "val_fd": q["fd"]}

    history = run_training(model, batches(), loss_fn, optimizer, steps=steps, scheduler=scheduler,
                           after_step=ema.update, eval_fn=eval_fn if eval_every else None, eval_every=eval_every,
                           progress=progress, device=device)
    return ema.model, history


def schedule_probe(steps: int = PROBE_STEPS, seed: int = 0) -> dict:
    """The cheap probe that chose the schedule: a short run with each, judged on validation digits (cheap protocol,
    sample seed 1), with its CPU time."""
    rows = {}
    for beta in SCHEDULES:
        start = time.process_time()
        model, history = train(steps=steps, seed=seed, beta_schedule=beta, progress=False, eval_every=None)
        q = quality(model, schedule(beta), split="val", seed=1)
        rows[beta] = {**q, "cpu_seconds": round(time.process_time() - start, 1),
                      "loss_last_100": sum(history["loss"][-100:]) / len(history["loss"][-100:])}
    return rows


def speed(model: UNet, beta_schedule: str, steps_list=SPEED_STEPS) -> dict:
    """Wall time and quality of DDPM (all steps) and DDIM with fewer steps, on this machine's threads."""
    sched, j = schedule(beta_schedule), judge()
    rows = {}
    for steps in steps_list:
        cpu = time.process_time()
        with Timer() as t:
            samples = draw(model, sched, steps=steps)
        cpu = time.process_time() - cpu
        report = quality_report(j, samples, digits.load("test")[0], digits.load("train")[0])
        rows["ddpm_1000" if steps is None else f"ddim_{steps}"] = {**report, "seconds": round(t.seconds, 2),
                                                                    "cpu_seconds": round(cpu, 2)}
    return rows


def main(argv=None) -> None:
    p = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    p.add_argument("--schedule", choices=SCHEDULES, default="squaredcos_cap_v2")
    p.add_argument("--judge", action="store_true", help="train and (with --save) write the judge instead")
    p.add_argument("--speed", action="store_true", help="measure sampling speed vs quality of the shipped model")
    p.add_argument("--probe", action="store_true", help="the schedule probe: short runs with each schedule")
    p.add_argument("--name", default=NAME, help="the checkpoint's name in the zoo")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.judge:
        with Timer() as t:
            model = digits.train_judge(seed=args.seed)
        metrics = {"test": digits.judge_accuracy(model, "test"), "val": digits.judge_accuracy(model, "val"),
                   "train_seconds": round(t.seconds, 1), "parameters": count_parameters(model)}
        return cli.report(model, metrics, JUDGE_NAME, args.save, args.overwrite)
    if args.speed:
        model = zoo.load(NAME)
        beta = zoo.load_extras(NAME)["schedule"].beta_schedule
        rows = speed(model, beta)
        print(rows)
        print("wrote", results_json.save(f"{NAME}-speed", {"n": N_SAMPLES, "seed": SAMPLE_SEED, "threads": 1,
                                                             "beta_schedule": beta}, rows))
        return
    if args.probe:
        rows = schedule_probe(seed=args.seed)
        print(rows)
        print("wrote", results_json.save(f"{NAME}-schedule-probe", {"steps": PROBE_STEPS, "seed": args.seed,
                                                                      "threads": 1}, rows))
        return
    cpu_start = time.process_time()
    with Timer() as t:
        model, history = train(steps=args.steps, seed=args.seed, beta_schedule=args.schedule, progress=False)
    metrics = {**evaluate(model, args.schedule), "baselines": baselines(), "steps": len(history["loss"]),
               "train_seconds": round(t.seconds, 1), "train_cpu_seconds": round(time.process_time() - cpu_start, 1),
               "threads": 1,
               "val_history": {k: history[k] for k in history.names if k.startswith("val_")},
               "val_steps": history.steps("val_fd") if "val_fd" in history else []}
    print(metrics)
    results_json.save(f"{NAME}-{args.schedule}", {"steps": args.steps, "seed": args.seed}, metrics)
    if args.save:
        print("wrote", zoo.save(model, args.name, model.config, metrics, overwrite=args.overwrite,
                                extras={"schedule": schedule(args.schedule)}))


if __name__ == "__main__":
    main()
