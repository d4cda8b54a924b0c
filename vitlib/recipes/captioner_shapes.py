"""Recipe for chapter 10's captioner: a GPT decoder cross-attending to the frozen course CLIP's patch tokens
("clip-shapes", 9 tokens of width 64 per 24x24 image), trained on a world whose co-occurrence bias makes a blue
square follow a red circle (vitlib.captioner).

    L = -(1/N) sum_t log p(y_(t+1) | y_<=t, V)     teacher forcing on <bos> caption <eos>, loss on caption and <eos>
    AdamW, linear warm-up then cosine decay (vitlib.train.warmup_cosine), batches of BATCH_SIZE scenes

Data: N_TRAIN scenes of the biased world (1-3 objects; the bias pair is ShapesWorld's default, red circle -> blue
square, with probability BIAS), each given a fresh caption (``world.caption``: five templates, four levels of detail,
any object order) at each epoch. The CLIP learned an unbiased world; only the captioner meets the bias.

Evaluation on the test split: greedy captions against N_REFERENCES references per scene (BLEU-4), against a
nearest-neighbour baseline (the caption of the training scene whose patch tokens are closest), CHAIR_i and CHAIR_s,
the parse rate, and the hallucination the chapter is about: on test scenes that hold a red circle but no blue
square, how often the caption mentions a blue square (greedy and sampled), beside the same rate on scenes that hold
neither. Measured on one CPU core (2-core machine, shared): training 589 s (about 120 ms a step), 10-11 minutes
in all.

    python -m vitlib.recipes.captioner_shapes --save    # one CPU core, writes data/zoo/captioner-shapes.*
"""

from __future__ import annotations

import functools
import random
import sys

import torch
import torch.nn.functional as F

from . import cli
from .. import zoo
from ..captioner import Captioner, CaptionerConfig
from ..constants import IGNORE_INDEX
from ..data import ShapesWorld, to_tensor
from ..decoding import sample
from ..lm import collate, predicted_tokens
from ..lstm_captioner import LSTMCaptioner, LSTMCaptionerConfig
from ..metrics import accuracy_with_interval, bleu, chair, chair_details, parse_rate
from ..train import param_groups, train as run_training, warmup_cosine
from ..utils import count_parameters, seed_everything, to_device
from ..vqa import image_tokens

NAME = "captioner-shapes"
CLIP_NAME = "clip-shapes"
BIAS = 0.9                                   # P(a blue square is added | a red circle is drawn without one)
STEPS = 5000
BATCH_SIZE = 64
LR, WARMUP, WEIGHT_DECAY = 1e-3, 200, 0.01
MAX_LEN = 40                                 # the longest caption is 35 tokens with <bos> and <eos>
N_TRAIN, N_VAL, N_TEST, N_TRIGGER = 20000, 500, 1000, 150
N_REFERENCES = 5
EVAL_EVERY = 500


def world() -> ShapesWorld:
    """24x24 images (the CLIP's), 1-3 objects, the default bias pair red circle -> blue square with BIAS."""
    return ShapesWorld(image_size=24, max_objects=3, seed=0, bias=BIAS)


def bias_pair() -> tuple[tuple[str, str], tuple[str, str]]:
    """(trigger, partner): (("red", "circle"), ("blue", "square")) for the default world."""
    return world().bias_pairs[0]


def config() -> CaptionerConfig:
    return CaptionerConfig(vocab_size=world().tokenizer.vocab_size, max_len=MAX_LEN, d_model=128, n_heads=4,
                           n_layers=2, d_image=64)


@functools.lru_cache(maxsize=8)
def scene_tokens(split: str, n: int) -> tuple[list, torch.Tensor]:
    """(the first ``n`` scenes of ``split``, their frozen CLIP patch tokens (n, 9, 64)), on the CPU."""
    w = world()
    scenes = w.scenes(n, split)
    return scenes, _encode_images(scenes)


def _encode_images(scenes: list) -> torch.Tensor:
    clip = zoo.load(CLIP_NAME, device="cpu").requires_grad_(False).eval()
    return image_tokens(clip, to_tensor(world().render_batch(scenes)))   # (n, 9, 64)


