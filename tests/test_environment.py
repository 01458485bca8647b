"""Packaging: environment.yml pins what pyproject.toml asks for, within every range; Binder installs cnnkit.

environment.yml (conda and Binder) must list the packages of pyproject.toml's core
dependencies, its [lab] extra and its build requirements (Binder's postBuild installs
cnnkit without build isolation), each pinned with ``==``; conda spells matplotlib
``matplotlib-base``. The only other packages it may pin are requirements of TensorFlow
itself, pinned so that pip resolves them together with TensorFlow. Every pin must lie in
pyproject's range, in the range cnnkit's version guard accepts, and, when the pinned
TensorFlow is the one installed here, in the ranges TensorFlow's own metadata gives.
A conda solve needs the network, so it is not run here.
"""
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from cnnkit import env

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}
UNPINNED = {"python", "pip"}  # the interpreter's minor version and the installer
TENSORFLOW = ("tensorflow-cpu", "tensorflow")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _wanted() -> dict[str, list[Requirement]]:
    """pyproject's requirements that environment.yml must carry, by canonical name."""
    data = _pyproject()
    specs = (data["project"]["dependencies"] + data["project"]["optional-dependencies"]["lab"]
             + data["build-system"]["requires"])
    wanted: dict[str, list[Requirement]] = {}
    for spec in specs:
        req = Requirement(spec)
        wanted.setdefault(canonicalize_name(req.name), []).append(req)
    return wanted


def _conda_pin(item: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:==\s*([0-9][0-9A-Za-z.]*))?", item.strip())
    assert match, f"environment.yml: cannot read the conda entry {item!r} (expected NAME==VERSION)"
    return canonicalize_name(CONDA_TO_PYPI.get(match[1], match[1])), match[2]


def _pins() -> list[tuple[str, str | None, Marker | None, str]]:
    """(canonical name, pinned version or None, marker, where) for each entry of environment.yml."""
    doc = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = []
    for item in doc["dependencies"]:
        if isinstance(item, dict):
            for spec in item["pip"]:
                req = Requirement(spec)
                exact = [s.version for s in req.specifier if s.operator == "=="]
                pins.append((canonicalize_name(req.name), exact[0] if len(exact) == 1 and len(req.specifier) == 1
                             else None, req.marker, "pip"))
        elif not item.startswith("python="):
            name, version = _conda_pin(item)
            pins.append((name, version, None, "conda"))
    return pins


def _installed_tensorflow() -> metadata.Distribution | None:
    for name in TENSORFLOW:
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _tensorflow_requirements(dist: metadata.Distribution) -> dict[str, Requirement]:
    """TensorFlow's requirements that apply to a plain install (no extras), by canonical name."""
    reqs = {}
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            reqs[canonicalize_name(req.name)] = req
    return reqs


def test_environment_yml_lists_what_pyproject_asks_for():
    wanted = set(_wanted())
    listed = {name for name, *_ in _pins()} - UNPINNED
    dist = _installed_tensorflow()
    allowed_extra = set(_tensorflow_requirements(dist)) if dist is not None else {"h5py", "ml-dtypes"}
    assert wanted <= listed, f"pyproject.toml asks for {sorted(wanted - listed)}, which environment.yml lacks"
    extra = listed - wanted
    assert extra <= allowed_extra, (
        f"environment.yml lists {sorted(extra - allowed_extra)}, which neither pyproject.toml "
        "(dependencies, [lab], build requirements) nor TensorFlow asks for")


def test_every_package_is_pinned_exactly():
    loose = [name for name, version, _, _ in _pins() if version is None and name not in UNPINNED]
    assert not loose, f"environment.yml: pin these with ==: {loose}"
    text = (ROOT / "environment.yml").read_text()
    assert "- python=3.11" in text and "- conda-forge" in text
    assert re.search(r"^\s*-\s*matplotlib-base==", text, flags=re.M), "conda's matplotlib pulls in Qt: use matplotlib-base"


