"""Exercise notebooks: build them from the solutions, and grade submissions through nbval.

Solution notebooks (``solutions/NN_topic.ipynb``) mark answers nbgrader-style::

    ### BEGIN SOLUTION
    answer = ...
    ### END SOLUTION

in cells whose metadata is ``{"nbgrader": {"solution": true, "grade_id": ID, ...}}``,
and carry graded check cells ``{"nbgrader": {"grade": true, "grade_id": ID,
"points": P, ...}}``.

``python -m cnnkit.exercises build`` writes ``exercises/NN_topic.ipynb`` for
every solution: each marked span becomes ``raise NotImplementedError()`` and
all outputs are cleared.

``python -m cnnkit.exercises grade SUBMISSION [...]`` grades submissions (files
or folders of ``.ipynb``). For each it takes the freshly built exercise of the
matching solution, copies in only the submission's answer cells (matched by
grade id), so that an edited or deleted check cell earns nothing, executes the
result with nbval (one pytest item per code cell) and awards a check's points
when its cell passes. It prints a table per submission and can write JSON and
CSV. A submission that crashes, loops forever (per-cell timeout), is empty or
is not a notebook gets a clear result, and the run goes on.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
PLACEHOLDER = "raise NotImplementedError()"
ROOT = Path(__file__).resolve().parent.parent
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


def exercise_name(nb, path: Path) -> str:
    """The exercise a notebook belongs to: ``metadata.cnnkit.exercise``, else the file's stem."""
    meta = nb.get("metadata", {}).get("cnnkit", {})
    if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
        return meta["exercise"]
    return path.stem


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


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are ordinary course files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
                _write_atomic(target, text)
    extra = sorted(set(exercises.glob("*.ipynb")) - {exercises / s.name for s in sources})
    return stale + extra


# --------------------------------------------------------------------------- grade


@dataclass
class CheckResult:
    grade_id: str
    points: float
    max_points: float
    passed: bool
    message: str = ""


@dataclass
class Grade:
    notebook: str
    exercise: str | None
    total: float
    max_total: float
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def find_solution(nb, path: Path, solutions: Path) -> Path | None:
    """The solution notebook a submission belongs to (metadata first, then file name)."""
    if nb is not None:
        named = solutions / f"{exercise_name(nb, path)}.ipynb"
        if named.exists():
            return named
    candidates = sorted(solutions.glob("*.ipynb"), key=lambda p: len(p.stem), reverse=True)
    for candidate in candidates:
        if path.stem == candidate.stem or path.stem.startswith(candidate.stem + "_") or path.stem.startswith(candidate.stem + "-"):
            return candidate
    return None