@functools.lru_cache(maxsize=2)
def trigger_scenes(n: int = N_TRIGGER) -> tuple[list, torch.Tensor]:
    """The first ``n`` test scenes that hold the trigger (a red circle) but not its partner, and their tokens."""
    w, (trigger, partner) = world(), bias_pair()
    found, drawn = [], 0
    while len(found) < n:   # about 1 test scene in 200 qualifies: draw in growing prefixes of the split
        drawn = max(4 * drawn, 20000)
        found = [s for s in w.scenes(drawn, "test") if trigger in s.pairs() and partner not in s.pairs()][:n]
    return found, _encode_images(found)


def encode_captions(captions: list[str]) -> dict[str, torch.Tensor]:
    """<bos> caption <eos> as padded ids, with labels (IGNORE_INDEX on the padding)."""
    tok = world().tokenizer
    return collate([tok.encode(c, add_bos=True, add_eos=True) for c in captions], pad_id=tok.pad_id)


def batches(scenes: list, tokens: torch.Tensor, batch_size: int, generator: torch.Generator, rng: random.Random):
    """Endless batches {"input_ids", "labels", "image"}: each epoch every scene once, in a seeded order, with a
    caption drawn afresh."""
    if len(scenes) < batch_size:   # an epoch would hold no full batch, and the loop would never yield
        raise ValueError(f"batches needs at least batch_size={batch_size} scenes, got {len(scenes)}")
    w = world()
    while True:
        order = torch.randperm(len(scenes), generator=generator)
        for rows in order[:len(order) - len(order) % batch_size].split(batch_size):
            yield {**encode_captions([w.caption(scenes[i], rng) for i in rows.tolist()]), "image": tokens[rows]}


def caption_loss(model: Captioner, batch: dict) -> torch.Tensor:
    """Teacher forcing: the logits at position t score the token at t + 1; <bos> is never a target."""
    logits = model(batch["input_ids"], batch["image"])[:, :-1]      # (B, T-1, V)
    targets = batch["labels"][:, 1:]                                   # (B, T-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def train(steps: int = STEPS, seed: int = 0, device="cpu", progress: bool = True, n_train: int = N_TRAIN,
          batch_size: int = BATCH_SIZE, lr: float = LR, cfg: CaptionerConfig | LSTMCaptionerConfig | None = None,
          eval_every: int | None = EVAL_EVERY):
    """Train the captioner (an ``LSTMCaptioner`` when ``cfg`` is its config); return (model, history): the loss of
    every step, the validation loss every ``eval_every`` steps (on N_VAL scenes with fixed captions)."""
    scenes, tokens = scene_tokens("train", n_train)
    co = world().cooccurrence(scenes, *bias_pair())
    print(f"training scenes: P(partner | trigger) = {co['p_partner_given_trigger']:.3f} over {co['n_trigger']}, "
          f"P(partner | no trigger) = {co['p_partner_given_no_trigger']:.3f}")
    val_scenes, val_tokens = scene_tokens("val", N_VAL)
    val = to_device({**encode_captions([world().caption(s, random.Random(i)) for i, s in enumerate(val_scenes)]),
                     "image": val_tokens}, device)
    cfg = config() if cfg is None else cfg
    generator = seed_everything(seed)   # after the data: building it the first time (loading CLIP) draws numbers
    model = (LSTMCaptioner if isinstance(cfg, LSTMCaptionerConfig) else Captioner)(cfg).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=lr)
    history = run_training(model, batches(scenes, tokens, batch_size, generator, random.Random(seed)),
                           caption_loss, optimizer, steps=steps, scheduler=warmup_cosine(optimizer, steps, WARMUP),
                           clip_grad_norm=1.0, eval_fn=lambda m: {"val_loss": caption_loss(m, val)},
                           eval_every=eval_every, progress=progress, device=device, count_fn=predicted_tokens)
    return model.eval(), history


