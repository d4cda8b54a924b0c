"""The classroom edition of the course: nbgrader metadata in the chapters, student editions, and autograding with
the checkers of ``vitlib.exercises`` (introduced in chapter 00, one module per chapter).

Each chapter's exercises keep the course's layout — a statement, a stub that calls a checker from
``vitlib.exercises``, and a folded solution — and carry nbgrader's cell metadata (schema 3):

    statement         read-only ("locked")
    stub              free: the student writes here; tagged "exercise"
    solution          a solution cell: replaced by CODE_STUB in the student edition; for an exercise without a
                      checker (reasoning, experiment) also a manually graded cell worth POINTS_MANUAL
    test              after the solution of every exercise with a checker: ``graded(check_f(f))``, an
                      autograded cell worth POINTS_AUTO, read-only, hidden in the book ("remove-cell")

``student_edition(nb)`` is what nbgrader's ``generate_assignment`` makes with ``classroom/nbgrader_config.py``:
solution cells replaced by the stub, the outputs of exercise cells cleared, everything else as it is. nbgrader
runs the same ``student_cell`` (a preprocessor defined in that config file), so the two agree.

    python -m vitlib.classroom annotate               # (re)write the metadata into chapters/*.ipynb
    python -m vitlib.classroom student --out student  # a student edition of every chapter
    python -m vitlib.classroom source classroom/source  # the chapters as nbgrader assignments (ch00 ... ch13)
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .checks import describe

__all__ = ["CODE_STUB", "TEXT_STUB", "POINTS_AUTO", "POINTS_MANUAL", "Exercise", "exercises", "annotate",
           "student_cell", "student_edition", "assignment_id", "main"]

ROOT = Path(__file__).resolve().parent.parent
CODE_STUB = "# YOUR ANSWER HERE (code, or your reasoning as comments)"
TEXT_STUB = "YOUR ANSWER HERE"
POINTS_AUTO, POINTS_MANUAL = 2, 2
TEST_HEADER = "# Autograded: the exercise's checker again; under nbgrader a failed check scores 0."
STATEMENT = re.compile(r"^#{3,}\s*Exercise\s+(\d+)", re.M)
HEADING = re.compile(r"#+\s")
CHECK_CALL = re.compile(r"^\s*(check_\w+\(.*\))\s*;?\s*$", re.M)


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _is_solution(cell) -> bool:
    return cell["cell_type"] == "code" and _source(cell).startswith("#@title Solution")


def _is_test(cell) -> bool:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "").endswith("-test")


@dataclass
class Exercise:
    """One exercise of a chapter: its number, the index of its statement, and its parts, each (stub index or
    None, solution index, the checker calls of the stub)."""

    number: int
    statement: int
    parts: list[tuple[int | None, int, list[str]]] = field(default_factory=list)


def exercises(nb: dict) -> list[Exercise]:
    """The exercises of a chapter (its "### Exercise N" statements and the code cells up to the next heading),
    ignoring test cells that ``annotate`` added."""
    cells, found = nb["cells"], []
    for i, cell in enumerate(cells):
        match = STATEMENT.search(_source(cell)) if cell["cell_type"] == "markdown" else None
        if match is None:
            continue
        exercise, stub = Exercise(int(match.group(1)), i), None
        for j in range(i + 1, len(cells)):
            c = cells[j]
            if c["cell_type"] == "markdown" and (HEADING.match(_source(c)) or STATEMENT.search(_source(c))):
                break
            if c["cell_type"] != "code" or _is_test(c):
                continue
            if _is_solution(c):
                calls = CHECK_CALL.findall(_source(cells[stub])) if stub is not None else []
                exercise.parts.append((stub, j, calls))
                stub = None
            elif "NotImplementedError" in _source(c):
                stub = j
        found.append(exercise)
    return found


def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _tags(cell, add=(), remove=()) -> None:
    tags = [t for t in cell.setdefault("metadata", {}).get("tags", []) if t not in remove]
    tags += [t for t in add if t not in tags]
    if tags:
        cell["metadata"]["tags"] = tags
    else:
        cell["metadata"].pop("tags", None)


def _test_cell(grade_id: str, calls: list[str]) -> dict:
    source = f"{TEST_HEADER}\nfrom vitlib.exercises import graded\n\ngraded({', '.join(calls)})"
    return {"cell_type": "code", "execution_count": None, "id": grade_id,
            "metadata": {"nbgrader": _meta(grade_id, grade=True, locked=True, points=POINTS_AUTO),
                         "tags": ["exercise", "remove-cell"]},
            "outputs": [], "source": source}


def annotate(nb: dict, chapter: str) -> dict:
    """A copy of the chapter ``nb`` with nbgrader's metadata on every exercise cell and a test cell after each
    checked solution (kept, with its outputs, if it is already there). ``chapter``: "ch00" ... "ch13"."""
    if not re.fullmatch(r"ch\d\d", chapter):
        raise ValueError(f"chapter must be 'ch' and two digits, such as 'ch05'; got {chapter!r}")
    nb = copy.deepcopy(nb)
    old_tests = {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"] if _is_test(c)}
    nb["cells"] = [c for c in nb["cells"] if not _is_test(c)]
    inserts = []
    for ex in exercises(nb):
        prefix = f"{chapter}-ex{ex.number}"
        nb["cells"][ex.statement]["metadata"]["nbgrader"] = _meta(f"{prefix}-statement", locked=True)
        for k, (stub, solution, calls) in enumerate(ex.parts):
            part = prefix + ("" if len(ex.parts) == 1 else "abcdefgh"[k])
            if stub is not None:
                _tags(nb["cells"][stub], add=["exercise"])
            cell = nb["cells"][solution]
            _tags(cell, add=["exercise"])
            cell["metadata"]["nbgrader"] = _meta(f"{part}-solution", solution=True, grade=not calls,
                                                 points=None if calls else POINTS_MANUAL)
            if calls:
                test = _test_cell(f"{part}-test", calls)
                kept = old_tests.get(test["id"])
                if kept is not None and _source(kept) == test["source"]:   # keep it as run, outputs and all
                    kept["metadata"].update(nbgrader=test["metadata"]["nbgrader"], tags=test["metadata"]["tags"])
                    test = kept
                inserts.append((solution, test))
    for index, test in sorted(inserts, key=lambda x: -x[0]):
        nb["cells"].insert(index + 1, test)
    return nb


def student_cell(cell: dict) -> dict:
    """One cell of the student edition (in place): a solution cell becomes the stub, shown, not folded; an
    exercise cell loses its outputs."""
    meta = cell.get("metadata", {})
    if meta.get("nbgrader", {}).get("solution"):
        cell["source"] = CODE_STUB if cell["cell_type"] == "code" else TEXT_STUB
        meta.pop("jupyter", None)
        meta.pop("mystnb", None)
        meta.pop("cellView", None)
        _tags(cell, remove=["hide-input"])
    if "exercise" in meta.get("tags", []) and cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None
    return cell


def student_edition(nb: dict) -> dict:
    """The student edition of an annotated chapter: solutions replaced by CODE_STUB, exercise outputs cleared,
    everything else identical."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise TypeError(f"expected a notebook (a dict with a list of cells), got {describe(nb)}")
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        student_cell(cell)
    return nb


