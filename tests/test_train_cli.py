"""``python -m cnnkit.train``: what it does with its output folder ``--out``.

* missing parent folders are created (the README's ``--out runs/quick`` on a fresh clone);
* the files of an earlier run are kept unless ``--overwrite`` is given, and the refusal
  comes before any data is loaded or any training starts;
* a folder that cannot be created or written is reported as such (the folder and the
  operating system's reason), before any data is loaded; nothing is left behind.

"Before any data is loaded" is shown by asking for CIFAR-10 from a folder that does not
exist: a run that got as far as the data would exit 3 ("could not be loaded") instead of 2.
Two tests train (fast mode, offline dataset, one epoch): the README command, and a recipe
with no validation split (``val_fraction=0``) run in this process.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cnnkit import train as cli

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534  # uid and gid the permission tests drop to when they run as root
NO_DATA = ["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"]  # fails (exit 3) once data is loaded


def _cli(*args, cwd: Path, drop_privileges: bool = False, timeout: float = 240):
    """Run ``python -m cnnkit.train ARGS`` in ``cwd``; optionally as an unprivileged user (root only)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("CNNKIT_DATASET", None)
    if drop_privileges:  # import as root (the interpreter may live where nobody can read), then drop
        code = ("import os, sys; from cnnkit import train; train.build_parser(); "  # imports what main needs
                f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY}); "
                "sys.exit(train.main(sys.argv[1:]))")
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, "-m", "cnnkit.train", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def _partials(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".partial-" in p.name]


# --------------------------------------------------------------------------- parents and earlier runs


