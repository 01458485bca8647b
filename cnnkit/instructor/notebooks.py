"""Exercise notebooks as files: read them safely, find answer and check cells, build exercises from solutions.

Solution notebooks (``solutions/NN_topic.ipynb``) mark answers nbgrader-style::

    ### BEGIN SOLUTION
    answer = ...
    ### END SOLUTION

in cells whose metadata is ``{"nbgrader": {"solution": true, "grade_id": ID, ...}}``,
and carry graded check cells ``{"nbgrader": {"grade": true, "grade_id": ID,
"points": P, ...}}`` holding one call ``checks.check_something(answer, ...)``.
:func:`build_exercise` turns each marked span into ``raise NotImplementedError()``
and clears all outputs.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

from cnnkit.files import write_atomic

MAX_NOTEBOOK_BYTES = 32 * 2**20

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
PLACEHOLDER = "raise NotImplementedError()"
# colour codes, raw or as JUnit XML spells the escape character it may not contain
ANSI = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*[A-Za-z]")
# metadata that records when or where a notebook ran: never part of an exercise
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled")


class NotANotebookError(ValueError):
    """The file is not a Jupyter notebook (nbformat 4)."""


# --------------------------------------------------------------------------- reading


def read_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """Read a notebook, raising :class:`NotANotebookError` that names the file and the problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise NotANotebookError(f"{path} is {size:,} bytes: larger than the {MAX_NOTEBOOK_BYTES:,} a notebook may have")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotANotebookError(f"{path} is not a notebook: it is not UTF-8 text") from None
    except OSError as exc:
        raise NotANotebookError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if not text.strip():
        raise NotANotebookError(f"{path} is not a notebook: the file is empty")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NotANotebookError(f"{path} is not a notebook (expected nbformat 4 JSON): {first}") from None
    if not isinstance(nb.get("cells"), list):
        raise NotANotebookError(f"{path} is not a notebook: it has no list of cells")
    return nb


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_answer_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and bool(nbgrader_meta(cell).get("solution"))


def is_check_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and bool(nbgrader_meta(cell).get("grade"))


# --------------------------------------------------------------------------- build


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace every BEGIN/END SOLUTION span in ``source`` by ``raise NotImplementedError()``.

    The placeholder keeps the indentation of the ``### BEGIN SOLUTION`` line.
    Raises ValueError naming ``where`` when the markers are unbalanced.
    """
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"{where}, line {number}: '{BEGIN}' inside an open solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + PLACEHOLDER)
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"{where}, line {number}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def _clean_cell(cell) -> None:
    for key in VOLATILE_CELL_METADATA:
        cell.get("metadata", {}).pop(key, None)
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None


def build_exercise(solution: nbformat.NotebookNode, where: str = "solution") -> nbformat.NotebookNode:
    """Return the exercise notebook for ``solution``: answers blanked, outputs cleared."""
    nb = copy.deepcopy(solution)
    nb.metadata.pop("widgets", None)
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        _clean_cell(cell)
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if meta and grade_id:
            if grade_id in seen:
                raise ValueError(f"{where}: grade id {grade_id!r} is used by more than one cell")
            seen.add(grade_id)
        if cell.cell_type == "code" and BEGIN in cell.source:
            if not is_answer_cell(cell):
                raise ValueError(f"{where}, cell {index}: has '{BEGIN}' but no nbgrader solution metadata")
            cell.source = strip_solution(cell.source, f"{where}, cell {index}")
        if is_check_cell(cell) and not isinstance(meta.get("points"), (int, float)):
            raise ValueError(f"{where}, cell {index} ({grade_id}): a graded check needs numeric 'points'")
    return nb


def dumps(nb) -> str:
    """Stable JSON for a notebook (sorted keys, indent 1, trailing newline)."""
    return nbformat.writes(nb) + "\n"


def build_all(solutions: Path, exercises: Path, check_only: bool = False) -> list[Path]:
    """Build every exercise; with ``check_only`` write nothing and return those that differ."""
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no solution notebooks (*.ipynb) in {solutions}")
    built = {src: dumps(build_exercise(read_notebook(src), str(src))) for src in sources}
    stale = []
    for src, text in built.items():
        target = exercises / src.name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(target)
            if not check_only:
                write_atomic(target, text)
    extra = sorted(set(exercises.glob("*.ipynb")) - {exercises / s.name for s in sources})
    return stale + extra
