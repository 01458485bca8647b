"""The package as a user gets it: build the sdist and the wheel, install the wheel, use the command.

Building runs offline: ``python -m build --no-isolation`` with the setuptools already
installed (the [test] extra brings ``build`` and ``setuptools``), on a copy of the
repository in a temporary folder so that nothing is written into the checkout. The wheel
is built from the sdist, so a file missing from the sdist is missing from the wheel too.
A probe picture is added to the copy's package to check that pictures and tables under
``cnnkit/`` travel as package data.

Installing runs offline too, into a fresh virtual environment that reuses the
dependencies already installed for the tests:

* ``python -m venv --without-pip`` makes the environment;
* a folder of symbolic links, one per entry of the running interpreter's site-packages
  except cnnkit's own (its ``.dist-info``, the editable install's finder and every
  ``.pth`` file), is named in a ``.pth`` file of the new environment, so its Python
  imports numpy, TensorFlow, pip... from there, but sees no cnnkit;
* ``pip install --no-index WHEEL[grade]`` then installs cnnkit into the new
  environment's own site-packages, and checks (without downloading anything) that
  every core and [grade] requirement is met by what is installed.

The commands then run from an unrelated folder with ``PYTHONPATH`` removed, so the
installed copy, not the checkout, answers.
"""
from __future__ import annotations

import ast
import email.parser
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "build", "dist", "*.egg-info",
                                     ".pytest_cache", ".ipynb_checkpoints", "runs", "data")
PROBE = "assets/probe_picture.png"  # added to the copy's package: package data must include it
NOT_IN_WHEEL = ("tests/", "notebooks/", "solutions/", "exercises/", "benchmarks/", "docs/")
EXTRAS = {"lab", "grade", "test"}
URLS = {"Homepage", "Source", "Documentation", "Issues"}


def _source_version() -> str:
    """``cnnkit.__version__`` as written in the checkout (the one source of the version)."""
    tree = ast.parse((ROOT / "cnnkit" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("cnnkit/__init__.py defines no __version__")


def _run(command, *, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """Build the sdist and the wheel from a copy of the repository; returns (sdist, wheel)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE, symlinks=True)
    probe = source / "cnnkit" / PROBE
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_bytes(b"\x89PNG\r\n\x1a\n")
    _checked(_run([sys.executable, "-m", "build", "--no-isolation", "--outdir", work / "dist", source],
                  cwd=work))
    sdists = list((work / "dist").glob("*.tar.gz"))
    wheels = list((work / "dist").glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in (work / "dist").iterdir())
    return sdists[0], wheels[0]


def _wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(info).decode())
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    return names, meta, entry_points


def test_wheel_holds_the_package_and_its_data_only(dists):
    _, wheel = dists
    names, _, _ = _wheel_metadata(wheel)
    package = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cnnkit").rglob("*.py"))
    assert set(package) <= set(names), f"missing from the wheel: {sorted(set(package) - set(names))}"
    assert f"cnnkit/{PROBE}" in names, "a picture under cnnkit/ is not shipped as package data"
    data_files = [p for p in (ROOT / "cnnkit").rglob("*") if p.suffix in (".png", ".jpg", ".jpeg", ".json")]
    for path in data_files:
        assert str(path.relative_to(ROOT)) in names, f"{path} is not shipped as package data"
    for name in names:
        assert name.startswith(("cnnkit/", "cnnkit-")), f"the wheel holds {name}, outside the package"
        assert not name.startswith(NOT_IN_WHEEL) and not name.endswith(".ipynb"), f"the wheel holds {name}"
        assert "__pycache__" not in name


def test_metadata_has_one_version_extras_urls_and_the_command(dists):
    sdist, wheel = dists
    version = _source_version()
    names, meta, entry_points = _wheel_metadata(wheel)
    assert meta["Name"] == "cnnkit" and meta["Version"] == version
    assert wheel.name.startswith(f"cnnkit-{version}-py3-none-any") and sdist.name == f"cnnkit-{version}.tar.gz"
    assert {n.split("/")[0] for n in names if ".dist-info/" in n} == {f"cnnkit-{version}.dist-info"}
    assert set(meta.get_all("Provides-Extra")) >= EXTRAS
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= URLS and urls["Source"] == "https://github.com/cnnkit/cnnkit"
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    core = {r.name for r in requires if r.marker is None or "extra" not in str(r.marker)}
    grade = {r.name for r in requires if r.marker is not None and r.marker.evaluate({"extra": "grade"})
             and not r.marker.evaluate({"extra": ""})}
    assert {"numpy", "keras", "matplotlib", "threadpoolctl", "tensorflow-cpu", "tensorflow"} <= core
    assert {"nbformat", "nbval", "pytest"} <= grade and not ({"nbval", "pytest", "jupyterlab"} & core)
    assert not {"scipy", "scikit-image"} & {r.name for r in requires}
    assert "[console_scripts]" in entry_points and "cnnkit = cnnkit.cli:main" in entry_points
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
        pkg_info = tar.extractfile(f"cnnkit-{version}/PKG-INFO").read().decode()
    assert email.parser.Parser().parsestr(pkg_info)["Version"] == version
    for needed in ("pyproject.toml", "README.md", "LICENSE", "cnnkit/cli.py", f"cnnkit/{PROBE}"):
        assert f"cnnkit-{version}/{needed}" in members, f"the sdist lacks {needed}"


# --------------------------------------------------------------------------- installed


def _venv_bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def _dependencies_without_cnnkit(folder: Path) -> Path:
    """A folder of links to this interpreter's site-packages, less cnnkit and every .pth file."""
    folder.mkdir()
    seen = set()
    for key in ("purelib", "platlib"):
        site = Path(sysconfig.get_paths()[key])
        if site in seen:
            continue
        seen.add(site)
        for entry in site.iterdir():
            name = entry.name.lower()
            if (name.startswith(("cnnkit", "__editable__")) or name.endswith(".pth")
                    or (folder / entry.name).exists()):
                continue
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return folder


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory):
    """A fresh virtual environment with the wheel installed; returns (venv, its site-packages, clean env)."""
    _, wheel = dists
    work = tmp_path_factory.mktemp("install")
    venv = work / "venv"
    _checked(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work))
    python = _venv_bin(venv, "python")
    site = Path(_checked(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              cwd=work)).stdout.strip())
    deps = _dependencies_without_cnnkit(work / "dependencies")
    (site / "_cnnkit_test_dependencies.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")
    before = _run([python, "-c", "import cnnkit"], cwd=work, env=env)
    assert before.returncode != 0, "the new environment sees a cnnkit before installing: it is not isolated"
    _checked(_run([python, "-m", "pip", "install", "--no-index", f"{wheel}[grade]"], cwd=work, env=env))
    return venv, site, env


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_installed_command_from_another_folder(installed, tmp_path):
    venv, site, env = installed
    cnnkit = _venv_bin(venv, "cnnkit")
    version = _source_version()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = _checked(_run([_venv_bin(venv, "python"), "-c", "import cnnkit; print(cnnkit.__file__)"],
                          cwd=elsewhere, env=env)).stdout.strip()
    assert Path(where).parent == site / "cnnkit", f"imported {where}, not the installed wheel"
    assert _checked(_run([cnnkit, "--version"], cwd=elsewhere, env=env)).stdout.strip() == f"cnnkit {version}"
    assert _checked(_run([_venv_bin(venv, "python"), "-m", "cnnkit", "--version"], cwd=elsewhere,
                         env=env)).stdout.strip() == f"cnnkit {version}"
    help_text = _checked(_run([cnnkit, "--help"], cwd=elsewhere, env=env)).stdout
    assert all(f"\n    {c}" in help_text for c in ("lab", "train", "exercises", "data"))
    assert "--recipe" in _checked(_run([cnnkit, "train", "--help"], cwd=elsewhere, env=env)).stdout
    assert "--fetch" in _checked(_run([cnnkit, "data", "--help"], cwd=elsewhere, env=env)).stdout

    lab = _run([cnnkit, "lab"], cwd=elsewhere, env=env)  # no course here, none installed
    assert lab.returncode == 2 and "--course DIR" in lab.stderr


