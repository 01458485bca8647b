"""The grading sandbox's pieces that need no kernel: mount order, closed folders, kill and readability rules."""
import os
from pathlib import Path

import pytest

from cnnkit.instructor import sandbox


def test_hidden_paths_are_covered_after_every_bind(tmp_path, monkeypatch):
    closed = tmp_path / "closed"
    venv, kit = closed / "venv", closed / "checkout" / "cnnkit"
    solutions = closed / "checkout" / "solutions"
    for folder in (venv, kit, solutions):
        folder.mkdir(parents=True)
    os.chmod(closed, 0o700)
    work = Path("/tmp/cnnkit-grading-x/slot0-y/kernel")
    monkeypatch.setattr(sandbox, "_needed_paths", lambda: [venv, kit])
    options = sandbox._mounts(work, [solutions, venv])
    binds = [i for i, o in enumerate(options) if o in ("--ro-bind", "--bind")]
    assert options.index("--tmpfs") < binds[0]
    # the folder closed to others is emptied, what the kernel needs is bound back into it
    assert ["--ro-bind", str(venv), str(venv)] == options[options.index(str(venv)) - 1:options.index(str(venv)) + 2]
    cover = options.index(str(solutions)) - 1
    assert options[cover] == "--tmpfs" and cover > max(binds)
    assert options.count(str(venv)) == 2  # a hidden path that the kernel needs is not covered
    assert ["--bind", str(work), str(work)] == options[options.index("--bind"):options.index("--bind") + 3]


def test_closed_ancestor_is_the_highest_one(tmp_path):
    outer = tmp_path / "a"
    inner = outer / "b" / "c"
    inner.mkdir(parents=True)
    os.chmod(outer, 0o700)
    os.chmod(outer / "b", 0o700)
    found = sandbox._closed_ancestor(inner / "d")
    assert found is not None and found in (outer, *outer.parents)


def test_readable_by_others(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(folder, 0o755)
    assert sandbox.readable_by_others(folder) == all(os.stat(p).st_mode & 0o001 for p in folder.parents)
    os.chmod(folder, 0o750)
    assert not sandbox.readable_by_others(folder)


def test_kill_all_refuses_root():
    with pytest.raises(ValueError, match="root"):
        sandbox.kill_all(0)


def test_passable_parents_stop_at_the_mask():
    options = sandbox._passable_parents(Path("/tmp/a/b/c"), Path("/tmp"))
    assert options == ["--perms", "0711", "--dir", "/tmp/a", "--perms", "0711", "--dir", "/tmp/a/b"]
    assert sandbox._passable_parents(Path("/srv/x"), Path("/tmp")) == []
