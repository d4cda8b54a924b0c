"""The chapters tag the cells whose output nbval compares (`nbval-check-output`); prove, on a one-cell notebook,
that under the options `make test` uses a tagged cell fails on a wrong output and an untagged one does not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each case runs pytest in its own process

ROOT = Path(__file__).resolve().parents[1]


def one_cell_notebook(path: Path, stored_output: str, tags: list[str]) -> Path:
    cell = {"cell_type": "code", "execution_count": 1, "id": "c000", "metadata": {"tags": tags},
            "outputs": [{"name": "stdout", "output_type": "stream", "text": [stored_output]}],
            "source": ["print(6 * 7)"]}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.mark.parametrize("stored, tags, passes", [("42\n", ["nbval-check-output"], True),
                                                  ("41\n", ["nbval-check-output"], False),
                                                  ("41\n", [], True)])
def test_tagged_cells_are_compared(tmp_path, stored, tags, passes):
    nb = one_cell_notebook(tmp_path / "t.ipynb", stored, tags)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
                          str(nb)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (run.returncode == 0) == passes, run.stdout[-2000:]
