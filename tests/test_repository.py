"""Checks of the repository as a whole: table of contents, committed notebooks, set-up, dependencies.

Fast: nothing is executed. (The notebooks themselves are re-run by nbval; see `make test`.)
Each check is a function that returns a list of problems, so that it can be tested on a notebook
known to be bad (the `test_checker_*` tests) and not only on the chapters that happen to exist.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
NOTEBOOK_NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
COLAB_PREFIX = "https://colab.research.google.com/github/"


# --------------------------------------------------------------------------- reading the repository


def load_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def repository() -> tuple[str, str]:
    """(url, branch) from _config.yml: the one place the repository's address is written."""
    repo = load_yaml("_config.yml")["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def chapter_notebooks() -> list[Path]:
    return sorted(CHAPTERS.glob("*.ipynb"))


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def toc_files(node) -> list[str]:
    """Every `root`/`file` entry of a jb-book _toc.yml, in reading order."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(str(node[key]))
        for key, value in node.items():
            if key not in ("root", "file"):
                found.extend(toc_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(toc_files(item))
    return found


def strip_suffix(entry: str) -> str:
    return re.sub(r"\.(ipynb|md)$", "", entry)


# --------------------------------------------------------------------------- checks (return problems)


def toc_problems(toc_entries: list[str], notebooks: list[str]) -> list[str]:
    """The chapters listed in the toc are exactly the notebooks in chapters/, in file-name order."""
    listed = [strip_suffix(e) for e in toc_entries if e.startswith("chapters/")]
    present = [f"chapters/{strip_suffix(n)}" for n in notebooks]
    problems = []
    for name in sorted(set(listed) - set(present)):
        problems.append(f"_toc.yml lists {name}, but chapters/ has no such notebook")
    for name in sorted(set(present) - set(listed)):
        problems.append(f"{name}.ipynb is in chapters/, but _toc.yml does not list it")
    if len(listed) != len(set(listed)):
        problems.append(f"_toc.yml lists a chapter twice: {listed}")
    in_both = [n for n in listed if n in present]
    if in_both != sorted(in_both):
        problems.append(f"_toc.yml does not list the chapters in reading order: {in_both}")
    for n in notebooks:
        if not NOTEBOOK_NAME.match(n):
            problems.append(f"chapters/{n} is not named NN_short_name.ipynb")
    return problems


def error_output_problems(nb: dict) -> list[str]:
    """No cell holds an error, unless it is tagged `raises-exception` (an error shown on purpose)."""
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i} has an error output: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and "Traceback (most recent call last)" in "".join(
                out.get("text", "")
            ):
                problems.append(f"cell {i} printed a traceback")
    return problems


def execution_order_problems(nb: dict) -> list[str]:
    """Code cells were run once each, top to bottom, in a fresh kernel: counts 1, 2, 3, ...

    A cell with no code is skipped by a kernel and may have no count.
    """
    problems = []
    expected = 1
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        count = cell.get("execution_count")
        if count is None and not source(cell).strip():
            continue
        if count != expected:
            problems.append(
                f"cell {i} has execution_count {count}, expected {expected}: "
                "re-run the notebook from top to bottom in a fresh kernel and save it"
            )
            return problems  # one mismatch says it all
        expected += 1
    return problems


def colab_problems(nb: dict, name: str, repo_url: str, branch: str) -> list[str]:
    """The Colab set-up cell installs from the repository in _config.yml; Colab links point to this notebook."""
    problems = []
    code = [(i, source(c)) for i, c in enumerate(nb.get("cells", [])) if c.get("cell_type") == "code"]
    setup = [(i, s) for i, s in code if "colab" in s.lower()]
    if not setup:
        problems.append("no Colab set-up cell (a code cell that checks for google.colab and installs the course)")
    else:
        i, s = setup[0]
        if repo_url not in s:
            problems.append(f"the Colab set-up cell (cell {i}) does not install from {repo_url}")
        for url in re.findall(r"https?://github\.com/[\w.\-]+/[\w.\-]+", s):
            if url.removesuffix(".git") != repo_url:
                problems.append(f"the Colab set-up cell (cell {i}) uses {url}, not {repo_url}")
    expected_link = colab_link(repo_url, branch, f"chapters/{name}")
    for i, cell in enumerate(nb.get("cells", [])):
        for link in re.findall(re.escape(COLAB_PREFIX) + r"[^\s)\"'<>\]]+", source(cell)):
            if link != expected_link:
                problems.append(f"cell {i} links to {link}, expected {expected_link}")
    return problems


def colab_link(repo_url: str, branch: str, path: str) -> str:
    owner_repo = repo_url.removeprefix("https://github.com/")
    return f"{COLAB_PREFIX}{owner_repo}/blob/{branch}/{path}"


CHECKED_TAG = "nbval-check-output"
MIN_CHECKED_CELLS = 3


def checked_output_problems(nb: dict) -> list[str]:
    """Key cells are tagged for nbval to compare their output (a tag, not a comment: readers never see it)."""
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    checked = [c for c in code_cells if CHECKED_TAG in c.get("metadata", {}).get("tags", [])]
    problems = []
    if len(checked) < MIN_CHECKED_CELLS:
        problems.append(f"{len(checked)} cells tagged {CHECKED_TAG!r}, want at least {MIN_CHECKED_CELLS}")
    for i, c in enumerate(code_cells):
        if "NBVAL_CHECK_OUTPUT" in "".join(c["source"]):
            problems.append(f"code cell {i} marks itself with a # NBVAL_CHECK_OUTPUT comment; tag it {CHECKED_TAG!r}")
    return problems


PAGE_WIDTH = 88  # characters of code the book's page shows without a scroll bar (book/_static/course.css)


def output_text(out: dict) -> str:
    """The text an output shows on the page: a stream, or the plain text of a result without a picture."""
    if out.get("output_type") == "stream":
        return source({"source": out.get("text", "")})
    data = out.get("data", {})
    shown_instead = ("image/", "text/html", "application/vnd.jupyter.widget-view")  # the book shows these
    if "text/plain" in data and not any(k.startswith(shown_instead) for k in data):
        return source({"source": data["text/plain"]})
    return ""


def width_problems(nb: dict, width: int = PAGE_WIDTH) -> list[str]:
    """Code lines and printed text fit the page, so nothing is cut off in the book or on a phone's scroll."""
    problems = []
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(code_cells):
        for line in source(cell).splitlines():
            if len(line) > width:
                problems.append(f"code cell {i}: a {len(line)}-character line: {line[:40]!r}...")
        for out in cell.get("outputs", []):
            for line in output_text(out).split("\n"):
                shown = line.rsplit("\r", 1)[-1]  # a progress bar redraws the line after a carriage return
                if len(shown) > width:
                    problems.append(f"code cell {i}: a {len(shown)}-character output line: {shown[:40]!r}...")
    return problems


SOLUTION_TITLE = "#@title Solution"
SOLUTION_METADATA = {
    "cellView": "form",                                      # Colab: a form, code folded
    "jupyter": {"source_hidden": True},                      # JupyterLab, Notebook 7, VS Code: folded
    "mystnb": {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"},  # the book
}


def solution_problems(nb: dict) -> list[str]:
    """Every solution cell is folded in Colab, Jupyter and the book, and labelled as a solution."""
    problems = []
    for i, cell in enumerate(nb["cells"]):
        text = source(cell)
        if cell["cell_type"] != "code" or not text.lstrip().lower().startswith(("#@title solution", "# solution")):
            continue
        if text.splitlines()[0] != SOLUTION_TITLE:
            problems.append(f"cell {i}: a solution cell starts with {text.splitlines()[0]!r}, want {SOLUTION_TITLE!r}")
        meta = cell.get("metadata", {})
        if "hide-input" not in meta.get("tags", []):
            problems.append(f"cell {i}: a solution cell without the 'hide-input' tag (unfolded in the book)")
        for key, want in SOLUTION_METADATA.items():
            if meta.get(key) != want:
                problems.append(f"cell {i}: a solution cell's metadata {key!r} is {meta.get(key)!r}, want {want!r}")
    return problems


def notebook_problems(paths: list[Path], check) -> list[str]:
    problems = []
    for path in paths:
        problems.extend(f"{path.name}: {p}" for p in check(load_notebook(path), path.name))
    return problems


def pyproject_dependencies(text: str) -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return minimal_pyproject_dependencies(text)
    return tomllib.loads(text)["project"]["dependencies"]


def minimal_pyproject_dependencies(text: str) -> list[str]:
    """[project].dependencies read without a TOML parser: enough for this repository's pyproject.toml."""
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S).group(1)
    deps = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", section, flags=re.M | re.S).group(1)
    deps = "\n".join(line.split("#", 1)[0] for line in deps.splitlines())
    return re.findall(r"[\"']([^\"']+)[\"']", deps)


def requirements(text: str) -> dict[str, Requirement]:
    reqs = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        reqs[canonicalize_name(req.name)] = req
    return reqs


def dependency_problems(pyproject_text: str, requirements_text: str) -> list[str]:
    """Every run-time dependency of vitlib appears in requirements.txt with the same specifier."""
    reqs = requirements(requirements_text)
    problems = []
    for dep in pyproject_dependencies(pyproject_text):
        want = Requirement(dep)
        have = reqs.get(canonicalize_name(want.name))
        if have is None:
            problems.append(f"{dep!r} is a dependency in pyproject.toml but is missing from requirements.txt")
        elif (have.specifier, have.extras, str(have.marker)) != (want.specifier, want.extras, str(want.marker)):
            problems.append(f"pyproject.toml has {dep!r} but requirements.txt has {str(have)!r}")
    return problems


def ci_commands(run_script: str) -> list[str]:
    """The make commands .ci/run runs."""
    lines = (line.split("#", 1)[0].strip() for line in run_script.splitlines())
    return [line for line in lines if re.match(r"make\b", line)]


def readme_code_lines(readme: str) -> list[str]:
    """Lines of the README's fenced code blocks, without trailing comments."""
    lines = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", readme, flags=re.M | re.S):
        lines.extend(" ".join(line.split("#", 1)[0].split()) for line in block.splitlines())
    return [line for line in lines if line]


# --------------------------------------------------------------------------- the repository's tests


def test_toc_entries_exist():
    missing = [
        e for e in toc_files(load_yaml("_toc.yml"))
        if not any((ROOT / f"{strip_suffix(e)}{ext}").exists() for ext in (".md", ".ipynb"))
    ]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_toc_lists_the_chapter_notebooks():
    problems = toc_problems(toc_files(load_yaml("_toc.yml")), [p.name for p in chapter_notebooks()])
    assert not problems, "\n".join(problems)


def test_notebooks_have_no_errors():
    problems = notebook_problems(chapter_notebooks(), lambda nb, name: error_output_problems(nb))
    assert not problems, "\n".join(problems)


def test_notebooks_were_run_top_to_bottom():
    problems = notebook_problems(chapter_notebooks(), lambda nb, name: execution_order_problems(nb))
    assert not problems, "\n".join(problems)


def test_notebooks_tag_cells_whose_output_is_checked():
    problems = notebook_problems(chapter_notebooks(), lambda nb, name: checked_output_problems(nb))
    assert not problems, "\n".join(problems)


def test_notebooks_fit_the_page_width():
    problems = notebook_problems(chapter_notebooks(), lambda nb, name: width_problems(nb))
    assert not problems, f"{len(problems)} lines wider than {PAGE_WIDTH} characters:\n" + "\n".join(problems)


def test_solutions_are_folded_everywhere():
    notebooks = chapter_notebooks()
    n_solutions = sum(source(c).startswith(SOLUTION_TITLE) for p in notebooks for c in load_notebook(p)["cells"])
    assert n_solutions >= 3 * len(notebooks), f"{n_solutions} solution cells in {len(notebooks)} chapters"
    problems = notebook_problems(notebooks, lambda nb, name: solution_problems(nb))
    assert not problems, "\n".join(problems)


def test_notebooks_use_the_repository_url():
    url, branch = repository()
    problems = notebook_problems(chapter_notebooks(), lambda nb, name: colab_problems(nb, name, url, branch))
    assert not problems, "\n".join(problems)


def test_readme_colab_links_point_to_chapters():
    url, branch = repository()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    problems = []
    for link in re.findall(re.escape(COLAB_PREFIX) + r"[^\s)\"'<>\]]+", readme):
        path = link.rsplit("/chapters/", 1)[-1]
        if "<" in link or not link.endswith(".ipynb"):
            continue
        if link != colab_link(url, branch, f"chapters/{path}"):
            problems.append(f"README links to {link}, which is not on {url} ({branch})")
        elif not (CHAPTERS / path).exists():
            problems.append(f"README links to chapters/{path}, which does not exist")
    assert not problems, "\n".join(problems)


def test_dependencies_agree():
    problems = dependency_problems(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
        (ROOT / "requirements.txt").read_text(encoding="utf-8"),
    )
    assert not problems, "\n".join(problems)


def test_pyproject_is_read_the_same_without_tomllib():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert minimal_pyproject_dependencies(text) == pyproject_dependencies(text)


def test_readme_gives_the_command_ci_runs():
    run = ROOT / ".ci" / "run"
    script = run.read_text(encoding="utf-8")
    assert os.access(run, os.X_OK), ".ci/run is not executable"
    assert "set -euo pipefail" in script, ".ci/run must stop at the first failure (set -euo pipefail)"
    commands = ci_commands(script)
    assert len(commands) == 1, f".ci/run should run one make command, found {commands}"
    readme = readme_code_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands[0] in readme, f"README.md does not give the test command .ci/run runs: {commands[0]!r}"
    target = commands[0].split()[1]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"the Makefile has no target {target!r}"


def test_sanitizers_mask_what_changes_between_runs():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
    assert patterns, "tests/nbval_sanitize.cfg defines no regex/replace pairs"

    def clean(s):
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    pairs = [
        ("<Model at 0x7f3a2b1c4d50>", "<Model at 0x7f00deadbeef>"),
        ("trained in 12.3 s", "trained in 9.8 s"),
        ("epoch 3 done, 1.25s", "epoch 3 done, 2.50s"),
        ("100%|██████████| 50/50 [00:01<00:00, 35.2it/s]", "100%|██████████| 50/50 [00:03<00:00, 14.9it/s]"),
        ("saved to /tmp/tmpab12cd/model.safetensors", "saved to /tmp/tmpzz99yy/model.safetensors"),
    ]
    for a, b in pairs:
        assert clean(a) == clean(b), f"sanitizers do not mask the difference between {a!r} and {b!r}"
    for kept in ["accuracy 0.973", "loss 1.2345", "(B, T, D) = (4, 16, 64)", "shape (2, 3, 32, 32)"]:
        assert clean(kept) == kept, f"sanitizers change {kept!r} into {clean(kept)!r}"


# --------------------------------------------------------------------------- the checks catch bad notebooks


def code(src, count, outputs=(), tags=()):
    return {"cell_type": "code", "source": src, "execution_count": count, "outputs": list(outputs),
            "metadata": {"tags": list(tags)}}


def markdown(src):
    return {"cell_type": "markdown", "source": src, "metadata": {}}


URL, BRANCH = "https://github.com/vision-meets-language/course", "main"
SETUP = (
    "import sys\n"
    "if 'google.colab' in sys.modules:\n"
    f"    !pip install -q 'git+{URL}'\n"
)
GOOD = {
    "cells": [
        markdown(f"# 99 Test\n[![Open In Colab](x.svg)]({COLAB_PREFIX}vision-meets-language/course/blob/main/chapters/99_test.ipynb)"),
        code(SETUP, 1),
        code("", None),
        code("1 / 0", 2, [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                           "traceback": []}], tags=["raises-exception"]),
        code(["x = 1\n", "x"], 3, [{"output_type": "execute_result", "data": {"text/plain": "1"}}]),
    ]
}


