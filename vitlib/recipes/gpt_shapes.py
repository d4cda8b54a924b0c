"""Recipe for the course GPT: pre-train a tiny GPT on ShapesWorld text (chapter 03).

The text is one document per scene (word-level tokens of ``world.tokenizer``): a caption, and in one document out
of four a question about the scene with its answer after the caption's <eos>:

    <bos> a small red circle at the top left and a blue square. <eos>
    <bos> there is a red circle and a blue square. <eos> what color is the circle? red. <eos>

Questions ask for a colour, a shape, a count, a location, or whether a thing is there. A sample drawn from <bos> and
stopped at the first <eos> is a caption, which ``world.parse_caption(strict=True)`` can judge. Chapter 03 then
fine-tunes the model on 64 examples of a request it never saw, "draw two objects." answered by a caption of a scene
with two objects (``instruction_examples``).

A caption that parses may still describe no possible scene: ShapesWorld never repeats a colour+shape pair and puts
at most one object in a cell. ``scene_problem`` names what breaks those rules; ``valid_scene_rate`` counts the rest.

    python -m vitlib.recipes.gpt_shapes --save        # trains on the CPU and writes data/zoo/gpt-shapes.*
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable

import torch

from . import cli
from ..constants import IGNORE_INDEX
from ..data import ShapesWorld
from ..data.language import COLORS, NUMBERS, POSITIONS, SHAPES, SIZES
from ..decoding import SampleProcessor
from ..lm import collate, lm_loss, predicted_tokens, token_nll
from ..metrics import parse_rate, perplexity
from ..train import param_groups
from ..train import train as run_training
from ..transformer import GPT, GPTConfig
from ..utils import get_device, seed_everything

NAME = "gpt-shapes"
QA_SHARE = 0.25
PRETRAIN_QUESTIONS = ("color", "shape", "count", "exists", "position")  # not "relation": long and rare
STEPS = 1200
N_TRAIN, N_VAL, N_SAMPLES = 12000, 500, 1000  # documents to train on and to validate on; captions to sample
_SPLIT_SEED = {"train": 0, "val": 1, "test": 2}
_LOC = re.compile(r"\b(at|on|in) the\b")
_WHERE = "|".join(sorted((p for row in POSITIONS for p in row), key=len, reverse=True))   # "top left" before "top"
_OBJECT = re.compile(rf"\b({'|'.join(COLORS)}) (?:(?:{'|'.join(SIZES)}) )?({'|'.join(SHAPES)})"
                     rf"(?: (?:at|on|in) the ({_WHERE}))?")
_LEADING_PLACE = re.compile(rf"^(?:at|on|in) the ({_WHERE}) there ")


def world() -> ShapesWorld:
    """The world whose text the GPT reads: the default ShapesWorld."""
    return ShapesWorld(seed=0)


def config() -> GPTConfig:
    """The course GPT: 3 layers of width 128 (about 0.6 M parameters). The same on every device: chapter 03's
    comparisons (a larger model learns the fine-tuning task from scratch sooner) are measured on it."""
    return GPTConfig(vocab_size=ShapesWorld().tokenizer.vocab_size, d_model=128, n_layers=3, n_heads=4, max_len=64)


def _answerable(question: str, kind: str, caption: str, n_objects: int) -> bool:
    """Can the caption answer it? Questions that name an object by its location ("the circle at the top left")
    and questions about locations need a caption that gives every object's location."""
    placed = len(_LOC.findall(caption)) == n_objects
    return placed if kind == "position" or question.count(" the ") > 1 else True


def texts(n: int, split: str = "train", seed: int = 0, world: ShapesWorld | None = None) -> list[str]:
    """``n`` pre-training documents (one per scene of ``split``), seeded; see the module docstring."""
    world = ShapesWorld(seed=0) if world is None else world
    rng = random.Random(seed * 7919 + _SPLIT_SEED[split])
    docs = []
    for scene in world.scenes(n, split):
        caption = world.caption(scene, rng)
        doc = f"<bos> {caption} <eos>"
        if rng.random() < QA_SHARE:
            qa = [(q, a) for q, a, kind in world.questions(scene, rng)
                  if kind in PRETRAIN_QUESTIONS and _answerable(q, kind, caption, len(scene.objects))]
            q, a = rng.choice(qa)
            doc += f" {q} {a}."
        docs.append(doc)
    return docs


