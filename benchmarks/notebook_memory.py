"""Execute notebooks and report each one's wall time and peak memory (kernel RSS, sampled).

Usage:
    python benchmarks/notebook_memory.py [NOTEBOOK ...] [--fast] [--json OUT]

With no notebooks, runs every lesson in notebooks/. The notebooks are executed
in memory (nothing is written back unless ``--inplace``). The kernel's memory, including its child
processes, is sampled every 0.2 s and two peaks are reported in MiB:

* ``peak MiB`` -- the resident set size (RSS): every page in RAM, including the
  pages of shared libraries mapped from disk (about 340 MiB for TensorFlow's);
* ``anon MiB`` -- the anonymous part of it (``RssAnon`` in /proc/PID/status): the
  arrays, tensors and heap the notebook owns. This is what a container's memory
  limit (Binder's 1 GB, a cgroup) cannot give back: under pressure the kernel
  drops clean library pages and reads them again later, but it can only free
  anonymous memory by killing the process.

``--cells N`` also lists the N code cells with the highest anonymous-memory peak (the memory
reached while each cell ran, with the first line of its code).
Use CNNKIT_DATA_DIR to point at CIFAR-10; --fast sets CNNKIT_FAST=1.

``--record`` (with ``--inplace``, full runs on CIFAR-10 only) keeps each lesson's
figures in ``benchmarks/results/lessons.json`` and writes the run-time line of the
lesson's title cell from them (:func:`run_time_line`), so that what a lesson says
about its own run time is what was measured.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from cnnkit.files import write_atomic
from cnnkit.instructor.notebooks import dumps

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "lessons.json"
RUN_TIME = "**Run time:**"


def run_time_line(record: dict) -> str:
    """The title cell's line for a lesson measured as ``record`` (seconds of a full run, cores used)."""
    minutes = max(1, math.ceil(record["seconds"] / 60))
    return (f"{RUN_TIME} about {minutes} min for a full run on CIFAR-10 with {record['cores']} CPU cores "
            f"(allow up to twice that on Binder's single core).")


def stamp(nb, record: dict) -> None:
    """Put :func:`run_time_line` into the title cell, replacing an older run-time line."""
    title = nb.cells[0]
    lines = [line for line in title.source.split("\n") if not line.startswith(RUN_TIME)]
    at = next((i + 1 for i, line in enumerate(lines) if "colab-badge" in line or "mybinder.org/badge" in line), 1)
    lines[at:at] = ["", run_time_line(record)]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    title.source = text


