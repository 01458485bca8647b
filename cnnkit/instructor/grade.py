"""Grading submissions: rebuild each from the solution, run it through nbval in a sandbox, judge it here.

For each submission: the exercise is one of the known solution names (from
``metadata.cnnkit.exercise``, the file name, or ``--exercise``; never a path);
the built exercise gets the submission's answer cells (matched by the
solution's grade ids) and, in place of every check cell, a probe cell
(:mod:`cnnkit.checks.probe`); nbval executes that notebook in the sandboxed
kernel (:mod:`cnnkit.instructor.sandbox`); the kernel's plain results are then
judged in this process (:mod:`cnnkit.instructor.judge`) on the visible inputs
and on hidden ones drawn from the run's seed. A malformed submission becomes a
note and zeros, never a crash of the run.
"""
from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cnnkit.instructor import judge as judging
from cnnkit.instructor import sandbox
from cnnkit.instructor.notebooks import (
    ANSI, NotANotebookError, build_exercise, dumps, is_answer_cell, is_check_cell, nbgrader_meta, read_notebook,
)

MAX_NAME = 100
# nbval's pytest, started lean: no plugin but nbval is loaded, and jsonschema's optional IRI format
# checker (which builds a grammar for about a second when imported, for formats notebooks never use)
# is left out; together 2.9 s -> 0.4 s of start-up per submission
_NBVAL_RUNNER = ("import sys\n"
                 "sys.modules['rfc3987_syntax'] = None\n"
                 "import pytest\n"
                 "sys.exit(pytest.main(sys.argv[1:]))\n")
_LOCK = threading.Lock()   # judging loads Keras models: one at a time


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
    student: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Exercise:
    """A solution notebook planned for one grading run."""

    name: str
    solution: object
    plans: list
    namespace: dict
    answer_names: set
    answer_ids: list

    @property
    def max_total(self) -> float:
        return float(sum(p.points for p in self.plans))


@dataclass
class Options:
    solutions: Path
    seed: int
    cell_timeout: int = 120
    timeout: int = 1800
    unsafe: bool = False
    exercise: str | None = None
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    hidden: list = field(default_factory=list)   # folders the kernel must not see


