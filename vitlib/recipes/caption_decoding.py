"""Recipe for chapter 10's decoding table: one captioner ("captioner-shapes-pooled", trained on the biased world where
a blue square follows a red circle, reading the mean of the CLIP's patch tokens), every decoding strategy of the
chapter, the same test scenes. The captioner that reads all 9 tokens ("captioner-shapes") names an absent object in
about 1 mention in 700 (CHAIR_i 0.0014): too few to cut; the pooled one hallucinates, which is what decoding can fix.

    greedy       y_t = argmax_v p(v | y_<t, V)                       V: the frozen CLIP's patch tokens of image I
    beam         the best of 4 beams by sum_t log p(y_t | y_<t, V) / |y|^1             (length_penalty 1)
    top_p        y_t ~ p(. | y_<t, V) cut to its nucleus of mass 0.9, temperature 1, over SEEDS (mean +- sd)
    clip_rerank  c* = argmax_c cos(E_I(I), E_T(c)), c in {greedy, beam, 8 top-p samples}, E: clip-shapes
    negclip_rerank   the same with chapter 05's clip-shapes-negclip, trained with attribute-swap negatives
    magic        zero-shot: the text-only gpt-shapes steered by clip-shapes (vitlib.guided_decoding.magic_search)
    vcd          l_cd = (1 + a) l(y | V) - a l(y | V') cut to p(y | V) >= 0.1 max p, greedy on l_cd,
                 V' = the CLIP tokens of distort(I, noise_step): the captioner reads patch tokens, not pixels

Selection (magic's k, alpha, beta; vcd's a, noise_step) on N_VAL validation scenes: among the grid's settings
whose BLEU is within BLEU_SLACK = 2 points of greedy's, the lowest CHAIR_i, ties broken by the higher BLEU; if no
setting is within 2 points, the highest BLEU. The test scenes choose nothing.

On N_TEST test scenes each strategy gets BLEU-4 against captioner_shapes.references (5 per scene), CLIPScore with
clip-shapes, CHAIR_i and CHAIR_s, the strict parse rate, the wall time (CPU, one thread), and on the N_TRIGGER test
scenes with a red circle but no blue square, how often the caption mentions a blue square (Wilson 95% interval).
The issue's target, printed and stored, not tuned for: a CLIP- or image-guided strategy cuts CHAIR_i by >= 30%
relative to greedy at a BLEU cost of at most 2 points. Measured on one core of a shared 2-core CPU (a 200-step
captioner standing in): per caption about 1 ms greedy, 5 ms beam, 2 ms top-p, 2 ms VCD, 6-20 ms MAGIC (k = 5-8),
22 ms re-ranking; at the default sizes (500 validation, 1000 + 150 test scenes, 3 seeds) about 2.5 minutes for
the validation grid and 3 for the table.

    python -m vitlib.recipes.caption_decoding --save     # writes data/results/caption-decoding.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
import sys
import time

import torch

from . import captioner_shapes, captioner_shapes_pooled, results_json
from .. import zoo
from ..captioner import Captioner
from ..checks import check_int, check_number, check_one_of, describe
from ..data import to_tensor
from ..decoding import LogitsProcessorList, TemperatureProcessor, TopPProcessor, beam_search, greedy, sample
from ..guided_decoding import ContrastiveModel, clip_rerank, distort, magic_search
from ..metrics import bleu, chair, chair_details, clip_score, parse_rate
from ..vision import check_images
from ..vqa import image_tokens

NAME = "caption-decoding"
CAPTIONER = captioner_shapes_pooled.NAME
LM_NAME = "gpt-shapes"
NEGCLIP_NAME = "clip-shapes-negclip"
N_TEST, N_VAL, N_TRIGGER, N_CHECK = captioner_shapes.N_TEST, captioner_shapes.N_VAL, captioner_shapes.N_TRIGGER, 40
SEEDS = (0, 1, 2)
BATCH = 250                 # images decoded at once
MAX_NEW_TOKENS = 38         # <bos> caption <eos> fits CLIP's 40 positions (the longest caption is 33 tokens)
BLEU_SLACK, TARGET_CUT = 2.0, 0.30
DEFAULTS = {                # each strategy's settings; a setting not named here is refused
    "greedy": {},
    "beam": {"num_beams": 4, "length_penalty": 1.0},
    "top_p": {"top_p": 0.9, "temperature": 1.0, "seed": 0},
    "clip_rerank": {"n_samples": 8, "seed": 0},
    "negclip_rerank": {"n_samples": 8, "seed": 0},
    "magic": {"k": 5, "alpha": 0.1, "beta": 2.0},
    "vcd": {"a": 1.0, "beta": 0.1, "noise_step": 500, "seed": 0},
}
STRATEGIES = tuple(DEFAULTS)
GUIDED = ("clip_rerank", "negclip_rerank", "magic", "vcd")   # the strategies the target is about
GRIDS = {"magic": {"k": (5, 8), "alpha": (0.1, 0.3), "beta": (1.0, 2.0, 4.0)},
         "vcd": {"a": (0.5, 1.0, 2.0), "noise_step": (500, 900)}}
METRICS = ("bleu", "clip_score", "chair_i", "chair_s", "parse_rate")


@functools.lru_cache(maxsize=1)
def course_models():
    """(clip-shapes, gpt-shapes, clip-shapes-negclip) from the zoo, frozen: the CLIP that grades and guides (and
    whose tokens the captioner reads), MAGIC's text-only LM, and the NegCLIP that guides negclip_rerank."""
    return tuple(zoo.load(n).requires_grad_(False).eval() for n in (captioner_shapes.CLIP_NAME, LM_NAME, NEGCLIP_NAME))