def test_readme_command_creates_parents_then_keeps_the_model_unless_overwrite(tmp_path):
    out = tmp_path / "runs" / "quick"
    first = _cli("--recipe", "quick", "--out", "runs/quick", "--dataset", "offline", "--fast", "--epochs", "1",
                 "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert {"model.keras", "metrics.json"} <= {p.name for p in out.iterdir()}
    before = _snapshot(tmp_path)

    again = _cli("--recipe", "quick", "--out", "runs/quick", "--dataset", "offline", "--fast", "--epochs", "1",
                 "--quiet", cwd=tmp_path, timeout=60)
    assert again.returncode == 2, again.stderr
    assert "model.keras" in again.stderr and "--overwrite" in again.stderr
    assert "dataset:" not in again.stdout and "recipe 'quick'" not in again.stdout  # stopped before the data
    assert _snapshot(tmp_path) == before and _partials(tmp_path) == []


def test_a_recipe_without_validation_split_trains_on_every_image_and_says_so(tmp_path, monkeypatch, capsys):
    import json

    from cnnkit.recipes import RECIPES

    monkeypatch.setitem(RECIPES, "quick", RECIPES["quick"].replace(widths=(8,), residual=(False,), patience=0,
                                                                   val_fraction=0.0))
    assert cli.main(["--recipe", "quick", "--out", str(tmp_path / "run"), "--dataset", "offline", "--fast",
                     "--epochs", "1"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_val"], metrics["best_val_accuracy"]) == (cli.FAST_TRAIN, 0, None)
    assert metrics["recipe_settings"]["val_fraction"] == 0.0 and metrics["best_epoch"] == 1
    assert not any(key.startswith("val_") for key in metrics["history"])
    out = capsys.readouterr().out
    assert "epoch 1/1  loss " in out and "val_" not in out.split("epoch 1/1")[1].splitlines()[0]
    assert (tmp_path / "run" / "model.keras").is_file() and (tmp_path / "run" / "curves.png").is_file()


def test_earlier_run_is_refused_before_the_data_is_loaded(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("model.keras", "notes.txt"):
        (out / name).write_text(f"earlier {name}")
    done = _cli("--out", str(out), *NO_DATA, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert str(out / "model.keras") in done.stderr and "--overwrite" in done.stderr
    assert "notes.txt" not in done.stderr  # only files a run writes count
    assert (out / "model.keras").read_text() == "earlier model.keras"
    assert _partials(tmp_path) == []


@pytest.mark.parametrize("earlier", ["metrics.json", "confusion.png"])
def test_any_file_of_an_earlier_run_is_kept(tmp_path, earlier):
    out = tmp_path / "run"
    out.mkdir()
    (out / earlier).write_text("earlier")
    done = _cli("--out", str(out), *NO_DATA, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and earlier in done.stderr, done.stderr
    assert (out / earlier).read_text() == "earlier"


def test_overwrite_and_unrelated_files_let_the_run_go_on_to_the_data(tmp_path):
    replaced = tmp_path / "replaced"
    replaced.mkdir()
    (replaced / "model.keras").write_text("earlier")
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    for out, extra in ((replaced, ["--overwrite"]), (unrelated, [])):
        done = _cli("--out", str(out), *extra, *NO_DATA, cwd=tmp_path, timeout=60)
        assert done.returncode == 3 and "could not be loaded" in done.stderr, done.stderr
    # the data was missing, so nothing was replaced
    assert (replaced / "model.keras").read_text() == "earlier"
    assert [p.name for p in unrelated.iterdir()] == ["notes.txt"]
    assert _partials(tmp_path) == []


def test_parents_created_for_a_failed_run_are_removed_again(tmp_path):
    done = _cli("--out", "a/b/run", *NO_DATA, cwd=tmp_path, timeout=60)
    assert done.returncode == 3, done.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- folders that cannot be used


def test_out_under_a_regular_file_names_the_file(tmp_path):
    (tmp_path / "somefile").write_text("not a folder")
    for out in ("somefile/out", "somefile/deeper/out"):
        done = _cli("--out", out, *NO_DATA, cwd=tmp_path, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "could not be loaded" not in done.stderr
        assert "cannot create the folder" in done.stderr and "somefile" in done.stderr
        assert "is a file, not a folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]


@pytest.fixture
def folders(tmp_path_factory):
    """``top/locked`` (read-only), ``top/open`` (writable by anyone) holding ``existing`` (read-only).

    Returns ``top`` and whether the CLI must drop root to be refused: root ignores mode
    bits, so as root the CLI runs as user ``nobody``, and ``top`` is world-readable.
    """
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    top = Path(tempfile.mkdtemp(prefix="cnnkit-locked-"))
    modes = {top: 0o755, top / "locked": 0o555, top / "open": 0o777, top / "open" / "existing": 0o555}
    try:
        for path, mode in modes.items():
            path.mkdir(exist_ok=True)
            path.chmod(mode)
        yield top, as_root
    finally:
        for path in modes:
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="needs POSIX permissions")
@pytest.mark.parametrize("out, what", [
    ("locked/run", "cannot write into the folder '{top}/locked'"),              # parent exists, read-only
    ("locked/sub/run", "cannot create the folder '{top}/locked/sub'"),          # a parent must be made there
    ("open/existing", "cannot write into the folder '{top}/open/existing'"),    # --out exists, read-only
])
def test_unwritable_out_reports_the_folder_and_the_os_reason(folders, out, what):
    top, as_root = folders
    before = _snapshot(top)
    done = _cli("--out", str(top / out), *NO_DATA, cwd=top, drop_privileges=as_root, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "could not be loaded" not in done.stderr
    assert what.format(top=top) in done.stderr
    assert "Permission denied" in done.stderr
    assert _snapshot(top) == before and _partials(top) == []


# --------------------------------------------------------------------------- in process


def test_refusal_happens_before_the_data_is_touched(tmp_path, monkeypatch, capsys):
    import cnnkit.data

    def must_not_load(*args, **kwargs):
        raise AssertionError("the data was loaded although --out holds an earlier model")

    monkeypatch.setattr(cnnkit.data, "load_dataset", must_not_load)
    (tmp_path / "model.keras").write_text("earlier")
    assert cli.main(["--out", str(tmp_path), "--dataset", "offline"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert str(tmp_path / "model.keras") in err and "--overwrite" in err
    assert (tmp_path / "model.keras").read_text() == "earlier"


def test_help_describes_the_output_folder():
    text = cli.build_parser().format_help()
    assert "--overwrite" in text and "created with its parents" in text


def test_help_loads_no_tensorflow_and_names_the_device_options():
    code = ("import runpy, sys\n"
            "sys.argv = ['cnnkit.train', '--help']\n"
            "try:\n    runpy.run_module('cnnkit.train', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print('LOADED', sorted({'tensorflow', 'keras'} & set(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    assert "--precision {auto,float32,bfloat16}" in done.stdout and "--cpu-devices N" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--precision", "float16"], "invalid choice: 'float16'"),
    (["--cpu-devices", "0"], "expected a positive integer (>= 1), got 0"),
])
def test_bad_device_options_exit_2_before_anything_runs(tmp_path, args, message):
    done = _cli("--out", str(tmp_path / "run"), *args, *NO_DATA, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
