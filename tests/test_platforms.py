"""Colab, Kaggle and Binder: badges and links of every notebook, and the install cell.

The install cell is run for real on a simulated Colab runtime: a fresh virtual
environment holding a fake ``google.colab`` module and fake preinstalled
TensorFlow, numpy and ipywidgets distributions, with pip kept offline
(``--no-index``) and pointed at a wheel of this checkout.
"""
import base64
import hashlib
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest

import cnnkit
from cnnkit import platforms

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix()
                   for folder in ("notebooks", "solutions", "exercises")
                   for p in (ROOT / folder).glob("*.ipynb"))
WITH_CODE = [p for p in NOTEBOOKS if any(c.cell_type == "code" for c in nbformat.read(ROOT / p, as_version=4).cells)]
TAG = f"v{cnnkit.__version__}"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# --------------------------------------------------------------------------- badges and links


def test_release_tag_is_the_package_version():
    assert platforms.release_tag() == TAG
    if "version" in PYPROJECT:  # a static version must be the one the package reports
        assert PYPROJECT["version"] == cnnkit.__version__
    with pytest.raises(ValueError, match="version must be a string such as '0.1.0', got 'latest'"):
        platforms.release_tag("latest")


@pytest.mark.parametrize("bad", ["/abs/01.ipynb", "../x/01.ipynb", "01.ipynb", "notebooks/01.py"])
def test_urls_reject_paths_outside_the_repository(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        platforms.colab_url(bad)


def test_badges_open_the_release_tag_at_the_given_path():
    line = platforms.badges("notebooks/01_convolution.ipynb", version="9.8.7")
    assert "https://mybinder.org/v2/gh/cnnkit/cnnkit/v9.8.7?labpath=notebooks/01_convolution.ipynb" in line
    assert "https://colab.research.google.com/github/cnnkit/cnnkit/blob/v9.8.7/notebooks/01_convolution.ipynb" in line
    assert "src=https://github.com/cnnkit/cnnkit/blob/v9.8.7/notebooks/01_convolution.ipynb" in line
    assert "urlpath=" not in line
    assert platforms.badge_target("solutions/02_pooling.ipynb") == "exercises/02_pooling.ipynb"
    assert platforms.badge_target("notebooks/02_pooling.ipynb") == "notebooks/02_pooling.ipynb"


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_title_cell_has_the_badges_of_this_release_and_file(rel):
    nb = nbformat.read(ROOT / rel, as_version=4)
    title = nb.cells[0]
    assert title.cell_type == "markdown"
    expected = platforms.badges(platforms.badge_target(rel))
    assert expected in title.source, f"{rel}: title cell lacks the badge line\n{expected}"


URL_REFS = [
    re.compile(r"mybinder\.org/v2/gh/cnnkit/cnnkit/(?P<ref>[^?/)\s]+)\?(?P<key>\w+)=(?P<path>[^)\s]+)"),
    re.compile(r"colab\.research\.google\.com/github/cnnkit/cnnkit/blob/(?P<ref>[^/]+)/(?P<path>[^)\s]+)"),
    re.compile(r"github\.com/cnnkit/cnnkit/blob/(?P<ref>[^/]+)/(?P<path>[^)\s]+)"),
]


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_every_absolute_link_opens_this_release_and_an_existing_notebook(rel):
    nb = nbformat.read(ROOT / rel, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    seen = 0
    for pattern in URL_REFS:
        for match in pattern.finditer(text):
            seen += 1
            assert match["ref"] == TAG, f"{rel}: {match[0]} opens {match['ref']}, not {TAG}"
            assert match.groupdict().get("key", "labpath") == "labpath", f"{rel}: {match[0]} (use labpath=)"
            assert (ROOT / match["path"]).exists(), f"{rel}: {match[0]} opens a missing file"
    assert seen >= 3


RELATIVE_NOTEBOOK_LINK = re.compile(r"\]\((?P<target>(?:\.\./|\./)?[\w./-]+\.ipynb)\)")


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_relative_links_exist_and_have_a_colab_link_beside_them(rel):
    nb = nbformat.read(ROOT / rel, as_version=4)
    here = (ROOT / rel).parent
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for match in RELATIVE_NOTEBOOK_LINK.finditer(cell.source):
            target = (here / match["target"]).resolve()
            assert target.exists(), f"{rel}: link to missing {match['target']}"
            beside = " " + platforms.colab_link(target.relative_to(ROOT).as_posix())
            after = cell.source[match.end():match.end() + len(beside)]
            assert after == beside, (f"{rel}: the link to {match['target']} works in JupyterLab only; "
                                     f"follow it with{beside}")


def test_sync_finds_nothing_stale():
    assert platforms.sync(ROOT, check_only=True) == []


def _old_style_notebook():
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(
            "# 01 · Title\n\n[![Binder](https://mybinder.org/badge_logo.svg)]"
            "(https://mybinder.org/v2/gh/cnnkit/cnnkit/HEAD?urlpath=lab/tree/notebooks/01_x.ipynb)\n\n"
            "Exercises: [here](../exercises/01_x.ipynb)."),
        nbformat.v4.new_markdown_cell("See [lesson 02](02_y.ipynb) and [the data](../README.md)."),
        nbformat.v4.new_code_cell("import cnnkit as ck\n\nck.setup(seed=0)"),
    ])