def split_data(split: str, n: int) -> tuple[list, torch.Tensor, torch.Tensor]:
    """(the first ``n`` scenes of ``split``, their CLIP patch tokens (n, 9, 64), their renders (n, 3, 24, 24))."""
    scenes, tokens = captioner_shapes.scene_tokens(split, n)
    return scenes, tokens, to_tensor(captioner_shapes.world().render_batch(scenes))


def trigger_data(n: int = N_TRIGGER) -> tuple[list, torch.Tensor, torch.Tensor]:
    """``split_data`` of the first ``n`` test scenes with a red circle and no blue square."""
    scenes, tokens = captioner_shapes.trigger_scenes(n)
    return scenes, tokens, to_tensor(captioner_shapes.world().render_batch(scenes))


def _check_inputs(captioner, tokens, renders) -> None:
    if not isinstance(captioner, Captioner):
        raise TypeError(f"captioner must be a vitlib.captioner.Captioner, got {describe(captioner)}")
    captioner.check_image(tokens)   # (N, S, d_image), N >= 1, finite
    check_images(renders, 3)
    if len(renders) != len(tokens):
        raise ValueError(f"tokens and renders must describe the same images, got {len(tokens)} and {len(renders)}")


def _texts(ids: torch.Tensor) -> list[str]:
    """Decoded ids (B, 1 + new) -> B texts: <bos> dropped, cut at the first <eos>."""
    tok = captioner_shapes.world().tokenizer
    return [tok.decode(row[:row.index(tok.eos_id)] if tok.eos_id in row else row) for row in ids[:, 1:].tolist()]


def _top_p(captioner, tokens, top_p, temperature, seed) -> list[str]:
    check_int(seed, "seed", minimum=0)
    cut = LogitsProcessorList([TemperatureProcessor(temperature), TopPProcessor(top_p)])   # transformers' order
    return captioner_shapes.captions(captioner, tokens, decoding=sample, logits_processor=cut,
                                     generator=torch.Generator().manual_seed(seed), max_new_tokens=MAX_NEW_TOKENS)


def _clip_rerank(captioner, tokens, renders, clip, n_samples, seed) -> list[str]:
    check_int(n_samples, "n_samples")
    n = n_samples
    drawn = _top_p(captioner, tokens.repeat_interleave(n, dim=0), **DEFAULTS["top_p"] | {"seed": seed})   # (N n)
    plain = captioner_shapes.captions(captioner, tokens, max_new_tokens=MAX_NEW_TOKENS)
    beams = captioner_shapes.captions(captioner, tokens, decoding=beam_search, max_new_tokens=MAX_NEW_TOKENS,
                                      **DEFAULTS["beam"])
    pool = [[g, b, *drawn[i * n:(i + 1) * n]] for i, (g, b) in enumerate(zip(plain, beams))]   # 2 + n per image
    return clip_rerank(clip, captioner_shapes.world().tokenizer, renders, pool)[0]