def test_installed_exercises_build_writes_only_where_told(installed, tmp_path):
    venv, site, env = installed
    cnnkit = _venv_bin(venv, "cnnkit")
    solutions = tmp_path / "S"
    shutil.copytree(ROOT / "solutions", solutions)
    exercises = tmp_path / "E"
    before = _tree(site)

    missing = _run([cnnkit, "exercises", "build"], cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "--solutions DIR is required" in missing.stderr
    _checked(_run([cnnkit, "exercises", "build", "--solutions", solutions, "--exercises", exercises],
                  cwd=tmp_path, env=env))
    built = sorted(p.name for p in exercises.glob("*.ipynb"))
    assert built and built == sorted(p.name for p in solutions.glob("*.ipynb"))
    for name in built:  # the same as the committed exercises/, which the checkout's build keeps current
        assert (exercises / name).read_text(encoding="utf-8") == (ROOT / "exercises" / name).read_text(encoding="utf-8")
    assert _tree(site) == before, "building exercises wrote into site-packages"
    assert not (site / "exercises").exists() and not (site / "solutions").exists()



def test_installed_grader_grades_outside_a_checkout(installed, tmp_path):
    """Grading from the wheel, from another folder. ``--unsafe``: this environment lives in pytest's private
    temporary folder, which the sandbox users cannot enter; isolation is tested in test_grading_attacks.py."""
    venv, site, env = installed
    solutions = tmp_path / "S"
    solutions.mkdir()
    shutil.copy(ROOT / "solutions" / "06_one_by_one_conv.ipynb", solutions)
    submissions = tmp_path / "class"
    submissions.mkdir()
    shutil.copy(ROOT / "solutions" / "06_one_by_one_conv.ipynb", submissions / "06_one_by_one_conv_ada.ipynb")
    shutil.copy(ROOT / "exercises" / "06_one_by_one_conv.ipynb", submissions / "06_one_by_one_conv_bo.ipynb")
    before = _tree(site)
    run = _run([_venv_bin(venv, "cnnkit"), "exercises", "grade", submissions, "--solutions", solutions, "--unsafe",
                "--json", tmp_path / "grades.json", "--gradebook", tmp_path / "book.csv"],
               cwd=tmp_path, env={**env, "CNNKIT_DATASET": "offline"})
    _checked(run)
    import json

    full = json.loads((tmp_path / "grades.json").read_text())["grades"][0]["max_total"]
    book = (tmp_path / "book.csv").read_text().splitlines()
    assert book[0] == "student,06_one_by_one_conv" and book[2:] == [f"ada,{full:g}", "bo,0"], book
    assert _tree(site) == before, "grading wrote into site-packages"