def test_checker_accepts_a_good_notebook():
    assert error_output_problems(GOOD) == []
    assert execution_order_problems(GOOD) == []
    assert colab_problems(GOOD, "99_test.ipynb", URL, BRANCH) == []


def test_checker_catches_errors():
    bad = {"cells": [code("1 / 0", 1, [{"output_type": "error", "ename": "ZeroDivisionError",
                                        "evalue": "division by zero", "traceback": []}])]}
    assert error_output_problems(bad)
    printed = {"cells": [code("f()", 1, [{"output_type": "stream", "name": "stderr",
                                          "text": ["Traceback (most recent call last):\n", "..."]}])]}
    assert error_output_problems(printed)


@pytest.mark.parametrize("counts", [[1, 3], [2, 3], [1, None], [2, 1], [1, 1], [None, None]])
def test_checker_catches_cells_run_out_of_order(counts):
    nb = {"cells": [code(f"x = {i}", c) for i, c in enumerate(counts)]}
    assert execution_order_problems(nb)


def test_checker_catches_a_wrong_repository():
    no_setup = {"cells": [code("import torch", 1)]}
    assert colab_problems(no_setup, "99_test.ipynb", URL, BRANCH)
    fork = {"cells": [code(SETUP.replace("vision-meets-language/course", "someone/fork"), 1)]}
    assert colab_problems(fork, "99_test.ipynb", URL, BRANCH)
    two = {"cells": [code(SETUP + "!pip install git+https://github.com/someone/other\n", 1)]}
    assert colab_problems(two, "99_test.ipynb", URL, BRANCH)
    wrong_badge = {"cells": [markdown(f"{COLAB_PREFIX}vision-meets-language/course/blob/main/chapters/01_x.ipynb"),
                             code(SETUP, 1)]}
    assert colab_problems(wrong_badge, "99_test.ipynb", URL, BRANCH)


