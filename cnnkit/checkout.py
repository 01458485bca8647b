"""Where the course's folders are: a checkout of the repository, or a folder the user names.

Run from a checkout (``git clone``, ``pip install -e .``), the package folder ``cnnkit/``
sits beside ``pyproject.toml``, ``notebooks/``, ``solutions/`` and ``exercises/``, and the
command-line tools default to those folders. Installed from a wheel, the package sits in
``site-packages`` with no course beside it: the tools then need the folders named
explicitly (``--course``, ``--solutions``, ``--exercises``) and never write next to the
installed package.
"""
from __future__ import annotations

import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# `name = "cnnkit"` on a line of its own: enough to tell this project's pyproject.toml
# (tomllib is not in Python 3.10)
_NAME_LINE = re.compile(r"""^\s*name\s*=\s*["']cnnkit["']\s*(?:#.*)?$""", re.MULTILINE)


def checkout_root(package_dir: str | Path = PACKAGE_DIR) -> Path | None:
    """The repository root when ``package_dir`` is the ``cnnkit/`` folder of a checkout, else None.

    A checkout is recognised by a ``pyproject.toml`` beside the package folder that names
    the project ``cnnkit``; an installed package (``site-packages/cnnkit``) has none.
    """
    root = Path(package_dir).resolve().parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return root if _NAME_LINE.search(text) else None


def is_course(folder: str | Path) -> bool:
    """True when ``folder`` holds the lessons: ``notebooks/`` with at least one ``.ipynb``."""
    notebooks = Path(folder) / "notebooks"
    return notebooks.is_dir() and any(notebooks.glob("*.ipynb"))


def find_course(course: str | Path | None = None, cwd: str | Path | None = None) -> Path:
    """The course folder: ``course`` when given, else the checkout, else the current folder.

    Raises FileNotFoundError naming the folder looked at and what it should hold.
    """
    if course is not None:
        folder = Path(course).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"course folder {str(folder)!r} does not exist; expected a folder "
                                    "holding notebooks/ (a copy of the cnnkit repository)")
        if not is_course(folder):
            raise FileNotFoundError(f"{str(folder)!r} is not a cnnkit course: it has no notebooks/*.ipynb")
        return folder.resolve()
    root = checkout_root()
    if root is not None and is_course(root):
        return root
    here = Path.cwd() if cwd is None else Path(cwd)
    if is_course(here):
        return here.resolve()
    raise FileNotFoundError(
        f"no course here: {str(here)!r} has no notebooks/*.ipynb, and cnnkit is installed as a "
        "package, without the lessons. Clone https://github.com/cnnkit/cnnkit and run this "
        "command inside it, or pass --course DIR (a folder holding notebooks/)"
    )
