"""Packaging: pyproject.toml and environment.yml list the same dependencies; Binder installs cnnkit."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _normalise(spec: str) -> str:
    return re.sub(r"\s+", "", spec).replace('"', "'")


def _environment_yml_specs() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = set()
    for item in env["dependencies"]:
        if isinstance(item, dict):
            specs.update(_normalise(spec) for spec in item.get("pip", []))
        elif item != "pip" and not item.startswith("python="):
            specs.add(_normalise(item))
    return specs


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(d) for d in project["dependencies"]}
    listed = _environment_yml_specs()
    assert listed == wanted, (
        f"only in pyproject.toml: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"
    )


def test_environment_yml_pins_python_and_conda_forge():
    text = (ROOT / "environment.yml").read_text()
    assert "- python=3.11" in text and "- conda-forge" in text


def test_postbuild_installs_cnnkit_and_stops_on_error():
    text = (ROOT / "postBuild").read_text()
    assert text.startswith("#!/bin/bash") and "\nset -e\n" in text
    assert "pip install" in text and "-e ." in text


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(\./kit \w+)\s*(?:#.*)?$", readme, flags=re.M)
    assert "./kit lab" in commands and "./kit test" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./kit test$", ci, flags=re.M)
