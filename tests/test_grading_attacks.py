"""A class of cheating submissions, graded in one run: every attack on a blank exercise scores exactly 0.

Each attack is a real notebook: the blank exercise 01 (or 08) with answer cells
written the way a student who has read the kit's source might write them. The
solution and a half-right answer are graded in the same run (full and partial
marks), the run uses two jobs, and afterwards no process of the sandbox users
is left, the kit's files are unchanged, and the outputs stay as the grader
wrote them.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnnkit import exercises as ex
from cnnkit.instructor import sandbox
from cnnkit.instructor.notebooks import nbgrader_meta

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sandbox.Isolation.available()[0], reason="needs root to sandbox kernels")]

WRITE_LATER = "WRITE_LATER_PATH"


def _blank(name="01_convolution"):
    return ex.read_notebook(ROOT / "exercises" / f"{name}.ipynb")


def _answers(nb):
    return {nbgrader_meta(c).get("grade_id"): c for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def _attack(first_answer: str, name="01_convolution", **answers):
    nb = _blank(name)
    cells = _answers(nb)
    first = next(iter(cells.values()))
    first.source = textwrap.dedent(first_answer)
    for grade_id, source in answers.items():
        cells[grade_id].source = textwrap.dedent(source)
    return nb


ATTACKS = {
    "patch_checks": _attack("""
        import cnnkit.checks as c
        import cnnkit.checks.convolution as cc
        for n in dir(cc):
            if n.startswith("check_"):
                setattr(cc, n, lambda *a, **k: print("Passed: all good"))
        c.fail = lambda *a, **k: None
        c.CheckFailed = type("Never", (Exception,), {})
    """),
    "custom_exception_handler": _attack("""
        get_ipython().set_custom_exc((BaseException,), lambda *a, **k: print("Passed"))
    """),
    "silent_tracebacks": _attack("""
        ip = get_ipython()
        ip.showtraceback = lambda *a, **k: None
        ip._showtraceback = lambda *a, **k: None
    """),
    "input_transformer": _attack("""
        def neutralise(lines):
            text = "".join(lines)
            return ["print('Passed')\\n"] if "check" in text else lines
        get_ipython().input_transformers_post.append(neutralise)
    """),
    "rebound_checks": _attack("""
        class Anything:
            def __getattr__(self, name):
                return lambda *a, **k: print("Passed: fine")
        checks = Anything()
    """),
    "stack_walk": _attack("""
        import inspect
        def _steal(*args, **kwargs):
            frame = inspect.currentframe().f_back
            while frame is not None:
                for name in ("expected", "want", "reference"):
                    if name in frame.f_locals:
                        return frame.f_locals[name]
                frame = frame.f_back
            raise ValueError("nothing to steal")
        result = None
    """, conv_output_size="conv_output_size = _steal", same_pad="same_pad = _steal",
        relu="relu = _steal\nrelu_grad = _steal", conv_forward="conv_forward = _steal"),
    "write_to_the_kit": _attack("""
        import cnnkit.checks.convolution as cc, cnnkit.checks.probe as pr
        for module in (cc, pr):
            try:
                with open(module.__file__, "a") as handle:
                    handle.write("\\ncheck_output_size = lambda *a: print('Passed')\\n")
            except OSError as exc:
                print("could not write", exc)
    """),
    "detached_writer": _attack(f"""
        import subprocess
        subprocess.Popen(["sh", "-c", "sleep 6; echo hacked > {WRITE_LATER}; sleep 60"], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    """),
    "read_the_solutions": _attack(f"""
        import json
        solution = json.load(open({str(ROOT / 'solutions' / '01_convolution.ipynb')!r}))
        for cell in solution["cells"]:
            if cell["cell_type"] == "code" and "BEGIN SOLUTION" in "".join(cell["source"]):
                exec("".join(cell["source"]), globals())
    """),
    "hard_coded_visible": _attack("""
        result = None
        _visible = {(32, 3, 1, 0): 30, (32, 3, 1, 1): 32, (32, 5, 1, 2): 32, (28, 5, 1, 0): 24, (32, 3, 2, 0): 15,
                    (32, 3, 2, 1): 16, (227, 11, 4, 0): 55, (224, 7, 2, 3): 112, (7, 3, 3, 0): 2, (10, 4, 3, 1): 3,
                    (5, 5, 1, 0): 1, (6, 1, 2, 0): 3}
    """, conv_output_size="def conv_output_size(n, f, stride, padding):\n    return _visible[(n, f, stride, padding)]"),
    "calls_the_kit": _attack("""
        result = None
        from cnnkit.conv import conv2d, output_size
    """, conv_output_size="conv_output_size = output_size",
        conv_forward="def conv_forward(x, w, b, stride=1):\n    return conv2d(x, w, b, stride=stride)"),
    "memory_hog": _attack("""
        import numpy as np
        hog = np.ones(200_000_000)
    """),
    "lying_string": _attack("""
        class Yes(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
    """, name="08_optimizers", classify_hessian="def classify_hessian(H):\n    return Yes('minimum')"),
}


def _metadata_attacks(tmp: Path) -> dict:
    nb = _blank()
    nb.metadata["cnnkit"] = {"exercise": "../" * 8 + "etc/passwd"}
    own = _blank()
    own.metadata["cnnkit"] = {"exercise": str(tmp / "class" / "01_convolution_selfref.ipynb")}
    long = _blank()
    long.metadata["cnnkit"] = {"exercise": "x" * 5000}
    odd_id = _blank()
    cell = next(iter(_answers(odd_id).values()))
    cell.metadata["nbgrader"]["grade_id"] = ["x"]
    return {"path_exercise": nb, "selfref": own, "long_name": long, "odd_grade_id": odd_id}


def _digest(folder: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.py"))}


def test_a_class_of_attacks_scores_zero(tmp_path):
    classroom = tmp_path / "class"
    classroom.mkdir()
    out_json = tmp_path / "out" / "grades.json"
    out_json.parent.mkdir()
    for name, nb in {**ATTACKS, **_metadata_attacks(tmp_path)}.items():
        exercise = "08_optimizers" if name == "lying_string" else "01_convolution"
        text = ex.dumps(nb).replace(WRITE_LATER, str(out_json))
        (classroom / f"{exercise}_{name}.ipynb").write_text(text)
    (classroom / "01_convolution_solution.ipynb").write_text((ROOT / "solutions" / "01_convolution.ipynb").read_text())
    half = _blank()
    cells = _answers(half)
    cells["conv_output_size"].source = "def conv_output_size(n, f, stride, padding):\n    return (n - f + 2 * padding) // stride + 1"
    cells["relu"].source = "def relu(z):\n    return np.maximum(z, 0)\n\ndef relu_grad(z):\n    return (z > 0).astype(float)"
    (classroom / "01_convolution_zhalf.ipynb").write_text(ex.dumps(half))
    (classroom / "01_convolution_zzblank.ipynb").write_text((ROOT / "exercises" / "01_convolution.ipynb").read_text())

    kit_before = _digest(ROOT / "cnnkit")
    proc = subprocess.run(
        [sys.executable, "-m", "cnnkit.exercises", "grade", str(classroom), "--jobs", "2", "--json", str(out_json),
         "--memory-mb", "900", "--cell-timeout", "180"],
        capture_output=True, text=True, timeout=1500, env={**os.environ, "CNNKIT_DATASET": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = out_json.read_text()
    grades = {Path(g["notebook"]).stem.split("_", 2)[-1]: g for g in json.loads(written)["grades"]}
    report = proc.stdout[-6000:]

    assert grades["solution"]["total"] == grades["solution"]["max_total"] > 0, report
    assert grades["zhalf"]["total"] == 3, report
    for name in [*ATTACKS, "path_exercise", "selfref", "long_name", "odd_grade_id", "zzblank"]:
        assert grades[name]["total"] == 0, f"{name} scored {grades[name]['total']}\n{report}"
    notes = {name: grades[name]["error"] or "" for name in grades}
    assert "not one of the exercises" in notes["path_exercise"] and "not one of the exercises" in notes["long_name"]
    assert len(notes["long_name"]) < 400
    assert "unknown grade id ['x']" in notes["odd_grade_id"]
    assert "more than 0.9 GB" in notes["memory_hog"]
    called = {c["grade_id"]: c["message"] for c in grades["calls_the_kit"]["checks"]}
    assert "cnnkit.conv" in called["check_conv_layer"] and "write it yourself" in called["check_conv_layer"], (
        grades["calls_the_kit"]["error"], called)
    hidden = {c["grade_id"]: c["message"] for c in grades["hard_coded_visible"]["checks"]}
    assert hidden["check_output_size"].startswith("on hidden inputs"), hidden

    # nothing of the kit changed, nothing of the students is still running, the outputs are the grader's
    assert _digest(ROOT / "cnnkit") == kit_before
    time.sleep(8)
    assert out_json.read_text() == written
    # (only the slots no grader holds now: under ./kit test another file may be grading at the same time,
    # in slots of its own)
    idle = _idle_slots()
    try:
        left = [pid for slot in idle for pid in sandbox.processes_of(sandbox.slot_user(slot).pw_uid)]
    finally:
        sandbox.release_slots(idle)
    assert not left


def _idle_slots(count: int = 8) -> dict[int, int]:
    """Lock every grading slot below ``count`` whose user exists and that no grader holds: {slot: fd}."""
    held = {}
    for slot in range(count):
        if not _exists(f"{sandbox.USER_PREFIX}{slot}"):
            continue
        fd = sandbox.lock_slot(slot)
        if fd is not None:
            held[slot] = fd
    return held


def _exists(user: str) -> bool:
    try:
        sandbox.pwd.getpwnam(user)
        return True
    except KeyError:
        return False