def markdown_table(results: dict) -> str:
    """The recorded lessons as a Markdown table: run time, anonymous and total peak memory."""
    lines = ["| lesson | full run | peak memory, own (anonymous) | peak memory, with shared libraries (RSS) | measured on |",
             "|---|---|---|---|---|"]
    for name, r in sorted(results.items()):
        lines.append(f"| {name} | {r['seconds']:.0f} s | {r['anon_mib']} MiB | {r['peak_mib']} MiB | "
                     f"{r['cpu']}, {r['cores']} cores, {r['date']} |")
    return "\n".join(lines)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _anon(proc: psutil.Process) -> int:
    """RssAnon of one process in bytes (0 where /proc does not say)."""
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rss(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) in bytes of process ``pid`` and all its children."""
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
        return sum(p.memory_info().rss for p in procs), sum(_anon(p) for p in procs)
    except psutil.Error:
        return 0, 0


def run(path: Path, timeout: int = 3600, inplace: bool = False, record: bool = False) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    peak = peak_anon = 0
    current = {"index": None}
    cell_peaks: dict[int, int] = {}
    stop = threading.Event()

    def on_cell_execute(cell, cell_index, **_):
        current["index"] = cell_index

    client.on_cell_execute = on_cell_execute

    def sample():
        nonlocal peak, peak_anon
        while not stop.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                rss, anon = _rss(pid)
                peak, peak_anon = max(peak, rss), max(peak_anon, anon)
                index = current["index"]
                if index is not None:
                    cell_peaks[index] = max(cell_peaks.get(index, 0), anon)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    watcher.start()
    try:
        client.execute()
        error = None
        seconds = round(time.perf_counter() - start, 1)
        if record:
            stamp(nb, {"seconds": seconds, "cores": os.cpu_count()})
        if inplace:  # only a run that finished without an error replaces the saved notebook
            write_atomic(path, dumps(nb))
    except Exception as exc:  # report and go on with the next notebook
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        stop.set()
        watcher.join()
    cells = [{"cell": i, "peak_mib": round(v / 2**20), "code": nb.cells[i].source.strip().splitlines()[0][:60]
              if nb.cells[i].source.strip() else ""} for i, v in sorted(cell_peaks.items())]
    return {"notebook": str(path.relative_to(ROOT)), "seconds": round(time.perf_counter() - start, 1),
            "peak_mib": round(peak / 2**20), "anon_mib": round(peak_anon / 2**20), "error": error, "cells": cells,
            "dataset": os.environ.get("CNNKIT_DATASET", "cifar10"), "fast": os.environ.get("CNNKIT_FAST", "0")}


def _record(result: dict) -> None:
    table = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    table[Path(result["notebook"]).stem] = {
        "seconds": result["seconds"], "peak_mib": result["peak_mib"], "anon_mib": result["anon_mib"],
        "cores": os.cpu_count(), "cpu": _cpu_model(), "date": time.strftime("%Y-%m-%d"),
    }
    write_atomic(RESULTS, json.dumps(dict(sorted(table.items())), indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--fast", action="store_true", help="set CNNKIT_FAST=1")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--inplace", action="store_true",
                        help="save each notebook with its new outputs when it ran without an error")
    parser.add_argument("--record", action="store_true",
                        help=f"keep the figures in {RESULTS.relative_to(ROOT)} and stamp the lesson's run time "
                             "(needs --inplace and a full run on CIFAR-10)")
    parser.add_argument("--record-from", type=Path, metavar="JSON",
                        help="record and stamp from the --json output of an earlier full run with --inplace, "
                             "without running anything")
    parser.add_argument("--table", action="store_true",
                        help=f"print {RESULTS.relative_to(ROOT)} as a Markdown table and stop")
    parser.add_argument("--cells", type=int, default=0, metavar="N", help="also list the N cells with the highest peak")
    args = parser.parse_args()
    if args.fast:
        os.environ["CNNKIT_FAST"] = "1"
    full_run = os.environ.get("CNNKIT_FAST", "0") in ("", "0") and os.environ.get("CNNKIT_DATASET", "cifar10") == "cifar10"
    if args.record and not (args.inplace and full_run):
        parser.error("--record needs --inplace and a full run on CIFAR-10 (no --fast, CNNKIT_DATASET unset)")
    if args.table:
        print(markdown_table(json.loads(RESULTS.read_text())))
        return
    if args.record_from:
        for result in json.loads(args.record_from.read_text()):
            if result["error"] or result.get("dataset") != "cifar10" or result.get("fast") not in ("", "0"):
                raise SystemExit(f"{result['notebook']}: not a full run on CIFAR-10 without errors, nothing recorded")
            _record(result)
            path = ROOT / result["notebook"]
            nb = nbformat.read(path, as_version=4)
            stamp(nb, {"seconds": result["seconds"], "cores": os.cpu_count()})
            write_atomic(path, dumps(nb))
            print(f"recorded {result['notebook']}: {run_time_line({'seconds': result['seconds'], 'cores': os.cpu_count()})}")
        return
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    results = []
    print(f"{'notebook':<42} {'seconds':>8} {'peak MiB':>9} {'anon MiB':>9}  dataset={os.environ.get('CNNKIT_DATASET', 'cifar10')}"
          f" fast={os.environ.get('CNNKIT_FAST', '0')}")
    for path in paths:
        r = run(path, inplace=args.inplace, record=args.record)
        results.append(r)
        if args.record and not r["error"]:
            _record(r)
        print(f"{r['notebook']:<42} {r['seconds']:>8} {r['peak_mib']:>9} {r['anon_mib']:>9}  {r['error'] or ''}", flush=True)
        for cell in sorted(r["cells"], key=lambda c: -c["peak_mib"])[:args.cells]:
            print(f"    cell {cell['cell']:>3} {cell['peak_mib']:>6} MiB  {cell['code']}")
    if args.json:
        write_atomic(args.json, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