class Grader:
    """Grades submissions against the solutions in ``options.solutions`` (plans each exercise once)."""

    def __init__(self, options: Options):
        self.options = options
        self.names = sorted(p.stem for p in options.solutions.glob("*.ipynb") if not p.name.startswith("."))
        if not self.names:
            raise FileNotFoundError(f"no solution notebooks (*.ipynb) in {options.solutions}")
        if options.exercise is not None and options.exercise not in self.names:
            raise ValueError(f"--exercise {options.exercise!r} is not one of the solutions: {', '.join(self.names)}")
        self._exercises: dict[str, Exercise] = {}
        self._slots: queue.Queue = queue.Queue()
        self._claimed: dict[int, int] = {}   # slot -> file descriptor holding its lock
        self._root = Path(tempfile.mkdtemp(prefix="cnnkit-grading-"))
        os.chmod(self._root, 0o711)   # slot users may pass through to their own folder, not list it

    def close(self) -> None:
        sandbox.release_slots(self._claimed)
        shutil.rmtree(self._root, ignore_errors=True)

    # ------------------------------------------------------------------ exercises

    def exercise(self, name: str) -> Exercise:
        with _LOCK:
            if name not in self._exercises:
                path = self.options.solutions / f"{name}.ipynb"
                solution = read_notebook(path)
                plans, namespace, names = judging.plan_exercise(solution, str(path), self.options.seed)
                ids = [nbgrader_meta(c).get("grade_id") for c in solution.cells if is_answer_cell(c)]
                self._exercises[name] = Exercise(name, solution, plans, namespace, names, ids)
            return self._exercises[name]

    def exercise_of(self, nb, path: Path) -> tuple[str | None, str | None]:
        """(exercise name, note): ``--exercise``, then the notebook's metadata, then the file name."""
        if self.options.exercise:
            return self.options.exercise, None
        note = None
        meta = nb.get("metadata", {}).get("cnnkit") if nb is not None else None
        named = meta.get("exercise") if isinstance(meta, dict) else None
        if isinstance(named, str) and named in self.names:
            return named, None
        if named is not None:
            shown = repr(named)[:60] + ("..." if len(repr(named)) > 60 else "")
            note = f"metadata names the exercise {shown}, which is not one of the exercises; matched by file name"
        for name in sorted(self.names, key=len, reverse=True):
            stem = path.stem
            if stem == name or stem.startswith((name + "_", name + "-")):
                return name, note
        return None, note

    # ------------------------------------------------------------------ one submission

    def grade(self, path: Path, student: str | None = None) -> Grade:
        """Grade one submission; never raises for a bad submission (the Grade says what went wrong)."""
        try:
            return self._grade(Path(path), student)
        except Exception as exc:  # the grader's own failure on this submission: a note, the run goes on
            return Grade(str(path), None, 0, 0, [], f"grading failed: {type(exc).__name__}: {exc}", student)

    def _grade(self, path: Path, student: str | None) -> Grade:
        try:
            submission, problem = read_notebook(path), None
        except NotANotebookError as exc:
            submission, problem = None, str(exc)
        name, note = self.exercise_of(submission, path)
        if name is None:
            reason = problem or note or "no exercise matches it (metadata cnnkit.exercise or the file name)"
            return Grade(str(path), None, 0, 0, [], reason, student)
        exercise = self.exercise(name)
        blank = [CheckResult(p.grade_id, 0.0, p.points, False, problem or "") for p in exercise.plans]
        if submission is None:
            return Grade(str(path), name, 0, exercise.max_total, blank, problem, student)
        notes = [note] if note else []
        answers, answer_notes = collect_answers(submission, exercise.answer_ids)
        notes += answer_notes
        nb = assemble(exercise, answers)
        checks, run_notes = self._execute(nb, exercise)
        notes += run_notes
        total = float(sum(c.points for c in checks))
        return Grade(str(path), name, total, exercise.max_total, checks, "; ".join(notes) or None, student)

    def _execute(self, nb, exercise: Exercise) -> tuple[list[CheckResult], list[str]]:
        """Run ``nb`` with nbval in a sandbox, then judge every check; return the results and notes."""
        slot = self._acquire_slot()
        work = Path(tempfile.mkdtemp(prefix=f"slot{slot}-", dir=self._root))
        try:
            results, notes = self._execute_in(nb, len(exercise.plans), slot, work)
            if not self.options.unsafe:   # nothing of the kernel may run while its results are read
                sandbox.kill_all(sandbox.slot_user(slot).pw_uid)
            return [self._judge(exercise, plan, results.get(plan.index)) for plan in exercise.plans], notes
        finally:
            if not self.options.unsafe:
                sandbox.kill_all(sandbox.slot_user(slot).pw_uid)
            shutil.rmtree(work, ignore_errors=True)
            self._slots.put(slot)

    def _judge(self, exercise: Exercise, plan, found) -> CheckResult:
        if isinstance(found, str) or found is None:
            return CheckResult(plan.grade_id, 0.0, plan.points, False,
                               found or "the check cell did not run (an earlier cell stopped the notebook)")
        data, folder = found
        with _LOCK:
            ok, message = judging.judge(plan, exercise.namespace, exercise.answer_names, data, folder, self.options.seed)
        return CheckResult(plan.grade_id, plan.points if ok else 0.0, plan.points, ok, ANSI.sub("", message))

    def _acquire_slot(self) -> int:
        try:
            return self._slots.get_nowait()
        except queue.Empty:
            with _LOCK:
                if self.options.unsafe:   # no users to share: any number will do
                    slot = len(self._claimed)
                    self._claimed[slot] = -1
                    return slot
                return sandbox.claim_slot(self._claimed)

    def _execute_in(self, nb, n_checks: int, slot: int, work: Path):
        runner = work / "runner"
        runner.mkdir()
        (runner / "submission.ipynb").write_text(dumps(nb), encoding="utf-8")
        (runner / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        report = runner / "report.xml"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        command = [sys.executable, "-c", _NBVAL_RUNNER, "submission.ipynb", "-q", "-p", "nbval", "-p", "no:cacheprovider",
                   "--nbval-lax", f"--nbval-cell-timeout={self.options.cell_timeout}", "--color=no",
                   "-c", "pytest.ini", "--rootdir", str(runner), f"--junitxml={report}"]
        watch = None
        if self.options.unsafe:
            out = work / "out"
            out.mkdir()
            env["CNNKIT_PROBE_OUT"] = str(out)
            command.append("--nbval-current-env")
        else:
            user = sandbox.slot_user(slot)
            out = sandbox.prepare_work(work / "kernel", user)
            isolation = sandbox.Isolation(hidden=[self._root, *self.options.hidden])
            spec = sandbox.write_kernel_spec(work / "jupyter", user, work / "kernel", self.options.limits, isolation)
            env["JUPYTER_PATH"] = str(spec)
            command.append(f"--nbval-kernel-name={sandbox.KERNEL_NAME}")
            watch = sandbox.MemoryWatch(user.pw_uid, self.options.limits.memory_bytes)
            watch.start()
        notes = []
        try:
            proc = subprocess.run(command, cwd=runner, env=env, capture_output=True, text=True,
                                  timeout=self.options.timeout)
        except subprocess.TimeoutExpired:
            proc = None
            notes.append(f"the whole notebook ran longer than {self.options.timeout} s and was stopped")
        finally:
            if watch is not None:
                watch.stop()
        if watch is not None and watch.exceeded:
            notes.append(f"the kernel was stopped: it used more than {self.options.limits.memory_bytes / 1e9:g} GB "
                         "of memory")
        outcomes = cell_outcomes(report) if report.exists() else {}
        if proc is not None and not report.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            notes.append("nbval did not run: " + " | ".join(tail))
        failed_answers = [f"{gid}: {msg}" for gid, (status, msg) in answer_outcomes(nb, outcomes).items()
                          if status != "passed"]
        if failed_answers:
            notes.append("answer cells that failed: " + "; ".join(failed_answers))
        results: dict = {}
        if out.is_symlink() or not out.is_dir() or any(p.is_symlink() for p in out.parents if work in p.parents):
            notes.append("the results folder was replaced by the notebook: no results were read")
            return results, notes
        for index in range(n_checks):
            try:
                data = judging.read_results(out, index)
            except Exception as exc:
                results[index] = f"the results of this check could not be read: {exc}"
                continue
            if data is not None:
                results[index] = (data, out)
        return results, notes


# --------------------------------------------------------------------------- assembling


def collect_answers(submission, answer_ids: list) -> tuple[dict, list[str]]:
    """{grade id: source} of the submission's answer cells (known ids only), and notes on what was odd."""
    notes, found = [], {}
    for cell in submission.get("cells", []) if isinstance(submission.get("cells"), list) else []:
        if not isinstance(cell, dict) or not is_answer_cell(cell):
            continue
        grade_id = nbgrader_meta(cell).get("grade_id")
        if not isinstance(grade_id, str) or grade_id not in answer_ids:
            shown = repr(grade_id)[:MAX_NAME]
            notes.append(f"an answer cell with the unknown grade id {shown} was ignored")
            continue
        source = cell.get("source", "")
        source = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else source
        if not isinstance(source, str):
            notes.append(f"answer cell {grade_id!r} has no text and was graded blank")
            continue
        count = cell.get("execution_count")
        count = count if isinstance(count, int) and not isinstance(count, bool) else -1
        found.setdefault(grade_id, []).append((count, source))
    answers = {}
    for grade_id, versions in found.items():
        if len(versions) > 1:
            best = max(range(len(versions)), key=lambda i: (versions[i][0], i))
            notes.append(f"answer cell {grade_id!r} appears {len(versions)} times: graded the one run last "
                         f"(copy {best + 1}, execution count {versions[best][0] if versions[best][0] >= 0 else 'none'})")
            answers[grade_id] = versions[best][1]
        else:
            answers[grade_id] = versions[0][1]
    missing = [gid for gid in answer_ids if gid not in answers]
    if missing:
        notes.append(f"answer cells missing from the submission (graded blank): {', '.join(missing)}")
    return answers, notes


def assemble(exercise: Exercise, answers: dict):
    """The built exercise with the submission's answers and a probe cell in place of each check cell."""
    nb = build_exercise(exercise.solution)
    plans = iter(exercise.plans)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "nbval-check-output" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "nbval-check-output"]
        if is_answer_cell(cell):
            grade_id = nbgrader_meta(cell).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        elif is_check_cell(cell):
            cell.source = next(plans).probe_source()
    return nb


