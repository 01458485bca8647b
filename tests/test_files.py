"""cnnkit.files.write_atomic: the new content in one step, or the old file untouched and nothing left behind."""
import os
import stat

import pytest

from cnnkit import files


def test_writes_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "record.json"
    files.write_atomic(target, "first\n")
    assert target.read_text(encoding="utf-8") == "first\n"
    files.write_atomic(str(target), "zweite Fassung: ü\n")  # a str path, non-ASCII text
    assert target.read_text(encoding="utf-8") == "zweite Fassung: ü\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]


def test_a_failure_part_way_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_text("old\n", encoding="utf-8")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        files.write_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_refuses_what_is_not_text(tmp_path):
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        files.write_atomic(tmp_path / "x.json", b"{}")
    assert list(tmp_path.iterdir()) == []
