"""cnnkit.ablation: the recorded ablation that lesson 09 shows, read back and checked against the recipe."""
import dataclasses
import json

import pytest

from cnnkit import ablation, records
from cnnkit.recipes import ABLATIONS, Recipe, get_recipe


def _row(variant, accuracy, seconds, changes=None, reused=None):
    return {"variant": variant, "changes": changes or {}, "test_accuracy": accuracy, "train_seconds": seconds,
            "precision": "float32", "reused": reused, "accuracy_ratio": None, "time_ratio": None}


def test_a_missing_record_names_the_command_that_makes_one(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="no record 'ablation_quick' at .*; make it with `python "
                       "benchmarks/capstone.py --ablate --recipe quick --json"):
        ablation.measured("quick")
    with pytest.raises(ValueError, match="unknown recipe 'fastest'"):
        ablation.measured("fastest")


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not a JSON record"),
    (json.dumps({"rows": []}), "has no list of rows"),
    (json.dumps([1, 2]), "holds a JSON list, expected an object; remake it with `python benchmarks/capstone.py"),
    (json.dumps({"row": []}), r"lacks \['rows'\]"),
    (json.dumps({"rows": [_row("no warm-up", 0.8, 10.0)]}), "first row must be the full recipe"),
    (json.dumps({"rows": [{"variant": "full"}]}), "missing \\['accuracy_ratio'"),
])
def test_a_corrupt_record_is_refused_with_what_was_found(tmp_path, monkeypatch, content, message):
    monkeypatch.setattr(records, "RESULTS", tmp_path)
    ablation.record_path("quick").write_text(content)
    with pytest.raises(ValueError, match=message):
        ablation.measured("quick")


def test_a_valid_record_reads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", tmp_path)
    report = {"rows": [_row("full", 0.8, 100.0), _row("no warm-up", 0.79, 98.0, {"warmup_epochs": 0.0})]}
    ablation.record_path("quick").write_text(json.dumps(report))
    assert ablation.measured("quick") == report
    assert ablation.record_path(get_recipe("good")).name == "ablation_good.json"


