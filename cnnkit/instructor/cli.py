"""Instructor commands: build exercises, release the student bundle, grade submissions, merge shards.

    python -m cnnkit.exercises build   [--solutions DIR] [--exercises DIR] [--check]
    python -m cnnkit.exercises release OUT
    python -m cnnkit.exercises grade   SUBMISSION... [--solutions DIR] [--json F] [--csv F] [--gradebook F]
                                       [--feedback DIR] [--jobs N] [--seed S] [--shard K/N] [--unsafe] ...
    python -m cnnkit.exercises merge   SHARD.json... [--json F] [--csv F] [--gradebook F] [--feedback DIR]
"""
from __future__ import annotations

import argparse
import re
import secrets
import shutil
import sys
from pathlib import Path

from cnnkit.checkout import checkout_root
from cnnkit.files import write_atomic
from cnnkit.instructor import report
from cnnkit.instructor.notebooks import NotANotebookError, build_all

# files and folders of a checkout that make up the student bundle (no solutions, no tests)
RELEASE = ("README.md", "LICENSE", "pyproject.toml", "environment.yml", "postBuild", "kit", "cnnkit",
           "notebooks", "exercises", "docs")
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,99}$")


class _Usage(Exception):
    """A command-line mistake: printed as ``error: ...`` with exit status 2."""


def _folder(given: Path | None, name: str, option: str) -> Path:
    if given is not None:
        return given
    root = checkout_root()
    if root is None:
        raise _Usage(f"{option} DIR is required: cnnkit is installed as a package, not run from a "
                     f"checkout, so it has no {name}/ folder of its own")
    return root / name


def _expand(paths: list[str]) -> tuple[list[Path], list[str]]:
    files, problems = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.glob("*.ipynb") if not q.name.startswith(".") and not q.is_symlink())
            if not found:
                problems.append(f"{p}: folder holds no .ipynb files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def student_of(path: Path, exercises: list[str], pattern: re.Pattern | None) -> str | None:
    """The student id: ``pattern``'s ``student`` group on the file name, else the name less its exercise prefix."""
    stem = path.stem
    if pattern is not None:
        match = pattern.search(path.name)
        found = match.group("student") if match and "student" in pattern.groupindex else None
    else:
        found = None
        for name in sorted(exercises, key=len, reverse=True):
            if stem.startswith((name + "_", name + "-")):
                found = stem[len(name) + 1:]
                break
    return found if found and STUDENT_ID.match(found) else None


def _release(out: Path) -> int:
    root = checkout_root()
    if root is None:
        print("error: release works from a checkout of the course", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} exists and is not empty", file=sys.stderr)
        return 2
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in RELEASE:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, staging / name, ignore=ignore)
        elif source.exists():
            staging.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staging / name)
    if out.exists():
        out.rmdir()
    staging.rename(out)
    print(f"student bundle written to {out} (without solutions/ and tests/)")
    return 0


def _write_outputs(args, grades, seed, shard) -> None:
    if args.json:
        write_atomic(args.json, report.to_json(grades, seed, shard))
    if args.csv:
        report.write_details_csv(grades, args.csv)
    if args.gradebook:
        report.write_gradebook(grades, args.gradebook)
    if args.feedback:
        report.write_feedback(grades, args.feedback)


def _outputs(parser) -> None:
    parser.add_argument("--json", type=Path, help="all results as JSON (with the seed)")
    parser.add_argument("--csv", type=Path, help="one row per submission, one column per check")
    parser.add_argument("--gradebook", type=Path, help="gradebook CSV: a student column, one column per exercise")
    parser.add_argument("--feedback", type=Path, help="folder for one Markdown feedback file per submission")


