"""vitlib.classroom: every chapter's exercises carry nbgrader's metadata, the student edition hides the solutions and
keeps the rest, and nbgrader's round trip agrees: `nbgrader generate_assignment` makes the course's own student
edition, and autograding synthetic submissions of chapter 13 scores them as the checkers judge them, names the
mistakes in the feedback, and treats tampered, incomplete and looping submissions the way nbgrader does."""

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from vitlib import classroom
from vitlib.exercises import graded

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CH13 = ROOT / "chapters" / "13_frontiers.ipynb"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def printed(cell) -> str:
    return "".join(source({"source": o.get("text", "")}) for o in cell.get("outputs", []))


def grading(cell) -> dict:
    return cell["metadata"].get("nbgrader", {})


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem[:2])
def test_every_exercise_carries_nbgrader_metadata(path):
    nb = load(path)
    assert classroom.annotate(nb, classroom.assignment_id(path)) == nb, "run: python -m vitlib.classroom annotate"
    found = classroom.exercises(nb)
    assert len(found) >= 3 and all(ex.parts for ex in found)
    ids = [grading(c)["grade_id"] for c in nb["cells"] if grading(c)]
    assert len(ids) == len(set(ids))
    for ex in found:
        assert grading(nb["cells"][ex.statement])["locked"]
        for stub, solution, calls in ex.parts:
            meta = grading(nb["cells"][solution])
            assert meta["solution"] and meta["grade"] == (not calls)
            if calls:   # an autograded test cell right after the solution, calling the stub's checkers
                test = nb["cells"][solution + 1]
                assert grading(test)["grade"] and grading(test)["locked"] and grading(test)["points"] > 0
                assert all(call in source(test) for call in calls)
                assert "✓ autograded: passed" in printed(test)
            else:
                assert meta["points"] == classroom.POINTS_MANUAL


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem[:2])
def test_the_student_edition_hides_solutions_and_keeps_everything_else(path):
    nb = load(path)
    student = classroom.student_edition(nb)
    assert len(student["cells"]) == len(nb["cells"])
    assert "#@title Solution" not in "\n".join(source(c) for c in student["cells"])
    for before, after in zip(nb["cells"], student["cells"]):
        tags = before["metadata"].get("tags", [])
        if grading(before).get("solution"):
            assert source(after) == classroom.CODE_STUB and not after["outputs"]
            assert "source_hidden" not in str(after["metadata"]) and "hide-input" not in after["metadata"]["tags"]
        elif "exercise" in tags:
            assert source(after) == source(before) and after["outputs"] == []
        else:
            assert after == before


def test_the_student_edition_runs_top_to_bottom(tmp_path):
    """Stubs give the checkers' "not implemented yet", never a traceback that stops the notebook."""
    nb = nbformat.reads(json.dumps(classroom.student_edition(load(CH13))), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "chapters")}}
                   ).execute()
    texts = [printed(c) for c in nb.cells if c.cell_type == "code"]
    assert sum("not implemented yet" in text for text in texts) >= 2
    assert sum("not passed yet" in text for text in texts) == 2


