"""Cost of grading one submission: seconds and CPU-seconds per submission, isolation on.

Grades N copies of an exercise (by default 30 of exercise 05: half the solution,
half the blank exercise) in one ``python -m cnnkit.exercises grade`` run and
reports wall time and CPU time (the grader and every process it started) per
submission. Run as root (the sandbox needs it)::

    python benchmarks/grading.py [--exercise 05_parameter_counting] [-n 30] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="05_parameter_counting")
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cnnkit-bench-grading-"))
    try:
        for i in range(args.n):
            source = ROOT / ("solutions" if i % 2 == 0 else "exercises") / f"{args.exercise}.ipynb"
            shutil.copy(source, folder / f"{args.exercise}_student{i:03d}.ipynb")
        out = folder / "grades.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cnnkit.exercises", "grade", str(folder), "--jobs",
                               str(args.jobs), "--json", str(out)], capture_output=True, text=True,
                              env={**os.environ, "CNNKIT_DATASET": os.environ.get("CNNKIT_DATASET", "offline")})
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        grades = json.loads(out.read_text())["grades"]
        totals = sorted({g["total"] for g in grades})
        for note in sorted({g["error"] for g in grades if g["error"]}):
            print(f"note: {note[:300]}")
        print(f"{args.n} submissions of {args.exercise}, --jobs {args.jobs}, {os.cpu_count()} CPUs")
        print(f"scores seen: {totals} (max {grades[0]['max_total']})")
        print(f"wall: {wall:.1f} s in all, {wall / args.n:.2f} s per submission")
        print(f"CPU:  {cpu:.1f} s in all, {cpu / args.n:.2f} CPU-s per submission")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
