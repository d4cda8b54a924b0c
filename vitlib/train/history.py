"""What the training loop logs: metric values by step (chapter 03)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["History"]


class History:
    """Metric values by step: `log(step, loss=...)`, `h["loss"]`, `h.steps("loss")`, `last`, `plot`."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self._steps: dict[str, list[int]] = {}

    def log(self, step: int, **metrics: float) -> None:
        for name, value in metrics.items():
            value = value.item() if hasattr(value, "item") else value  # tensors and numpy scalars -> float
            self.values.setdefault(name, []).append(float(value))
            self._steps.setdefault(name, []).append(int(step))

    def _check(self, name: str) -> None:
        if name not in self.values:
            raise KeyError(f"no metric {name!r} in this history; it has {self.names}")

    @property
    def names(self) -> list[str]:
        return list(self.values)

    def __getitem__(self, name: str) -> list[float]:
        self._check(name)
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def steps(self, name: str) -> list[int]:
        self._check(name)
        return self._steps[name]

    def last(self, name: str) -> float:
        self._check(name)
        return self.values[name][-1]

    def plot(self, ax=None, names: Iterable[str] | None = None):
        """Plot each metric against its steps on `ax` (a new figure if None); return the axes."""
        import matplotlib.pyplot as plt  # lazy: only plotting needs matplotlib

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        for name in self.names if names is None else list(names):
            ax.plot(self.steps(name), self[name], label=name)
        ax.set_xlabel("step")
        ax.legend()
        return ax

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={self.last(n):.4g} ({len(self.values[n])} values)" for n in self.names)
        return f"History({shown})"
