"""vitlib.train: the one training loop of the course, what it logs, and its command line (chapter 03).

    from vitlib.train import train, param_groups, warmup_cosine, History
    python -m vitlib.train gpt --steps 1200 --seed 0 --save gpt.safetensors            # one process
    torchrun --nproc_per_node 4 -m vitlib.train gpt --steps 1200 --seed 0              # four, with DDP

`loop` holds the loop, `history` what it logs, `distributed` how a batch is shared between processes, `__main__`
the command line.
"""

from .history import History
from .loop import param_groups, train, warmup_cosine

__all__ = ["History", "train", "param_groups", "warmup_cosine"]