def test_checker_catches_a_toc_out_of_step():
    assert toc_problems(["book/intro", "chapters/00_a"], ["00_a.ipynb"]) == []
    assert toc_problems(["book/intro"], []) == []
    assert toc_problems(["book/intro"], ["00_a.ipynb"])                      # notebook not listed
    assert toc_problems(["chapters/00_a", "chapters/01_b"], ["00_a.ipynb"])  # listed, not present
    assert toc_problems(["chapters/01_b", "chapters/00_a"], ["00_a.ipynb", "01_b.ipynb"])  # order
    assert toc_problems(["chapters/Intro"], ["Intro.ipynb"])                 # name


def test_checker_catches_dependencies_out_of_step():
    pyproject = '[project]\nname = "x"\ndependencies = [\n    "torch>=2.1",  # comment\n    "numpy>=1.24",\n]\n'
    assert minimal_pyproject_dependencies(pyproject) == ["torch>=2.1", "numpy>=1.24"]
    assert dependency_problems(pyproject, "torch>=2.1\nnumpy>=1.24\npytest>=8\n") == []
    assert dependency_problems(pyproject, "torch>=2.1\n")                    # missing
    assert dependency_problems(pyproject, "torch>=2.2\nnumpy>=1.24\n")       # different bound
    assert dependency_problems(pyproject, "torch\nnumpy>=1.24\n")            # no bound


