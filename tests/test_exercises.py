"""Exercise building and grading: the mechanics on a tiny notebook, then every real solution."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnkit import exercises as ex

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def _answer(source, grade_id):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False,
                                 "schema_version": 3, "solution": True}
    return cell


def _check(source, grade_id, points):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
                                 "schema_version": 3, "solution": False}
    return cell


@pytest.fixture
def demo(tmp_path):
    """A two-exercise solution notebook in tmp_path/solutions/00_demo.ipynb."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["cnnkit"] = {"exercise": "00_demo"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Demo"),
        nbformat.v4.new_code_cell("import math"),
        _answer("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "double"),
        _check("assert double(3) == 6, f'double(3) should be 6, got {double(3)}'\nprint('Passed')",
               "check_double", 2),
        _answer("### BEGIN SOLUTION\nroot = math.sqrt(2)\n### END SOLUTION", "root"),
        _check("assert abs(root - math.sqrt(2)) < 1e-9, 'root should be the square root of 2'", "check_root", 1),
    ]
    folder = tmp_path / "solutions"
    folder.mkdir()
    path = folder / "00_demo.ipynb"
    path.write_text(ex.dumps(nb))
    return path


def _submission(demo, tmp_path, edit, name="00_demo_student.ipynb"):
    nb = ex.build_exercise(ex.read_notebook(demo))
    edit(nb)
    path = tmp_path / name
    path.write_text(ex.dumps(nb))
    return path


def _by_id(grade):
    return {c.grade_id: c for c in grade.checks}


def test_strip_solution_keeps_indentation():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert ex.strip_solution(src) == "def f(x):\n    raise NotImplementedError()"


@pytest.mark.parametrize("src, problem", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside an open"),
])
def test_strip_solution_rejects_unbalanced_markers(src, problem):
    with pytest.raises(ValueError, match=problem):
        ex.strip_solution(src, "demo")


def test_build_blanks_answers_and_clears_outputs(demo):
    nb = ex.read_notebook(demo)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="x")]
    nb.cells[1].execution_count = 3
    built = ex.build_exercise(nb)
    assert "return 2 * x" not in built.cells[2].source
    assert "raise NotImplementedError()" in built.cells[2].source
    assert built.cells[1].outputs == [] and built.cells[1].execution_count is None
    assert built.cells[3].source == nb.cells[3].source  # checks are kept


def test_build_rejects_duplicate_grade_ids(demo):
    nb = ex.read_notebook(demo)
    nb.cells[5].metadata["nbgrader"]["grade_id"] = "check_double"
    with pytest.raises(ValueError, match="more than one cell"):
        ex.build_exercise(nb)


def test_solution_full_marks_and_blank_zero(demo, tmp_path):
    solutions = demo.parent
    full = ex.grade_notebook(demo, solutions)
    assert (full.total, full.max_total) == (3, 3), ex.format_table(full)
    blank = ex.grade_notebook(_submission(demo, tmp_path, lambda nb: None), solutions)
    assert blank.total == 0 and all(not c.passed for c in blank.checks), ex.format_table(blank)
    assert "NotImplementedError" in _by_id(blank)["check_double"].message


def test_edited_and_deleted_checks_are_restored(demo, tmp_path):
    def cheat(nb):
        nb.cells[2].source = "def double(x):\n    return x + 1"   # wrong answer
        nb.cells[3].source = "pass"                            # check neutralised
        del nb.cells[5]                                        # check deleted
        nb.cells[4].source = "root = 1.4"                      # wrong answer
    grade = ex.grade_notebook(_submission(demo, tmp_path, cheat), demo.parent)
    checks = _by_id(grade)
    assert grade.total == 0
    assert "double(3) should be 6, got 4" in checks["check_double"].message
    assert "square root of 2" in checks["check_root"].message
    assert all("#x1B" not in c.message and "\x1b" not in c.message for c in grade.checks)  # no colour codes


