"""The capstone's open training task: the budget's rules, then grading end to end through the grader.

The unit tests train nothing. The end-to-end test grades a small class of exercise 09
notebooks with ``--unsafe`` on the offline dataset in fast mode: the solution, the blank
exercise, a network whose output ignores the image, one over the parameter budget, and a
plan outside its ranges; only the solution earns the open task's points.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnkit import exercises as ex
from cnnkit.checks import CheckFailed, block_model
from cnnkit.checks import open_training as ot
from cnnkit.instructor.notebooks import nbgrader_meta

ROOT = Path(__file__).resolve().parent.parent
PLAN = {"epochs": 5, "batch_size": 128, "optimizer": "adam", "learning_rate": 2e-3, "augment": False}


def _small(x, num_classes):
    from keras import layers

    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(num_classes, activation="softmax")(x)


def _model(fn=_small, shape=(32, 32, 3), classes=10):
    return block_model(fn, shape, (classes,))


@pytest.mark.parametrize("change, words", [
    ({"epochs": 0}, "training_plan['epochs'] must be an integer in [1, 20], got 0"),
    ({"epochs": 2.5}, "training_plan['epochs'] must be an integer, got 2.5"),
    ({"learning_rate": 5.0}, "training_plan['learning_rate'] must be a number in [1e-05, 1], got 5.0"),
    ({"optimizer": "adamw"}, "training_plan['optimizer'] must be one of 'adam'"),
    ({"augment": "yes"}, "training_plan['augment'] must be True or False, got 'yes'"),
    ({"batch_size": 4096}, "training_plan['batch_size'] must be an integer in [16, 1024], got 4096"),
    ({"seed": 3}, "has unknown keys seed"),
])
def test_a_plan_outside_its_ranges_is_refused_naming_the_value(change, words):
    with pytest.raises(CheckFailed, match=None) as info:
        ot.check_plan({**PLAN, **change})
    assert words in str(info.value)
    assert ot.check_plan(dict(PLAN)) == PLAN


def test_a_missing_or_blank_plan_is_refused():
    with pytest.raises(CheckFailed, match="training_plan is None"):
        ot.check_plan(None)
    with pytest.raises(CheckFailed, match="lacks augment"):
        ot.check_plan({k: v for k, v in PLAN.items() if k != "augment"})
    with pytest.raises(CheckFailed, match="should be a dict"):
        ot.check_plan(list(PLAN.items()))


def test_the_budget_names_the_count_over_it():
    with pytest.raises(CheckFailed, match="the model has 300,001 parameters: over the budget of 300,000"):
        ot.check_budget(300_001, 1_000_000, 1)
    with pytest.raises(CheckFailed, match=r"20,000,000 multiply-adds per image x 4 epochs = 80,000,000"):
        ot.check_budget(1000, 20_000_000, 4)
    assert "60.0 M (budget 60 M)" in ot.check_budget(1000, 20_000_000, 3)


def test_model_measures_match_keras_and_the_formula():
    model = _model()
    parameters, madds = ot.measure_model(model, (32, 32, 3), 10)
    assert parameters == model.count_params() == 3 * 3 * 3 * 8 + 8 + 8 * 10 + 10
    assert madds == 32 * 32 * 3 * 3 * 3 * 8 + 8 * 10


@pytest.mark.parametrize("build, words", [
    ("logits", "the outputs are not probabilities"),
    ("shared", "is called more than once"),
    ("constant", "a list of 2,560 numbers"),
    ("wide", "values per image"),
    ("classes", "expected (None, 10)"),
])
def test_models_outside_the_rules_are_refused(build, words):
    import keras
    from keras import layers

    def classifier(x, num_classes):
        if build == "logits":
            return layers.Dense(num_classes)(layers.Flatten()(x))
        if build == "shared":
            conv = layers.Conv2D(3, 3, padding="same")
            x = conv(conv(x))
        if build == "constant":   # trained weights smuggled in through an initializer
            init = keras.initializers.Constant(np.ones((256, num_classes), np.float32))
            x = layers.Dense(256)(layers.GlobalAveragePooling2D()(x))
            return layers.Dense(num_classes, activation="softmax", kernel_initializer=init)(x)
        if build == "wide":
            x = layers.Conv2D(512, 1)(x)
        if build == "classes":
            num_classes = 7
        return layers.Dense(num_classes, activation="softmax")(layers.GlobalAveragePooling2D()(x))

    model = _model(classifier)
    with pytest.raises(CheckFailed) as info:
        ot.measure_model(model, (32, 32, 3), 10)
        ot._probabilities_ok(model, (32, 32, 3))
    assert words in str(info.value)


def test_fresh_copy_throws_the_weights_away_and_keys_ignore_layer_names():
    model = _model()
    for w in model.weights:
        w.assign(np.full(w.shape, 7.0, np.float32))
    fresh = ot.fresh_copy(model)
    assert not any(np.allclose(np.asarray(w), 7.0) for w in fresh.weights if np.asarray(w).size > 1)
    assert [w.shape for w in fresh.weights] == [w.shape for w in model.weights]
    assert ot.architecture_key(_model()) == ot.architecture_key(model)     # another build: other layer names
    assert ot.architecture_key(_model()) != ot.architecture_key(_model(classes=9))


class _Stand:
    """A grader's stand-in for a classifier: builds the model, carries the grading phase."""

    def __init__(self, phase):
        self.grading_phase = phase

    def block_model(self, input_shape, args, kwargs):
        return block_model(_small, input_shape, args, kwargs)


