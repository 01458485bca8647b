"""Grading reports: the console table, JSON (and merging shards of it), the gradebook CSV, feedback files."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from cnnkit.files import write_atomic
from cnnkit.instructor.grade import CheckResult, Grade


def format_points(x: float) -> str:
    """A number of points as the tables print it (2, 1.5)."""
    return f"{x:g}"


def format_table(grade: Grade) -> str:
    """A plain-text table of one submission's grade (first line of each message)."""
    head = f"{grade.notebook}  [{grade.exercise or '?'}]  {format_points(grade.total)} / {format_points(grade.max_total)}"
    lines = [head]
    if grade.error:
        lines.append(f"  note: {grade.error}")
    if grade.checks:
        width = max(len("grade id"), *(len(r.grade_id) for r in grade.checks))
        lines.append(f"  {'grade id':<{width}}  points   result")
        for r in grade.checks:
            pts = f"{format_points(r.points)}/{format_points(r.max_points)}"
            first = (r.message.splitlines() or [""])[0]
            lines.append(f"  {r.grade_id:<{width}}  {pts:<7}  {'passed' if r.passed else 'FAILED: ' + first}")
    return "\n".join(lines)


def to_json(grades: list[Grade], seed: int, shard: str | None = None) -> str:
    return json.dumps({"seed": seed, "shard": shard, "grades": [g.as_dict() for g in grades]}, indent=2) + "\n"


def grade_from_dict(data: dict) -> Grade:
    checks = [CheckResult(**c) for c in data.get("checks", [])]
    return Grade(data["notebook"], data.get("exercise"), float(data["total"]), float(data["max_total"]), checks,
                 data.get("error"), data.get("student"))


def merge(paths: list[Path]) -> tuple[list[Grade], list[int]]:
    """The grades of several shard JSON files (in file order, duplicates refused) and their seeds."""
    grades, seeds, seen = [], [], set()
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            part = [grade_from_dict(g) for g in data["grades"]]
            seeds.append(int(data["seed"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a grading JSON file: {type(exc).__name__}: {exc}") from None
        for grade in part:
            if grade.notebook in seen:
                raise ValueError(f"{grade.notebook} is graded in more than one shard ({path})")
            seen.add(grade.notebook)
        grades.extend(part)
    return grades, seeds


def write_details_csv(grades: list[Grade], path: Path) -> None:
    """One row per submission: notebook, student, exercise, total, max_total, one column per grade id, note."""
    ids: list[str] = []
    for g in grades:
        for r in g.checks:
            if r.grade_id not in ids:
                ids.append(r.grade_id)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["notebook", "student", "exercise", "total", "max_total", *ids, "note"])
    writer.writeheader()
    for g in grades:
        row = {"notebook": g.notebook, "student": g.student or "", "exercise": g.exercise or "",
               "total": g.total, "max_total": g.max_total, "note": g.error or ""}
        row.update({r.grade_id: r.points for r in g.checks})
        writer.writerow(row)
    write_atomic(Path(path), buffer.getvalue())


def write_gradebook(grades: list[Grade], path: Path) -> None:
    """An LMS-style gradebook: a student column, one column per exercise, the maximum in the second header row.

    A student with two submissions of one exercise gets the better score.
    """
    exercises = sorted({g.exercise for g in grades if g.exercise})
    maxima = {e: max(g.max_total for g in grades if g.exercise == e) for e in exercises}
    table: dict[str, dict[str, float]] = {}
    for g in grades:
        if g.exercise:
            row = table.setdefault(g.student or Path(g.notebook).stem, {})
            row[g.exercise] = max(row.get(g.exercise, 0.0), g.total)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", *exercises])
    writer.writerow(["Points Possible", *(format_points(maxima[e]) for e in exercises)])
    for student in sorted(table):
        writer.writerow([student, *(format_points(table[student][e]) if e in table[student] else "" for e in exercises)])
    write_atomic(Path(path), buffer.getvalue())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "submission"


def feedback_markdown(grade: Grade) -> str:
    """Everything a student should read about one graded submission, every message in full."""
    lines = [f"# Feedback: {grade.exercise or 'unknown exercise'}", "",
             f"Submission: `{Path(grade.notebook).name}`" + (f" (student {grade.student})" if grade.student else ""),
             "", f"**Score: {format_points(grade.total)} / {format_points(grade.max_total)}**", ""]
    if grade.error:
        lines += ["Notes:", "", *(f"- {part}" for part in grade.error.split("; ")), ""]
    for r in grade.checks:
        status = "passed" if r.passed else "not passed"
        lines += [f"## {r.grade_id}: {format_points(r.points)} / {format_points(r.max_points)} ({status})", ""]
        if r.message:
            lines += ["```text", r.message.replace("```", "'''"), "```", ""]
    return "\n".join(lines)


def write_feedback(grades: list[Grade], folder: Path) -> list[Path]:
    """One Markdown feedback file per submission in ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for g in grades:
        who = g.student or Path(g.notebook).stem
        path = folder / f"{_safe(who)}__{_safe(g.exercise or 'unknown')}.md"
        write_atomic(path, feedback_markdown(g))
        written.append(path)
    return written