@torch.no_grad()
def captions(model: Captioner, tokens: torch.Tensor, batch_size: int = 250, **options) -> list[str]:
    """The model's caption of each image (greedy unless ``options`` pick another decoding), in batches."""
    device = next(model.parameters()).device
    tok = world().tokenizer
    return [c for part in tokens.split(batch_size) for c in model.caption(part.to(device), tok, **options)]


def references(scenes: list, n: int = N_REFERENCES, seed: int = 0) -> list[list[str]]:
    """``n`` distinct captions of each scene drawn with ``world.caption`` (their templates and details vary)."""
    w, out = world(), []
    for i, scene in enumerate(scenes):
        rng, refs = random.Random(seed * 1_000_003 + i), []
        while len(refs) < n:
            text = w.caption(scene, rng)
            refs += [text] if text not in refs else []
        out.append(refs)
    return out


@torch.no_grad()
def nearest_neighbour_captions(tokens: torch.Tensor, train_scenes: list, train_tokens: torch.Tensor,
                               seed: int = 0) -> list[str]:
    """The baseline: for each image, a caption of the training scene whose patch tokens are nearest (cosine)."""
    query = F.normalize(tokens.flatten(1), dim=-1)                     # (N, 9 * 64)
    keys = F.normalize(train_tokens.flatten(1), dim=-1)                # (N_train, 9 * 64)
    nearest = torch.cat([(q @ keys.T).argmax(dim=1) for q in query.split(256)]).tolist()
    rng = random.Random(seed)
    return [world().caption(train_scenes[j], rng) for j in nearest]


def mention_rate(texts: list[str], scenes: list, pair: tuple[str, str]) -> dict:
    """How often the captions mention ``pair`` (colour, shape): rate, Wilson 95% interval, n."""
    mentioned = torch.tensor([pair in m for m, _ in chair_details(texts, scenes, world())])
    rate, (lo, hi) = accuracy_with_interval(mentioned)
    return {"rate": round(rate, 4), "interval": [round(lo, 4), round(hi, 4)], "n": len(texts)}


def evaluate(model: Captioner, n_test: int = N_TEST, n_trigger: int = N_TRIGGER, n_train: int = N_TRAIN) -> dict:
    """BLEU (model and nearest-neighbour baseline), CHAIR, parse rate of greedy captions of ``n_test`` test scenes;
    how often a caption mentions the partner on ``n_trigger`` scenes with the trigger but not the partner (greedy,
    and sampled at temperature 1), and on the test scenes that hold neither (the base rate)."""
    w, (trigger, partner) = world(), bias_pair()
    scenes, tokens = scene_tokens("test", n_test)
    texts, refs = captions(model, tokens), references(scenes)
    chair_i, chair_s = chair(texts, scenes, w)
    train_scenes, train_tokens = scene_tokens("train", n_train)
    neither = [i for i, s in enumerate(scenes) if not {trigger, partner} & s.pairs()]
    t_scenes, t_tokens = trigger_scenes(n_trigger)
    t_texts = captions(model, t_tokens)
    t_sampled = captions(model, t_tokens, decoding=sample, generator=torch.Generator().manual_seed(0))
    return {
        "bleu": round(bleu(texts, refs), 2),
        "bleu_nearest_neighbour": round(bleu(nearest_neighbour_captions(tokens, train_scenes, train_tokens), refs), 2),
        "chair_i": round(chair_i, 4), "chair_s": round(chair_s, 4),
        "parse_rate": parse_rate(texts, w.parse_caption),
        "partner_given_trigger_only": mention_rate(t_texts, t_scenes, partner),
        "partner_given_trigger_only_sampled": mention_rate(t_sampled, t_scenes, partner),
        "trigger_mentioned_given_trigger_only": mention_rate(t_texts, t_scenes, trigger),
        "partner_given_neither": mention_rate([texts[i] for i in neither], [scenes[i] for i in neither], partner),
        "cooccurrence_train": w.cooccurrence(train_scenes, trigger, partner),
        "examples": [[r[0], t] for r, t in zip(refs[:5], texts[:5])],
        "parameters": count_parameters(model),
    }


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    cli.run(sys.modules[__name__], parser.parse_args(argv))


if __name__ == "__main__":
    main()
