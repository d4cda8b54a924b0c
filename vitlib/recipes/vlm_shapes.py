"""Recipe for chapter 11's assistant: a LLaVA-style VLM (vitlib.vlm) on the biased ShapesWorld, in LLaVA's two stages.

    model    the frozen clip-shapes vision tower (9 patch tokens, class token dropped), a two-layer MLP projector
             64 -> 128, and chapter 03's gpt-shapes as the language model, its 64 learned positions extended to
             MAX_LEN (the new ones drawn as GPT-2 draws them)
    stage 1  feature alignment: the projector alone, on caption chats ("<image> describe the image." -> a caption),
             STAGE1_STEPS steps
    stage 2  instruction tuning: projector and LM, on ``instruct.instruction_mix`` (short answers by question type,
             SHORT_QUESTIONS to a chat; detailed descriptions; multi-turn conversations; in the proportions
             WEIGHTS), STEPS steps; the loss only on the assistant's words
    L = -(1/N) sum over the answer tokens and their <eos> of log p(y_(t+1) | y_<=t, image)
    AdamW, warm-up then cosine decay per stage, batches of BATCH_SIZE chats

Data: N_TRAIN training scenes (1-3 objects, never a held-out pair), a fresh draw of chats every epoch; a chat too
long for MAX_LEN loses its last question-answer pairs. Evaluation (``evaluate``): ``vlm.answer`` on every question
``world.questions`` asks of N_TEST test scenes and of N_HELDOUT scenes holding a held-out colour+shape pair (by
question type, Wilson 95% intervals), and CHAIR of the answers to "describe the image." on the test scenes, greedy
and with chapter 10's visual contrastive decoding (VCD_A, VCD_STEP).

    python -m vitlib.recipes.vlm_shapes --save     # one CPU core, writes data/zoo/vlm-shapes.*
"""

from __future__ import annotations

import functools
import random
import sys

import torch

from . import cli
from .. import zoo
from ..data import ShapesWorld, to_tensor
from ..decoding import greedy
from ..guided_decoding import ContrastiveModel, distort
from ..instruct import caption_chats, collate_chats, encode_chat, instruction_mix, prompt_ids
from ..lm import predicted_tokens
from ..metrics import chair
from ..train import param_groups, train as run_training, warmup_cosine
from ..transformer import GPT
from ..utils import count_parameters, seed_everything
from ..vlm import VLM, VLMConfig, answer
from ..vqa import accuracy_by_type

NAME = "vlm-shapes"
CLIP_NAME, LM_NAME = "clip-shapes", "gpt-shapes"
BIAS = 0.9
MAX_LEN = 96
STAGE1_STEPS, STEPS = 1000, 8000
BATCH_SIZE = 64
LR1, LR2, WARMUP, WEIGHT_DECAY = 2e-3, 3e-3, 100, 0.01
WEIGHTS = {"short": 0.7, "detailed": 0.1, "conversation": 0.2}   # the instruction mix: more short answers
SHORT_QUESTIONS = 6   # questions packed into one short-answer chat (LLaVA-1.5's multi-turn VQA): ~MAX_LEN ids
N_TRAIN, N_VAL, N_TEST, N_HELDOUT = 20000, 300, 500, 300
DESCRIBE = "describe the image."
VCD_A, VCD_STEP = 1.0, 500


def world() -> ShapesWorld:
    """24x24 images (the CLIP's), 1-3 objects, the default held-out pairs and the bias red circle -> blue square."""
    return ShapesWorld(image_size=24, max_objects=3, seed=0, bias=BIAS)


def config(**overrides) -> VLMConfig:
    """gpt-shapes' sizes with MAX_LEN positions, clip-shapes' tower; ``overrides``: projector, image_pool, ..."""
    lm = zoo.load_config(LM_NAME)["config"]
    sizes = {k: lm[k] for k in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "activation", "norm_eps")}
    return VLMConfig(**sizes, max_len=MAX_LEN, **overrides)


