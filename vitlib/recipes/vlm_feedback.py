"""Recipe for chapter 11's interactive learning (seed 002): deploy the assistant where the world has changed, collect
its mistakes, correct them, fine-tune briefly, and measure the gain on scenes it never saw.

    1. deploy    the shipped vlm-shapes answers every question of N_FRESH fresh scenes that each hold a colour+shape
                 pair no training scene has (the held-out split, after the vlm_shapes.N_HELDOUT scenes it is
                 measured on): what users bring after deployment
    2. feedback  each wrong answer becomes a short chat with the right one: "<image> {question}" -> "{answer}."
    3. update    STEPS steps of projector + LM, each batch half corrections (drawn with replacement) and half the
                 ordinary instruction mix of the training scenes (replay, so the rest is not forgotten), lr LR
    4. measure   accuracy by question type before and after, per seed, on the first vlm_shapes.N_HELDOUT held-out
                 scenes (the gain: other scenes with the same new pairs) and the first vlm_shapes.N_TEST test scenes
                 (what is forgotten)

The fresh scenes share no scene with either measurement; the corrections never touch a measured question. A seed
fixes the update's batches. About 2 minutes a seed on one core.

    python -m vitlib.recipes.vlm_feedback --save     # writes data/results/vlm-feedback.json
"""

from __future__ import annotations

import argparse
import sys

import torch

from . import results_json, vlm_shapes
from .. import zoo
from ..instruct import collate_chats, encode_chat, instruction_mix
from ..train import param_groups, train as run_training
from ..utils import seed_everything
from ..vlm import VLM, answer
from ..vqa import accuracy_by_type

NAME = "vlm-feedback"
SEEDS = (0, 1, 2)
N_FRESH, STEPS, LR, BATCH_SIZE = 500, 150, 2e-4, 64
MEASURED = {"heldout": vlm_shapes.N_HELDOUT, "test": vlm_shapes.N_TEST}   # split -> its first scenes measured


@torch.no_grad()
def fresh_scenes(n_fresh: int = N_FRESH) -> tuple[list, torch.Tensor]:
    """The deployment's scenes and images (n_fresh, 3, 24, 24): held-out-split scenes after the measured ones,
    skipping any equal to a measured scene (a one-object scene comes up again and again)."""
    measured = {s.key() for split, n in MEASURED.items() for s in vlm_shapes.scenes_and_images(split, n)[0]}
    scenes, images = vlm_shapes.scenes_and_images("heldout", vlm_shapes.N_HELDOUT + 2 * n_fresh)
    keep = [i for i in range(vlm_shapes.N_HELDOUT, len(scenes)) if scenes[i].key() not in measured][:n_fresh]
    if len(keep) < n_fresh:
        raise ValueError(f"only {len(keep)} unmeasured held-out scenes among the first {len(scenes)}, "
                         f"fewer than n_fresh={n_fresh}")
    return [scenes[i] for i in keep], images[keep]


def corrections(model: VLM, n_fresh: int = N_FRESH) -> tuple[list[tuple[int, list[dict]]], dict]:
    """(the chats that correct ``model``'s wrong answers on the ``n_fresh`` fresh scenes, as (scene index, turns);
    the deployment's accuracy by type there)."""
    scenes, images = fresh_scenes(n_fresh)
    qa = vlm_shapes.questions_of(scenes)
    got = []
    for start in range(0, len(qa), 256):
        part = qa[start:start + 256]
        got += answer(model, images[[i for i, *_ in part]], [q for _, q, _, _ in part])
    wrong = [(i, q, a) for g, (i, q, a, _) in zip(got, qa) if g != a]
    chats = [(i, [{"role": "user", "content": f"<image> {q}"}, {"role": "assistant", "content": f"{a}."}])
             for i, q, a in wrong]
    return chats, accuracy_by_type([g == a for g, (_, _, a, _) in zip(got, qa)], [t for *_, t in qa])


def mixed_batches(fixes: list, fresh_images: torch.Tensor, n_image_tokens: int, generator: torch.Generator,
                  seed: int, batch_size: int = BATCH_SIZE):
    """Endless batches, half corrections (with replacement) and half the training scenes' instruction mix (drawn
    once with ``seed``); ``generator`` picks the rows."""
    if not fixes:
        raise ValueError("no corrections: the model answered every fresh question right")
    w, tok = vlm_shapes.world(), vlm_shapes.world().tokenizer
    scenes, images = vlm_shapes.scenes_and_images("train", vlm_shapes.N_TRAIN)
    half = batch_size // 2
    replay = instruction_mix(w, scenes, seed, vlm_shapes.WEIGHTS, vlm_shapes.SHORT_QUESTIONS)
    while True:
        fix_rows = torch.randint(len(fixes), (half,), generator=generator).tolist()
        old_rows = torch.randint(len(replay), (batch_size - half,), generator=generator).tolist()
        chats = [fixes[r][1] for r in fix_rows] + [vlm_shapes.fit(replay[r][2], n_image_tokens) for r in old_rows]
        batch = collate_chats([encode_chat(t, tok, n_image_tokens) for t in chats], tok.pad_id)
        pictures = torch.cat([fresh_images[[fixes[r][0] for r in fix_rows]], images[[replay[r][0] for r in old_rows]]])
        yield {**batch, "images": pictures}


def update(model: VLM, fixes: list, seed: int, steps: int = STEPS) -> VLM:
    """A fine-tuned copy of ``model`` (projector and LM), trained ``steps`` steps on ``mixed_batches``."""
    new = VLM(model.config)
    new.load_state_dict(model.state_dict())
    generator = seed_everything(seed)
    _, fresh_images = fresh_scenes()
    optimizer = torch.optim.AdamW(param_groups(new, vlm_shapes.WEIGHT_DECAY), lr=LR)
    run_training(new, mixed_batches(fixes, fresh_images, new.config.n_image_tokens, generator, seed),
                 vlm_shapes.chat_loss, optimizer, steps=steps, clip_grad_norm=1.0, progress=False, device="cpu")
    return new.eval()


def measure(model: VLM) -> dict:
    """{split: accuracy by question type} on the MEASURED scenes."""
    return {split: vlm_shapes.accuracy(model, split, n) for split, n in MEASURED.items()}


def run(seeds=SEEDS, steps: int = STEPS) -> dict:
    """Deploy the shipped vlm-shapes, correct it, update it once per seed; accuracies before and after."""
    model = zoo.load(vlm_shapes.NAME, device="cpu").eval()
    fixes, deployed = corrections(model)
    after = {seed: measure(update(model, fixes, seed, steps)) for seed in seeds}
    return {"n_corrections": len(fixes), "deployed": deployed, "before": measure(model), "after": after}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Interactive learning: mistakes corrected and learned (chapter 11).")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = run(args.seeds)
    for split in MEASURED:
        print(split, "before", results["before"][split]["all"]["accuracy"],
              "after", {s: a[split]["all"]["accuracy"] for s, a in results["after"].items()})
    print("corrections", results["n_corrections"])
    if args.save:
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        settings = {"seeds": args.seeds, "n_fresh": N_FRESH, "steps": STEPS, "lr": LR, "batch_size": BATCH_SIZE,
                    "vlm_sha256": zoo.load_config(vlm_shapes.NAME)["sha256"], "device": "cpu", "threads": 1}
        print("wrote", results_json.save(NAME, settings, results, command))
    return results


if __name__ == "__main__":
    main()
