"""Precision and devices of the capstone trainer (cnnkit.devices), and the ablation loop.

The multi-device path runs in subprocesses: the CPU can only be split into logical
devices before TensorFlow initialises its devices, which this test process has done
long before.
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnkit import devices as D
from cnnkit.recipes import ABLATIONS, RECIPES, Recipe, ablations

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_helpers import benchmark_module, subprocess_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tf():
    from cnnkit.env import import_tensorflow

    return import_tensorflow()


# --------------------------------------------------------------------------- precision


def test_cpu_flags_are_read_from_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert D.cpu_flags(str(info)) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    assert D.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("flags, gpus, hardware, auto", [
    ({"avx512f", "amx_tile", "amx_bf16", "avx512_bf16"}, [], "amx", "bfloat16"),   # Sapphire Rapids
    ({"avx512f", "avx512_bf16"}, [], "avx512_bf16",
     "bfloat16" if D.AVX512_BF16_SPEEDUP > 1 else "float32"),                       # Zen 4: as measured
    ({"avx2", "fma"}, [], None, "float32"),
    ({"avx2"}, [(7, 5)], None, "float32"),                                            # Turing: no bf16 units
    ({"avx2"}, [(7, 5), (8, 0)], "gpu", "bfloat16"),                                  # an Ampere among them
    (set(), [(9, 0)], "gpu", "bfloat16"),
])
def test_auto_precision_follows_the_hardware(flags, gpus, hardware, auto):
    assert D.bf16_hardware(flags, gpus) == hardware
    assert D.resolve_precision("auto", flags=flags, gpu_capabilities=gpus) == auto
    for explicit in ("float32", "bfloat16"):  # an explicit choice is kept whatever the hardware
        assert D.resolve_precision(explicit, flags=flags, gpu_capabilities=gpus) == explicit


def test_bad_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'float32', 'bfloat16', got 'fp16'"):
        D.resolve_precision("fp16", flags=set(), gpu_capabilities=[])
    with pytest.raises(ValueError, match="precision must be one of .* got 'half'"):
        RECIPES["quick"].replace(precision="half")
    with pytest.raises(ValueError, match="got 'auto'"):
        D.keras_policy("auto")  # only resolved precisions have a policy
    assert D.keras_policy("bfloat16") == "mixed_bfloat16" and D.keras_policy("float32") == "float32"


def test_bfloat16_model_keeps_input_whitening_and_logits_in_float32(tf, tmp_path):
    from cnnkit.resnet9 import build_model

    recipe = RECIPES["quick"].replace(widths=(8, 16), residual=(False, True))
    model = build_model(recipe, input_shape=(8, 8, 3), num_classes=4, precision="bfloat16")
    compute = {layer.name: layer.compute_dtype for layer in model.layers}
    assert compute["whiten"] == compute["classifier"] == compute["logits"] == "float32"
    assert compute["stage1_conv"] == compute["stage2_res_conv2"] == compute["stage2_bn"] == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)  # mixed: the weights stay float32
    z = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert model(z).dtype == tf.float32
    # float32 and bfloat16 differ only by rounding: same weights, logits within bfloat16's precision
    plain = build_model(recipe, input_shape=(8, 8, 3), num_classes=4, precision="float32")
    plain.set_weights(model.get_weights())
    assert all(layer.compute_dtype == "float32" for layer in plain.layers)
    np.testing.assert_allclose(model(z).numpy(), plain(z).numpy(), atol=0.05, rtol=0.05)
    assert not np.array_equal(model(z).numpy(), plain(z).numpy())  # bfloat16 really ran
    path = tmp_path / "bf16.keras"
    model.save(path)
    again = __import__("keras").saving.load_model(path)
    assert again.get_layer("stage1_conv").compute_dtype == "bfloat16"
    np.testing.assert_array_equal(again(z).numpy(), model(z).numpy())


def test_fit_recipe_reports_the_precision_it_trained_in(tf):
    from cnnkit.data import load_dataset
    from cnnkit.training import fit_recipe, prepare_data

    data = prepare_data(load_dataset("offline"), val_fraction=0.25, seed=0, train_size=200, test_size=40)
    recipe = RECIPES["quick"].replace(widths=(8,), residual=(False,), batch_size=50, epochs=1, warmup_epochs=0.5,
                                      precision="bfloat16")
    result = fit_recipe(recipe, data)
    assert (result.precision, result.replicas, result.strategy, result.global_batch) == \
        ("bfloat16", 1, "default", 50)
    assert result.model.get_layer("stage1_conv").compute_dtype == "bfloat16"
    assert np.isfinite(result.history["loss"]).all()


# --------------------------------------------------------------------------- devices


@pytest.mark.parametrize("optimizer, replicas, factor", [("nesterov", 1, 1), ("nesterov", 4, 4),
                                                         ("adamw", 4, 2), ("adamw", 2, math.sqrt(2))])
def test_learning_rate_scales_with_the_global_batch(tf, optimizer, replicas, factor):
    from cnnkit.schedules import recipe_schedule

    assert D.scaled_learning_rate(0.4, optimizer, replicas) == pytest.approx(0.4 * factor)
    recipe = RECIPES["quick"].replace(optimizer=optimizer, learning_rate=0.4, warmup_epochs=1.0, epochs=3)
    schedule = recipe_schedule(recipe, steps_per_epoch=10, replicas=replicas)
    assert schedule.peak == pytest.approx(0.4 * factor)
    assert schedule.warmup_steps == 10 and schedule.total_steps == 30  # warm-up counted in epochs
    with pytest.raises(ValueError, match=r"replicas must be a positive integer \(>= 1\), got 0"):
        D.scaled_learning_rate(0.4, optimizer, 0)


def test_tf_config_is_read_and_a_malformed_one_named(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert D._cluster_size() == 0
    cluster = {"cluster": {"worker": ["host1:2222", "host2:2222"], "chief": ["host0:2222"]},
               "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert D._cluster_size() == 3
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON .* got '{not json'"):
        D.make_strategy()


def test_default_strategy_on_one_device_and_bad_device_lists(tf, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = D.make_strategy()
    if len(tf.config.list_logical_devices("GPU")) < 2:
        assert D.strategy_name(strategy) == "default" and D.replica_count(strategy) == 1
    one = D.make_strategy(["/cpu:0"])  # one named device: no mirroring
    assert (D.strategy_name(one), D.replica_count(one)) == ("OneDeviceStrategy", 1)
    with pytest.raises(ValueError, match="list of device names .* got '/cpu:0'"):
        D.make_strategy("/cpu:0")
    with pytest.raises(ValueError, match="at least one device"):
        D.make_strategy([])


def test_split_cpu_after_initialisation_says_why(tf):
    tf.config.list_logical_devices()  # devices initialised in this process
    with pytest.raises(RuntimeError, match="already initialised its devices"):
        D.split_cpu(2)


def test_cli_on_two_cpu_devices_records_the_replicas(tmp_path):
    out = tmp_path / "two"
    command = [sys.executable, "-m", "cnnkit.train", "--recipe", "quick", "--dataset", "offline", "--fast",
               "--epochs", "2", "--precision", "float32", "--quiet", "--cpu-devices", "2", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 replica(s)" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    machine = metrics["machine"]
    assert (machine["replicas"], machine["strategy"], machine["precision"]) == (2, "MirroredStrategy", "float32")
    assert machine["device_count"] >= 2 and sum("CPU" in d for d in machine["devices"]) >= 2
    batch, lr = metrics["recipe_settings"]["batch_size"], metrics["recipe_settings"]["learning_rate"]
    assert machine["global_batch"] == 2 * batch
    # the rate when the one-epoch warm-up ends (start of epoch 2): the recipe's peak, doubled (linear rule)
    assert metrics["history"]["lr"][1] == pytest.approx(2 * lr, rel=1e-6)
    model = __import__("cnnkit.training", fromlist=["load_model"]).load_model(out / "model.keras")
    assert model.output_shape == (None, 10)


MIRRORED_VS_ONE = """
import json
from cnnkit.devices import make_strategy, split_cpu
names = split_cpu(2)  # first thing: before TensorFlow initialises its devices
from cnnkit.data import load_dataset
from cnnkit.recipes import RECIPES
from cnnkit.training import evaluate, fit_recipe, prepare_data
data = prepare_data(load_dataset("offline"), val_fraction=0.1, seed=0, train_size=2000, test_size=500)
quick = RECIPES["quick"].replace(precision="float32")
half = quick.replace(batch_size=quick.batch_size // 2, learning_rate=quick.learning_rate / 2)
out = {}
for label, recipe, strategy in (("one", quick, make_strategy()), ("two", half, make_strategy(names))):
    result = fit_recipe(recipe, data, epochs=5, strategy=strategy)
    out[label] = {"accuracy": evaluate(result.model, data, tta=True).accuracy_tta, "replicas": result.replicas,
                  "global_batch": result.global_batch, "steps": result.steps_per_epoch,
                  "peak": result.schedule.peak}
print(json.dumps(out))
"""


def test_two_cpu_replicas_train_as_well_as_one_device():
    """The quick recipe (offline data, 2,000 images, 5 epochs) on one device, and mirrored on two.

    Both runs take the same global batch: one device the recipe's 256, two replicas 128
    each (a recipe with half the batch and half the rate, which the linear rule doubles
    back), so they make the same number of steps on the same schedule. (Two replicas of
    256 on this tiny training set would make half as many steps, too few to compare:
    measured 30 % against 94 % at 3 epochs, and 33 % for one device at batch 512.)

    Tolerance: the runs still differ, since batch norm normalises each replica's half
    on its own and the sums run in another order, so they are two runs of the same
    recipe, not one computed twice. Their spread was measured with three seeds each:
    at 3 epochs (21 steps) one device alone ranged from 68.8 % to 91.8 %, too wide for
    any useful bound; at 5 epochs (35 steps) one device gave 95.4-96.2 % and two
    replicas 96.2-97.8 %, the widest gap between any two of the six runs 2.4 points.
    The test allows 5 points and asks both to pass 90 %.
    """
    done = subprocess.run([sys.executable, "-c", MIRRORED_VS_ONE], capture_output=True, text=True, cwd=REPO,
                          env=subprocess_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = runs["one"], runs["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["global_batch"] == two["global_batch"] == RECIPES["quick"].batch_size
    assert one["steps"] == two["steps"] and two["peak"] == pytest.approx(one["peak"])
    assert one["accuracy"] > 0.9 and two["accuracy"] > 0.9, runs  # both learned (chance: 10 %)
    assert abs(one["accuracy"] - two["accuracy"]) <= 0.05, runs


# --------------------------------------------------------------------------- ablation


def test_each_ablation_changes_only_its_own_fields():
    good = RECIPES["good"]
    variants = ablations("good")
    assert list(variants) == ["full", *(f"no {t}" for t in ABLATIONS)]
    assert variants["full"] == (good, {})
    full = dataclasses.asdict(good)
    for name, (recipe, changes) in list(variants.items())[1:]:
        assert isinstance(recipe, Recipe) and changes
        differ = {k for k, v in dataclasses.asdict(recipe).items() if v != full[k]}
        assert differ == {"name", *changes}, name  # the removal is exactly its declared fields
    assert variants["no whitening"][0].whiten_patch == 0
    assert not any(variants["no residual blocks"][0].residual)
    assert variants["no bfloat16"][0].precision == "float32"
    with pytest.raises(ValueError, match="unknown tricks \\['dropout'\\]"):
        ablations("good", ["warm-up", "dropout"])


def test_ablation_loop_writes_markdown_and_json(tmp_path):
    """The whole ``--ablate`` command on the offline data, a few hundred images, one epoch each."""
    env = subprocess_env(CNNKIT_FAST="1")
    out = tmp_path / "ablation.json"
    command = [sys.executable, "benchmarks/capstone.py", "--ablate", "--dataset", "offline", "--fast",
               "--train-size", "600", "--epochs", "1", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == ["full", *(f"no {t}" for t in ABLATIONS)]
    full = rows["full"]
    assert full["time_ratio"] == 1.0 and full["accuracy_ratio"] == 1.0 and full["reused"] is None
    for row in rows.values():
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert row["time_ratio"] == pytest.approx(row["train_seconds"] / full["train_seconds"])
        assert row["accuracy_ratio"] == pytest.approx(row["test_accuracy"] / full["test_accuracy"])
    # only test-time augmentation differs: evaluated on the full recipe's model, not trained again
    assert rows["no test-time augmentation"]["reused"] == "full"
    assert rows["no test-time augmentation"]["train_seconds"] == full["train_seconds"]
    assert rows["no whitening"]["reused"] is None and rows["no weight decay"]["reused"] is None
    if full["precision"] == "float32":  # "auto" chose float32 here: nothing to remove
        assert rows["no bfloat16"]["reused"] == "full"
    else:
        assert rows["no bfloat16"]["reused"] is None and rows["no bfloat16"]["precision"] == "float32"
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| ") == 2 + len(rows) - 1 and "| no warm-up | `warmup_epochs=0.0` |" in table
    assert f"{100 * full['test_accuracy']:.2f}%" in table
    assert not list(tmp_path.glob(".*partial"))


def test_recipe_variants_append_one_line_per_variant_and_refuse_bad_ones_first(tmp_path):
    """benchmarks/recipe_variants.py on the offline data: each variant trained once, four accuracies each."""
    env = subprocess_env()
    out = tmp_path / "variants.jsonl"
    base = [sys.executable, "benchmarks/recipe_variants.py", "--dataset", "offline", "--fast", "--out", str(out)]
    first = '{"widths": [8, 16, 16], "epochs": 1, "warmup_epochs": 0.5}'
    done = subprocess.run([*base, first, '{"widths": [8, 16, 16], "epochs": 2}'], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["changes"] for row in rows] == [{"widths": [8, 16, 16], "epochs": 1, "warmup_epochs": 0.5},
                                                {"widths": [8, 16, 16], "epochs": 2}]
    assert [row["epochs_run"] for row in rows] == [1, 2]
    for row in rows:
        assert set(row["test_accuracy"]) == {"plain", "flip", "flip_shift1", "flip_shift2"}
        assert all(0.0 <= v <= 1.0 for v in row["test_accuracy"].values()) and row["n_test"] == 500
        assert row["train_seconds"] > 0 and row["fast"] is True and len(row["val_accuracy"]) == row["epochs_run"]
    for bad, message in (('{"epochs": 0}', "epochs must be a positive integer"), ("[1]", "a JSON object"),
                         ("{epochs: 2}", "a JSON object of recipe fields, got '{epochs: 2}'")):
        refused = subprocess.run([*base, '{"epochs": 2}', bad], capture_output=True, text=True, cwd=REPO,
                                 env=env, timeout=300)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 2  # nothing trained when a later variant is bad


def test_ablation_table_formats_the_rows():
    from cnnkit.ablation import markdown

    rows = [{"variant": "full", "changes": {}, "test_accuracy": 0.9, "train_seconds": 100.0, "precision": "float32",
             "reused": None, "accuracy_ratio": 1.0, "time_ratio": 1.0},
            {"variant": "no warm-up", "changes": {"warmup_epochs": 0.0}, "test_accuracy": 0.85,
             "train_seconds": 95.0, "precision": "float32", "reused": None, "accuracy_ratio": 0.85 / 0.9,
             "time_ratio": 0.95}]
    table = markdown(rows, "t")
    assert "| no warm-up | `warmup_epochs=0.0` | 85.00% | -5.00 | 0.944 | 95.0 | 0.950 | float32 |  |" in table


def test_speed_ratio_lets_models_take_turns_and_scales_steps_to_a_whole_run():
    """benchmarks/speed_ratio.measure: per-step times per round, predicted run times and ratios to 'tutorial'."""
    import importlib.util

    import keras
    import tensorflow as tf

    spec = importlib.util.spec_from_file_location("speed_ratio", REPO / "benchmarks" / "speed_ratio.py")
    speed_ratio = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed_ratio)

    def entry(width, epochs, steps_per_epoch):
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(width, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(2)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        data = tf.data.Dataset.from_tensors((tf.zeros((4, 8, 8, 3)), tf.zeros((4,), tf.int64))).repeat()
        return {"model": model, "data": data, "batch": 4, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
                "precision": "float32"}

    entries = {"tutorial": entry(2, 10, 100), "wide": entry(64, 3, 7)}
    lines = []
    report = speed_ratio.measure(entries, rounds=3, seconds=0.05, log=lines.append)
    assert sum(line.startswith("round ") for line in lines) == 3
    assert report["tutorial"]["ratio_median"] == 1.0 and report["tutorial"]["ratio_range"] == [1.0, 1.0]
    for name, row in report.items():
        assert len(row["ms_per_step"]) == 3 and all(ms > 0 for ms in row["ms_per_step"])
        median_s = sorted(row["ms_per_step"])[1] / 1000
        expected = median_s * entries[name]["epochs"] * entries[name]["steps_per_epoch"]
        assert row["predicted_train_seconds_median"] == pytest.approx(expected, rel=1e-3, abs=0.1)
    wide = report["wide"]
    ratios = [w * 3 * 7 / (t * 10 * 100) for w, t in zip(wide["ms_per_step"], report["tutorial"]["ms_per_step"])]
    assert wide["ratio_range"] == pytest.approx([min(ratios), max(ratios)], abs=2e-3)
    assert min(ratios) - 2e-3 <= wide["ratio_median"] <= max(ratios) + 2e-3
    with pytest.raises(ValueError, match="reference 'full' is not one of the models timed: tutorial, wide"):
        speed_ratio.measure(entries, rounds=1, seconds=0.05, reference="full")
    refused = subprocess.run([sys.executable, "benchmarks/speed_ratio.py", "--rounds", "0"], capture_output=True,
                             text=True, cwd=REPO, timeout=120)
    assert refused.returncode == 2 and "--rounds must be a positive integer, got 0" in refused.stderr
    for args, message in ((["--vary", "quick"], "--vary needs a recipe and at least one JSON object"),
                          (["--vary", "quick", "[1]"], "a variant must be a JSON object of recipe fields, got '[1]'"),
                          (["--vary", "quick", '{"widthz": 3}'], "does not make a valid quick recipe"),
                          (["--vary", "quick", '{"epochs": 0}'], "epochs")):
        refused = subprocess.run([sys.executable, "benchmarks/speed_ratio.py", *args], capture_output=True,
                                 text=True, cwd=REPO, timeout=120)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr[-300:])


def test_speed_ratio_times_an_ablation_against_the_full_recipe(tmp_path):
    """--ablate: every variant that trains different arithmetic, each timed against 'full'."""
    env = subprocess_env()
    out = tmp_path / "ablation_speed.json"
    done = subprocess.run([sys.executable, "benchmarks/speed_ratio.py", "--dataset", "offline", "--ablate", "quick",
                           "--rounds", "1", "--seconds", "0.05", "--json", str(out)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["reference"] == "full" and report["ablate"] == "quick"
    models = report["models"]
    from cnnkit.devices import resolve_precision
    from cnnkit.recipes import ablations, get_recipe

    # the same training as the full recipe: test-time augmentation only changes scoring, and where this
    # machine has no fast bfloat16 the full recipe already trains in float32
    same = {"no test-time augmentation"} | ({"no bfloat16"} if resolve_precision(get_recipe("quick").precision)
                                            == "float32" else set())
    expected = [label for label in ablations("quick") if label not in same]
    assert list(models) == expected
    assert models["full"]["ratio_median"] == 1.0
    assert all(row["ratio_median"] > 0 and len(row["ms_per_step"]) == 1 for row in models.values())
    assert "x full" in done.stdout and not list(tmp_path.glob(".*partial"))


def test_jpeg_recompression_keeps_shape_and_loses_more_at_lower_quality():
    jpeg = benchmark_module("jpeg_quality")
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 8, 3)), 4, axis=1), 4, axis=2).astype(np.uint8)
    changes = {}
    for quality in (90, 50, 10):
        out = jpeg.recompress(smooth, quality)
        assert out.shape == smooth.shape and out.dtype == np.uint8
        changes[quality] = np.mean(np.abs(out.astype(int) - smooth.astype(int)))
    assert 0 < changes[90] < changes[50] < changes[10]
    for bad in (0, 96, 50.0, True):
        with pytest.raises(ValueError, match="quality must be an integer in 1..95"):
            jpeg.recompress(smooth, bad)
    with pytest.raises(ValueError, match=r"uint8 of shape \(N, H, W, 3\), got float64"):
        jpeg.recompress(smooth.astype(float), 50)


def test_jpeg_benchmark_trains_both_models_on_the_recompressed_copy(tmp_path):
    env = subprocess_env()
    out = tmp_path / "jpeg.json"
    base = [sys.executable, "benchmarks/jpeg_quality.py", "--dataset", "offline", "--fast", "--json", str(out)]
    refused = subprocess.run([*base, "--quality", "0"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert refused.returncode == 2 and "--quality must be in 1..95, got 0" in refused.stderr and not out.exists()
    done = subprocess.run([*base, "--quality", "40"], capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["quality"] == 40 and record["mean_abs_pixel_change"] > 0 and set(record["results"]) == {
        "tutorial", "quick"}
    for result in record["results"].values():
        assert 0.0 <= result["test_accuracy"] <= 1.0 and result["train_seconds"] > 0


def test_optimizer_rates_chooses_on_validation_never_on_test():
    rates = benchmark_module("optimizer_rates")

    def run(optimizer, rate, seed, val, test):
        return {"optimizer": optimizer, "learning_rate": rate, "seed": seed, "val_accuracy": val, "test_accuracy": test}

    runs = [run("sgd", 0.01, 0, 0.30, 0.90), run("sgd", 0.01, 1, 0.32, 0.80),   # best on test, worse on validation
            run("sgd", 0.1, 1, 0.41, 0.20), run("sgd", 0.1, 0, 0.40, 0.25),
            run("adam", 0.001, 0, 0.50, 0.45), run("adam", 0.001, 1, 0.50, 0.47),
            run("adam", 0.003, 0, 0.50, 0.60), run("adam", 0.003, 1, 0.50, 0.62)]  # a tie on validation
    chosen = rates.choose(runs)
    assert chosen["sgd"]["learning_rate"] == 0.1 and chosen["sgd"]["test"] == [0.25, 0.20]  # in seed order
    assert math.isclose(chosen["sgd"]["val_mean"], 0.405) and math.isclose(chosen["sgd"]["test_mean"], 0.225)
    assert chosen["sgd"]["at_grid_edge"]
    assert chosen["adam"]["learning_rate"] == 0.001  # ties go to the smaller rate
    table = rates.markdown(chosen, runs)
    assert "| adam | 0.001 (grid edge) | 50.0% | 46.0% [45.0%, 47.0%] | 45.0%, 47.0% |" in table
    assert "| sgd | 0.01 | 31.0% |" in table
    with pytest.raises(ValueError, match="runs is empty"):
        rates.choose([])
    with pytest.raises(ValueError, match=r"sgd: every rate needs the same number of seeds, got \{0.01: 2, 0.1: 1\}"):
        rates.choose(runs[:3])


def test_optimizer_rates_smoke_run_offline(tmp_path):
    env = subprocess_env()
    out = tmp_path / "rates.json"
    done = subprocess.run([sys.executable, "benchmarks/optimizer_rates.py", "--dataset", "offline", "--fast",
                           "--json", str(out)], capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    grid = record["setup"]["grid"]
    assert len(record["runs"]) == sum(map(len, grid.values())) * len(record["setup"]["seeds"])
    assert set(record["chosen"]) == set(grid)
    for name, c in record["chosen"].items():
        assert c["learning_rate"] in grid[name] and len(c["test"]) == len(record["setup"]["seeds"])
        assert all(0.0 <= t <= 1.0 for t in c["test"])


def test_the_marked_sum_task_labels_each_sequence_by_its_two_marked_values(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # rnn_optimizers reuses optimizer_rates' choice
    rnn = benchmark_module("rnn_optimizers")
    x, y = rnn.marked_sum_task(2000, length=12, seed=5)
    assert x.shape == (2000, 12, 2) and x.dtype == np.float32 and y.shape == (2000,) and y.dtype == np.int32
    markers = x[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers[:, :6].sum(axis=1) == 1).all() and (markers[:, 6:].sum(axis=1) == 1).all()  # one per half
    assert ((x[..., 0] >= 0) & (x[..., 0] < 1)).all()
    np.testing.assert_array_equal(y, ((x[..., 0] * markers).sum(axis=1) > 1).astype(np.int32))
    assert 0.45 < y.mean() < 0.55  # two uniform values exceed 1 half the time
    # the second marked value alone predicts the label three times in four, not more
    second = (x[:, 6:, 0] * markers[:, 6:]).sum(axis=1)
    assert 0.72 < ((second > 0.5) == y).mean() < 0.78
    np.testing.assert_array_equal(rnn.marked_sum_task(50, 12, seed=5)[0], rnn.marked_sum_task(50, 12, seed=5)[0])
    with pytest.raises(ValueError, match="length must be an integer of at least 2.*got 1"):
        rnn.marked_sum_task(10, length=1)
    with pytest.raises(ValueError, match="n must be a positive integer number of sequences, got 0"):
        rnn.marked_sum_task(0)


def test_rnn_optimizers_smoke_run(tmp_path):
    out = tmp_path / "rnn.json"
    done = subprocess.run([sys.executable, "benchmarks/rnn_optimizers.py", "--fast", "--json", str(out)],
                          capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    grid = record["setup"]["grid"]
    assert len(record["runs"]) == sum(map(len, grid.values())) * len(record["setup"]["seeds"])
    assert set(record["chosen"]) == set(grid)
    for run in record["runs"]:
        assert len(run["val_curve"]) == record["setup"]["epochs"] and 0.0 <= run["test_accuracy"] <= 1.0


def test_a_widened_grid_reuses_the_runs_of_an_earlier_record(tmp_path):
    rates = benchmark_module("optimizer_rates")
    setup = {"network": "n", "epochs": 2, "seeds": [0, 1], "grid": {"sgd": [0.1]}}
    calls = []

    def train_one(optimizer, rate, seed):
        calls.append((optimizer, rate, seed))
        accuracy = 0.5 + rate / 10 + seed / 100
        return {"val_accuracy": [accuracy], "loss": [1.0], "seconds": 0.1}, accuracy

    first = rates.run_grid({"sgd": (0.1,)}, (0, 1), train_one, setup, tmp_path / "first.json")
    assert len(calls) == 2 and first["chosen"]["sgd"]["learning_rate"] == 0.1
    wider = {**setup, "grid": {"sgd": [0.1, 0.3]}}
    reuse = rates.reusable_runs(str(tmp_path / "first.json"), wider)
    assert set(reuse) == {("sgd", 0.1, 0), ("sgd", 0.1, 1)}
    calls.clear()
    second = rates.run_grid({"sgd": (0.1, 0.3)}, (0, 1), train_one, wider, tmp_path / "second.json",
                            reuse_from=str(tmp_path / "first.json"))
    assert calls == [("sgd", 0.3, 0), ("sgd", 0.3, 1)]  # only the new points are trained
    assert [run.get("reused", False) for run in second["runs"]] == [True, False, True, False]
    assert second["chosen"]["sgd"]["learning_rate"] == 0.3
    assert json.loads((tmp_path / "second.json").read_text())["runs"][0]["val_accuracy"] == pytest.approx(0.51)
    assert rates.reusable_runs(None, setup) == {}
    with pytest.raises(ValueError, match=r"its epochs is 2, this run's 3; only runs of the same setup"):
        rates.reusable_runs(str(tmp_path / "first.json"), {**setup, "epochs": 3})
    calls.clear()
    with pytest.raises(SystemExit, match=r"error: --reuse .*first.json: its epochs is 2, this run's 3"):
        rates.run_grid({"sgd": (0.1,)}, (0,), train_one, {**setup, "epochs": 3}, tmp_path / "third.json",
                       reuse_from=str(tmp_path / "first.json"))
    assert calls == [] and not (tmp_path / "third.json").exists()  # refused before any training
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a record of this benchmark"):
        rates.reusable_runs(str(tmp_path / "bad.json"), setup)


def test_the_shipped_rate_searches_support_what_lesson_08_says_of_them():
    """Lesson 08's written readings of the two recorded rate searches; re-recording must not contradict them."""
    from cnnkit import records

    def chosen_tests(record, *names):
        return [t for name in names for t in record["chosen"][name]["test"]]

    def mean_val(record, optimizer, rate):
        values = [r["val_accuracy"] for r in record["runs"] if r["optimizer"] == optimizer and r["learning_rate"] == rate]
        return sum(values) / len(values)

    cnn = records.load("optimizer_rates", command="-", keys=("chosen", "runs", "setup"))
    assert min(chosen_tests(cnn, "adam", "rmsprop")) > max(chosen_tests(cnn, "sgd", "momentum"))
    rnn = records.load("rnn_optimizers", command="-", keys=("chosen", "runs", "setup"))
    assert not rnn["setup"]["fast"] and len(rnn["runs"]) == sum(map(len, rnn["setup"]["grid"].values())) * 3
    assert not any(c["at_grid_edge"] for c in rnn["chosen"].values())  # each best rate is bracketed
    assert min(chosen_tests(rnn, "adam", "rmsprop")) > max(chosen_tests(rnn, "momentum"))  # every adaptive run above
    adam, rmsprop = rnn["chosen"]["adam"], rnn["chosen"]["rmsprop"]
    assert adam["test_min"] <= rmsprop["test_max"] and rmsprop["test_min"] <= adam["test_max"]  # ranges overlap
    assert rnn["chosen"]["sgd"]["learning_rate"] == 1.0 and min(rnn["chosen"]["sgd"]["test"]) < 0.75
    assert rmsprop["learning_rate"] == 0.1 and mean_val(rnn, "rmsprop", 0.001) < 0.75 < mean_val(rnn, "adam", 0.001)
