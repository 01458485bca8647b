"""Where students open the course: Binder, Colab and Kaggle badges, links, and the install cell.

Every lesson and exercise notebook starts with the three badges of :func:`badges`
in its title cell, all opening the release tag ``v<version>`` of the repository
(:data:`REPOSITORY`), so a notebook opened from a badge always runs against the
cnnkit of the same release. Where a notebook links to another one, the relative
link (JupyterLab, Binder) is followed by :func:`colab_link` of the same target,
because relative links lead nowhere on Colab and Kaggle.

The first code cell of every lesson and exercise is :func:`install_cell`: on Colab
and Kaggle, where cnnkit is not installed, it installs the kit of the release
without its dependencies, then only those of its light dependencies that are
missing, and never replaces the platform's TensorFlow, Keras or numpy. Everywhere
else it does nothing and prints nothing. Its source of the kit can be changed
with the environment variable ``CNNKIT_INSTALL_SOURCE`` (anything ``pip install``
accepts: a path, a wheel, a URL).

The cell cannot import cnnkit (it is what installs it), so its logic lives in the
cell's own text, :data:`INSTALL_CELL_TEMPLATE`; this module is its one source.

After a version change (or to add a notebook), bring every notebook of ``notebooks/``
and ``solutions/`` in line, then rebuild the exercises::

    python -m cnnkit.platforms sync            # --check: write nothing, exit 1 if a notebook is stale
    python -m cnnkit.exercises build
"""
from __future__ import annotations

import argparse
import posixpath
import re
import sys
from pathlib import Path, PurePosixPath

REPOSITORY = "cnnkit/cnnkit"  # owner/name on GitHub
INSTALL_SOURCE_VARIABLE = "CNNKIT_INSTALL_SOURCE"

BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"


def release_tag(version: str | None = None) -> str:
    """The git tag every badge and the install cell open: ``v`` + the package version."""
    if version is None:
        from cnnkit import __version__ as version
    if not isinstance(version, str) or not version or version[0] not in "0123456789":
        raise ValueError(f"version must be a string such as '0.1.0', got {version!r}")
    return f"v{version}"


def _repo_path(path) -> str:
    """A notebook's path inside the repository, e.g. ``notebooks/01_convolution.ipynb``."""
    text = str(path)
    pure = PurePosixPath(text)
    if (pure.is_absolute() or ".." in pure.parts or "\\" in text or pure.suffix != ".ipynb"
            or len(pure.parts) < 2):
        raise ValueError("path must be a notebook path relative to the repository root, "
                         f"such as 'notebooks/01_convolution.ipynb', got {text!r}")
    return pure.as_posix()


def binder_url(path, version: str | None = None) -> str:
    """JupyterLab on Binder, opened at ``path`` (``labpath=``), built from the release tag."""
    return (f"https://mybinder.org/v2/gh/{REPOSITORY}/{release_tag(version)}"
            f"?labpath={_repo_path(path)}")


