"""The benchmark scripts run and report their ratios (at tiny sizes: this checks that they work, not how fast)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each benchmark runs in its own process

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RUNS = {
    "attention.py": (["--lengths", "16", "--batch", "1", "--heads", "2", "--head-dim", "8", "--repeats", "1",
                      "--device", "cpu"], ["fused/PyTorch", "naive/PyTorch", "worst"]),
    "decoding.py": (["--batch", "1", "--prompt", "3", "--new-tokens", "4", "--beams", "2", "--d-model", "32",
                     "--layers", "1", "--image-tokens", "9", "--repeats", "1", "--device", "cpu"],
                    ["beam search", "sampling", "worst", "captioner", "same tokens: True"]),
    "diffusion.py": (["--batch", "1", "--compare-steps", "2", "--ddim-steps", "3", "2", "--ddpm-steps", "8",
                      "--ddpm-timed", "2", "--train-batch", "2", "--repeats", "1", "--device", "cpu"],
                     ["vitlib/diffusers", "DDPM", "latent UNet", "one training step", "worst"]),
    "generation.py": (["--new-tokens", "4", "--prompt", "2", "--batch", "1", "--d-model", "64", "--layers", "1",
                       "--repeats", "1", "--device", "cpu"], ["with KV cache", "same tokens: True", "speed-up"]),
    "shapesworld.py": (["--n", "200"], ["scenes/s"]),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs_and_reports(script):
    args, expected = RUNS[script]
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for text in expected:
        assert text in out.stdout, f"{script} did not print {text!r}:\n{out.stdout}"
