"""How much the KV cache speeds up vitlib.decoding.generate: 128 new tokens of a GPT, cached against recomputed.

Without the cache, step t runs the whole sequence of P + t tokens through the model again; with it, only the newest
token goes through, attending to the keys and values kept from earlier steps. Both produce the same tokens (checked
here, and in tests/test_decoding.py). The model has random weights: the speed does not depend on them.
Target: the cache makes generation >= 3x faster. Runs alternate, and each mode gets the median of its rounds, so
that a busy machine slows them alike.

    python benchmarks/generation.py [--new-tokens 128] [--prompt 16] [--batch 4] [--d-model 256] [--layers 4]
                                    [--repeats 3] [--device cpu|cuda]
"""

import argparse

import torch
from timing import medians  # benchmarks/timing.py, beside this script

from vitlib.decoding import generate
from vitlib.transformer import GPT, GPTConfig
from vitlib.utils import get_device

TARGET = 3.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=80, d_model=args.d_model, n_layers=args.layers, n_heads=args.d_model // 64,
                       max_len=args.prompt + args.new_tokens + 16)
    model = GPT(config).to(device).eval()
    prompt = torch.randint(0, config.vocab_size, (args.batch, args.prompt), device=device)

    def run(use_cache: bool):
        return lambda: generate(model, prompt, args.new_tokens, use_cache=use_cache)

    same = torch.equal(run(True)(), run(False)())
    t = medians({"cached": run(True), "full": run(False)}, device, args.repeats, sample_seconds=0)  # one call a round
    cached, full = t["cached"], t["full"]
    ratio = full / cached
    tokens = args.batch * args.new_tokens
    print(f"GPT d_model={args.d_model}, {args.layers} layers, max_len={config.max_len}, on {device}; "
          f"batch {args.batch}, prompt {args.prompt}, {args.new_tokens} new tokens")
    print(f"  with KV cache     {cached:8.3f} s   {tokens / cached:8,.0f} tokens/s")
    print(f"  without cache     {full:8.3f} s   {tokens / full:8,.0f} tokens/s")
    print(f"  same tokens: {same}")
    print(f"  speed-up {ratio:.1f}x:", "PASS" if ratio >= TARGET and same else "BELOW TARGET", f"(target {TARGET}x)")


if __name__ == "__main__":
    main()