def instruction_prompt(k: int, world: ShapesWorld | None = None) -> list[int]:
    """The request of the fine-tuning task, "<bos> draw two objects. <eos>", as ids (k = 1, 2 or 3 objects)."""
    tok = (ShapesWorld(seed=0) if world is None else world).tokenizer
    return tok.encode(f"<bos> draw {NUMBERS[k]} object{'s' if k > 1 else ''}. <eos>")


def instruction_examples(n: int, split: str = "train", seed: int = 0,
                         world: ShapesWorld | None = None) -> list[tuple[list[int], list[int]]]:
    """``n`` (prompt ids, response ids) pairs of the fine-tuning task: a request for k objects and a caption of a
    scene with k objects, e.g. "<bos> draw two objects. <eos>" -> "a red circle and a blue square. <eos>"."""
    world = ShapesWorld(seed=0) if world is None else world
    rng = random.Random(seed * 7919 + _SPLIT_SEED[split] + 101)
    return [(instruction_prompt(len(scene.objects), world), world.tokenizer.encode(world.caption(scene, rng),
                                                                                  add_eos=True))
            for scene in world.scenes(n, split)]


def qa_batch(examples) -> dict[str, torch.Tensor]:
    """Pad (prompt, response) pairs; labels only on the response tokens (the prompt is given, not learned)."""
    batch = collate([p + a for p, a in examples])
    labels = torch.full_like(batch["labels"], IGNORE_INDEX)
    for b, (p, a) in enumerate(examples):
        labels[b, len(p):len(p) + len(a)] = torch.tensor(a)
    batch["labels"] = labels
    return batch


@torch.no_grad()
def instruction_accuracy(model: GPT, n_per_request: int = 32, seed: int = 0,
                         world: ShapesWorld | None = None) -> float:
    """Share of sampled responses (temperature 1, seeded) to "draw k objects." for k = 1, 2, 3 that are
    well-formed captions (``parse_caption(strict=True)``) naming exactly k objects."""
    world = ShapesWorld(seed=0) if world is None else world
    tok, device, right = world.tokenizer, next(model.parameters()).device, 0
    for k in (1, 2, 3):
        prompt = torch.tensor([instruction_prompt(k, world)] * n_per_request, device=device)   # (n, P)
        sampler = SampleProcessor(torch.Generator().manual_seed(seed * 10 + k))
        out = model.generate(prompt, model.config.max_len - prompt.shape[1], logits_processor=sampler,
                             eos_token_id=tok.eos_id)[:, prompt.shape[1]:].tolist()
        for row in out:
            try:
                right += len(world.parse_caption(tok.decode(row[:row.index(tok.eos_id)] if tok.eos_id in row
                                                            else row))) == k
            except ValueError:
                pass
    return right / (3 * n_per_request)