def test_sync_brings_an_old_notebook_in_line_and_follows_the_version():
    nb = _old_style_notebook()
    platforms.sync_notebook(nb, "notebooks/01_x.ipynb", version="1.2.3")
    title = nb.cells[0].source
    assert platforms.badges("notebooks/01_x.ipynb", "1.2.3") in title and "urlpath" not in title
    assert ("](../exercises/01_x.ipynb) ([Colab](https://colab.research.google.com/github/cnnkit/cnnkit/blob/"
            "v1.2.3/exercises/01_x.ipynb)).") in title
    assert nb.cells[1].source == ("See [lesson 02](02_y.ipynb) ([Colab](https://colab.research.google.com/github/"
                                  "cnnkit/cnnkit/blob/v1.2.3/notebooks/02_y.ipynb)) and [the data](../README.md).")
    assert [c.source for c in nb.cells if c.cell_type == "code"] == [
        platforms.install_cell("1.2.3"), "import cnnkit as ck\n\nck.setup(seed=0)"]
    once = nbformat.writes(nb)
    platforms.sync_notebook(nb, "notebooks/01_x.ipynb", version="1.2.3")
    assert nbformat.writes(nb) == once, "a second sync must change nothing"
    platforms.sync_notebook(nb, "notebooks/01_x.ipynb", version="1.3.0")
    text = nbformat.writes(nb)
    assert "v1.2.3" not in text and text.count("v1.3.0") == len(re.findall("v1.2.3", once))
    assert len([c for c in nb.cells if c.cell_type == "code"]) == 2


def test_sync_refuses_a_notebook_it_cannot_place():
    nb = _old_style_notebook()
    nb.cells[2].source = "print('no set-up')"
    with pytest.raises(ValueError, match="notebooks/01_x.ipynb: the first code cell is neither"):
        platforms.sync_notebook(nb, "notebooks/01_x.ipynb")
    nb.cells[0].source = "# 01 · Title"
    with pytest.raises(ValueError, match="markdown title cell with a Binder badge"):
        platforms.sync_notebook(nb, "notebooks/01_x.ipynb")


def test_readme_says_which_ref_the_badges_open():
    readme = (ROOT / "README.md").read_text()
    assert f"`{TAG}`" in readme
    assert platforms.badges("notebooks/00_start_here.ipynb") in readme


# --------------------------------------------------------------------------- the install cell


