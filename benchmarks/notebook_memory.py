"""Execute notebooks and report each one's wall time and peak memory (kernel RSS, sampled).

Usage:
    python benchmarks/notebook_memory.py [NOTEBOOK ...] [--fast] [--json OUT]

With no notebooks, runs every lesson in notebooks/. The notebooks are executed
in memory (nothing is written back). The kernel's resident set size, including
its child processes, is sampled every 0.2 s; the peak is reported in MiB, and
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


def _rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
    except psutil.Error:
        return 0


def run(path: Path, timeout: int = 3600) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    peak = 0
    current = {"index": None}
    cell_peaks: dict[int, int] = {}
    stop = threading.Event()

    def on_cell_execute(cell, cell_index, **_):
        current["index"] = cell_index

    client.on_cell_execute = on_cell_execute

    def sample():
        nonlocal peak
        while not stop.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                rss = _rss(pid)
                peak = max(peak, rss)
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
    except Exception as exc:  # report and go on with the next notebook
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        stop.set()
        watcher.join()
    cells = [{"cell": i, "peak_mib": round(v / 2**20), "code": nb.cells[i].source.strip().splitlines()[0][:60]
              if nb.cells[i].source.strip() else ""} for i, v in sorted(cell_peaks.items())]
    return {"notebook": str(path.relative_to(ROOT)), "seconds": round(time.perf_counter() - start, 1),
            "peak_mib": round(peak / 2**20), "error": error, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--fast", action="store_true", help="set CNNKIT_FAST=1")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cells", type=int, default=0, metavar="N", help="also list the N cells with the highest peak")
    args = parser.parse_args()
    if args.fast:
        os.environ["CNNKIT_FAST"] = "1"
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    results = []
    print(f"{'notebook':<42} {'seconds':>8} {'peak MiB':>9}  dataset={os.environ.get('CNNKIT_DATASET', 'cifar10')}"
          f" fast={os.environ.get('CNNKIT_FAST', '0')}")
    for path in paths:
        r = run(path)
        results.append(r)
        print(f"{r['notebook']:<42} {r['seconds']:>8} {r['peak_mib']:>9}  {r['error'] or ''}", flush=True)
        for cell in sorted(r["cells"], key=lambda c: -c["peak_mib"])[:args.cells]:
            print(f"    cell {cell['cell']:>3} {cell['peak_mib']:>6} MiB  {cell['code']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
