"""No leaked answers: what an exercise's checks expect on their visible inputs is not printed by a lesson.

The expected values are the solution's own results: every call a check makes to the solution's
answers on the visible inputs, and every value answer. A lesson's saved outputs leak one when they
print a distinctive count an exercise expects (1,000 or more, not a power of two nor a multiple of
1,000; with or without thousands separators), or an array's values (its first six, or all when it
has three to five, in a row as numpy prints them, when they hold three different values or more).

``KNOWN`` lists the leaks the course still has, exercise by exercise, so that a new one fails
at once; an entry that no longer leaks fails too, so the list only shrinks.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from cnnkit.instructor import judge
from cnnkit.instructor.notebooks import is_check_cell, read_notebook

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
KNOWN: dict[str, set[str]] = {}
NUMBER = re.compile(r"-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?")


def _lesson_text() -> str:
    chunks = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in read_notebook(path).cells:
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain", "")
                chunks.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(chunks)


def _numbers(text: str) -> list[float]:
    values = []
    for token in NUMBER.findall(text):
        try:
            values.append(float(token.replace(",", "")))
        except ValueError:
            continue
    return values


def _expected_values(solution: Path) -> list:
    """The solution's results for every visible call of every check, and its value answers."""
    found = []
    original = judge._Planner.__call__

    def recording(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        found.append(result)
        return result

    nb = read_notebook(solution)
    judge._Planner.__call__ = recording
    try:
        names = judge.answer_names(nb.cells)
        namespace = judge.solution_namespace(nb, solution.name)
        for cell in (c for c in nb.cells if is_check_cell(c)):
            _, _, args, kwargs = judge.parse_check_call(cell.source, solution.name)
            for node in [*args, *kwargs.values()]:
                if getattr(node, "id", None) in names and not callable(namespace[node.id]):
                    found.append(namespace[node.id])
        judge.plan_exercise(nb, solution.name, seed=0)
    finally:
        judge._Planner.__call__ = original
    return found


def _flatten(value, out: list) -> list:
    if isinstance(value, (list, tuple)):
        for v in value:
            _flatten(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _flatten(v, out)
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        out.append(float(value))
    elif isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.size:
        out.append(value.astype(float))
    return out


def _leaks(values: list, printed: list[float]) -> list[str]:
    printed_set = {round(v, 4) for v in printed}
    stream = [round(v, 4) for v in printed]
    found = []
    for value in _flatten(values, []):
        if isinstance(value, float):
            whole = value == int(value) and abs(value) >= 1000
            plain = whole and (int(abs(value)) % 1000 == 0 or int(abs(value)) & (int(abs(value)) - 1) == 0)
            if whole and not plain and round(value, 4) in printed_set:
                found.append(f"the count {int(value):,}")
        elif value.size >= 3 and len({round(float(v), 4) for v in value.ravel()[:6]}) >= 3:  # not all ones
            flat = [round(float(v), 4) for v in value.ravel()[:6]]
            for start in range(len(stream) - len(flat) + 1):
                if stream[start:start + len(flat)] == flat:
                    found.append(f"the array starting {flat[:3]}")
                    break
    return sorted(set(found))


@pytest.fixture(scope="module")
def printed() -> list[float]:
    return _numbers(_lesson_text())


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_no_lesson_prints_what_an_exercise_expects(solution, printed):
    leaks = set(_leaks(_expected_values(solution), printed))
    known = KNOWN.get(solution.stem, set())
    assert not leaks - known, f"{solution.stem}: a lesson's saved output prints {', '.join(sorted(leaks - known))}"
    assert not known - leaks, f"{solution.stem}: no longer leaks {', '.join(sorted(known - leaks))}: drop it from KNOWN"


def test_the_leak_search_finds_a_printed_answer():
    assert _leaks([526_442, np.array([[1.0, -2.0, 3.5], [0, 0, 0]])],
                  _numbers("total 526,442\n[[ 1.  -2.   3.5]\n [ 0.   0.   0. ]]")) == [
        "the array starting [1.0, -2.0, 3.5]", "the count 526,442"]
    assert _leaks([99, 3.0, 4096, 5000, np.array([1.0, 2.0, 3.0])], _numbers("99 3.0 4096 5000 1 2 4")) == []