def test_every_entry_says_what_uses_it():
    """A comment on the entry's line, or above the group of entries it belongs to."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    entry = re.compile(r"^\s*-\s*\"?([A-Za-z][\w.\-]*)")
    for i, line in enumerate(lines):
        match = entry.match(line)
        if not match or match[1] in ("conda-forge", "pip") or "#" in line:
            continue
        above = next((l.strip() for l in reversed(lines[:i]) if not entry.match(l)), "")
        assert above.startswith("#"), f"environment.yml: say what uses {match[1]}"


def test_pins_lie_in_pyprojects_ranges():
    wanted = _wanted()
    for name, version, marker, _ in _pins():
        if name in UNPINNED or name not in wanted:
            continue
        for req in wanted[name]:
            assert req.specifier.contains(version, prereleases=True), \
                f"environment.yml pins {name}=={version}, outside pyproject.toml's {req}"


def test_tensorflow_lines_cover_pyprojects_platforms():
    """Each platform pyproject gives a TensorFlow build gets a pinned one in environment.yml, and only that build."""
    wanted = _wanted()
    platforms = [
        {"sys_platform": "linux", "platform_machine": "x86_64"},
        {"sys_platform": "win32", "platform_machine": "AMD64"},
        {"sys_platform": "darwin", "platform_machine": "arm64"},
        {"sys_platform": "linux", "platform_machine": "aarch64"},
    ]
    pins = [(name, marker) for name, _, marker, _ in _pins() if name in TENSORFLOW]
    for platform in platforms:
        asked = [n for n in TENSORFLOW if any(r.marker.evaluate(platform) for r in wanted[n])]
        pinned = [n for n, marker in pins if marker is None or marker.evaluate(platform)]
        assert pinned == asked, f"on {platform}: pyproject.toml installs {asked}, environment.yml pins {pinned}"


def test_pins_lie_in_the_version_guards_range():
    for name, version, _, _ in _pins():
        guard = env.TESTED.get("tensorflow" if name in TENSORFLOW else name)
        if guard is None:
            continue
        low, high = guard
        assert low <= tuple(Version(version).release[:2]) < high, \
            f"environment.yml pins {name}=={version}, outside cnnkit.env.TESTED {guard}: ck.setup() would warn"


def test_pins_satisfy_tensorflows_own_requirements():
    dist = _installed_tensorflow()
    if dist is None:
        pytest.skip("TensorFlow is not installed: its requirements cannot be read")
    name = canonicalize_name(dist.metadata["Name"])
    pinned = {n: v for n, v, marker, _ in _pins() if n == name and (marker is None or marker.evaluate())}
    if pinned.get(name) != dist.version:
        pytest.skip(f"{name} {dist.version} is installed, environment.yml pins {pinned.get(name)}: "
                    "the installed metadata says nothing about the pinned release")
    requirements = _tensorflow_requirements(dist)
    checked = []
    for dep, version, _, _ in _pins():
        if dep in requirements:
            req = requirements[dep]
            assert req.specifier.contains(version, prereleases=True), \
                f"environment.yml pins {dep}=={version}, but {name} {dist.version} requires {req}"
            checked.append(dep)
    assert {"keras", "h5py", "ml-dtypes", "numpy"} <= set(checked)


def test_postbuild_installs_cnnkit_and_stops_on_error():
    text = (ROOT / "postBuild").read_text()
    assert text.startswith("#!/bin/bash") and "\nset -e\n" in text
    assert "pip install" in text and "-e ." in text
    if "--no-build-isolation" in text:  # then the build requirements must come from environment.yml
        assert "setuptools" in {name for name, *_ in _pins()}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(\./kit \w+)\s*(?:#.*)?$", readme, flags=re.M)
    assert "./kit lab" in commands and "./kit test" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./kit test$", ci, flags=re.M)


def test_kit_installs_the_extras_each_command_needs():
    kit = (ROOT / "kit").read_text()
    extras = dict(re.findall(r"^\s*(lab|test)\)\s*extras=\"(\[\w+\])\"", kit, flags=re.M))
    assert extras == {"lab": "[lab]", "test": "[test]"}
    optional = _pyproject()["project"]["optional-dependencies"]
    assert {"lab", "grade", "test"} <= set(optional)
    assert any(Requirement(r).name == "cnnkit" and {"lab", "grade"} <= Requirement(r).extras
               for r in optional["test"]), "[test] must bring in [lab] and [grade]"


def test_the_slowest_test_files_are_handed_out_first():
    """./kit test keeps the collection order, and the root conftest.py puts the slowest files first."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    missing = [path for path in conftest.SLOWEST_FIRST if not (ROOT / path).is_file()]
    assert not missing, f"SLOWEST_FIRST names files that are gone: {missing}"
    names = ["tests/test_a.py::one", "tests/test_devices.py::x", "tests/test_a.py::two", "tests/test_browser.py::y",
             "tests/test_devices.py::z", "notebooks/01.ipynb::Cell 0"]
    items = [SimpleNamespace(nodeid=name) for name in names]
    conftest.pytest_collection_modifyitems(None, items)
    assert [item.nodeid for item in items] == [
        "tests/test_browser.py::y", "tests/test_devices.py::x", "tests/test_devices.py::z",
        "tests/test_a.py::one", "tests/test_a.py::two", "notebooks/01.ipynb::Cell 0"]
    assert re.search(r"pytest -n \S+ --dist loadfile --no-loadscope-reorder", (ROOT / "kit").read_text())
