"""The `slow` marker, and progress for the long test run: a line when each chapter starts and when it ends.

nbval runs a notebook as one test per cell, so pytest's dots say nothing about which chapter is running
or how far it is; these lines do. Under pytest-xdist (`make test`) the hooks run in the controller,
which hears of every test a worker starts and finishes.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest


def notebook_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path.rsplit("/", 1)[-1] if path.endswith(".ipynb") else None


class ChapterProgress:
    def __init__(self, config):
        self.config = config
        self.cells = Counter()      # notebook -> cells collected
        self.done = Counter()       # notebook -> cells finished
        self.started: dict[str, float] = {}

    def write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            if reporter._tw.width_of_current_line:  # after a row of dots
                reporter.write("\n")
            reporter.write_line(line)

    def count(self, nodeids) -> None:
        if not self.cells:  # every xdist worker reports the same collection
            self.cells.update(nb for nb in map(notebook_of, nodeids) if nb)
            if self.cells:
                n = len(self.cells)
                self.write(f"{n} chapter{'s' * (n > 1)} to re-run, one to three minutes each on a CPU; "
                           "a line marks each one's start and end")

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.count(ids)

    def pytest_collection_finish(self, session):
        self.count(item.nodeid for item in session.items)

    def pytest_runtest_logstart(self, nodeid, location):
        nb = notebook_of(nodeid)
        if nb and nb not in self.started:
            self.started[nb] = time.monotonic()
            self.write(f"chapter {nb}: started ({time.strftime('%H:%M:%S')})")

    def pytest_runtest_logreport(self, report):
        nb = notebook_of(report.nodeid)
        if nb is None or report.when != "teardown":
            return
        self.done[nb] += 1
        if self.done[nb] == self.cells.get(nb):
            minutes, seconds = divmod(round(time.monotonic() - self.started.get(nb, time.monotonic())), 60)
            self.write(f"chapter {nb}: finished, {self.done[nb]} cells in {minutes} min {seconds:02d} s")


def pytest_collection_modifyitems(config, items):
    """A re-run chapter is slow: `make test-fast` (pytest -m "not slow") leaves the chapters out."""
    for item in items:
        if notebook_of(item.nodeid):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model, re-runs a chapter or times a benchmark "
                                       "(`make test-fast` leaves these out)")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist), not a worker
        config.pluginmanager.register(ChapterProgress(config), "chapter-progress")
