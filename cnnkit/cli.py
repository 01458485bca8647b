"""The ``cnnkit`` command: one entry point for the kit's tools.

::

    cnnkit lab [--course DIR] [JUPYTERLAB ARGS]   open the course in JupyterLab
    cnnkit train --recipe quick --out runs/quick   train a capstone recipe (cnnkit.train)
    cnnkit exercises build|grade ...               build or grade exercise notebooks (cnnkit.exercises)
    cnnkit data [--dir DIR] [--fetch]              find, check or download CIFAR-10 (cnnkit.data)
    cnnkit --version

Each subcommand hands its arguments to the module that does the work, so
``cnnkit train ARGS`` is ``python -m cnnkit.train ARGS``. Exit status: 0 on success,
2 for bad arguments or a missing folder, 3 when CIFAR-10 is missing or damaged
(as for ``cnnkit.train``), and the subcommand's own status otherwise.

Installed from a wheel, the package holds no lessons: ``cnnkit lab`` opens the course
found in ``--course DIR``, the checkout it runs from, or the current folder, and
``cnnkit exercises`` needs ``--solutions``/``--exercises``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from cnnkit import __version__

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DATA = 3  # the same as cnnkit.train's
START_PAGE = "notebooks/00_start_here.ipynb"
# subcommands whose arguments go, untouched, to another module's main(argv)
DELEGATED = {
    "train": ("cnnkit.train", "train a capstone recipe headless (same as python -m cnnkit.train)"),
    "exercises": ("cnnkit.exercises", "build exercise notebooks from solutions, or grade submissions "
                                      "(same as python -m cnnkit.exercises; needs cnnkit[grade])"),
}
# what each delegated module imports that the core install may lack, and the extra that brings it
NEEDS = {"cnnkit.exercises": (("nbformat", "grade"),)}


class CommandError(Exception):
    """A problem the user can fix; the message says what and how. Exit status in ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnkit",
        description="cnnkit, the course kit \"Building a Good Image Classifier with CNN\": "
                    "open the lessons, train the capstone, build and grade exercises, check the data.",
        epilog="Run 'cnnkit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    lab = sub.add_parser(
        "lab", help="open the course in JupyterLab (needs cnnkit[lab])",
        description="Start JupyterLab on the course, at notebooks/00_start_here.ipynb. The course "
                    "folder (holding notebooks/) is --course DIR, else the checkout cnnkit runs from, "
                    "else the current folder; a cnnkit installed from a wheel holds no lessons. "
                    "Any other argument goes to JupyterLab (e.g. --port 8899 --no-browser).",
        usage="cnnkit lab [-h] [--course DIR] [JUPYTERLAB ARGS ...]", allow_abbrev=False)
    lab.add_argument("--course", metavar="DIR", default=None,
                     help="folder holding the lessons (notebooks/): a clone of the cnnkit repository")

    for name, (_, summary) in DELEGATED.items():
        sub.add_parser(name, help=summary, add_help=False)

    data = sub.add_parser(
        "data", help="find, check or download CIFAR-10",
        description="Say where CIFAR-10 is found (--dir DIR, else $CNNKIT_DATA_DIR, else Keras' cache, "
                    "the order cnnkit.data.load_dataset uses) and read it through to check it. "
                    "With --fetch, download it into Keras' cache when no copy is found.")
    where = data.add_mutually_exclusive_group()
    where.add_argument("--dir", metavar="DIR", default=None,
                       help="check this folder (holding cifar-10-batches-py/ or cifar-10-python.tar.gz) only")
    where.add_argument("--fetch", action="store_true",
                       help="download CIFAR-10 (about 170 MB) into Keras' cache if no copy is found")
    return parser


# --------------------------------------------------------------------------- lab


def lab_command(course: Path, jupyter_args: list[str]) -> list[str]:
    """The command line that starts JupyterLab on ``course`` at its start page (run with cwd=course)."""
    start = START_PAGE if (course / START_PAGE).is_file() else "notebooks"
    return [sys.executable, "-m", "jupyterlab", start, *jupyter_args]