def colab_url(path, version: str | None = None) -> str:
    """The notebook at ``path`` of the release tag, opened in Google Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{release_tag(version)}/{_repo_path(path)}"


def kaggle_url(path, version: str | None = None) -> str:
    """The notebook at ``path`` of the release tag, imported into a new Kaggle notebook."""
    github = f"https://github.com/{REPOSITORY}/blob/{release_tag(version)}/{_repo_path(path)}"
    return f"https://kaggle.com/kernels/welcome?src={github}"


def badges(path, version: str | None = None) -> str:
    """The badge line of a title cell: Binder, Colab and Kaggle, each opening ``path``."""
    return " ".join([
        f"[![Binder]({BINDER_BADGE})]({binder_url(path, version)})",
        f"[![Open in Colab]({COLAB_BADGE})]({colab_url(path, version)})",
        f"[![Open in Kaggle]({KAGGLE_BADGE})]({kaggle_url(path, version)})",
    ])


def colab_link(path, version: str | None = None) -> str:
    """The link set after a relative link to another notebook: ``([Colab](URL))``."""
    return f"([Colab]({colab_url(path, version)}))"


def badge_target(notebook_path) -> str:
    """The path a notebook's badges open: its own, except that a solution opens its exercise.

    ``solutions/NN_topic.ipynb`` is the source of ``exercises/NN_topic.ipynb`` and shares
    its title cell; students are meant to open the exercise.
    """
    pure = PurePosixPath(_repo_path(notebook_path))
    if pure.parts[0] == "solutions":
        return PurePosixPath("exercises", *pure.parts[1:]).as_posix()
    return pure.as_posix()


INSTALL_CELL_TEMPLATE = '''\
#@title Colab and Kaggle only: install the course kit when it is missing (elsewhere this cell does nothing)
def _install_cnnkit_if_missing(release="{tag}"):
    import importlib, importlib.metadata, importlib.util, os, re, subprocess, sys, tempfile

    def found(module):
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    hosted = found("google.colab") or "KAGGLE_KERNEL_RUN_TYPE" in os.environ
    if not hosted or found("cnnkit"):
        return
    source = (os.environ.get("{variable}")
              or f"https://github.com/{repository}/archive/refs/tags/{{release}}.tar.gz")
    print(f"Installing cnnkit {{release}} (the platform's TensorFlow, Keras and numpy stay as they are)...")

    def pip_install(*args):
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{{' '.join(command)}} failed:\\n{{result.stdout}}{{result.stderr}}")

    pip_install("--no-deps", source)
    kept = {{"numpy", "tensorflow", "tensorflow-cpu", "keras"}}            # the platform's own
    local_only = {{"jupyterlab", "nbval", "pytest"}}                       # for a local install
    missing = []
    for requirement in importlib.metadata.requires("cnnkit") or []:
        spec, _, marker = requirement.partition(";")
        name = re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0).lower().replace("_", "-")
        if "extra" in marker or name in kept | local_only:
            continue
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(spec.strip())
    if missing:
        pins = []
        for name in sorted(kept):
            try:
                pins.append(f"{{name}}=={{importlib.metadata.version(name)}}")
            except importlib.metadata.PackageNotFoundError:
                pass
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
            constraints.write("\\n".join(pins) + "\\n")
        try:
            pip_install("--constraint", constraints.name, *missing)
        finally:
            os.unlink(constraints.name)
    importlib.invalidate_caches()
    print("cnnkit", importlib.metadata.version("cnnkit"), "installed" + (f", with {{', '.join(missing)}}" if missing else ""))


_install_cnnkit_if_missing()
del _install_cnnkit_if_missing'''


# Colab shows a cell with this metadata and a ``#@title`` line as its title, code folded.
INSTALL_CELL_METADATA = {"cellView": "form"}


def install_cell(version: str | None = None) -> str:
    """The exact source of every lesson's and exercise's first code cell (see the module doc)."""
    return INSTALL_CELL_TEMPLATE.format(tag=release_tag(version), repository=REPOSITORY,
                                        variable=INSTALL_SOURCE_VARIABLE)


# --------------------------------------------------------------------------- keeping notebooks in line

TITLE_BADGES = re.compile(
    r"\[!\[Binder\]\([^)]*\)\]\([^)]*\)"
    r"(?: \[!\[Open in Colab\]\([^)]*\)\]\([^)]*\))?(?: \[!\[Open in Kaggle\]\([^)]*\)\]\([^)]*\))?")
RELATIVE_LINK = re.compile(r"\]\((?P<target>(?:\.\./|\./)?[\w./-]+\.ipynb)\)(?P<colab> \(\[Colab\]\([^)\s]*\)\))?")
INSTALL_CELL_TITLE = INSTALL_CELL_TEMPLATE.splitlines()[0]


def sync_notebook(nb, rel: str, version: str | None = None) -> None:
    """Bring one notebook (``rel``: its path in the repository) in line, in place.

    Title cell: the badge line of :func:`badges` replaces the old one (a Binder badge is
    required). Markdown: every relative link to a notebook gets :func:`colab_link` of
    its target beside it (an old one is replaced). First code cell: the install cell,
    inserted before the set-up cell when missing, or brought up to date.
    """
    import nbformat

    rel = _repo_path(rel)
    title = nb.cells[0] if nb.cells else None
    if title is None or title.cell_type != "markdown" or not TITLE_BADGES.search(title.source):
        raise ValueError(f"{rel}: the first cell must be a markdown title cell with a Binder badge")
    line = badges(badge_target(rel), version)
    title.source = TITLE_BADGES.sub(lambda _: line, title.source, count=1)
    folder = posixpath.dirname(rel)

    def with_colab(match):
        target = posixpath.normpath(posixpath.join(folder, match["target"]))
        return f"]({match['target']}) {colab_link(target, version)}"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = RELATIVE_LINK.sub(with_colab, cell.source)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    if not code:
        return
    first = nb.cells[code[0]]
    if first.source.startswith(INSTALL_CELL_TITLE):
        first.source = install_cell(version)
        first.metadata.update(INSTALL_CELL_METADATA)
    elif "import cnnkit as ck" in first.source:
        cell = nbformat.v4.new_code_cell(install_cell(version), metadata=dict(INSTALL_CELL_METADATA))
        cell.id = "install-cnnkit"
        nb.cells.insert(code[0], cell)
    else:
        raise ValueError(f"{rel}: the first code cell is neither the install cell nor the set-up cell "
                         "('import cnnkit as ck')")


def sync(root, check_only: bool = False, version: str | None = None) -> list[Path]:
    """Sync every notebook of ``root``/notebooks and ``root``/solutions; return those that changed
    (with ``check_only``: that would change, and write nothing)."""
    from cnnkit.files import write_atomic
    from cnnkit.instructor.notebooks import dumps, read_notebook

    root = Path(root)
    stale = []
    for folder in ("notebooks", "solutions"):
        for path in sorted((root / folder).glob("*.ipynb")):
            nb = read_notebook(path)
            sync_notebook(nb, path.relative_to(root).as_posix(), version)
            text = dumps(nb)
            if text != path.read_text(encoding="utf-8"):
                stale.append(path)
                if not check_only:
                    write_atomic(path, text)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.platforms", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("sync", help="badges, Colab links and install cells of notebooks/ and solutions/")
    command.add_argument("--root", default=".", help="the repository (default: the current folder)")
    command.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is stale")
    args = parser.parse_args(argv)
    stale = sync(args.root, check_only=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    if not stale:
        print("every notebook is in line with", release_tag())
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
