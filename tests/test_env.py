"""cnnkit.env and the package's lazy submodules: version guard, setup, fast mode."""
import pytest

import cnnkit as ck
from cnnkit import env


def test_version_guard_names_the_package_and_range():
    assert env.check_versions({"numpy": "2.4.6", "tensorflow": "2.21.0", "keras": "3.15.1"}) == []
    problems = env.check_versions({"numpy": "1.21.0", "keras": "2.15.0"})
    assert problems == ["numpy 1.21.0 is outside the tested range >=1.26,<3.0",
                        "keras 2.15.0 is outside the tested range >=3.0,<4.0"]


def test_setup_reports_versions_and_fast_mode(capsys, monkeypatch):
    monkeypatch.setenv("CNNKIT_FAST", "1")
    versions = ck.setup(seed=3)
    line = capsys.readouterr().out
    assert f"TensorFlow {versions['tensorflow']}" in line and "fast mode: on" in line
    assert ck.budget(full=10, fast=1) == 1
    monkeypatch.setenv("CNNKIT_FAST", "0")
    assert ck.budget(full=10, fast=1) == 10
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        env.seed_everything(-1)


def test_lazy_submodules():
    assert ck.data.CLASS_NAMES[0] == "airplane"
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ck.nonsense  # noqa: B018