def test_planning_trains_nothing_and_judging_measures_the_test_split(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(ot, "held_out_accuracy", lambda model, plan, split: calls.append(split) or 0.99)
    ot.check_open_training(_Stand("plan"), dict(PLAN), 3)
    assert calls == [] and "within the budget" in capsys.readouterr().out
    ot.check_open_training(_Stand("judge"), dict(PLAN), 3)
    assert calls == ["test"] and "test accuracy 99.0%" in capsys.readouterr().out
    ot.check_open_training(_small, dict(PLAN), 1)
    assert calls == ["test", "validation"]
    monkeypatch.setattr(ot, "held_out_accuracy", lambda model, plan, split: 0.1)
    with pytest.raises(CheckFailed, match="tier 1 needs"):
        ot.check_open_training(_Stand("judge"), dict(PLAN), 1)


# --------------------------------------------------------------------------- end to end


def _variant(name: str, classifier: str | None = None, plan: str | None = None) -> str:
    nb = ex.read_notebook(ROOT / "solutions" / "09_capstone.ipynb")
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id") if cell.cell_type == "code" else None
        if grade_id == "classifier" and classifier:
            cell.source = classifier
        if grade_id == "training_plan" and plan:
            cell.source = plan
    return ex.dumps(nb)


CONSTANT = """def classifier(x, num_classes):
    x = layers.Rescaling(0.0)(x)   # every image becomes black: one prediction for all
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(num_classes, activation="softmax")(x)"""
WIDE = """def classifier(x, num_classes):
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(num_classes, activation="softmax")(x)"""
FAST_PLAN = 'training_plan = {"epochs": 5, "batch_size": 128, "optimizer": "adam", "learning_rate": 5.0, "augment": False}'


def test_grading_the_open_task_end_to_end(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "09_capstone.ipynb").write_text((ROOT / "solutions" / "09_capstone.ipynb").read_text())
    classroom = tmp_path / "class"
    classroom.mkdir()
    (classroom / "09_capstone_solution.ipynb").write_text(_variant("solution"))
    (classroom / "09_capstone_blank.ipynb").write_text((ROOT / "exercises" / "09_capstone.ipynb").read_text())
    (classroom / "09_capstone_constant.ipynb").write_text(_variant("constant", classifier=CONSTANT))
    (classroom / "09_capstone_wide.ipynb").write_text(_variant("wide", classifier=WIDE))
    (classroom / "09_capstone_badplan.ipynb").write_text(_variant("badplan", plan=FAST_PLAN))
    out = tmp_path / "grades.json"
    env = {**os.environ, "CNNKIT_DATASET": "offline", "CNNKIT_FAST": "1"}
    proc = subprocess.run([sys.executable, "-m", "cnnkit.exercises", "grade", str(classroom), "--solutions",
                           str(solutions), "--unsafe", "--jobs", "2", "--seed", "5", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    grades = {Path(g["notebook"]).stem.rsplit("_", 1)[-1]: g for g in json.loads(out.read_text())["grades"]}
    tiers = {name: {c["grade_id"]: c for c in g["checks"] if c["grade_id"].startswith("open_training")}
             for name, g in grades.items()}
    report = proc.stdout[-4000:]

    assert grades["solution"]["total"] == grades["solution"]["max_total"] == 15, report
    assert [c["points"] for c in tiers["solution"].values()] == [2, 1, 1]
    assert "test accuracy" in tiers["solution"]["open_training_tier3"]["message"]
    assert grades["blank"]["total"] == 0, report
    for name in ("constant", "wide", "badplan"):
        assert sum(c["points"] for c in tiers[name].values()) == 0, f"{name}\n{report}"
        assert grades[name]["total"] == 11, report   # the other exercises are the solution's
    assert "tier 1 needs 35% on offline: test accuracy " in tiers["constant"]["open_training_tier1"]["message"]
    wide = ot.measure_model(_model(lambda x, k: _wide(x, k)), (32, 32, 3), 10)[0]
    assert f"the model has {wide:,} parameters: over the budget" in tiers["wide"]["open_training_tier1"]["message"]
    assert "training_plan['learning_rate'] must be a number in [1e-05, 1], got 5.0" in \
        tiers["badplan"]["open_training_tier2"]["message"]


def _wide(x, num_classes):
    from keras import layers

    namespace = {"layers": layers}
    exec(WIDE, namespace)  # noqa: S102 - the test's own source
    return namespace["classifier"](x, num_classes)