def assignment_id(path: Path) -> str:
    """"ch05" for chapters/05_clip_contrastive_alignment.ipynb."""
    match = re.match(r"(\d\d)_", Path(path).name)
    if match is None:
        raise ValueError(f"expected a chapter notebook named NN_title.ipynb, got {Path(path).name!r}")
    return "ch" + match.group(1)


def _chapters(names: list[str]) -> list[Path]:
    paths = sorted((ROOT / "chapters").glob("*.ipynb"))
    if names:
        paths = [p for p in paths if assignment_id(p) in names or p.name in names]
        if not paths:
            raise SystemExit(f"no chapter matches {names}; chapters are ch00 ... ch13")
    return paths


def _write(nb: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m vitlib.classroom", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["annotate", "student", "source"])
    p.add_argument("chapters", nargs="*", help="ch00 ... ch13 (default: all)")
    p.add_argument("--out", default=None, help="where student editions or nbgrader sources go")
    args = p.parse_args(argv)
    for path in _chapters(args.chapters):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if args.command == "annotate":
            again = annotate(nb, assignment_id(path))
            if again != nb:
                _write(again, path)
                print("annotated", path.relative_to(ROOT))
        elif args.command == "student":
            out = Path(args.out or ROOT / "student")
            _write(student_edition(nb), out / path.name)
            print("wrote", out / path.name)
        else:
            out = Path(args.out or ROOT / "classroom" / "source") / assignment_id(path)
            shutil.rmtree(out, ignore_errors=True)
            _write(nb, out / f"{assignment_id(path)}.ipynb")
            print("wrote", out / f"{assignment_id(path)}.ipynb")


if __name__ == "__main__":
    main()
