"""The ``cnnkit`` command, run in this process: delegation, errors (exit 2/3), the data check, the course folder."""
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit import checkout, cli, data

ROOT = Path(__file__).resolve().parent.parent


def _write_fake_cifar(folder: Path, n_train: int = 12, n_test: int = 7) -> Path:
    """The official layout in miniature: five training batches and a test batch of random pictures."""
    batches = folder / data.FOLDER
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((b, n_train) for b in data.TRAIN_BATCHES), (data.TEST_BATCH, n_test)]:
        content = {b"labels": [int(v) for v in np.arange(n) % 10],
                   b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (batches / name).write_bytes(pickle.dumps(content, protocol=2))
    return folder


@pytest.fixture
def no_cifar(tmp_path, monkeypatch):
    """No CIFAR-10 anywhere cnnkit.data looks: an empty Keras home, no CNNKIT_DATA_DIR."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("CNNKIT_DATA_DIR", raising=False)
    return tmp_path


def test_version_and_help(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cnnkit {cnnkit.__version__}"
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("lab", "train", "exercises", "data"):
        assert f"\n    {command}" in out


@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["data", "--surprise"], "unrecognized arguments: --surprise"),
    (["data", "--fetch", "--dir", "x"], "not allowed with"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_is_delegated(capsys):
    assert cli.main(["train", "--help"]) == 0
    assert "--recipe" in capsys.readouterr().out
    assert cli.main(["train", "--epochs", "0", "--out", "x"]) == 2  # cnnkit.train's own check
    assert "expected a positive integer" in capsys.readouterr().err


def test_exercises_build_into_given_folders(tmp_path, capsys):
    exercises = tmp_path / "built"
    assert cli.main(["exercises", "build", "--solutions", str(ROOT / "solutions"), "--exercises", str(exercises)]) == 0
    built = sorted(p.name for p in exercises.glob("*.ipynb"))
    assert built == sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb")) and built
    for name in built:
        text = (exercises / name).read_text(encoding="utf-8")
        assert "raise NotImplementedError()" in text and "### BEGIN SOLUTION" not in text
    assert cli.main(["exercises", "build", "--solutions", str(tmp_path / "none"), "--exercises", str(exercises)]) == 2
    assert "no solution notebooks" in capsys.readouterr().err


def test_exercises_folders_required_outside_a_checkout(tmp_path, monkeypatch, capsys):
    from cnnkit.instructor import cli as instructor_cli

    monkeypatch.setattr(instructor_cli, "checkout_root", lambda: None)  # as when installed from a wheel
    assert cli.main(["exercises", "build", "--exercises", str(tmp_path / "e")]) == 2
    assert "--solutions DIR is required" in capsys.readouterr().err
    assert cli.main(["exercises", "build", "--solutions", str(ROOT / "solutions")]) == 2
    assert "--exercises DIR is required" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_missing_extra_is_named(monkeypatch, capsys):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "nbformat" else real(name))
    assert cli.main(["exercises", "build"]) == 2
    assert "pip install 'cnnkit[grade]'" in capsys.readouterr().err


def test_checkout_root_is_recognised(tmp_path):
    assert checkout.checkout_root() == ROOT
    package = tmp_path / "cnnkit"
    package.mkdir()
    assert checkout.checkout_root(package) is None  # site-packages: no pyproject.toml beside it
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    assert checkout.checkout_root(package) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "cnnkit"\n')
    assert checkout.checkout_root(package) == tmp_path.resolve()


def test_lab_finds_the_course_or_says_where_it_must_be(tmp_path, monkeypatch, capsys):
    assert checkout.find_course() == ROOT
    assert checkout.find_course(ROOT) == ROOT
    monkeypatch.setattr(checkout, "checkout_root", lambda: None)  # as when installed from a wheel
    monkeypatch.chdir(tmp_path)
    assert cli.main(["lab"]) == 2
    err = capsys.readouterr().err
    assert "no course here" in err and "--course DIR" in err and str(tmp_path) in err
    assert cli.main(["lab", "--course", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["lab", "--course", str(tmp_path)]) == 2
    assert "has no notebooks/*.ipynb" in capsys.readouterr().err
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_x.ipynb").write_text("{}")
    assert checkout.find_course() == tmp_path.resolve()


def test_lab_command_starts_jupyterlab_on_the_start_page(monkeypatch):
    started = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command, cwd: started.append((command, cwd)) or 0)
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: object())
    assert cli.main(["lab", "--course", str(ROOT), "--port", "8899", "--no-browser"]) == 0
    (command, cwd), = started
    assert cwd == ROOT and command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert command[3:] == ["notebooks/00_start_here.ipynb", "--port", "8899", "--no-browser"]


def test_lab_without_jupyterlab_names_the_extra(monkeypatch, capsys):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["lab", "--course", str(ROOT)]) == 2
    assert "pip install 'cnnkit[lab]'" in capsys.readouterr().err


def test_data_not_found_lists_places(no_cifar, capsys):
    assert cli.main(["data"]) == 3
    err = capsys.readouterr().err
    assert str(no_cifar / "keras-home" / "datasets") in err and "cnnkit data --fetch" in err
    assert "CNNKIT_DATA_DIR is not set" in err


def test_data_checks_a_folder(no_cifar, capsys):
    folder = _write_fake_cifar(no_cifar / "cifar")
    assert cli.main(["data", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert str(folder / data.FOLDER) in out and "(60, 32, 32, 3) uint8" in out and "(7, 32, 32, 3)" in out
    assert f"export CNNKIT_DATA_DIR={folder.resolve()}" in out


def test_data_finds_the_environment_variable(no_cifar, monkeypatch, capsys):
    folder = _write_fake_cifar(no_cifar / "cifar")
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(folder))
    assert cli.main(["data"]) == 0
    out = capsys.readouterr().out
    assert f"CIFAR-10 at {folder / data.FOLDER}" in out and "export" not in out


def test_data_folder_errors(no_cifar, capsys):
    assert cli.main(["data", "--dir", str(no_cifar / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = no_cifar / "empty"
    empty.mkdir()
    assert cli.main(["data", "--dir", str(empty)]) == 3
    assert "holds neither cifar-10-batches-py/ nor cifar-10-python.tar.gz" in capsys.readouterr().err
    folder = _write_fake_cifar(no_cifar / "broken")
    (folder / data.FOLDER / "data_batch_3").write_bytes(b"not a pickle")
    assert cli.main(["data", "--dir", str(folder)]) == 3
    assert "data_batch_3" in capsys.readouterr().err


def test_python_dash_m_cnnkit(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"cnnkit {cnnkit.__version__}"
