"""vitlib.decoding against transformers' generate: beam search and sampling on the same GPT, timed in one run; and
what the captioner's cache saves (chapter 10).

The GPT is exported with vitlib.hf.to_hf_gpt2, so that both libraries decode the same weights; each row checks that
they produce the same tokens (for sampling: from the same seed) before it reports the time ratio vitlib / HF.
The weights are random but spread (as tests/tiny_models.tiny_gpt does), so that the next-token distributions are
peaked and beam search has no near-ties that rounding could flip. Runs alternate and each gets the median of its
rounds (benchmarks/timing.py). Target: vitlib within 1.5x of transformers' time on every row. The ratio includes
the models' own forward passes, which differ (GPT-2 projects q, k, v in one fused matmul, vitlib in three): on a
2-core CPU vitlib's GPT alone takes about 1.2x GPT-2's time, so a ratio near that means the loops add little.

The captioner (vitlib.captioner) cross-attends to ``--image-tokens`` image tokens (576: CLIP ViT-L/14 at 336 px).
With the cache, each layer projects the image to keys and values once and every step feeds only the newest token;
without it, every step recomputes the whole sequence and the image's keys and values. Both give the same tokens.

    python benchmarks/decoding.py [--batch 4] [--prompt 8] [--new-tokens 32] [--beams 4] [--d-model 256]
                                  [--layers 4] [--image-tokens 576] [--repeats 3] [--device cpu|cuda]
"""

import argparse

import torch
from timing import medians  # benchmarks/timing.py, beside this script

from vitlib.captioner import Captioner, CaptionerConfig
from vitlib.decoding import beam_search, greedy, sample
from vitlib.hf import to_hf_gpt2
from vitlib.transformer import GPT, GPTConfig
from vitlib.utils import get_device

TARGET = 1.5


def gpt_rows(args, device) -> dict:
    """Rows for the text decoder: name -> (vitlib call, transformers call), each returning the sequences (B, T')."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=80, d_model=args.d_model, n_layers=args.layers,
                       n_heads=max(1, args.d_model // 64), max_len=args.prompt + args.new_tokens + 16)
    model = GPT(config).to(device).eval()
    with torch.no_grad():   # spread the weights: peaked distributions, like a trained model's
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    hf = to_hf_gpt2(model)
    prompt = torch.randint(1, config.vocab_size, (args.batch, args.prompt), device=device)
    hf_args = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=args.new_tokens, pad_token_id=0)

    def seeded(fn):   # both samplers draw from the global generator: the same seed, the same tokens
        return lambda: (torch.manual_seed(0), fn())[1]

    return {
        f"beam search, {args.beams} beams": (
            lambda: beam_search(model, prompt, args.new_tokens, args.beams)[0],
            lambda: hf.generate(prompt, num_beams=args.beams, do_sample=False, early_stopping=False, **hf_args)),
        "sampling": (seeded(lambda: sample(model, prompt, args.new_tokens)),
                     seeded(lambda: hf.generate(prompt, do_sample=True, top_k=0, **hf_args))),
    }


def captioner_speedup(args, device) -> tuple[float, float, bool]:
    """(seconds with the cache, seconds without, same tokens) for greedy captions of a batch of random images."""
    torch.manual_seed(0)
    config = CaptionerConfig(vocab_size=80, max_len=args.prompt + args.new_tokens + 16, d_model=args.d_model,
                             n_heads=max(1, args.d_model // 64), n_layers=args.layers, d_image=args.d_model)
    model = Captioner(config).to(device).eval()
    image = torch.randn(args.batch, args.image_tokens, args.d_model, device=device)     # (B, S, d_image)
    prompt = torch.randint(1, config.vocab_size, (args.batch, args.prompt), device=device)
    calls = {use_cache: (lambda use_cache=use_cache: greedy(model.bind(image), prompt, args.new_tokens,
                                                            use_cache=use_cache)) for use_cache in (True, False)}
    same = torch.equal(calls[True](), calls[False]())
    t = medians({"cache": calls[True], "none": calls[False]}, device, args.repeats, sample_seconds=0)
    return t["cache"], t["none"], same


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-tokens", type=int, default=576)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = get_device(args.device)
    rows = gpt_rows(args, device)
    print(f"GPT d_model={args.d_model}, {args.layers} layers, on {device}; batch {args.batch}, prompt "
          f"{args.prompt}, {args.new_tokens} new tokens; {torch.get_num_threads()} threads")
    print(f"  {'':<24}{'vitlib s':>10}{'HF s':>10}{'vitlib/HF':>11}  same tokens")
    worst, all_same = 0.0, True
    with torch.inference_mode():
        for name, (ours, theirs) in rows.items():
            same = torch.equal(ours(), theirs())
            t = medians({"vitlib": ours, "hf": theirs}, device, args.repeats, sample_seconds=0)  # one call a round
            ratio = t["vitlib"] / t["hf"]
            worst, all_same = max(worst, ratio), all_same and same
            print(f"  {name:<24}{t['vitlib']:>10.3f}{t['hf']:>10.3f}{ratio:>10.2f}x  {same}")
    print("PASS" if worst <= TARGET and all_same else "BELOW TARGET",
          f"(vitlib within {TARGET}x of transformers' generate, the same tokens; worst {worst:.2f}x)")
    with torch.inference_mode():
        cached, uncached, same = captioner_speedup(args, device)
    print(f"captioner, {args.image_tokens} image tokens, greedy: {cached:.3f} s with the cache, {uncached:.3f} s "
          f"without: speed-up {uncached / cached:.1f}x, same tokens: {same}")


if __name__ == "__main__":
    main()
