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

``--cells N`` also lists the N code cells with the highest peak (the memory
reached while each cell ran, with the first line of its code).
Use CNNKIT_DATA_DIR to point at CIFAR-10; --fast sets CNNKIT_FAST=1.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


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


def _write_atomic(nb, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def run(path: Path, timeout: int = 3600, inplace: bool = False) -> dict:
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
                    cell_peaks[index] = max(cell_peaks.get(index, 0), rss)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    watcher.start()
    try:
        client.execute()
        error = None
        if inplace:  # only a run that finished without an error replaces the saved notebook
            _write_atomic(nb, path)
    except Exception as exc:  # report and go on with the next notebook
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        stop.set()
        watcher.join()
    cells = [{"cell": i, "peak_mib": round(v / 2**20), "code": nb.cells[i].source.strip().splitlines()[0][:60]
              if nb.cells[i].source.strip() else ""} for i, v in sorted(cell_peaks.items())]
    return {"notebook": str(path.relative_to(ROOT)), "seconds": round(time.perf_counter() - start, 1),
            "peak_mib": round(peak / 2**20), "anon_mib": round(peak_anon / 2**20), "error": error, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--fast", action="store_true", help="set CNNKIT_FAST=1")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--inplace", action="store_true",
                        help="save each notebook with its new outputs when it ran without an error")
    parser.add_argument("--cells", type=int, default=0, metavar="N", help="also list the N cells with the highest peak")
    args = parser.parse_args()
    if args.fast:
        os.environ["CNNKIT_FAST"] = "1"
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    results = []
    print(f"{'notebook':<42} {'seconds':>8} {'peak MiB':>9} {'anon MiB':>9}  dataset={os.environ.get('CNNKIT_DATASET', 'cifar10')}"
          f" fast={os.environ.get('CNNKIT_FAST', '0')}")
    for path in paths:
        r = run(path, inplace=args.inplace)
        results.append(r)
        print(f"{r['notebook']:<42} {r['seconds']:>8} {r['peak_mib']:>9} {r['anon_mib']:>9}  {r['error'] or ''}", flush=True)
        for cell in sorted(r["cells"], key=lambda c: -c["peak_mib"])[:args.cells]:
            print(f"    cell {cell['cell']:>3} {cell['peak_mib']:>6} MiB  {cell['code']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
