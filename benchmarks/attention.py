"""How fast vitlib's attention is, against PyTorch's F.scaled_dot_product_attention measured in the same run.

For each sequence length T, times one forward call of
  - vitlib fused  scaled_dot_product_attention(..., impl="fused")  (target: within 1.1x of PyTorch)
  - vitlib naive  scaled_dot_product_attention(..., impl="naive")  (the formula written out; reported, no target)
  - PyTorch       F.scaled_dot_product_attention                   (the reference)
on q, k, v of shape (batch, heads, T, head_dim), without and with a causal mask. The three are called in turn,
round after round, and each gets the median of its rounds, so that a busy machine slows them alike; a round times
enough calls in a row to last about 20 ms.

    python benchmarks/attention.py [--lengths 64 256 1024] [--batch 8] [--heads 8] [--head-dim 64] [--repeats 9]
                                   [--device cpu|cuda] [--dtype float32|float16|bfloat16]
"""

import argparse

import torch
import torch.nn.functional as F
from timing import medians  # benchmarks/timing.py, beside this script

from vitlib.attention import scaled_dot_product_attention
from vitlib.utils import get_device

TARGET = 1.1  # fused path / PyTorch, at most


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default=None, help="default: vitlib.utils.get_device()")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    device = get_device(args.device)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)

    print(f"attention forward, (batch, heads, T, head_dim) = ({args.batch}, {args.heads}, T, {args.head_dim}), "
          f"{args.dtype} on {device}, median of {args.repeats} rounds; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'T':>6} {'mask':>7} {'PyTorch ms':>11} {'fused ms':>9} {'naive ms':>9} {'fused/PyTorch':>14} "
          f"{'naive/PyTorch':>14}")
    worst = 0.0
    with torch.inference_mode():
        for T in args.lengths:
            shape = (args.batch, args.heads, T, args.head_dim)
            q, k, v = (torch.randn(shape, generator=g).to(device, dtype) for _ in range(3))
            for causal in (False, True):
                t = medians({
                    "torch": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                    "fused": lambda: scaled_dot_product_attention(q, k, v, is_causal=causal, impl="fused"),
                    "naive": lambda: scaled_dot_product_attention(q, k, v, is_causal=causal, impl="naive"),
                }, device, args.repeats)
                fused, naive = t["fused"] / t["torch"], t["naive"] / t["torch"]
                worst = max(worst, fused)
                print(f"{T:>6} {'causal' if causal else 'none':>7} {t['torch'] * 1e3:>11.3f} {t['fused'] * 1e3:>9.3f} "
                      f"{t['naive'] * 1e3:>9.3f} {fused:>13.2f}x {naive:>13.2f}x")
    print("PASS" if worst <= TARGET else "BELOW TARGET",
          f"(fused path within {TARGET}x of F.scaled_dot_product_attention at every length; worst {worst:.2f}x)")


if __name__ == "__main__":
    main()