def cell_outcomes(junit_xml: Path) -> dict[int, tuple[str, str]]:
    """Map code-cell number -> ("passed" | "failed" | "skipped", message) from nbval's JUnit XML."""
    outcomes: dict[int, tuple[str, str]] = {}
    root = ET.parse(junit_xml).getroot()
    for case in root.iter("testcase"):
        match = re.search(r"Cell (\d+)", case.get("name", ""))
        if not match:
            continue
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status = "failed"
                message = error_line((child.get("message") or "") + "\n" + (child.text or ""))
            elif child.tag == "skipped":
                status, message = "skipped", child.get("message") or "skipped"
        outcomes[int(match.group(1))] = (status, message)
    return outcomes


def answer_outcomes(nb, outcomes: dict) -> dict[str, tuple[str, str]]:
    numbers, result = {}, {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            numbers[id(cell)] = len(numbers)
    for cell in nb.cells:
        if is_answer_cell(cell):
            result[nbgrader_meta(cell).get("grade_id")] = outcomes.get(numbers[id(cell)], ("failed", "not run"))
    return result


def error_line(text: str) -> str:
    """The last 'SomeError: message' line of an nbval failure report (colour codes removed)."""
    lines = [line.strip() for line in ANSI.sub("", text or "").splitlines() if line.strip()]
    for line in lines:
        if "Timeout of" in line:  # nbval's words for a cell stopped at --nbval-cell-timeout
            return line[line.index("Timeout of"):]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt|Exit)\b:?", line):
            return line
    return lines[-1] if lines else "the cell failed"


def shard(paths: list[Path], spec: str | None) -> list[Path]:
    """The K-th of N deterministic slices (``spec`` = "K/N", K from 1) of the sorted paths."""
    ordered = sorted(paths, key=lambda p: str(p))
    if spec is None:
        return ordered
    match = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard must be K/N with 1 <= K <= N, got {spec!r}")
    k, n = int(match.group(1)), int(match.group(2))
    return [p for i, p in enumerate(ordered) if i % n == k - 1]


def grade_many(grader: Grader, paths: list[Path], jobs: int = 1, students: dict | None = None) -> list[Grade]:
    """Grade ``paths``, ``jobs`` at a time, keeping their order."""
    students = students or {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grader.grade, p, students.get(p)) for p in paths]
        return [f.result() for f in futures]