def assemble(solution: nbformat.NotebookNode, submission: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook to run: the built exercise with the submission's answer cells copied in.

    Returns it and the grade ids of answer cells the submission lacks (they stay blank).
    """
    nb = build_exercise(solution)
    answers = {}
    for cell in submission.get("cells", []):
        if is_answer_cell(cell):
            answers.setdefault(nbgrader_meta(cell).get("grade_id"), cell.get("source", ""))
    missing = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "nbval-check-output" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "nbval-check-output"]
        if is_answer_cell(cell):
            grade_id = nbgrader_meta(cell).get("grade_id")
            if grade_id in answers:
                source = answers[grade_id]
                cell.source = "".join(source) if isinstance(source, list) else str(source)
            else:
                missing.append(grade_id)
    return nb, missing


def _error_line(text: str) -> str:
    """The last 'SomeError: message' line of an nbval failure report (ANSI colours removed)."""
    text = ANSI.sub("", text or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "Timeout of" in line:  # nbval's words for a cell stopped at --cell-timeout
            return line[line.index("Timeout of"):]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt|Exit)\b:?", line):
            return line
    return lines[-1] if lines else "the cell failed"


def _cell_outcomes(junit_xml: Path) -> dict[int, tuple[str, str]]:
    """Map code-cell number -> ("passed" | "failed" | "skipped", message) from nbval's JUnit XML."""
    outcomes: dict[int, tuple[str, str]] = {}
    root = ET.parse(junit_xml).getroot()
    for case in root.iter("testcase"):
        match = re.search(r"Cell (\d+)", case.get("name", ""))
        if not match:
            continue
        number = int(match.group(1))
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status = "failed"
                message = _error_line((child.get("message") or "") + "\n" + (child.text or ""))
            elif child.tag == "skipped":
                status, message = "skipped", child.get("message") or "skipped"
        outcomes[number] = (status, message)
    return outcomes


def run_with_nbval(nb, *, cell_timeout: int, timeout: int) -> tuple[dict[int, tuple[str, str]], str | None]:
    """Execute ``nb`` with nbval in a scratch folder; return cell outcomes and a run-level error."""
    with tempfile.TemporaryDirectory(prefix="cnnkit-grade-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "submission.ipynb").write_text(dumps(nb), encoding="utf-8")
        (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        report = tmp_path / "report.xml"
        command = [
            sys.executable, "-m", "pytest", "submission.ipynb", "-q", "-p", "no:cacheprovider",
            "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}", "--color=no",
            "-c", "pytest.ini", "--rootdir", tmp, f"--junitxml={report}",
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            proc = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            outcomes = _cell_outcomes(report) if report.exists() else {}
            return outcomes, f"the whole notebook ran longer than {timeout} s and was stopped"
        if not report.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return {}, "nbval did not run: " + " | ".join(tail)
        return _cell_outcomes(report), None


def grade_notebook(path: str | os.PathLike, solutions: Path, *, cell_timeout: int = 120,
                   timeout: int = 1800) -> Grade:
    """Grade one submission; never raises for a bad submission (the Grade says what went wrong)."""
    path = Path(path)
    try:
        submission = read_notebook(path)
        problem = None
    except NotANotebookError as exc:
        submission, problem = None, str(exc)
    solution_path = find_solution(submission, path, solutions)
    if solution_path is None:
        reason = problem or f"no solution in {solutions} matches it (metadata cnnkit.exercise or file name)"
        return Grade(str(path), None, 0, 0, [], reason)
    solution = read_notebook(solution_path)
    checks = [(i, c) for i, c in enumerate(solution.cells) if is_check_cell(c)]
    max_total = float(sum(nbgrader_meta(c)["points"] for _, c in checks))
    exercise = solution_path.stem
    if submission is None:
        results = [CheckResult(nbgrader_meta(c)["grade_id"], 0, nbgrader_meta(c)["points"], False, problem)
                   for _, c in checks]
        return Grade(str(path), exercise, 0, max_total, results, problem)
    nb, missing = assemble(solution, submission)
    code_number = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            code_number[index] = len(code_number)
    outcomes, run_error = run_with_nbval(nb, cell_timeout=cell_timeout, timeout=timeout)
    answer_errors = {}
    for index, cell in enumerate(nb.cells):
        if is_answer_cell(cell):
            status, message = outcomes.get(code_number[index], ("failed", "not run"))
            if status != "passed":
                answer_errors[nbgrader_meta(cell).get("grade_id")] = message
    results = []
    for index, cell in checks:
        meta = nbgrader_meta(cell)
        status, message = outcomes.get(code_number[index], ("failed", run_error or "the cell was not run"))
        ok = status == "passed"
        if not ok and answer_errors and ("NameError" in message or status == "skipped" or not message):
            message = f"{message} (an answer cell failed: {'; '.join(f'{k}: {v}' for k, v in answer_errors.items())})"
        results.append(CheckResult(meta["grade_id"], float(meta["points"]) if ok else 0.0,
                                   float(meta["points"]), ok, "" if ok else message))
    notes = []
    if missing:
        notes.append(f"answer cells missing from the submission (graded blank): {', '.join(map(str, missing))}")
    if run_error:
        notes.append(run_error)
    total = float(sum(r.points for r in results))
    return Grade(str(path), exercise, total, max_total, results, "; ".join(notes) or None)


def _fmt(x: float) -> str:
    return f"{x:g}"


def format_table(grade: Grade) -> str:
    """A plain-text table of one submission's grade."""
    head = f"{grade.notebook}  [{grade.exercise or '?'}]  {_fmt(grade.total)} / {_fmt(grade.max_total)}"
    lines = [head]
    if grade.error:
        lines.append(f"  note: {grade.error}")
    if grade.checks:
        width = max(len("grade id"), *(len(r.grade_id) for r in grade.checks))
        lines.append(f"  {'grade id':<{width}}  points   result")
        for r in grade.checks:
            pts = f"{_fmt(r.points)}/{_fmt(r.max_points)}"
            result = "passed" if r.passed else f"FAILED: {r.message}"
            lines.append(f"  {r.grade_id:<{width}}  {pts:<7}  {result}")
    return "\n".join(lines)


def write_csv(grades: list[Grade], path: Path) -> None:
    """One row per submission: notebook, exercise, total, max_total, one column per grade id, note."""
    ids: list[str] = []
    for g in grades:
        for r in g.checks:
            if r.grade_id not in ids:
                ids.append(r.grade_id)
    rows = []
    for g in grades:
        row = {"notebook": g.notebook, "exercise": g.exercise or "", "total": g.total, "max_total": g.max_total}
        row.update({r.grade_id: r.points for r in g.checks})
        row["note"] = g.error or ""
        rows.append(row)
    fields = ["notebook", "exercise", "total", "max_total", *ids, "note"]
    text_path = Path(path)
    with tempfile.NamedTemporaryFile("w", newline="", delete=False, dir=text_path.parent or ".",
                                     suffix=".tmp", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(handle.name, text_path)


def _expand(paths: list[str]) -> tuple[list[Path], list[str]]:
    files, problems = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.glob("*.ipynb") if not q.name.startswith("."))
            if not found:
                problems.append(f"{p}: folder holds no .ipynb files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def grade_many(paths: list[Path], solutions: Path, *, jobs: int = 1, cell_timeout: int = 120,
               timeout: int = 1800) -> list[Grade]:
    """Grade submissions, ``jobs`` at a time, keeping the input order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grade_notebook, p, solutions, cell_timeout=cell_timeout, timeout=timeout)
                   for p in paths]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------- command line


_FOLDER_HELP = "default: the checkout's folder of that name; required when cnnkit is installed as a package"


def _course_folder(name: str) -> Path | None:
    """``name`` in the checkout cnnkit runs from, or None when it is installed (no default then)."""
    from cnnkit.checkout import checkout_root

    root = checkout_root(Path(__file__).resolve().parent)
    return root / name if root is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.exercises", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="regenerate exercises/ from solutions/")
    b.add_argument("--solutions", type=Path, default=_course_folder("solutions"), help=_FOLDER_HELP)
    b.add_argument("--exercises", type=Path, default=_course_folder("exercises"), help=_FOLDER_HELP)
    b.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    g = sub.add_parser("grade", help="grade submissions (files or folders) through nbval")
    g.add_argument("submissions", nargs="+")
    g.add_argument("--solutions", type=Path, default=_course_folder("solutions"), help=_FOLDER_HELP)
    g.add_argument("--json", type=Path, help="write all results as JSON here")
    g.add_argument("--csv", type=Path, help="write one row per submission as CSV here")
    g.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    g.add_argument("--cell-timeout", type=int, default=120, help="seconds one cell may run (default 120)")
    g.add_argument("--timeout", type=int, default=1800, help="seconds one submission may run (default 1800)")
    args = parser.parse_args(argv)
    for option in ("solutions", "exercises"):
        if option in vars(args) and getattr(args, option) is None:
            parser.error(f"--{option} DIR is required: cnnkit is installed as a package, not run from a "
                         f"checkout, so it has no {option}/ folder of its own")

    if args.command == "build":
        try:
            changed = build_all(args.solutions, args.exercises, check_only=args.check)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.check:
            for path in changed:
                print(f"out of date: {path}")
            return 1 if changed else 0
        print(f"built {len(list(args.solutions.glob('*.ipynb')))} exercise notebooks in {args.exercises}"
              + (f" ({len(changed)} changed)" if changed else " (all up to date)"))
        return 0

    if not args.solutions.is_dir():
        print(f"error: solutions folder {args.solutions} does not exist", file=sys.stderr)
        return 2
    for name in ("jobs", "cell_timeout", "timeout"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    files, problems = _expand(args.submissions)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    grades = grade_many(files, args.solutions, jobs=args.jobs, cell_timeout=args.cell_timeout,
                        timeout=args.timeout)
    for grade in grades:
        print(format_table(grade))
        print()
    if grades:
        total = sum(g.total for g in grades)
        possible = sum(g.max_total for g in grades)
        print(f"{len(grades)} submission(s) graded: {_fmt(total)} / {_fmt(possible)} points in all")
    if args.json:
        _write_atomic(args.json, json.dumps([g.as_dict() for g in grades], indent=2) + "\n")
    if args.csv:
        write_csv(grades, args.csv)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