def test_checker_catches_unchecked_notebooks():
    assert checked_output_problems({"cells": [code("x = 1", 1, tags=[CHECKED_TAG])] * 3}) == []
    assert "1 cells tagged" in checked_output_problems({"cells": [code("x = 1", 1, tags=[CHECKED_TAG])]})[0]
    marked = {"cells": [code("# NBVAL_CHECK_OUTPUT\nx = 1", 1, tags=[CHECKED_TAG])] * 3}
    assert "# NBVAL_CHECK_OUTPUT comment" in checked_output_problems(marked)[0]


def test_checker_catches_wide_lines():
    fits = "x" * PAGE_WIDTH
    assert width_problems({"cells": [code(fits, 1, [{"output_type": "stream", "text": fits}])]}) == []
    assert width_problems({"cells": [code(fits + "y", 1)]})
    assert width_problems({"cells": [code("print(x)", 1, [{"output_type": "stream", "text": ["ok\n", fits + "y"]}])]})
    table = {"output_type": "execute_result", "data": {"text/plain": fits + "y"}}
    assert width_problems({"cells": [code("df", 1, [table])]})
    bar = {"output_type": "stream", "text": "x" * 200 + "\r" + fits}
    assert width_problems({"cells": [code("train()", 1, [bar])]}) == []