def _magic(renders, clip, lm, k, alpha, beta) -> list[str]:
    tok = captioner_shapes.world().tokenizer
    start = torch.full((len(renders), 1), tok.bos_id)                                     # (N, 1): <bos>
    return [c for r, st in zip(renders.split(BATCH), start.split(BATCH))
            for c in _texts(magic_search(lm, clip, r, st, MAX_NEW_TOKENS, k, alpha, beta, eos_token_id=tok.eos_id))]


def _vcd(captioner, tokens, renders, clip, a, beta, noise_step, seed) -> list[str]:
    check_int(seed, "seed", minimum=0)
    tokens_distorted = image_tokens(clip, distort(renders, noise_step, torch.Generator().manual_seed(seed)))  # V'
    tok, out = captioner_shapes.world().tokenizer, []
    for v, v_prime in zip(tokens.split(BATCH), tokens_distorted.split(BATCH)):
        model = ContrastiveModel(captioner.bind(v), captioner.bind(v_prime), a=a, beta=beta)
        start = torch.full((len(v), 1), tok.bos_id)                                       # (B, 1): <bos>
        out += _texts(greedy(model, start, MAX_NEW_TOKENS, eos_token_id=tok.eos_id))
    return out


@torch.no_grad()
def run_strategy(name: str, captioner: Captioner, tokens: torch.Tensor, renders: torch.Tensor, clip=None, lm=None,
                 **settings) -> list[str]:
    """One caption per image by strategy ``name`` (STRATEGIES) with ``settings`` over DEFAULTS[name]. tokens
    (N, 9, 64): the images' CLIP patch tokens, what the captioner reads; renders (N, 3, 24, 24) in [0, 1]: what
    CLIP reads (re-ranking, MAGIC, VCD's distortion). clip, lm default to clip-shapes (clip-shapes-negclip for
    negclip_rerank) and gpt-shapes. MAGIC reads
    neither tokens nor captioner: it is zero-shot. No strategy sees a scene, so none can peek at the answer."""
    check_one_of(name, "strategy", STRATEGIES)
    unknown = sorted(set(settings) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(f"unknown settings {unknown} for {name}; allowed: {', '.join(DEFAULTS[name]) or 'none'}")
    _check_inputs(captioner, tokens, renders)
    s = DEFAULTS[name] | settings
    if clip is None and name in GUIDED:
        clip = course_models()[2 if name == "negclip_rerank" else 0]
    if name == "greedy":
        return captioner_shapes.captions(captioner, tokens, max_new_tokens=MAX_NEW_TOKENS)
    if name == "beam":
        return captioner_shapes.captions(captioner, tokens, decoding=beam_search, max_new_tokens=MAX_NEW_TOKENS, **s)
    if name == "top_p":
        return _top_p(captioner, tokens, **s)
    if name in ("clip_rerank", "negclip_rerank"):
        return _clip_rerank(captioner, tokens, renders, clip, **s)
    if name == "magic":
        return _magic(renders, clip, course_models()[1] if lm is None else lm, **s)
    return _vcd(captioner, tokens, renders, clip, **s)


def score(captions: list[str], scenes: list, renders: torch.Tensor, clip=None) -> dict:
    """BLEU-4 against ``captioner_shapes.references``, mean CLIPScore (clip-shapes unless ``clip``), CHAIR_i
    (None when no caption names an object: 0/0), CHAIR_s and the strict parse rate of one caption per scene."""
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)) or not captions:
        raise ValueError(f"captions must be a non-empty list of str, got {describe(captions)}")
    if not isinstance(scenes, (list, tuple)) or not isinstance(renders, torch.Tensor) \
            or not len(captions) == len(scenes) == len(renders):
        raise ValueError(f"captions, scenes and renders must pair up, got {len(captions)} captions, "
                         f"{len(scenes) if isinstance(scenes, (list, tuple)) else describe(scenes)} scenes and "
                         f"{len(renders) if isinstance(renders, torch.Tensor) else describe(renders)} renders")
    world = captioner_shapes.world()
    named = any(mentioned for mentioned, _ in chair_details(captions, scenes, world))
    chair_i, chair_s = chair(captions, scenes, world) if named else (None, 0.0)
    return {"bleu": bleu(captions, captioner_shapes.references(scenes)),
            "clip_score": clip_score(course_models()[0] if clip is None else clip, renders, captions).mean().item(),
            "chair_i": chair_i, "chair_s": chair_s, "parse_rate": parse_rate(captions, world.parse_caption)}