def build(cfg: VLMConfig | None = None, pretrained_lm: bool = True) -> VLM:
    """A VLM with clip-shapes' vision tower and (with ``pretrained_lm``) gpt-shapes' weights, positions extended."""
    model = VLM(config() if cfg is None else cfg)
    model.load_vision(zoo.load(CLIP_NAME, device="cpu"))
    if pretrained_lm:
        gpt: GPT = zoo.load(LM_NAME, device="cpu")
        state = gpt.state_dict()
        key = next(k for k in state if k.endswith("pos_emb.weight"))
        pos = model.lm.state_dict()[key].clone()                          # (MAX_LEN, d): GPT-2's N(0, 0.02) init
        pos[:len(state[key])] = state[key]                                 # the 64 positions gpt-shapes learned
        model.lm.load_state_dict({**state, key: pos})
    return model


@functools.lru_cache(maxsize=4)
def scenes_and_images(split: str, n: int) -> tuple[list, torch.Tensor]:
    """The first ``n`` scenes of ``split`` and their renders (n, 3, 24, 24) in [0, 1]."""
    w = world()
    scenes = w.scenes(n, split)
    return scenes, to_tensor(w.render_batch(scenes))


def fit(turns: list[dict], n_image_tokens: int, max_len: int = MAX_LEN) -> list[dict]:
    """``turns`` without their last question-answer pairs until the encoded chat fits ``max_len`` ids."""
    tok = world().tokenizer
    while len(turns) > 2 and len(encode_chat(turns, tok, n_image_tokens)["input_ids"]) > max_len:
        turns = turns[:-2]
    if len(encode_chat(turns, tok, n_image_tokens)["input_ids"]) > max_len:
        raise ValueError(f"the first exchange alone does not fit max_len={max_len}: {turns!r:.120}")
    return turns


def batches(stage: int, scenes: list, images: torch.Tensor, n_image_tokens: int, batch_size: int,
            generator: torch.Generator, seed: int):
    """Endless batches {"input_ids", "labels", "attention_mask", "images"}: each epoch, a fresh draw of chats (stage
    1: caption chats; stage 2: the instruction mix, SHORT_QUESTIONS to a short chat) for every scene, in a seeded
    order."""
    if len(scenes) < batch_size:
        raise ValueError(f"batches needs at least batch_size={batch_size} scenes, got {len(scenes)}")
    w, tok, epoch = world(), world().tokenizer, 0
    while True:
        draw = seed * 1_000_003 + epoch
        chats = (list(enumerate(caption_chats(w, scenes, draw))) if stage == 1 else
                 [(i, turns) for i, _, turns in instruction_mix(w, scenes, draw, WEIGHTS, SHORT_QUESTIONS)])
        order = torch.randperm(len(chats), generator=generator)
        for rows in order[:len(order) - len(order) % batch_size].split(batch_size):
            picked = [chats[r] for r in rows.tolist()]
            encoded = [encode_chat(fit(turns, n_image_tokens), tok, n_image_tokens) for _, turns in picked]
            yield {**collate_chats(encoded, tok.pad_id), "images": images[[i for i, _ in picked]]}
        epoch += 1


def chat_loss(model: VLM, batch: dict) -> torch.Tensor:
    return model(batch["input_ids"], batch["images"], labels=batch["labels"],
                 attention_mask=batch["attention_mask"])[0]