def _grade(args) -> int:
    from cnnkit.instructor import grade as grading
    from cnnkit.instructor import sandbox

    solutions = _folder(args.solutions, "solutions", "--solutions")
    if not solutions.is_dir():
        print(f"error: solutions folder {solutions} does not exist", file=sys.stderr)
        return 2
    for name in ("jobs", "cell_timeout", "timeout", "memory_mb"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    files, problems = _expand(args.submissions)
    try:
        files = grading.shard(files, args.shard)
        pattern = re.compile(args.id_pattern) if args.id_pattern else None
    except (ValueError, re.error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    outputs = [p for p in (args.json, args.csv, args.gradebook, args.feedback) if p]
    hidden = [solutions.resolve(), *(f.resolve() for f in files), *(p.resolve() for p in outputs)]
    if not args.unsafe:
        ok, how = sandbox.Isolation.available()
        if not ok:
            print(f"error: cannot isolate the students' kernels: {how}. Grading would run their code with your "
                  "privileges; pass --unsafe to do it anyway (only for code you trust).", file=sys.stderr)
            return 2
        if not shutil.which("bwrap"):
            exposed = [p for p in (solutions, *{f.parent for f in files}) if sandbox.readable_by_others(p)]
            if exposed:
                print("error: bubblewrap (bwrap) is not installed and these folders can be read by every user, so "
                      f"a student's kernel could read them: {', '.join(map(str, exposed))}. Install bubblewrap, or "
                      "chmod o-rwx them, or pass --unsafe.", file=sys.stderr)
                return 2
        print(f"isolation: {how}", file=sys.stderr)
    else:
        print("WARNING: --unsafe: students' code runs with your privileges and can read and write your files",
              file=sys.stderr)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    limits = sandbox.Limits(memory_bytes=args.memory_mb * 10**6, cpu_seconds=args.timeout)
    options = grading.Options(solutions, seed, args.cell_timeout, args.timeout, args.unsafe, args.exercise, limits,
                              hidden)
    try:
        grader = grading.Grader(options)
    except (ValueError, FileNotFoundError, NotANotebookError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        students = {f: student_of(f, grader.names, pattern) for f in files}
        grades = grading.grade_many(grader, files, args.jobs, students)
    finally:
        grader.close()
    for g in grades:
        print(report.format_table(g))
        print()
    print(f"{len(grades)} submission(s) graded with hidden-input seed {seed}: "
          f"{report.format_points(sum(g.total for g in grades))} / {report.format_points(sum(g.max_total for g in grades))} points in all")
    _write_outputs(args, grades, seed, args.shard)
    return 1 if problems else 0


def _merge(args) -> int:
    try:
        grades, seeds = report.merge(args.shards)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(set(seeds)) > 1:
        print(f"note: the shards were graded with different hidden-input seeds: {sorted(set(seeds))}", file=sys.stderr)
    _write_outputs(args, grades, seeds[0] if seeds else 0, None)
    print(f"merged {len(grades)} submission(s) from {len(args.shards)} file(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.exercises", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="regenerate exercises/ from solutions/")
    b.add_argument("--solutions", type=Path)
    b.add_argument("--exercises", type=Path)
    b.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    r = sub.add_parser("release", help="write the student bundle (lessons, exercises, package; no solutions)")
    r.add_argument("out", type=Path)
    g = sub.add_parser("grade", help="grade submissions (files or folders) in sandboxed kernels through nbval")
    g.add_argument("submissions", nargs="+")
    g.add_argument("--solutions", type=Path)
    _outputs(g)
    g.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    g.add_argument("--seed", type=int, help="seed of the hidden inputs (default: random, recorded in the output)")
    g.add_argument("--shard", help="grade only the K-th of N slices of the sorted submissions, e.g. 2/8")
    g.add_argument("--exercise", help="grade every submission as this exercise (a solution's name)")
    g.add_argument("--id-pattern", help="regular expression with a (?P<student>...) group, applied to file names")
    g.add_argument("--cell-timeout", type=int, default=120, help="seconds one cell may run (default 120)")
    g.add_argument("--timeout", type=int, default=1800, help="seconds one submission may run (default 1800)")
    g.add_argument("--memory-mb", type=int, default=2000, help="memory of one kernel, MB (default 2000)")
    g.add_argument("--unsafe", action="store_true", help="run students' code without isolation")
    m = sub.add_parser("merge", help="join the JSON files of several shards")
    m.add_argument("shards", nargs="+", type=Path)
    _outputs(m)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "build":
        solutions = _folder(args.solutions, "solutions", "--solutions")
        exercises = _folder(args.exercises, "exercises", "--exercises")
        try:
            changed = build_all(solutions, exercises, check_only=args.check)
        except (ValueError, FileNotFoundError, NotANotebookError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.check:
            for path in changed:
                print(f"out of date: {path}")
            return 1 if changed else 0
        print(f"built {len(list(solutions.glob('*.ipynb')))} exercise notebooks in {exercises}"
              + (f" ({len(changed)} changed)" if changed else " (all up to date)"))
        return 0
    if args.command == "release":
        return _release(args.out)
    if args.command == "merge":
        return _merge(args)
    return _grade(args)