def test_graded_raises_only_under_the_autograder(monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    graded(True, False)
    assert "not passed yet" in capsys.readouterr().out
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    graded(True)
    with pytest.raises(AssertionError, match="did not pass"):
        graded(True, False)
    with pytest.raises(TypeError, match="True/False results of checkers"):
        graded(None)


@pytest.mark.parametrize("call, error, match", [
    (lambda: classroom.annotate(load(CH13), "13"), ValueError, "'ch' and two digits"),
    (lambda: classroom.student_edition([]), TypeError, "expected a notebook"),
    (lambda: classroom.assignment_id(Path("frontiers.ipynb")), ValueError, "NN_title.ipynb"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----- nbgrader's round trip, without a server ----------------------------------------------------------------------
GOOD = {"fit": "    slope, intercept = np.polyfit(np.log(x), np.log(L - E), 1)\n"
               "    return float(np.exp(intercept)), float(-slope)",
        "compute_optimal": "    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))\n"
                           "    N = G * (C / 6) ** (beta / (alpha + beta))\n"
                           "    return N, C / (6 * N)"}
WRONG = {"fit": GOOD["fit"].replace("np.log(L - E)", "np.log(L)"),                      # the floor not subtracted
         "compute_optimal": GOOD["compute_optimal"].replace("(C / 6)", "C").replace("C / (6 * N)", "C / N")}
STUB = "    # your code here\n    raise NotImplementedError"


def answer(release: dict, bodies: dict, loop_before: str | None = None) -> dict:
    """The student edition with each stub's body replaced; with ``loop_before``, an endless loop before that one."""
    nb = copy.deepcopy(release)
    for cell in nb["cells"]:
        for name, body in bodies.items():
            text = source(cell)
            if f"def {name}(" in text and STUB in text and not grading(cell):
                loop = "while True:\n    pass\n\n\n" if name == loop_before else ""
                cell["source"] = text.replace(f"def {name}(", loop + f"def {name}(", 1).replace(STUB, body)
    return nb


def nbgrader(course: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "classroom" / "nbgrader_config.py", course)
    classroom.main(["source", "ch13", "--out", str(course / "source")])
    nbgrader(course, "generate_assignment", "ch13")
    release = load(course / "release" / "ch13" / "ch13.ipynb")
    tampered = copy.deepcopy(release)   # a test cell rewritten to pass whatever the answer
    for cell in tampered["cells"]:
        if grading(cell).get("grade_id") == "ch13-ex1-test":
            cell["source"] = "print('passed')"
    good = answer(release, GOOD)
    submissions = {"good": good, "wrong": answer(release, WRONG), "tampered": tampered,
                   "deleted": {**good, "cells": [c for c in good["cells"]
                                                 if grading(c).get("grade_id") != "ch13-ex1-test"]},
                   "loop": answer(release, GOOD, loop_before="fit")}
    for student, nb in submissions.items():
        (course / "submitted" / student / "ch13").mkdir(parents=True)
        (course / "submitted" / student / "ch13" / "ch13.ipynb").write_text(json.dumps(nb))
    log = nbgrader(course, "autograde", "ch13", "--Execute.timeout=20")   # a looping cell stops after 20 s
    nbgrader(course, "generate_feedback", "ch13")
    nbgrader(course, "export")
    with open(course / "grades.csv") as f:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)}
    return course, release, scores, log


def test_nbgrader_makes_the_course_student_edition(course):
    _, release, _, _ = course
    ours = classroom.student_edition(load(CH13))
    assert [(c["cell_type"], source(c), c.get("outputs")) for c in release["cells"]] == \
           [(c["cell_type"], source(c), c.get("outputs")) for c in ours["cells"]]


def test_autograding_gives_the_checkers_verdict(course):
    _, _, scores, _ = course
    auto, manual = 2 * classroom.POINTS_AUTO, 2 * classroom.POINTS_MANUAL     # chapter 13: two of each
    assert scores["good"] == (auto, auto + manual)      # the reasoning exercises wait for a person
    assert scores["wrong"] == (0.0, auto + manual)


def test_feedback_names_the_mistakes(course):
    path, _, _, _ = course
    wrong = (path / "feedback" / "wrong" / "ch13" / "ch13.html").read_text()
    assert "likely mistake: the floor E not subtracted" in wrong
    assert "likely mistake: C = N D" in wrong
    assert "likely mistake" not in (path / "feedback" / "good" / "ch13" / "ch13.html").read_text()


def test_bad_submissions_are_handled_the_way_nbgrader_does(course):
    _, _, scores, log = course
    # a rewritten test cell fails its checksum and is put back: the stub is graded as it is
    assert "checksum' for cell ch13-ex1-test has changed" in log and scores["tampered"][0] == 0.0
    # a deleted test cell scores nothing; the other exercise still counts
    assert scores["deleted"][0] == classroom.POINTS_AUTO
    # an endless loop is interrupted after the timeout; the cells after it run on
    assert "Timeout waiting for execute reply" in log and scores["loop"][0] == classroom.POINTS_AUTO