def test_checker_catches_unfolded_solutions():
    def solution(title="#@title Solution", **meta):
        cell = code(f"{title}\ndef f(x):\n    return x", 1, tags=["hide-input"])
        cell["metadata"].update(meta)
        return cell

    assert solution_problems({"cells": [solution(**SOLUTION_METADATA)]}) == []
    assert solution_problems({"cells": [solution()]})                                   # no metadata
    assert solution_problems({"cells": [solution("#@title Solution (click to show)", **SOLUTION_METADATA)]})
    open_in_jupyter = dict(SOLUTION_METADATA, jupyter={})
    assert "'jupyter'" in solution_problems({"cells": [solution(**open_in_jupyter)]})[0]
    book_label = dict(SOLUTION_METADATA, mystnb={})
    assert "'mystnb'" in solution_problems({"cells": [solution(**book_label)]})[0]
    untagged = solution(**SOLUTION_METADATA)
    untagged["metadata"]["tags"] = []
    assert "hide-input" in solution_problems({"cells": [untagged]})[0]


def test_every_vitlib_module_names_its_chapter():
    """A reader who opens a module finds, in its first lines, the chapter that derives it."""
    import ast

    missing = []
    for path in sorted((ROOT / "vitlib").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if not re.search(r"\bchapters? \d{2}", doc):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"module docstrings that name no chapter (\"chapter NN\"): {missing}"