def evaluate(name: str, captioner: Captioner, test: tuple, trigger: tuple, **settings) -> dict:
    """``score`` on the test scenes, the wall time of their decoding, and on the trigger scenes (red circle, no blue
    square) the rate of captions that mention a blue square; ``test``, ``trigger``: ``split_data`` triples."""
    start = time.perf_counter()
    texts = run_strategy(name, captioner, test[1], test[2], **settings)
    seconds = time.perf_counter() - start
    partner = captioner_shapes.bias_pair()[1]
    return {**score(texts, test[0], test[2]), "seconds": round(seconds, 2),
            "partner_given_trigger_only": captioner_shapes.mention_rate(
                run_strategy(name, captioner, trigger[1], trigger[2], **settings), trigger[0], partner),
            "examples": texts[:3]}


def select(rows: list[dict], greedy_bleu: float, slack: float = BLEU_SLACK) -> dict:
    """The validation rule: of the rows (each with "bleu" and "chair_i") whose BLEU >= greedy_bleu - slack, the one
    with the lowest CHAIR_i (None counts as the worst), ties by the higher BLEU; if none, the highest BLEU."""
    if isinstance(rows, dict) or not isinstance(rows, (list, tuple)) or not rows:
        raise ValueError(f"rows must be a non-empty list of dicts with 'bleu' and 'chair_i', got {describe(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {"bleu", "chair_i"} <= set(row):
            raise ValueError(f"rows[{i}] must be a dict with 'bleu' and 'chair_i', got {row!r:.80}")
        check_number(row["bleu"], f"rows[{i}]['bleu']")
    check_number(greedy_bleu, "greedy_bleu")
    check_number(slack, "slack", 0.0)
    near = [r for r in rows if r["bleu"] >= greedy_bleu - slack]
    if not near:
        return max(rows, key=lambda r: r["bleu"])
    return min(near, key=lambda r: (float("inf") if r["chair_i"] is None else r["chair_i"], -r["bleu"]))


def grid(spec: dict[str, tuple]) -> list[dict]:
    """Every combination of a grid's values: {"a": (1, 2), "b": (3,)} -> [{"a": 1, "b": 3}, {"a": 2, "b": 3}]."""
    if not isinstance(spec, dict) or not spec or not all(
            isinstance(v, (tuple, list)) and v for v in spec.values()):
        raise ValueError(f"a grid must be a non-empty dict of setting -> non-empty tuple of values, got {spec!r:.80}")
    return [dict(zip(spec, values)) for values in itertools.product(*spec.values())]


def validate(captioner: Captioner, val: tuple, grids: dict = GRIDS) -> dict:
    """On validation: greedy's metrics, each grid row's metrics, and the setting ``select`` chooses per strategy."""
    out = {"greedy": score(run_strategy("greedy", captioner, val[1], val[2]), val[0], val[2])}
    for name, spec in grids.items():
        rows = [{"settings": s, **score(run_strategy(name, captioner, val[1], val[2], **s), val[0], val[2])}
                for s in grid(spec)]
        out[name] = {"grid": rows, "chosen": select(rows, out["greedy"]["bleu"])["settings"]}
        print(f"validation {name}: chose {out[name]['chosen']}")
    return out


def mean_sd(runs: list[dict]) -> dict:
    """{"mean": {metric: ...}, "sd": {metric: ...}} over seeds of the numeric metrics and the trigger rate."""
    keys = [*METRICS, "seconds"]
    values = {k: [r[k] for r in runs if r[k] is not None] for k in keys}
    values["partner_given_trigger_only"] = [r["partner_given_trigger_only"]["rate"] for r in runs]
    return {"mean": {k: statistics.mean(v) if v else None for k, v in values.items()},
            "sd": {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in values.items()}}


def target(test: dict) -> dict:
    """Per guided strategy: CHAIR_i's cut relative to greedy, BLEU's cost in points, and whether the target holds."""
    g, out = test["greedy"], {}
    for name in GUIDED:
        row = test[name]
        cut = None if None in (row["chair_i"], g["chair_i"]) or not g["chair_i"] else 1 - row["chair_i"] / g["chair_i"]
        cost = g["bleu"] - row["bleu"]
        out[name] = {"chair_i_cut": cut, "bleu_cost": cost,
                     "holds": cut is not None and cut >= TARGET_CUT and cost <= BLEU_SLACK}
    return out


def check(captioner: Captioner, vcd_settings: dict, n: int = N_CHECK) -> dict:
    """What a unit test recomputes: greedy and VCD at ``vcd_settings`` on the first ``n`` test scenes."""
    scenes, tokens, renders = split_data("test", n)
    captions = {name: run_strategy(name, captioner, tokens, renders, **s)
                for name, s in (("greedy", {}), ("vcd", vcd_settings))}
    return {"n": n, "vcd": vcd_settings, "captions": captions,
            "metrics": {k: score(c, scenes, renders) for k, c in captions.items()}}


def disagreements(stored: dict, new: dict, share: float = 0.95, tol: float = 0.02) -> list[str]:
    """How ``new`` differs from ``stored`` beyond cross-machine floating point: fewer than ``share`` of the captions
    equal, or a metric off by more than ``tol`` (BLEU, in points, by more than 100 tol). [] when they agree."""
    problems = []
    for name, texts in stored["captions"].items():
        same = sum(a == b for a, b in zip(texts, new["captions"][name])) / len(texts)
        if same < share:
            problems.append(f"{name}: {same:.0%} of the captions equal, expected >= {share:.0%}")
        for k, v in stored["metrics"][name].items():
            w, scale = new["metrics"][name][k], 100 if k == "bleu" else 1
            if (v is None) != (w is None) or (v is not None and abs(v - w) > tol * scale):
                problems.append(f"{name} {k}: stored {v}, recomputed {w}")
    return problems


def run(captioner: Captioner, n_test: int = N_TEST, n_val: int = N_VAL, n_trigger: int = N_TRIGGER,
        seeds=SEEDS, grids: dict = GRIDS) -> dict:
    """The whole table: validation grid and choices, then every strategy on the test and trigger scenes."""
    chosen = validate(captioner, split_data("val", n_val), grids)
    test, trigger, table = split_data("test", n_test), trigger_data(n_trigger), {}
    for name in STRATEGIES:
        settings = chosen[name]["chosen"] if name in grids else {}
        if "seed" in DEFAULTS[name]:   # a stochastic strategy: mean and sd over seeds
            runs = [evaluate(name, captioner, test, trigger, **settings, seed=s) for s in seeds]
            table[name] = {**mean_sd(runs), "runs": runs, "settings": settings}
        else:
            table[name] = {**evaluate(name, captioner, test, trigger, **settings), "settings": settings}
        row = table[name].get("mean", table[name])
        print(f"{name:15s}" + " ".join(f"{k} {row[k]:.3f}" for k in METRICS if row[k] is not None)
              + f" {row['seconds']:.1f} s")
    return {"validation": chosen, "test": table, "target": target({k: v.get("mean", v) for k, v in table.items()})}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Every decoding strategy of chapter 10 on the biased world.")
    p.add_argument("--n-test", type=int, default=N_TEST)
    p.add_argument("--n-val", type=int, default=N_VAL)
    p.add_argument("--n-trigger", type=int, default=N_TRIGGER)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    captioner = zoo.load(CAPTIONER).eval()
    results = run(captioner, args.n_test, args.n_val, args.n_trigger, args.seeds)
    print("target (CHAIR_i cut >= 30% at <= 2 BLEU):", results["target"])
    if args.save:
        settings = {"n_test": args.n_test, "n_val": args.n_val, "n_trigger": args.n_trigger, "seeds": args.seeds,
                    "defaults": DEFAULTS, "grids": GRIDS, "bleu_slack": BLEU_SLACK, "target_cut": TARGET_CUT,
                    "max_new_tokens": MAX_NEW_TOKENS, "device": "cpu", "threads": 1,
                    "captioner": CAPTIONER, "captioner_sha256": zoo.load_config(CAPTIONER)["sha256"]}
        results["check"] = check(captioner, results["validation"]["vcd"]["chosen"])
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        print("wrote", results_json.save(NAME, settings, results, command))
    return results


if __name__ == "__main__":
    main()
