"""The course as committed: every lesson is linked, structured as agreed and saved from a full run."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
ALL = LESSONS + SOLUTIONS


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def test_every_lesson_linked_from_readme_and_start_page():
    readme = (ROOT / "README.md").read_text()
    start = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    start_text = "".join(c.source for c in start.cells)
    linked = set(re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", readme))
    for target in linked | set(re.findall(r"\]\((exercises/[^)]+\.ipynb)\)", readme)):
        assert (ROOT / target).exists(), f"README links to missing {target}"
    for lesson in LESSONS:
        assert f"notebooks/{lesson.name}" in linked, f"README's course map lacks {lesson.name}"
        assert f"({lesson.name})" in start_text, f"00_start_here lacks {lesson.name}"
        assert (ROOT / "solutions" / lesson.name).exists(), f"{lesson.name} has no solutions/ notebook"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_anatomy(path):
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {path.stem[:2]}")
    assert f"urlpath=lab/tree/notebooks/{path.name}" in title.source, "title cell lacks the Binder badge"
    assert f"exercises/{path.name}" in title.source, "title cell lacks the link to the exercise notebook"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "import cnnkit as ck" in code[0].source and "ck.setup(" in code[0].source


@pytest.mark.parametrize("path", ALL, ids=[f"{p.parent.name}/{p.stem}" for p in ALL])
def test_saved_from_a_full_run_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    unrun = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unrun, f"code cells {unrun} were not run before saving"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), "cells were run out of order"
    errors = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.outputs)]
    assert not errors, f"code cells {errors} saved with an error output"
    setup_output = _outputs_text(code[0])
    assert "fast mode: off" in setup_output, "saved from a fast-mode run; re-run it in full"
    described = [_outputs_text(c) for c in code if "dataset: " in _outputs_text(c)]
    for text in described:
        assert "dataset: cifar10" in text, "saved from a run on the offline dataset; re-run it on CIFAR-10"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_metadata(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("cnnkit", {}).get("exercise") == path.stem
    assert (ROOT / "notebooks" / path.name).exists(), f"{path.name} has no lesson"