def test_crash_and_endless_loop_cost_only_their_exercise(demo, tmp_path):
    def loop(nb):
        nb.cells[2].source = "while True:\n    pass\ndef double(x):\n    return 2 * x"
        nb.cells[4].source = "root = math.sqrt(2)"
    grade = ex.grade_notebook(_submission(demo, tmp_path, loop), demo.parent, cell_timeout=5)
    assert _by_id(grade)["check_root"].passed
    assert not _by_id(grade)["check_double"].passed
    assert grade.total == 1
    assert "double: " in _by_id(grade)["check_double"].message  # names the answer cell that failed
    assert "Timeout" in _by_id(grade)["check_double"].message

    def crash(nb):
        nb.cells[2].source = "def double(x):\n    return 2 * x"
        nb.cells[4].source = "root = 1 / 0"
    grade = ex.grade_notebook(_submission(demo, tmp_path, crash, "crash.ipynb"), demo.parent)
    assert _by_id(grade)["check_double"].passed and not _by_id(grade)["check_root"].passed
    assert grade.total == 2
    assert "ZeroDivisionError" in _by_id(grade)["check_root"].message


def test_empty_and_not_a_notebook(demo, tmp_path):
    empty = tmp_path / "00_demo_empty.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["cnnkit"] = {"exercise": "00_demo"}
    empty.write_text(ex.dumps(nb))
    grade = ex.grade_notebook(empty, demo.parent)
    assert grade.total == 0 and grade.max_total == 3
    assert "missing from the submission" in grade.error

    junk = tmp_path / "00_demo_junk.ipynb"
    junk.write_text("this is not json")
    grade = ex.grade_notebook(junk, demo.parent)
    assert grade.total == 0 and grade.max_total == 3
    assert "is not a notebook" in grade.error and "00_demo_junk.ipynb" in grade.error


def test_command_line_grades_a_class(demo, tmp_path):
    good = tmp_path / "class" / "00_demo_alice.ipynb"
    good.parent.mkdir()
    good.write_text(demo.read_text())
    (tmp_path / "class" / "00_demo_bob.ipynb").write_bytes(b"\x00\x01 binary")
    out_json, out_csv = tmp_path / "grades.json", tmp_path / "grades.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "cnnkit.exercises", "grade", str(good.parent), "--solutions", str(demo.parent),
         "--json", str(out_json), "--csv", str(out_csv), "--jobs", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 / 3" in proc.stdout and "is not a notebook" in proc.stdout
    data = json.loads(out_json.read_text())
    assert [d["total"] for d in data] == [3, 0]
    assert set(data[0]) >= {"notebook", "total", "max_total", "checks"}
    assert set(data[0]["checks"][0]) == {"grade_id", "points", "max_points", "passed", "message"}
    rows = out_csv.read_text().splitlines()
    assert rows[0].startswith("notebook,exercise,total,max_total,check_double,check_root")
    assert len(rows) == 3


def test_command_line_reports_missing_files(demo, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cnnkit.exercises", "grade", str(tmp_path / "nope.ipynb"),
                           "--solutions", str(demo.parent)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no such file" in proc.stderr


# --------------------------------------------------------------------------- the real course


def test_exercises_folder_matches_a_fresh_build():
    if not SOLUTIONS:
        pytest.skip("no solution notebooks yet")
    stale = ex.build_all(ROOT / "solutions", ROOT / "exercises", check_only=True)
    assert not stale, f"exercises/ is out of date; run `python -m cnnkit.exercises build`: {stale}"


@pytest.mark.slow
@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_scores_full_marks_and_blank_exercise_scores_zero(solution):
    grades = ex.grade_many([solution, ROOT / "exercises" / solution.name], ROOT / "solutions", jobs=2,
                           cell_timeout=600)
    full, blank = grades
    assert full.max_total > 0, f"{solution.name} has no graded checks"
    assert full.total == full.max_total, ex.format_table(full)
    passing = [c.grade_id for c in blank.checks if c.passed]
    assert not passing, f"these checks pass on the blank exercise: {passing}\n{ex.format_table(blank)}"
