"""cnnkit.ablation: the recorded ablation that lesson 09 shows, read back and checked against the recipe."""
import dataclasses
import json

import pytest

from cnnkit import ablation
from cnnkit.recipes import ABLATIONS, Recipe, get_recipe


def _row(variant, accuracy, seconds, changes=None, reused=None):
    return {"variant": variant, "changes": changes or {}, "test_accuracy": accuracy, "train_seconds": seconds,
            "precision": "float32", "reused": reused, "accuracy_ratio": None, "time_ratio": None}


def test_a_missing_record_names_the_command_that_makes_one(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RESULTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="benchmarks/capstone.py --ablate --recipe quick --json"):
        ablation.measured("quick")
    with pytest.raises(ValueError, match="unknown recipe 'fastest'"):
        ablation.measured("fastest")


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not a JSON ablation report"),
    (json.dumps({"rows": []}), "has no list of rows"),
    (json.dumps([1, 2]), "has no list of rows"),
    (json.dumps({"rows": [_row("no warm-up", 0.8, 10.0)]}), "first row must be the full recipe"),
    (json.dumps({"rows": [{"variant": "full"}]}), "missing \\['accuracy_ratio'"),
])
def test_a_corrupt_record_is_refused_with_what_was_found(tmp_path, monkeypatch, content, message):
    monkeypatch.setattr(ablation, "RESULTS", tmp_path)
    ablation.record_path("quick").write_text(content)
    with pytest.raises(ValueError, match=message):
        ablation.measured("quick")


def test_a_valid_record_reads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RESULTS", tmp_path)
    report = {"rows": [_row("full", 0.8, 100.0), _row("no warm-up", 0.79, 98.0, {"warmup_epochs": 0.0})]}
    ablation.record_path("quick").write_text(json.dumps(report))
    assert ablation.measured("quick") == report
    assert ablation.record_path(get_recipe("good")).name == "ablation_good.json"


def test_the_shipped_record_is_of_the_current_quick_recipe_and_every_trick():
    """Lesson 09 shows this file: it must describe the recipe as it is now (re-record after a change)."""
    report = ablation.measured("quick")
    # a field the record lacks was added to Recipe after the run, which trained with its default
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe) if f.default is not dataclasses.MISSING}
    assert {**defaults, **report["recipe"]} == get_recipe("quick").to_dict(), (
        "the quick recipe changed since its ablation was recorded: run benchmarks/capstone.py --ablate "
        f"--recipe quick --json {ablation.record_path('quick')} on CIFAR-10")
    assert report["dataset"] == "cifar10" and not report["fast"]
    assert [row["variant"] for row in report["rows"]] == ["full", *(f"no {trick}" for trick in ABLATIONS)]
    full = report["rows"][0]
    for row in report["rows"]:
        assert 0.0 < row["test_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert row["time_ratio"] == pytest.approx(row["train_seconds"] / full["train_seconds"])
