"""Test-suite set-up: fast mode, and the offline dataset unless CIFAR-10 is on this machine.

At the repository root so that it applies however pytest is called: the whole suite, one
test file, or one notebook (``pytest solutions/09_capstone.ipynb``).

The environment variables set here are inherited by the Jupyter kernels that
nbval starts, so the notebooks run in fast mode too.
"""
import json
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

os.environ.setdefault("CNNKIT_FAST", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if "CNNKIT_DATASET" not in os.environ:
    from cnnkit.data import find_cifar10

    local = find_cifar10()
    os.environ["CNNKIT_DATASET"] = "cifar10" if local is not None else "offline"


# The slowest files, slowest first: seconds of setup, call and teardown summed per file from
# `./kit test --durations=0` on two cores (2026-12-04): 369, 282, 213, 168, 92, 67, 55 and 52 s of
# the 1,690 s the suite's tests take. ./kit test hands whole files to its two processes in
# collection order (--no-loadscope-reorder); putting these first lets the many short files fill in
# behind them, where pytest-xdist's own order (files with the most tests first) left one process
# finishing the browser test alone at the end.
SLOWEST_FIRST = ("tests/test_browser.py", "tests/test_devices.py", "tests/test_lesson_benchmarks.py",
                 "tests/test_exercises.py", "tests/test_grading_attacks.py", "tests/test_check_inputs.py",
                 "tests/test_open_training.py", "notebooks/08_optimizers.ipynb")


def pytest_collection_modifyitems(config, items):
    """Move the items of :data:`SLOWEST_FIRST` to the front, in that order (a stable sort: every
    file keeps its own items' order, and the other files theirs)."""
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_report_header(config):
    return (f"cnnkit: CNNKIT_FAST={os.environ.get('CNNKIT_FAST')} "
            f"CNNKIT_DATASET={os.environ.get('CNNKIT_DATASET')} "
            f"CNNKIT_DATA_DIR={os.environ.get('CNNKIT_DATA_DIR', '')}")


def pytest_sessionstart(session):
    session.config.cnnkit_started = time.time()


def pytest_terminal_summary(terminalreporter, config):
    """The browser test's table (tests/test_browser.py), from the timings.json it wrote during this run.

    Read from the file, not from the test's process: under pytest-xdist (``./kit test``) the
    browser test runs in a worker, and only this main process writes to the terminal.
    """
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the main process reports
        return
    tests = str(Path(__file__).resolve().parent / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    try:
        from browser_helpers import ARTIFACTS, summary_lines
    except ImportError:  # the test extras are not installed: no browser test ran
        return
    timings = ARTIFACTS / "timings.json"
    started = getattr(config, "cnnkit_started", None)
    if started is None or not timings.is_file() or timings.stat().st_mtime < started:
        return
    try:
        rows = json.loads(timings.read_text())
    except (OSError, ValueError) as exc:
        terminalreporter.write_line(f"browser timings unreadable ({timings}: {exc})")
        return
    if rows:
        terminalreporter.write_sep("-", "browser: JupyterLab in headless Chromium")
        for line in summary_lines(rows):
            terminalreporter.write_line(line)