def caption_objects(text: str) -> list[tuple[str, str, str | None]]:
    """(colour, shape, cell name or None) of every object a caption that ``parse_caption`` accepts mentions, in
    order: "at the top there is a red circle." and "a red circle at the top." both give ("red", "circle", "top")."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a caption (str), got {type(text).__name__}")
    objects = []
    for sentence in text.split("."):
        lead = _LEADING_PLACE.match(sentence.strip())
        for m in _OBJECT.finditer(sentence):
            objects.append((m.group(1), m.group(2), m.group(3) or (lead.group(1) if lead else None)))
    return objects


def scene_problem(text: str) -> str | None:
    """Why a caption cannot describe a ShapesWorld scene: "not a caption" (``parse_caption(strict=True)`` rejects
    it), "repeated colour+shape" (the world never repeats a pair), "two objects in one cell"; None if it can."""
    try:
        world().parse_caption(text)
    except ValueError:
        return "not a caption"
    objects = caption_objects(text)
    if len({(c, s) for c, s, _ in objects}) < len(objects):
        return "repeated colour+shape"
    cells = [cell for _, _, cell in objects if cell is not None]
    return "two objects in one cell" if len(set(cells)) < len(cells) else None


def valid_scene_rate(texts: list[str]) -> tuple[int, int, int]:
    """(texts, of them captions that parse, of those captions of a possible scene)."""
    problems = [scene_problem(t) for t in texts]
    parsed = sum(p != "not a caption" for p in problems)
    return len(texts), parsed, sum(p is None for p in problems)


def encode(docs: list[str], world: ShapesWorld | None = None) -> list[list[int]]:
    """Documents -> token ids, each ending with <eos>."""
    tok = (ShapesWorld(seed=0) if world is None else world).tokenizer
    return [tok.encode(d, add_eos=True) for d in docs]


def length_batches(seqs: list[list[int]], batch_size: int, steps: int, generator: torch.Generator,
                   pool: int = 16) -> list[dict[str, torch.Tensor]]:
    """``steps`` padded batches drawn epoch by epoch in a seeded order. Within pools of ``pool`` batches the
    documents are sorted by length, so a batch holds documents of similar length and little padding."""
    if len(seqs) < batch_size:
        raise ValueError(f"length_batches needs at least batch_size={batch_size} documents, got {len(seqs)}")
    pool = min(pool, len(seqs) // batch_size)  # fewer documents than a pool of batches: smaller pools
    out = []
    while len(out) < steps:
        order = torch.randperm(len(seqs), generator=generator).tolist()
        chunks = []
        for i in range(0, len(order) - pool * batch_size + 1, pool * batch_size):
            chunk = sorted(order[i:i + pool * batch_size], key=lambda j: len(seqs[j]))
            chunks += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
        for b in torch.randperm(len(chunks), generator=generator).tolist():
            out.append(collate([seqs[j] for j in chunks[b]]))
    return out[:steps]


def sample_captions(model: GPT, n: int, seed: int = 0, temperature: float = 1.0) -> list[str]:
    """``n`` texts sampled from <bos> (multinomial at ``temperature``, seeded) until <eos>."""
    tok = ShapesWorld(seed=0).tokenizer
    device = next(model.parameters()).device
    start = torch.full((n, 1), tok.bos_id, dtype=torch.long, device=device)
    ids = model.generate(start, model.config.max_len - 1, logits_processor=SampleProcessor(
        torch.Generator().manual_seed(seed), temperature), eos_token_id=tok.eos_id)
    out = []
    for row in ids.tolist():
        row = row[1:row.index(tok.eos_id)] if tok.eos_id in row else row[1:]
        out.append(tok.decode(row))
    return out


def train(steps: int = STEPS, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
          cfg: GPTConfig | None = None, batch_size: int = 32, lr: float = 3e-3, n_train: int = N_TRAIN,
          eval_every: int = 100, build: Callable[[GPTConfig], GPT] = GPT):
    """Pre-train the course GPT; return (model, history): the loss of every step and the validation perplexity
    every ``eval_every`` steps. ``build(cfg)`` makes the model (another position encoding, say)."""
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    cfg = config() if cfg is None else cfg
    train_seqs = encode(texts(n_train, "train", seed, world()))
    val_seqs = validation_seqs()
    model = build(cfg).to(device)
    loader = length_batches(train_seqs, batch_size, steps, generator)
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    history = run_training(model, loader, lm_loss, optimizer, steps=steps, scheduler=schedule, clip_grad_norm=1.0,
                           eval_fn=lambda m: {"val_perplexity": perplexity(token_nll(m, val_seqs))},
                           eval_every=eval_every, progress=progress, count_fn=predicted_tokens)
    return model.eval(), history


def validation_seqs(n_val: int = N_VAL) -> list[list[int]]:
    """The validation documents, the same whatever the training seed."""
    return encode(texts(n_val, "val", 0, world()))


def evaluate(model: GPT, n_samples: int = N_SAMPLES) -> dict[str, float]:
    """Validation perplexity, and the share of captions sampled from <bos> (temperature 1, seed 0) that parse."""
    return {"val_perplexity": perplexity(token_nll(model, validation_seqs())),
            "parse_rate": parse_rate(sample_captions(model, n_samples, seed=0), world().parse_caption)}


def main(argv=None):
    args = cli.parser("Pre-train the course GPT on ShapesWorld text (chapter 03).", NAME, STEPS).parse_args(argv)
    cli.run(sys.modules[__name__], args)


if __name__ == "__main__":
    main()