def train(steps: int = STEPS, seed: int = 0, device="cpu", progress: bool = True, stage1_steps: int = STAGE1_STEPS,
          cfg: VLMConfig | None = None, freeze_lm: bool = False, n_train: int = N_TRAIN,
          batch_size: int = BATCH_SIZE):
    """Stage 1 (projector only, ``stage1_steps``; 0 skips it), then stage 2 (projector and, unless ``freeze_lm``,
    the LM, ``steps``). Returns (model, history): the loss of every step of both stages, and "stage1_steps"."""
    scenes, images = scenes_and_images("train", n_train)
    generator = seed_everything(seed)   # after the data, so that a cached or a fresh build draws the same numbers
    model = build(cfg).to(device)
    n_img, losses = model.config.n_image_tokens, []
    for stage, n_steps, lr in ((1, stage1_steps, LR1), (2, steps, LR2)):
        if n_steps == 0:
            continue
        model.lm.requires_grad_(stage == 2 and not freeze_lm)
        optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=lr)
        stream = batches(stage, scenes, images, n_img, batch_size, generator, seed + stage)
        history = run_training(model, stream, chat_loss, optimizer, steps=n_steps,
                               scheduler=warmup_cosine(optimizer, n_steps, WARMUP), clip_grad_norm=1.0,
                               progress=progress, device=device, count_fn=predicted_tokens)
        losses += history["loss"]
    model.lm.requires_grad_(True)
    return model.eval(), {"loss": losses, "stage1_steps": stage1_steps}


def questions_of(scenes: list, seed: int = 0) -> list[tuple[int, str, str, str]]:
    """(scene index, question, answer, type) for every question ``world.questions`` asks of each scene."""
    w, rng = world(), random.Random(seed)
    return [(i, q, a, t) for i, s in enumerate(scenes) for q, a, t in w.questions(s, rng)]


@torch.no_grad()
def accuracy(model: VLM, split: str, n: int, batch_size: int = 256) -> dict:
    """``vqa.accuracy_by_type`` of ``vlm.answer`` on every question of the first ``n`` scenes of ``split``."""
    scenes, images = scenes_and_images(split, n)
    qa = questions_of(scenes)
    device = next(model.parameters()).device
    got = []
    for start in range(0, len(qa), batch_size):
        part = qa[start:start + batch_size]
        got += answer(model, images[[i for i, *_ in part]].to(device), [q for _, q, _, _ in part])
    return accuracy_by_type([g == a for g, (_, _, a, _) in zip(got, qa)], [t for *_, t in qa])


@torch.no_grad()
def describe(model: VLM, images: torch.Tensor, vcd: bool = False, max_new_tokens: int = 45) -> list[str]:
    """The answers to "<image> describe the image." (greedy; with ``vcd``, contrasted with distorted images)."""
    tok = world().tokenizer
    prompt = prompt_ids([], f"<image> {DESCRIBE}", tok, model.config.n_image_tokens)
    start = prompt[None].expand(len(images), -1).to(images.device)             # (B, P): one prompt, B images
    bound = model.bind(images)
    if vcd:
        noisy = distort(images, VCD_STEP, torch.Generator(images.device).manual_seed(0))
        bound = ContrastiveModel(bound, model.bind(noisy), a=VCD_A, beta=0.1)
    ids = greedy(bound, start, min(max_new_tokens, model.config.max_len - start.shape[1]), eos_token_id=tok.eos_id)
    return [tok.decode(row[:row.index(tok.eos_id)] if tok.eos_id in row else row)
            for row in ids[:, start.shape[1]:].tolist()]


def evaluate(model: VLM, n_test: int = N_TEST, n_heldout: int = N_HELDOUT) -> dict:
    """Accuracy by question type on test and held-out scenes; CHAIR of descriptions, greedy and with VCD."""
    scenes, images = scenes_and_images("test", n_test)
    device = next(model.parameters()).device
    out = {"test": accuracy(model, "test", n_test), "heldout": accuracy(model, "heldout", n_heldout)}
    for name, vcd in (("describe", False), ("describe_vcd", True)):
        texts = describe(model, images.to(device), vcd=vcd)
        chair_i, chair_s = chair(texts, scenes, world())
        out[name] = {"chair_i": round(chair_i, 4), "chair_s": round(chair_s, 4), "examples": texts[:3]}
    out["parameters"] = count_parameters(model)
    return out


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    cli.run(sys.modules[__name__], parser.parse_args(argv))


if __name__ == "__main__":
    main()