@pytest.mark.parametrize("rel", WITH_CODE)
def test_first_code_cell_is_the_install_cell(rel):
    nb = nbformat.read(ROOT / rel, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == platforms.install_cell(), f"{rel}: first code cell is not platforms.install_cell()"
    assert first.metadata.get("cellView") == "form"
    assert not first.get("outputs"), f"{rel}: the install cell printed something outside Colab/Kaggle"


def test_every_lesson_and_exercise_has_code():
    lessons = [p for p in NOTEBOOKS if not p.endswith("00_start_here.ipynb")]
    assert set(lessons) <= set(WITH_CODE)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder: Path, name: str, version: str, files: dict[str, bytes], requires=()) -> Path:
    """Write a pure-Python wheel holding ``files`` (archive path -> bytes) and return its path."""
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    metadata = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    content = dict(files)
    content[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    content[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: cnnkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(k, v) for k, v in content.items()] + [f"{info}/RECORD,,"]
    content[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in content.items():
            archive.writestr(member, data)
    return path


def checkout_wheel(folder: Path) -> Path:
    """A wheel of this checkout's cnnkit package (every file under cnnkit/), with pyproject's dependencies."""
    files = {p.relative_to(ROOT).as_posix(): p.read_bytes()
             for p in sorted((ROOT / "cnnkit").rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    return make_wheel(folder, "cnnkit", cnnkit.__version__, files, PYPROJECT["dependencies"])


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


PLATFORM_OWN = {"numpy", "tensorflow", "tensorflow-cpu", "keras"}
LOCAL_ONLY = {"jupyterlab", "nbval", "pytest"}


def _installed(python: Path) -> dict[str, str]:
    # -I: not the current folder (a checkout installed in editable mode holds cnnkit.egg-info there)
    out = subprocess.run([str(python), "-I", "-c", "import importlib.metadata as m\n"
                          "for d in m.distributions(): print(d.metadata['Name'].lower(), d.version)"],
                         capture_output=True, text=True, check=True, cwd=python.parent).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A fresh virtual environment with fake preinstalled numpy 2.99.0, TensorFlow 2.99.0, ipywidgets 8.99.0."""
    base = tmp_path_factory.mktemp("hosted")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    wheels = base / "preinstalled"
    wheels.mkdir()
    fakes = {
        "numpy": {"numpy/__init__.py": b'__version__ = "2.99.0"\n'},
        "tensorflow": {"tensorflow/__init__.py": b'__version__ = "2.99.0"\n'},
        "ipywidgets": {"ipywidgets/__init__.py": b'__version__ = "8.99.0"\n'},
    }
    versions = {"numpy": "2.99.0", "tensorflow": "2.99.0", "ipywidgets": "8.99.0"}
    built = [make_wheel(wheels, name, versions[name], files) for name, files in fakes.items()]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", *map(str, built)],
                   check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    colab = base / "colab"  # what makes a runtime look like Colab: google.colab can be imported
    (colab / "google" / "colab").mkdir(parents=True)
    (colab / "google" / "colab" / "__init__.py").write_text("")
    cell = base / "cell.py"
    cell.write_text(platforms.install_cell())
    return {"base": base, "python": python, "site": site, "colab": colab, "cell": cell, "preinstalled": versions}


def _run_cell(runtime, **env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "KAGGLE_", "CNNKIT_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1", **env_extra)
    return subprocess.run([str(runtime["python"]), str(runtime["cell"])], cwd=runtime["base"], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_install_cell_does_nothing_outside_colab_and_kaggle(runtime):
    result = _run_cell(runtime, CNNKIT_INSTALL_SOURCE=str(runtime["base"] / "no-such-source"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert "cnnkit" not in _installed(runtime["python"])


@pytest.mark.slow
def test_install_cell_on_kaggle_tries_the_install_source_and_reports_pip_failing(runtime):
    missing = runtime["base"] / "no-such-source"
    result = _run_cell(runtime, KAGGLE_KERNEL_RUN_TYPE="Interactive", CNNKIT_INSTALL_SOURCE=str(missing))
    assert result.returncode != 0
    assert "RuntimeError" in result.stderr and str(missing) in result.stderr
    assert "cnnkit" not in _installed(runtime["python"])


@pytest.mark.slow
def test_install_cell_on_colab_installs_the_kit_and_keeps_the_platform_packages(runtime):
    python, site = runtime["python"], runtime["site"]
    before = _installed(python)
    untouched = {name: _tree_digest(site / name) for name in ("numpy", "tensorflow", "ipywidgets")}
    light = [r.split(";")[0].strip() for r in PYPROJECT["dependencies"]
             if _name(r) not in PLATFORM_OWN | LOCAL_ONLY]
    to_install = sorted({_name(r) for r in light} - set(before))
    assert to_install, "the simulated runtime should lack some of cnnkit's light dependencies"
    wheelhouse = runtime["base"] / "wheelhouse"  # stands in for PyPI: every dependency at version 99.0.0
    wheelhouse.mkdir()
    for name in sorted({_name(r) for r in PYPROJECT["dependencies"]}):
        make_wheel(wheelhouse, name, "99.0.0", {f"{name.replace('-', '_')}_fake.py": b""})
    kit = checkout_wheel(runtime["base"])

    result = _run_cell(runtime, PYTHONPATH=str(runtime["colab"]), PIP_FIND_LINKS=str(wheelhouse),
                       CNNKIT_INSTALL_SOURCE=str(kit))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Installing cnnkit {TAG}" in result.stdout
    after = _installed(python)
    assert after["cnnkit"] == cnnkit.__version__
    for name in to_install:
        assert after.get(name) == "99.0.0", f"{name} was missing and should have been installed"
    for name in PLATFORM_OWN | LOCAL_ONLY:
        assert after.get(name) == before.get(name), f"{name} changed: {before.get(name)} -> {after.get(name)}"
    for name in ("numpy", "tensorflow", "ipywidgets"):
        assert after[name] == runtime["preinstalled"][name]
        assert _tree_digest(site / name) == untouched[name], f"the files of {name} changed"
    imported = subprocess.run([str(python), "-c", "import cnnkit; print(cnnkit.__version__, cnnkit.__file__)"],
                              cwd=runtime["base"], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert imported.returncode == 0, imported.stderr
    version, location = imported.stdout.split()
    assert version == cnnkit.__version__ and Path(location).is_relative_to(site)
    assert (site / "cnnkit" / "images" / "chelsea.png").exists()

    again = _run_cell(runtime, PYTHONPATH=str(runtime["colab"]), CNNKIT_INSTALL_SOURCE=str(kit))
    assert again.returncode == 0 and again.stdout == "" and again.stderr == "", "a second run must do nothing"


# --------------------------------------------------------------------------- a light set-up


def _python(code: str, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


NUMPY_ONLY_CHECKS = ["convolution", "pooling", "normalization", "optimizers"]


@pytest.mark.parametrize("checks", NUMPY_ONLY_CHECKS)
def test_setup_without_tensorflow_never_imports_it(checks):
    result = _python(
        "import random, sys\nimport numpy as np\nimport cnnkit as ck\n"
        "versions = ck.setup(seed=5, tensorflow=False)\n"
        "first = (random.random(), np.random.rand())\n"
        "ck.setup(seed=5, tensorflow=False, verbose=False)\n"
        "assert (random.random(), np.random.rand()) == first, 'not seeded'\n"
        f"import cnnkit.checks.{checks}\n"
        "print(sorted(versions), sorted({'tensorflow', 'keras'} & set(sys.modules)))\n",
        CNNKIT_FAST="0")
    assert result.returncode == 0, result.stderr
    line, listing = result.stdout.splitlines()
    assert line.startswith("cnnkit ") and "| numpy " in line and "TensorFlow not loaded" in line
    assert line.endswith("fast mode: off")
    assert listing == "['numpy'] []"


def test_setup_with_tensorflow_loads_and_seeds_it():
    result = _python(
        "import sys\nimport cnnkit as ck\nversions = ck.setup(seed=5)\n"
        "import keras\na = keras.random.uniform((3,), seed=None)\n"
        "ck.setup(seed=5, verbose=False)\nb = keras.random.uniform((3,), seed=None)\n"
        "print(sorted(versions), 'tensorflow' in sys.modules, bool((a == b).numpy().all()))\n")
    assert result.returncode == 0, result.stderr
    line, summary = result.stdout.splitlines()
    assert "| TensorFlow 2." in line and "| Keras 3." in line and "not loaded" not in line
    assert summary == "['keras', 'numpy', 'tensorflow'] True True"


def test_setup_rejects_a_non_boolean_tensorflow_flag():
    with pytest.raises(ValueError, match="tensorflow must be True or False, got 'no'"):
        cnnkit.setup(tensorflow="no")


def test_portable_paths_hide_the_data_folder_and_home(monkeypatch, tmp_path):
    from cnnkit.env import portable_paths

    monkeypatch.setenv("CNNKIT_DATA_DIR", str(tmp_path) + "/")
    home = os.path.expanduser("~")
    text = f"dataset: cifar10 ({tmp_path}/cifar-10-batches-py) | cache {home}/.keras | other {tmp_path}x"
    assert portable_paths(text) == (f"dataset: cifar10 ($CNNKIT_DATA_DIR/cifar-10-batches-py) | cache ~/.keras"
                                    f" | other {str(tmp_path).replace(home, '~', 1)}x")
    with pytest.raises(ValueError, match="text must be a str, got bytes"):
        portable_paths(b"x")
    # a folder a script was given (--data-dir) is named the same way, whatever $CNNKIT_DATA_DIR says
    folder = tmp_path / "cifar"
    folder.mkdir()
    for given in (str(folder), f"{folder}/", str(tmp_path / "." / "cifar")):
        assert portable_paths(f"dataset: cifar10 ({folder}/cifar-10-batches-py)", given) == (
            "dataset: cifar10 ($CNNKIT_DATA_DIR/cifar-10-batches-py)")
    monkeypatch.delenv("CNNKIT_DATA_DIR")
    assert portable_paths(f"({folder}/x)") == f"({str(folder).replace(home, '~', 1)}/x)"  # no data folder named


# --------------------------------------------------------------------------- the photograph, without scikit-image


def test_the_photograph_ships_with_the_package():
    from cnnkit import photos

    photo = photos.chelsea()
    assert photo.shape == (300, 451, 3) and photo.dtype.name == "uint8"
    colours = {tuple(pixel) for pixel in photo.reshape(-1, 3)[::7].tolist()}
    assert len(colours) > 5000, "a photograph has thousands of distinct colours"
    assert photo.max() - photo.min() > 200 and not (photo[..., 0] == photo[..., 2]).all()
    from matplotlib import image

    raw = image.imread(photos.CHELSEA)  # floats k/255: the bytes come back exactly
    assert (photo == (raw[..., :3] * 255).round()).all()
    assert photos.CHELSEA.stat().st_size < 300_000


def test_gray_is_the_bt709_weighted_sum():
    import numpy as np

    from cnnkit import photos

    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(photos.rgb_to_gray(rgb), [[0.2125, 0.7154, 0.0721, 1.0]], atol=1e-12)
    np.testing.assert_allclose(photos.rgb_to_gray(rgb / 255.0), photos.rgb_to_gray(rgb))
    with pytest.raises(ValueError, match=r"rgb must have shape \(\.\.\., 3\), got \(2, 2\)"):
        photos.rgb_to_gray(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="read_png reads PNG files only, got 'x.jpg'"):
        photos.read_png("x.jpg")


HEAVY_IMPORT = re.compile(r"^\s*(?:import|from)\s+(?:skimage|scipy)\b", re.MULTILINE)


def test_nothing_imports_scikit_image_or_scipy():
    sources = {p.relative_to(ROOT).as_posix(): p.read_text() for p in (ROOT / "cnnkit").rglob("*.py")}
    for rel in NOTEBOOKS:
        nb = nbformat.read(ROOT / rel, as_version=4)
        sources[rel] = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    offenders = sorted(rel for rel, text in sources.items() if HEAVY_IMPORT.search(text))
    assert not offenders, f"these import scikit-image or scipy: {offenders}"
    assert HEAVY_IMPORT.search("x = 1\nfrom scipy import signal\n")