def run_lab(args, jupyter_args: list[str]) -> int:
    from cnnkit.checkout import find_course

    try:
        course = find_course(args.course)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    if importlib.util.find_spec("jupyterlab") is None:
        raise CommandError("JupyterLab is not installed: pip install 'cnnkit[lab]' (or ./kit lab in a checkout)")
    command = lab_command(course, jupyter_args)
    print(f"starting JupyterLab on {course}", flush=True)
    try:
        return subprocess.call(command, cwd=course)
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------- data


def run_data(args) -> int:
    from cnnkit import data

    if args.dir is not None:
        folder = Path(args.dir).expanduser()
        if not folder.exists():
            raise CommandError(f"--dir {args.dir!r} does not exist; expected a folder holding "
                               f"{data.FOLDER}/ or {data.ARCHIVE}")
        found = next((p for p in data._candidates(folder) if p.exists()), None)
        if found is None:
            raise CommandError(f"--dir {args.dir!r} holds neither {data.FOLDER}/ nor {data.ARCHIVE}", EXIT_DATA)
    else:
        found = data.find_cifar10()
        if found is None and not args.fetch:
            places = "\n".join(f"  - {p}" for p in data._search_places(None))
            unset = "" if os.environ.get("CNNKIT_DATA_DIR") else " ($CNNKIT_DATA_DIR is not set)"
            raise CommandError(
                f"CIFAR-10 was not found. Looked at{unset}:\n{places}\n"
                "Run 'cnnkit data --fetch' to download it into Keras' cache, or download "
                f"{data.ARCHIVE} from https://www.cs.toronto.edu/~kriz/cifar.html, put it in a folder "
                "DIR and set CNNKIT_DATA_DIR=DIR (check it with 'cnnkit data --dir DIR'). "
                "Without it the lessons run on the offline dataset: CNNKIT_DATASET=offline.",
                EXIT_DATA)
        if found is None:
            print(f"CIFAR-10 not found locally: downloading it into {data.keras_cache_dir()} ...", flush=True)
    try:
        # the place itself, so that nothing else on the search path can stand in for it
        (x_train, y_train), (x_test, y_test) = data.load_cifar10(found, download=found is None)
    except (data.DataNotFoundError, data.CorruptDataError) as exc:
        raise CommandError(str(exc), EXIT_DATA) from None
    where = found if found is not None else data.find_cifar10()
    counts = ", ".join(str(int(c)) for c in _class_counts(y_train))
    print(f"CIFAR-10 at {where}: read and checked\n"
          f"  train {x_train.shape} {x_train.dtype}, labels per class: {counts}\n"
          f"  test  {x_test.shape} {x_test.dtype}")
    if args.dir is not None and found != data.find_cifar10():
        print(f"  the lessons use it with: export CNNKIT_DATA_DIR={folder.resolve()}")
    return EXIT_OK


def _class_counts(labels):
    import numpy as np

    return np.bincount(labels, minlength=10)


# --------------------------------------------------------------------------- delegation


def run_delegated(name: str, argv: list[str]) -> int:
    module_name = DELEGATED[name][0]
    for module, extra in NEEDS.get(module_name, ()):
        if importlib.util.find_spec(module) is None:
            raise CommandError(f"'cnnkit {name}' needs {module}, which is not installed: "
                               f"pip install 'cnnkit[{extra}]'")
    module = importlib.import_module(module_name)
    try:
        status = module.main(argv)
    except SystemExit as exc:  # argparse inside the module: --help (0) or a usage error (2)
        status = exc.code if isinstance(exc.code, int) or exc.code is None else EXIT_USAGE
    return int(status or 0)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the ``cnnkit`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:  # the module parses (and explains) its own arguments
            return run_delegated(argv[0], argv[1:])
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
            if extra and args.command != "lab":  # only JupyterLab takes arguments cnnkit does not know
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as exc:  # --help, --version (0) or a usage error (argparse says why)
            return EXIT_OK if not exc.code else EXIT_USAGE
        if args.command == "lab":
            return run_lab(args, extra)
        return run_data(args)
    except CommandError as exc:
        print(f"cnnkit: error: {exc}", file=sys.stderr)
        return exc.status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