@pytest.mark.parametrize("name", ["quick", "good"])
def test_the_shipped_record_is_of_the_current_recipe_and_every_trick(name):
    """Lesson 09 shows these files: each must describe its recipe as it is now (re-record after a change)."""
    report = ablation.measured(name)
    # a field the record lacks was added to Recipe after the run, which trained with its default
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe) if f.default is not dataclasses.MISSING}
    assert {**defaults, **report["recipe"]} == get_recipe(name).to_dict(), (
        f"the {name} recipe changed since its ablation was recorded: run benchmarks/capstone.py --ablate "
        f"--recipe {name} --json {ablation.record_path(name)} on CIFAR-10")
    assert report["dataset"] == "cifar10" and not report["fast"]
    assert [row["variant"] for row in report["rows"]] == ["full", *(f"no {trick}" for trick in ABLATIONS)]
    full_seconds = [part["full_train_seconds"] for part in report.get("parts", [])] or [report["rows"][0]["train_seconds"]]
    for row in report["rows"]:
        assert 0.0 < row["test_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert row["time_ratio"] == pytest.approx(row["train_seconds"] / full_seconds[row.get("part", 0)])
        # the lesson's time column: every variant's steps timed in turns against the full recipe's
        assert row["step_time_ratio"]["range"][0] <= row["step_time_ratio"]["median"] <= row["step_time_ratio"]["range"][1]
    assert report["rows"][0]["step_time_ratio"] == {"median": 1.0, "range": [1.0, 1.0]}


def _part(rows, finished="2026-01-01 10:00:00", recipe="good", cpu="AMD EPYC"):
    full = rows[0]["train_seconds"]
    for row in rows:
        row["accuracy_ratio"], row["time_ratio"] = row["test_accuracy"] / rows[0]["test_accuracy"], row["train_seconds"] / full
    return {"rows": rows, "recipe": {"name": recipe}, "epochs": 10, "dataset": "cifar10", "n_train": 49000,
            "n_test": 10000, "fast": False, "finished": finished,
            "machine": {"cpu": cpu, "cpu_count": 2, "bf16_hardware": "avx512_bf16", "tensorflow": "2.21.0",
                        "keras": "3.15.1", "platform": "one kernel"}}


def _two_parts():
    first = _part([_row("full", 0.89, 1300.0), _row("no residual blocks", 0.86, 530.0, {"residual": [False] * 3})])
    second = _part([_row("full", 0.89, 800.0), _row("no weight decay", 0.885, 790.0, {"weight_decay": 0.0}),
                    _row("no warm-up", 0.888, 805.0, {"warmup_epochs": 0.0})], finished="2026-01-02 09:00:00")
    second["machine"]["platform"] = "another kernel"  # a kernel update does not make the runs incomparable
    return first, second


def test_parts_of_an_ablation_merge_in_trick_order_each_row_timed_against_its_own_run():
    merged = ablation.merge(_two_parts())
    assert [(r["variant"], r["part"]) for r in merged["rows"]] == [
        ("full", 0), ("no residual blocks", 0), ("no warm-up", 1), ("no weight decay", 1)]
    assert merged["rows"][1]["time_ratio"] == pytest.approx(530 / 1300)  # its own run's full recipe
    assert merged["rows"][3]["time_ratio"] == pytest.approx(790 / 800)
    assert merged["parts"][1] == {"finished": "2026-01-02 09:00:00", "full_train_seconds": 800.0,
                                  "variants": ["full", "no weight decay", "no warm-up"]}
    assert merged["finished"] == "2026-01-02 09:00:00" and merged["n_train"] == 49000
    table = ablation.markdown(merged["rows"], "t")
    assert "| no weight decay | `weight_decay=0.0` | 88.50% | -0.50 | 0.994 | 790.0 | 0.988 | float32 | run 2 |" in table


@pytest.mark.parametrize("spoil, message", [
    (lambda a, b: b["rows"][0].update(test_accuracy=0.8901), r"part 2's full recipe scored 89.0100%, part 1's 89.0000%"),
    (lambda a, b: b.update(epochs=12), "part 2 has epochs 12, part 1 has 10"),
    (lambda a, b: b["machine"].update(cpu="Intel Xeon"), "part 2 ran with cpu 'Intel Xeon', part 1 with 'AMD EPYC'"),
    (lambda a, b: b["rows"].append(dict(a["rows"][1])), "'no residual blocks' is in part 1 and in part 2"),
    (lambda a, b: b["rows"].pop(0), "part 2 is not an ablation report with the full recipe first"),
])
def test_parts_that_do_not_belong_together_are_refused(spoil, message):
    first, second = _two_parts()
    spoil(first, second)
    with pytest.raises(ValueError, match=message):
        ablation.merge([first, second])
    with pytest.raises(ValueError, match="at least one"):
        ablation.merge([])


def _speed(recipe="good", cpu="AMD EPYC"):
    models = {"full": {"ratio_median": 1.0, "ratio_range": [1.0, 1.0]},
              "no residual blocks": {"ratio_median": 0.7, "ratio_range": [0.61, 0.76]},
              "no weight decay": {"ratio_median": 0.97, "ratio_range": [0.8, 1.1]}}
    return {"ablate": recipe, "models": models, "machine": {"cpu": cpu}, "rounds": 8, "seconds_per_turn": 4.0,
            "finished": "2026-01-02 10:00:00"}


def test_step_times_measured_in_turns_join_the_rows_they_timed():
    first, second = _two_parts()
    second["rows"].append(_row("no test-time augmentation", 0.87, 800.0, {"tta": False}, reused="full"))
    timed = ablation.with_step_times(ablation.merge([first, second]), _speed())
    ratios = {row["variant"]: row["step_time_ratio"] for row in timed["rows"]}
    assert ratios["no residual blocks"] == {"median": 0.7, "range": [0.61, 0.76]}
    assert ratios["no test-time augmentation"] == {"median": 1.0, "range": [1.0, 1.0]}  # the full run's training
    assert ratios["no warm-up"] is None  # not timed
    assert timed["step_times"]["rounds"] == 8
    table = ablation.markdown(timed["rows"], "t")
    assert "step time / full, in turns: median [range]" in table
    assert "| 0.966 | 0.70 [0.61, 0.76] | float32 | run 1 |" in table  # step times replace the runs' own
    assert "| no warm-up | `warmup_epochs=0.0` | 88.80% | -0.20 | 0.998 | - | float32 | run 2 |" in table
    assert "805.0" not in table
    with pytest.raises(ValueError, match="speed_ratio.py --ablate good, got one for 'quick'"):
        ablation.with_step_times(timed, _speed(recipe="quick"))
    with pytest.raises(ValueError, match="from a 'Intel Xeon', the ablation from a 'AMD EPYC'"):
        ablation.with_step_times(timed, _speed(cpu="Intel Xeon"))


def test_the_merge_command_writes_one_report_and_refuses_a_bad_part(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    first, second = _two_parts()
    paths = []
    for name, content in (("a.json", first), ("b.json", second), ("speed.json", _speed())):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(content))
    out = tmp_path / "merged.json"
    command = [sys.executable, "benchmarks/capstone.py", "--merge", str(paths[0]), str(paths[1]),
               "--speed", str(paths[2]), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=repo, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    merged = json.loads(out.read_text())
    assert [r["variant"] for r in merged["rows"]] == ["full", "no residual blocks", "no warm-up", "no weight decay"]
    assert "0.70 [0.61, 0.76]" in out.with_suffix(".md").read_text()
    paths[1].write_text("{half a report")
    out.unlink()
    refused = subprocess.run(command, capture_output=True, text=True, cwd=repo, timeout=120)
    assert refused.returncode != 0 and f"{paths[1]} is not JSON (an ablation report expected)" in refused.stderr
    assert not out.exists()  # nothing written on failure


@pytest.mark.parametrize("name", ["", "../secrets", "a/b", ".hidden", None])
def test_a_record_name_is_a_plain_file_stem(name):
    with pytest.raises(ValueError, match="a record name is a plain file stem"):
        records.path(name)


def test_by_rate_groups_a_records_runs_by_setting_rate_and_seed():
    def run(net, rate, seed, acc):
        return {"network": net, "learning_rate": rate, "seed": seed, "val_accuracy": acc}

    record = {"runs": [run("BN", 0.3, 1, 0.5), run("no BN", 0.1, 0, 0.4), run("BN", 0.03, 0, 0.6),
                       run("BN", 0.3, 0, 0.45), run("no BN", 0.1, 1, 0.42)]}
    grouped = records.by_rate(record, "val_accuracy", key="network")
    assert grouped == {"no BN": {0.1: [0.4, 0.42]}, "BN": {0.03: [0.6], 0.3: [0.45, 0.5]}}
    assert list(grouped) == ["no BN", "BN"] and list(grouped["BN"]) == [0.03, 0.3]
    with pytest.raises(ValueError, match=r"run 1 of the record lacks \['val_accuracy'\]; it has \['learning_rate'"):
        records.by_rate({"runs": [run("BN", 0.3, 0, 0.5), {"learning_rate": 0.1, "network": "BN", "seed": 1}]},
                        "val_accuracy", key="network")


def test_histories_reads_a_settings_runs_like_compare_seeds():
    from cnnkit.experiments import spread

    record = {"runs": [
        {"network": "BN", "learning_rate": 0.3, "seed": 1, "val_curve": [0.2, 0.5], "train_loss": 1.1},
        {"network": "BN", "learning_rate": 0.3, "seed": 0, "val_curve": [0.3, 0.45], "train_loss": 1.2},
        {"network": "BN", "learning_rate": 0.1, "seed": 0, "val_curve": [0.1, 0.2], "train_loss": 2.0}]}
    runs = records.histories(record, "BN", 0.3, key="network", fields={"val_accuracy": "val_curve", "loss": "train_loss"})
    assert runs == [{"val_accuracy": [0.3, 0.45], "loss": [1.2]}, {"val_accuracy": [0.2, 0.5], "loss": [1.1]}]
    assert spread({"BN": runs})["BN"]["values"] == [0.45, 0.5]
    with pytest.raises(KeyError, match=r"no runs of network 'no BN'; it has \['BN'\]"):
        records.histories(record, "no BN", 0.3, key="network", fields={"loss": "train_loss"})
    with pytest.raises(KeyError, match=r"no runs of network 'BN' at rate 0.03; it has \[0.1, 0.3\]"):
        records.histories(record, "BN", 0.03, key="network", fields={"loss": "train_loss"})


def test_curves_groups_recorded_histories_by_a_field_in_seed_order():
    from cnnkit.experiments import spread

    record = {"runs": [
        {"experiment": "depth", "network": "plain", "seed": 1, "seconds": 5.0, "history": {"loss": [2.0, 1.9]}},
        {"experiment": "depth", "network": "resnet", "seed": 0, "history": {"loss": [1.8, 1.5]}},
        {"experiment": "depth", "network": "plain", "seed": 0, "seconds": 4.0, "history": {"loss": [2.1, 2.0]}},
        {"experiment": "trio", "network": "alexnet", "seed": 0, "history": {"loss": [2.3]}}]}
    depth = records.curves(record, "network", experiment="depth")
    assert list(depth) == ["resnet", "plain"]  # the order of the lowest seed's runs
    assert depth["plain"] == [{"loss": [2.1, 2.0], "seconds": 4.0}, {"loss": [2.0, 1.9], "seconds": 5.0}]
    assert depth["resnet"] == [{"loss": [1.8, 1.5]}]
    assert spread(depth, "loss")["plain"]["values"] == [2.0, 1.9]
    assert list(records.curves(record, "network")) == ["resnet", "plain", "alexnet"]
    with pytest.raises(KeyError, match=r"no runs with \{'experiment': 'width'\}"):
        records.curves(record, "network", experiment="width")
    with pytest.raises(ValueError, match=r"run 0 of the record lacks \['variant'\]"):
        records.curves(record, "variant")
    with pytest.raises(ValueError, match="lacks \\['a history dict'\\]"):
        records.curves({"runs": [{"network": "plain", "history": [1.0]}]}, "network")


def test_the_shipped_ablations_support_what_lesson_09_says_of_them():
    """Lesson 09's written readings of both tables; a re-recorded ablation must not contradict them."""
    for name in ("quick", "good"):
        rows = {row["variant"]: row for row in ablation.measured(name)["rows"]}
        full = rows["full"]["test_accuracy"]
        drop = {variant: full - row["test_accuracy"] for variant, row in rows.items()}
        assert max(drop, key=drop.get) == "no residual blocks"  # the residual blocks pay most
        assert drop["no test-time augmentation"] > 0.01 and drop["no weight decay"] > 0.005
        for variant in ("no label smoothing", "no warm-up", "no bfloat16"):  # within a few tenths of a point
            assert abs(drop[variant]) < 0.005, (name, variant)
        step = {variant: row["step_time_ratio"]["median"] for variant, row in rows.items()}
        for variant in ("no label smoothing", "no warm-up", "no weight decay"):  # the full recipe's arithmetic
            assert 0.85 < step[variant] < 1.15, (name, variant)
        assert step["no whitening"] > 1.3 and step["no residual blocks"] < 0.85 and step["no bfloat16"] > 1.05
    quick = {row["variant"]: row["test_accuracy"] for row in ablation.measured("quick")["rows"]}
    assert quick["full"] - quick["no whitening"] > 0.004  # whitening pays in accuracy in the quick recipe...
    good = {row["variant"]: row["test_accuracy"] for row in ablation.measured("good")["rows"]}
    assert good["no whitening"] >= good["full"]  # ...and not in the good one
