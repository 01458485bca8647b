"""The benchmarks whose records lessons read (03, 04, 07, 08: rates, budgets, trainings and time; 01: centring and zeros)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_helpers import REPO, benchmark_module, subprocess_env  # noqa: E402


@pytest.fixture
def in_benchmarks(monkeypatch):
    """benchmarks/ on sys.path, as when a script runs: they share optimizer_rates' start and grid search."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))


@pytest.fixture
def rates_module(in_benchmarks):
    return benchmark_module("normalization_rates")


def _run(script: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, f"benchmarks/{script}", "--dataset", "offline", "--fast", "--json",
                           str(out)], capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_a_setting_names_one_optimiser_and_one_input(rates_module):
    assert rates_module.setting("adam", "z-score") == "adam, z-score"
    for name in ("adam, z-score", "momentum, raw 0..255", "adam, x / 255"):
        assert rates_module.setting(*rates_module.split_setting(name)) == name
    for bad in ("adam", "adam, raw", "adam z-score"):
        with pytest.raises(ValueError, match="not a setting of this benchmark"):
            rates_module.split_setting(bad)


def test_the_rate_choice_groups_runs_by_the_field_it_is_told(rates_module):
    rates = benchmark_module("optimizer_rates")
    runs = [{"setting": name, "learning_rate": rate, "seed": seed, "val_accuracy": val, "test_accuracy": val}
            for name, rate, val in (("adam, raw 0..255", 0.001, 0.5), ("adam, raw 0..255", 0.0001, 0.6),
                                    ("adam, z-score", 0.001, 0.7)) for seed in (0, 1)]
    chosen = rates.choose(runs, key="setting")
    assert chosen["adam, raw 0..255"]["learning_rate"] == 0.0001 and chosen["adam, z-score"]["learning_rate"] == 0.001
    assert rates.markdown(chosen, runs, key="setting").startswith("| setting | chosen rate |")
    with pytest.raises(KeyError, match="optimizer"):
        rates.choose(runs)  # the default field is the optimiser's name


def test_normalization_rates_smoke_run_offline_and_reuse(rates_module, tmp_path):
    record = _run("normalization_rates.py", tmp_path / "norm.json")
    grid = record["setup"]["grid"]
    assert set(grid) == {f"{o}, {i}" for o in ("momentum", "adam") for i in rates_module.INPUTS}
    assert len(record["runs"]) == sum(map(len, grid.values())) * len(record["setup"]["seeds"])
    assert all(set(run) >= {"setting", "learning_rate", "seed", "val_accuracy", "test_accuracy"} for run in record["runs"])
    assert set(record["chosen"]) == set(grid) and record["markdown"].startswith("| setting |")
    rates = benchmark_module("optimizer_rates")
    reused = rates.reusable_runs(str(tmp_path / "norm.json"), record["setup"], key="setting")
    assert len(reused) == len(record["runs"])
    with pytest.raises(ValueError, match="lacks 'optimizer'"):
        rates.reusable_runs(str(tmp_path / "norm.json"), record["setup"])


def test_a_recorded_run_keeps_what_ran_its_seconds_and_its_rounded_curves(in_benchmarks):
    rates = benchmark_module("optimizer_rates")
    history = {"loss": [2.3456789, 1.0], "val_accuracy": [0.123456789], "seconds": 12.345}
    run = rates.recorded_run(history, network="BN", seed=2)
    assert run == {"network": "BN", "seed": 2, "seconds": 12.3,
                   "history": {"loss": [2.34568, 1.0], "val_accuracy": [0.12346]}}
    assert history["seconds"] == 12.345  # the history it was given is left as it was


def test_regularization_summary_gives_each_variant_its_spread(in_benchmarks):
    reg = benchmark_module("regularization_budget")

    def run(variant, seed, curve, best_epoch, last, best):
        return {"variant": variant, "seed": seed, "best_epoch": best_epoch, "test_last": last, "test_best": best,
                "history": {"val_accuracy": curve}}

    runs = [run("neither", 0, [0.3, 0.5, 0.4], 2, 0.41, 0.52), run("neither", 1, [0.3, 0.45, 0.44], 2, 0.43, 0.46),
            run("dropout 0.5", 0, [0.2, 0.4, 0.5], 3, 0.5, 0.5)]
    summary = reg.summarise(runs)
    assert list(summary) == ["neither", "dropout 0.5"]
    assert summary["neither"]["val_last"] == pytest.approx({"mean": 0.42, "min": 0.4, "max": 0.44})
    assert summary["neither"]["val_best"] == pytest.approx({"mean": 0.475, "min": 0.45, "max": 0.5})
    assert summary["neither"]["test_best"] == pytest.approx({"mean": 0.49, "min": 0.46, "max": 0.52})
    table = reg.markdown(summary, 3)
    assert "| neither | 42.0% [41.0%, 43.0%] | 2 [2, 2] | 49.0% [46.0%, 52.0%] |" in table
    with pytest.raises(ValueError, match="at least one value"):
        reg.mean_range([])


def test_regularization_budget_smoke_run_offline(in_benchmarks, tmp_path):
    reg = benchmark_module("regularization_budget")
    record = _run("regularization_budget.py", tmp_path / "reg.json")
    setup = record["setup"]
    assert len(record["runs"]) == len(reg.VARIANTS) * len(setup["seeds"]) and list(record["summary"]) == list(reg.VARIANTS)
    for run in record["runs"]:
        curve = run["history"]["val_accuracy"]
        assert len(curve) == setup["epochs"] and 1 <= run["best_epoch"] <= setup["epochs"]
        assert curve[run["best_epoch"] - 1] == max(curve)  # the kept epoch is the best one
        assert 0.0 <= run["test_last"] <= 1.0 and 0.0 <= run["test_best"] <= 1.0
        if run["best_epoch"] == setup["epochs"]:
            assert run["test_best"] == pytest.approx(run["test_last"])  # the same weights, scored twice
        numbers = run["at_lesson_epoch"]  # taken at the lesson's last epoch, from the model as it was then
        options = reg.VARIANTS[run["variant"]]
        assert set(numbers) == ({"train", "zeros", "shift"} if options["batch_norm"] and options["dropout"]
                                else {"train", "zeros"})
        assert 0.0 <= numbers["train"] <= 1.0 and 0.0 <= numbers["zeros"] <= 1.0
        assert (numbers["zeros"] == 0.0) == (options.get("activation") == "tanh")
    assert setup["lesson_epochs"] < setup["epochs"]


def test_the_shipped_regularization_record_supports_what_lesson_04_says_of_it():
    """Lesson 04's written reading of the 60-epoch runs; re-recording must not contradict it."""
    from cnnkit import records

    record = records.load("regularization_budget", command="-", keys=("setup", "summary", "runs"))
    setup, summary = record["setup"], record["summary"]
    assert not setup["fast"] and setup["epochs"] == 60 and setup["seeds"] == [0, 1, 2] and setup["n_train"] == 2000
    assert len(record["runs"]) == 15 and setup["lesson_epochs"] == 12

    def last(variant, metric):
        return [run["history"][metric][-1] for run in record["runs"] if run["variant"] == variant]

    plain, bn, drop, both = "neither", "BN (0.9)", "dropout 0.5", "BN (0.9) + dropout 0.5"
    # at a fixed budget dropout pays: every dropout run above every plain run
    assert summary[drop]["test_last"]["min"] > summary[plain]["test_last"]["max"]
    # without dropout the training images are fitted completely and the validation loss climbs far from its best
    assert min(last(plain, "accuracy") + last(bn, "accuracy")) == 1.0
    for run in record["runs"]:
        if run["variant"] == plain:
            assert run["history"]["val_loss"][-1] > 1.8 * min(run["history"]["val_loss"])
    assert all(0.65 < a < 0.85 for a in last(drop, "accuracy"))  # about three quarters, dropout active
    # early stopping does as well, about three times sooner; dropout gains little from it
    assert abs(summary[plain]["test_best"]["mean"] - summary[drop]["test_best"]["mean"]) < 0.005
    assert summary[drop]["best_epoch"]["mean"] > 2.5 * summary[plain]["best_epoch"]["mean"]
    assert summary[drop]["test_best"]["mean"] - summary[drop]["test_last"]["mean"] < 0.005
    # batch norm does not help, scored either way; after dropout it stays below dropout alone;
    # every tanh run below every ReLU run, at the last epoch and at the best one
    for score in ("test_last", "test_best"):
        assert summary[bn][score]["mean"] < summary[plain][score]["mean"]
        assert summary[both][score]["mean"] < summary[drop][score]["mean"]
        assert summary["neither, tanh for ReLU"][score]["max"] < summary[plain][score]["min"]


def test_the_shipped_regularization_record_supports_what_lesson_04_says_at_epoch_12():
    """Lesson 04's reading of the table at epoch 12 (§ "Dropout, batch norm, both"), read from the record."""
    import numpy as np

    from cnnkit import records

    record = records.load("regularization_budget", command="-", keys=("setup", "runs"))
    epochs = record["setup"]["lesson_epochs"]
    by = {}
    for run in sorted(record["runs"], key=lambda r: r["seed"]):
        val = run["history"]["val_accuracy"][:epochs]
        losses = run["history"]["val_loss"][:epochs]
        numbers = run["at_lesson_epoch"]
        by.setdefault(run["variant"], []).append({**numbers, "val": val[-1], "gap": numbers["train"] - val[-1],
                                                  "best_loss": min(losses), "last_loss": losses[-1]})

    def each(variant, field):
        return np.array([numbers[field] for numbers in by[variant]])

    plain, bn, drop, both, tanh = "neither", "BN (0.9)", "dropout 0.5", "BN (0.9) + dropout 0.5", "neither, tanh for ReLU"
    # without dropout the model overfits: it fits most training images, under half of the validation images,
    # and its validation loss turns up; batch norm fits them completely and has the widest gap
    assert each(plain, "train").mean() > 0.75 and each(plain, "val").max() < 0.5
    assert (each(plain, "last_loss") > each(plain, "best_loss") + 0.05).all()
    assert each(bn, "train").min() > 0.99
    assert each(bn, "gap").mean() == max(each(v, "gap").mean() for v in by)
    # dropout halves the gap in every seed and its validation loss does not turn up, but trails in accuracy
    assert (each(drop, "gap") < 0.65 * each(plain, "gap")).all()
    assert (each(drop, "last_loss") - each(drop, "best_loss") < 0.005).all()
    assert each(drop, "val").mean() < each(plain, "val").mean()
    # batch norm after dropout is the worst of all, its moving variance over twice the inputs' at inference
    assert each(both, "val").mean() == min(each(v, "val").mean() for v in by)
    assert each(both, "shift").min() > 2.0
    # tanh: no zeros, a wider gap in every seed and a higher lowest validation loss, no better accuracy
    assert (each(tanh, "zeros") == 0).all() and each(plain, "zeros").mean() > 0.5
    assert (each(tanh, "gap") > each(plain, "gap")).all()
    assert each(tanh, "best_loss").min() > each(plain, "best_loss").max()
    assert each(tanh, "val").mean() <= each(plain, "val").max()
    # dropout has the most zeros and the narrowest gap
    assert each(drop, "zeros").mean() == max(each(v, "zeros").mean() for v in by)
    assert each(drop, "gap").mean() == min(each(v, "gap").mean() for v in by)


def test_batchnorm_stability_smoke_run_offline(in_benchmarks, tmp_path):
    bench = benchmark_module("batchnorm_stability")
    record = _run("batchnorm_stability.py", tmp_path / "stability.json")
    setup = record["setup"]
    assert setup["fast"] and setup["init_scales"] == [0.1, 1.0, 10.0] and setup["rates"] == list(bench.RATES)
    cells = {(run["network"], run["learning_rate"], run["init_scale"]) for run in record["runs"]}
    assert cells == {(n, lr, 1.0) for n in bench.NORMS for lr in bench.RATES} | {
        (n, bench.RATE_FOR_SCALES, s) for n in bench.NORMS for s in bench.SCALES}
    assert len(record["runs"]) == len(cells) * len(setup["seeds"])
    assert all(len(run["history"]["val_accuracy"]) == setup["epochs"] for run in record["runs"])


def test_the_shipped_stability_record_supports_what_lesson_04_says_of_it():
    """Lesson 04's reading of the two grids (§ "Higher learning rates and any initial scale")."""
    from cnnkit import records
    from cnnkit.experiments import spread

    record = records.load("batchnorm_stability", command="-", keys=("setup", "runs"))
    setup = record["setup"]
    assert not setup["fast"] and setup["seeds"] == [0, 1, 2] and setup["n_train"] == 2000 and setup["epochs"] == 2

    def final(network, rate, scale=1.0):
        runs = records.curves(record, "network", learning_rate=rate, init_scale=scale)[network]
        return spread({network: runs})[network]

    chance, threshold = 0.1, 0.15
    # (a) plain: every seed trains at 0.03 only; one seed of three at 0.3; none at 1
    assert final("no BN", 0.03)["min"] > threshold
    assert sum(v > threshold for v in final("no BN", 0.3)["values"]) == 1
    assert final("no BN", 1.0)["max"] < threshold
    # batch norm: every seed at 0.3; at 1 above chance in every seed, not all above the threshold
    assert final("BN", 0.3)["min"] > threshold
    assert final("BN", 1.0)["min"] > chance + 0.01 and final("BN", 1.0)["min"] < threshold
    # both best at 0.03, batch norm ahead with ranges apart
    for network in ("no BN", "BN"):
        assert final(network, 0.03)["mean"] == max(final(network, lr)["mean"] for lr in setup["rates"])
    assert final("BN", 0.03)["min"] > final("no BN", 0.03)["max"]
    # (b) scaled kernels: the plain network at chance in all six runs; with batch norm x0.1 trains in every
    # seed, x10 on average but not in every seed, and worse
    for scale in (0.1, 10.0):
        assert max(final("no BN", 0.03, scale)["values"]) < threshold
    assert final("BN", 0.03, 0.1)["min"] > threshold
    assert final("BN", 0.03, 10.0)["mean"] > threshold > final("BN", 0.03, 10.0)["min"]
    assert final("BN", 0.03, 10.0)["mean"] < final("BN", 0.03, 0.1)["mean"] < final("BN", 0.03)["mean"]


def test_architectures_trained_smoke_run_offline(in_benchmarks, tmp_path):
    bench = benchmark_module("architectures_trained")
    record = _run("architectures_trained.py", tmp_path / "arch.json")
    setup = record["setup"]
    assert setup["fast"] and setup["seeds"] == list(bench.FAST["seeds"])
    depth = 2 * sum(bench.FAST["blocks"]) + 2
    expected = {("depth", f"plain{depth}"), ("depth", f"resnet{depth}"),
                *(("trio", name) for name in ("AlexNet-style", "GoogLeNet-style", "ResNet-style"))}
    assert {(run["experiment"], run["network"]) for run in record["runs"]} == expected
    assert len(record["runs"]) == len(expected) * len(setup["seeds"])
    for run in record["runs"]:
        assert set(run["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert all(len(curve) == setup["epochs"] for curve in run["history"].values()) and run["seconds"] > 0


def test_the_shipped_architectures_record_supports_what_lesson_07_says_of_it():
    """Lesson 07's reading of the depth pair and of the three families; re-recording must not contradict it."""
    from cnnkit import records
    from cnnkit.experiments import spread

    record = records.load("architectures_trained", command="-", keys=("setup", "runs"))
    setup = record["setup"]
    assert not setup["fast"] and setup["seeds"] == [0, 1, 2] and setup["blocks"] == [5, 5, 5]
    assert (setup["n_train"], setup["n_val"], setup["epochs"]) == (4000, 2000, 2)
    depth = records.curves(record, "network", experiment="depth")
    for plain, residual in zip(depth["plain32"], depth["resnet32"]):  # every seed: easier to optimise, not overfitting
        assert residual["loss"][-1] < plain["loss"][-1] - 0.1
        assert residual["val_accuracy"][-1] > plain["val_accuracy"][-1] + 0.02
    trio = spread(records.curves(record, "network", experiment="trio"))
    # no two ranges overlap: every seed ranks the three the same way
    assert trio["AlexNet-style"]["max"] < trio["GoogLeNet-style"]["min"]
    assert trio["GoogLeNet-style"]["max"] < trio["ResNet-style"]["min"]


def test_the_shipped_normalization_record_supports_what_lesson_03_says_of_it():
    """Lesson 03's written reading of the rate search per input; re-recording must not contradict it."""
    from cnnkit import records

    record = records.load("normalization_rates", command="-", keys=("setup", "chosen", "runs"))
    setup, chosen = record["setup"], record["chosen"]
    assert not setup["fast"] and setup["seeds"] == [0, 1, 2] and setup["epochs"] == 6 and setup["n_train"] == 8000
    assert len(record["runs"]) == sum(map(len, setup["grid"].values())) * 3
    assert not any(c["at_grid_edge"] for c in chosen.values())  # every best rate is bracketed

    def best(optimizer, input_name):
        return chosen[f"{optimizer}, {input_name}"]

    def mean_val(optimizer, input_name, rate):
        values = [r["val_accuracy"] for r in record["runs"]
                  if r["setting"] == f"{optimizer}, {input_name}" and r["learning_rate"] == rate]
        assert len(values) == 3
        return sum(values) / 3

    raw, scaled, z = "raw 0..255", "x / 255", "z-score"
    # Adam: the z-score leads, ranges apart; the tie at the shared rate 0.001 was raw pixels' best rate
    assert best("adam", z)["test_min"] > best("adam", scaled)["test_max"]
    assert best("adam", scaled)["test_min"] > best("adam", raw)["test_max"]
    assert best("adam", raw)["learning_rate"] == 0.001
    assert best("adam", scaled)["learning_rate"] == best("adam", z)["learning_rate"] == 0.003
    assert mean_val("adam", raw, 0.01) < 0.15 < 0.35 < mean_val("adam", z, 0.01)  # raw collapses, z-score trains
    # momentum: raw pixels train only at rates about a thousand times smaller, and end far below
    assert best("momentum", raw)["learning_rate"] * 300 <= best("momentum", z)["learning_rate"]
    assert best("momentum", raw)["test_max"] + 0.05 < min(best("momentum", scaled)["test_min"], best("momentum", z)["test_min"])
    # x / 255 trails the z-score under both, most under momentum
    gaps = {}
    for optimizer in ("adam", "momentum"):
        assert best(optimizer, scaled)["test_max"] < best(optimizer, z)["test_min"]
        gaps[optimizer] = best(optimizer, z)["test_mean"] - best(optimizer, scaled)["test_mean"]
    assert gaps["momentum"] > gaps["adam"]


def test_optimizer_schedule_smoke_run_offline(in_benchmarks, tmp_path):
    schedule = benchmark_module("optimizer_schedule")
    record = _run("optimizer_schedule.py", tmp_path / "schedule.json")
    setup = record["setup"]
    assert setup["grid"] == {k: list(v) for k, v in schedule.FAST["grid"].items()} and setup["fast"]
    assert setup["steps"] == setup["epochs"] * -(-setup["n_train"] // setup["batch_size"])
    assert set(record["chosen"]) == {"momentum", "adam"}
    assert all(len(run["val_curve"]) == setup["epochs"] for run in record["runs"])


def test_the_shipped_schedule_record_supports_what_lesson_08_says_of_it():
    """Lesson 08's written reading of the 24-epoch runs with a cosine decay, against the 6-epoch rate search."""
    from cnnkit import records

    longer = records.load("optimizer_schedule", command="-", keys=("setup", "chosen", "runs"))
    short = records.load("optimizer_rates", command="-", keys=("setup", "chosen"))
    assert not longer["setup"]["fast"] and longer["setup"]["epochs"] == 24 and longer["setup"]["seeds"] == [0, 1, 2]
    assert longer["setup"]["n_train"] == short["setup"]["n_train"] and len(longer["runs"]) == 18
    adam, momentum = longer["chosen"]["adam"], longer["chosen"]["momentum"]
    assert not adam["at_grid_edge"] and not momentum["at_grid_edge"]
    # both gain far more than tuning gave them, momentum the most
    gains = {name: longer["chosen"][name]["test_mean"] - short["chosen"][name]["test_mean"] for name in ("adam", "momentum")}
    assert min(gains.values()) > 0.10 and gains["momentum"] > gains["adam"]
    # the gap narrows by more than half, but every Adam run stays above every momentum run
    short_gap = short["chosen"]["adam"]["test_mean"] - short["chosen"]["momentum"]["test_mean"]
    assert 0 < adam["test_mean"] - momentum["test_mean"] < short_gap / 2
    assert adam["test_min"] > momentum["test_max"]
    # the spread between seeds shrinks; each keeps its 6-epoch rate; Adam at 0.01 has a seed stuck at chance
    for name in ("adam", "momentum"):
        c, s = longer["chosen"][name], short["chosen"][name]
        assert c["test_max"] - c["test_min"] < (s["test_max"] - s["test_min"]) / 3
        assert c["learning_rate"] == s["learning_rate"]
    stuck = [r for r in longer["runs"] if r["optimizer"] == "adam" and r["learning_rate"] == 0.01
             and max(r["val_curve"]) < 0.15]
    assert len(stuck) == 1


def test_centred_activations_start_from_the_same_weights_and_centre_each_unit(in_benchmarks):
    import keras
    import numpy as np

    centred = benchmark_module("centred_activations")
    calibration = np.random.default_rng(0).normal(size=(200, 4, 4, 3)).astype(np.float32)
    plain = centred.mlp("relu", calibration, depth=2, width=16, seed=3)
    shifted = centred.mlp("centred relu", calibration, depth=2, width=16, seed=3)
    kernels = [[layer.kernel.numpy() for layer in m.layers if isinstance(layer, keras.layers.Dense)]
               for m in (plain, shifted)]
    assert all(np.array_equal(a, b) for a, b in zip(*kernels)) and len(kernels[0]) == 3
    hidden = keras.Model(shifted.inputs, shifted.layers[-2].output)  # the last centred hidden layer
    assert np.abs(hidden.predict(calibration, verbose=0).mean(axis=0)).max() < 1e-4
    assert not shifted.layers[-2].trainable_weights  # the shift is fixed, not learnt
    with pytest.raises(ValueError, match="setting must be one of"):
        centred.mlp("tanh", calibration, depth=1, width=4, seed=0)


def test_centred_activations_smoke_run_offline(in_benchmarks, tmp_path):
    record = _run("centred_activations.py", tmp_path / "centred.json")
    assert set(record["chosen"]) == {"relu", "centred relu"} and record["setup"]["fast"]
    assert all(len(run["loss_curve"]) == record["setup"]["epochs"] for run in record["runs"])


def test_the_shipped_centring_record_supports_what_lesson_01_says_of_it():
    """Lesson 01's reading of the centred-ReLU experiment; re-recording must not contradict it."""
    from cnnkit import records

    record = records.load("centred_activations", command="-", keys=("setup", "chosen", "runs"))
    setup = record["setup"]
    assert not setup["fast"] and setup["seeds"] == [0, 1, 2] and setup["epochs"] == 10
    assert len(record["runs"]) == 2 * len(setup["grid"]["relu"]) * 3

    def final_losses(setting, rate):
        values = [r["loss_curve"][-1] for r in record["runs"] if r["setting"] == setting and r["learning_rate"] == rate]
        assert len(values) == 3
        return values

    finite_relu = [v for rate in setup["grid"]["relu"] for v in final_losses("relu", rate) if v < 10]
    for rate in (0.03, 0.1):  # every centred run at the larger rates below every uncentred run at any rate
        assert max(final_losses("centred relu", rate)) < min(finite_relu)
    mean = {(s, r): sum(final_losses(s, r)) / 3 for s in ("relu", "centred relu") for r in (0.003, 0.03, 0.1)}
    assert mean["relu", 0.1] >= mean["relu", 0.03] and mean["centred relu", 0.1] < mean["centred relu", 0.03]
    assert mean["relu", 0.003] < mean["centred relu", 0.003] < mean["relu", 0.003] + 0.05  # marginally ahead
    assert not any(v < 10 for s in ("relu", "centred relu") for v in final_losses(s, 0.3))  # NaN or huge: diverged
    relu, centred = record["chosen"]["relu"], record["chosen"]["centred relu"]
    assert centred["val_mean"] > relu["val_mean"] and centred["test_mean"] > relu["test_mean"]
    assert centred["test_min"] <= relu["test_max"]  # the test ranges overlap


def test_relu_sparsity_draws_the_asked_share_of_zeros_and_finds_the_break_even(in_benchmarks):
    import numpy as np

    sparsity = benchmark_module("relu_sparsity")
    for fraction in (0.0, 0.5, 0.9):
        h = sparsity.relu_outputs(fraction, (64, 100))
        assert abs(np.mean(h == 0) - fraction) < 0.01 and h.min() >= 0
    with pytest.raises(ValueError, match=r"fraction of zeros must be in \[0, 1\), got 1.0"):
        sparsity.relu_outputs(1.0, (2, 2))
    results = [{"fraction_zeros": f, "sparse / dense": {"median": m}} for f, m in ((0.5, 3.0), (0.9, 0.9), (0.95, 1.1),
                                                                                  (0.99, 0.5), (0.995, 0.3))]
    assert sparsity.break_even(results) == 0.99  # from where on it stays below 1
    assert sparsity.break_even(results[:3]) is None


def test_relu_sparsity_smoke_run(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/relu_sparsity.py", "--fast", "--json", str(tmp_path / "s.json")],
                          capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "s.json").read_text())
    assert [e["fraction_zeros"] for e in record["results"]] == [0.5, 0.99] and record["setup"]["fast"]


def test_the_shipped_sparsity_record_supports_what_lesson_01_says_of_it():
    from cnnkit import records

    record = records.load("relu_sparsity", command="-", keys=("setup", "results", "break_even"))
    assert not record["setup"]["fast"]
    by_share = {e["fraction_zeros"]: e for e in record["results"]}
    dense = [e["dense ms"] for e in record["results"]]
    assert max(dense) < 1.5 * min(dense)  # the dense product ignores the zeros (timing noise aside)
    assert by_share[0.5]["sparse / dense"]["min"] > 10  # tens of times slower at ReLU's share, in every round
    assert by_share[0.0]["sparse / dense"]["median"] > by_share[0.5]["sparse / dense"]["median"]
    sparse, converted = record["break_even"]["sparse"], record["break_even"]["sparse with conversion"]
    assert sparse is not None and sparse >= 0.95  # it wins only when almost everything is zero
    assert converted is None or converted > sparse  # converting in every step pushes it higher


def test_capstone_optimizers_keep_the_recipes_shrink_per_step(in_benchmarks):
    rivals = benchmark_module("capstone_optimizers")
    for optimizer, rate in (("nesterov", 0.8), ("adamw", 0.01), ("adamw", 0.001)):
        recipe = rivals.recipe_for(optimizer, rate, seed=2)
        assert recipe.optimizer == optimizer and recipe.seed == 2
        assert abs(recipe.learning_rate * recipe.weight_decay - 0.8 * 2.5e-3) < 1e-12
    quick = rivals.recipe_for("nesterov", 0.8, seed=0)
    from cnnkit.recipes import RECIPES

    assert quick == RECIPES["quick"]  # the SGD arm is the recipe itself


def test_capstone_optimizers_smoke_run_offline(in_benchmarks, tmp_path):
    record = _run("capstone_optimizers.py", tmp_path / "capopt.json")
    assert set(record["chosen"]) == {"nesterov", "adamw"} and record["setup"]["fast"]
    assert all(0.0 <= run["test_accuracy"] <= 1.0 for run in record["runs"])


def test_the_shipped_optimizer_record_supports_what_lesson_09_says_of_it():
    """Lesson 09's reading of AdamW against the recipe's SGD with Nesterov momentum."""
    from cnnkit import records

    record = records.load("capstone_optimizers", command="-", keys=("setup", "chosen", "runs"))
    setup = record["setup"]
    assert not setup["fast"] and setup["seeds"] == [0, 1, 2] and setup["grid"]["nesterov"] == [0.8]
    assert len(record["runs"]) == 3 * (1 + len(setup["grid"]["adamw"]))
    adam, sgd = record["chosen"]["adamw"], record["chosen"]["nesterov"]
    assert not adam["at_grid_edge"] and adam["learning_rate"] == 0.01  # ten times Adam's default
    assert adam["test_min"] <= sgd["test_max"] and sgd["test_min"] <= adam["test_max"]  # the ranges overlap
    assert abs(adam["test_mean"] - sgd["test_mean"]) < 0.005

    def runs(rate):
        return [r for r in record["runs"] if r["optimizer"] == "adamw" and r["learning_rate"] == rate]

    assert max(r["test_accuracy"] for r in runs(0.001)) + 0.02 < sgd["test_min"]  # several points below every SGD run
    at_003 = runs(0.03)
    assert sum(r["test_accuracy"] for r in at_003) / 3 > adam["test_mean"]  # better on test ...
    assert sum(r["val_accuracy"] for r in at_003) / 3 < adam["val_mean"]  # ... but worse on validation


def test_gd_wallclock_snapshots_targets_and_choice(in_benchmarks):
    clock = benchmark_module("gd_wallclock")
    assert clock.snapshot_times(3) == [0.25, 0.5, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="budget must be a number of seconds, at least 1, got 0.5"):
        clock.snapshot_times(0.5)
    curve = [[0.0, 2.3], [0.5, 2.0], [1.0, 1.7], [2.0, 1.8]]
    assert clock.seconds_to(curve, 2.0) == 0.5 and clock.seconds_to(curve, 1.75) == 1.0
    assert clock.seconds_to(curve, 1.5) is None
    nan = float("nan")

    def run(variant, rate, seed, final):
        return {"variant": variant, "learning_rate": rate, "seed": seed, "steps": 10, "epochs": 1.0,
                "curve": [[0.0, 2.3], [1.0, final]]}

    runs = [run("a", 0.1, 0, 1.0), run("a", 0.1, 1, 1.2), run("a", 0.3, 0, nan), run("a", 0.3, 1, 0.1),
            run("b", 1.0, 0, 1.5), run("b", 1.0, 1, 1.5), run("b", 3.0, 0, 1.5), run("b", 3.0, 1, 1.5)]
    chosen = clock.choose(runs)
    assert chosen["a"]["learning_rate"] == 0.1  # a diverged seed rules its rate out
    assert chosen["b"]["learning_rate"] == 1.0 and chosen["b"]["at_grid_edge"]  # a tie goes to the smaller rate
    assert chosen["a"]["final"] == [1.0, 1.2] and abs(chosen["a"]["final_mean"] - 1.1) < 1e-12
    reached = clock.reach(chosen, runs)
    assert reached["b"]["loss"] == 1.5 and reached["b"]["seconds"]["a"] == [1.0, 1.0]
    assert reached["a"]["seconds"]["b"] == [None, None]  # b never gets down to a's loss


def test_gd_wallclock_smoke_run_offline(in_benchmarks, tmp_path):
    record = _run("gd_wallclock.py", tmp_path / "gd.json")
    setup = record["setup"]
    assert setup["fast"] and set(record["chosen"]) == set(setup["grid"]) == set(record["reach"])
    for run in record["runs"]:
        times = [t for t, _ in run["curve"]]
        assert len(times) == len(setup["snapshots"]) + 1 and times[0] == 0.0 and times == sorted(times)
        assert times[-1] >= setup["budget_seconds"] and run["steps"] > 1
    sizes = {run["variant"]: run["batch_size"] for run in record["runs"]}
    assert sizes["batch GD (b = n)"] == setup["n_train"] and sizes["SGD (b = 1)"] == 1


def test_batchnorm_rates_smoke_run_offline_with_a_cosine(in_benchmarks, tmp_path):
    out = tmp_path / "bn.json"
    done = subprocess.run([sys.executable, "benchmarks/batchnorm_rates.py", "--dataset", "offline", "--fast", "--cosine",
                           "--json", str(out)], capture_output=True, text=True, cwd=REPO, env=subprocess_env(),
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    setup = record["setup"]
    assert setup["fast"] and setup["schedule"].startswith("cosine") and set(record["chosen"]) == {"no BN", "BN"}
    assert setup["steps"] == setup["epochs"] * -(-setup["n_train"] // setup["batch_size"])
    assert all(len(run["loss_curve"]) == setup["epochs"] for run in record["runs"])
    bn = benchmark_module("batchnorm_rates")
    import keras

    def norms(model):
        return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)

    with_bn = bn.network(True, seed=0)
    assert norms(with_bn) == 3 and norms(bn.network(False, seed=0)) == 0 and with_bn.get_layer("bn1").momentum == 0.9
    assert [with_bn.get_layer(f"conv{j}").filters for j in (1, 2, 3)] == [8, 16, 32]


def test_the_shipped_wallclock_record_supports_what_lesson_08_says_of_it():
    """Lesson 08's written reading of 30 seconds of training with batches of 1, 32 and all 2,000 images."""
    from cnnkit import records

    record = records.load("gd_wallclock", command="-", keys=("setup", "chosen", "reach", "runs"))
    setup = record["setup"]
    assert not setup["fast"] and setup["budget_seconds"] == 30 and setup["seeds"] == [0, 1, 2]
    assert setup["n_train"] == 2000 and len(record["runs"]) == 3 * sum(len(g["rates"]) for g in setup["grid"].values())
    sgd, mini, full = (record["chosen"][v] for v in ("SGD (b = 1)", "mini-batch (b = 32)", "batch GD (b = n)"))
    assert not sgd["at_grid_edge"] and not mini["at_grid_edge"]
    # every mini-batch seed ends below every seed of the other two; SGD ends below batch GD on average
    assert max(mini["final"]) < min(sgd["final"] + full["final"]) and sgd["final_mean"] < full["final_mean"]
    # batch GD takes a few dozen steps and barely leaves the loss of a uniform guess, ln 10 = 2.303, at every rate
    assert max(full["steps"]) < 50 and all(r["curve"][-1][1] > 2.2 for r in record["runs"]
                                             if r["variant"] == "batch GD (b = n)")
    # SGD reaches batch GD's final loss within half the budget, the mini-batches reach SGD's sooner than SGD does
    reach = record["reach"]
    assert all(s is not None and s < 10 for s in reach["batch GD (b = n)"]["seconds"]["SGD (b = 1)"])
    # thousands of updates but about two epochs for SGD, more than a thousand and about twenty for the mini-batches
    assert min(sgd["steps"]) > 2000 and max(sgd["epochs"]) < 3
    assert min(mini["steps"]) > 1000 and all(15 < e < 25 for e in mini["epochs"])
    # a shared machine: one step's time varies up to about twofold between runs of the same batch size
    spread = max(max(times) / min(times) for times in (
        [r["ms_per_step"] for r in record["runs"] if r["batch_size"] == b] for b in (1, 32, 2000)))
    assert 1.5 < spread < 2.5
    to_sgd = reach["SGD (b = 1)"]["seconds"]
    assert None not in to_sgd["mini-batch (b = 32)"] + to_sgd["SGD (b = 1)"]
    assert sum(to_sgd["mini-batch (b = 32)"]) < sum(to_sgd["SGD (b = 1)"])
    assert all(s is None for v in ("SGD (b = 1)", "batch GD (b = n)") for s in reach["mini-batch (b = 32)"]["seconds"][v])

    # per example batch GD is the cheapest and SGD the dearest: time is not what holds batch GD back
    def per_example(variant):
        chosen = record["chosen"][variant]["learning_rate"]
        runs = [r for r in record["runs"] if r["variant"] == variant and r["learning_rate"] == chosen]
        return max(r["ms_per_step"] / r["batch_size"] for r in runs), min(r["ms_per_step"] / r["batch_size"] for r in runs)

    assert per_example("batch GD (b = n)")[0] < per_example("mini-batch (b = 32)")[1]
    assert per_example("mini-batch (b = 32)")[0] < per_example("SGD (b = 1)")[1]


def test_the_shipped_batchnorm_records_support_what_lesson_04_says_of_them():
    """Lesson 04's written reading of 1,570 steps at constant rates and with a cosine to zero."""
    from cnnkit import records

    constant = records.load("batchnorm_rates", command="-", keys=("setup", "chosen", "runs"))
    cosine = records.load("batchnorm_rates_cosine", command="-", keys=("setup", "chosen", "runs"))
    for record in (constant, cosine):
        setup = record["setup"]
        assert not setup["fast"] and setup["seeds"] == [0, 1, 2] and setup["n_train"] == 10000
        assert setup["epochs"] == 10 and setup["batch_size"] == 64 and len(record["runs"]) == 30
    assert cosine["setup"]["steps"] == 1570 and "constant" in constant["setup"]["optimizer"]

    def means(record, field):
        return {net: {rate: sum(v) / len(v) for rate, v in by_rate.items()}
                for net, by_rate in records.by_rate(record, field, key="network").items()}

    def best(by_rate):
        return min(by_rate, key=by_rate.get)

    loss, loss_cos = means(constant, "train_loss"), means(cosine, "train_loss")
    # constant: batch norm's lowest loss at 3x the plain network's best rate, and below all of the plain one's
    assert (best(loss["BN"]), best(loss["no BN"])) == (0.1, 0.03)
    assert min(loss["BN"].values()) < min(loss["no BN"].values())
    assert loss["no BN"][0.1] > loss["no BN"][0.03] and means(constant, "val_accuracy")["no BN"][0.3] < 0.2
    # cosine: batch norm's loss falls up to a peak of 0.3, ten times the plain network's best
    assert (best(loss_cos["BN"]), best(loss_cos["no BN"])) == (0.3, 0.03)
    # constant: the validation accuracy scatters at batch norm's high rates; chosen at 0.03, about two points ahead
    val = records.by_rate(constant, "val_accuracy", key="network")["BN"]
    assert max(max(val[r]) - min(val[r]) for r in (0.1, 0.3)) > 0.04
    bn, plain = constant["chosen"]["BN"], constant["chosen"]["no BN"]
    assert bn["learning_rate"] == 0.03 and 0.01 < bn["test_mean"] - plain["test_mean"] < 0.03
    # cosine: chosen at 0.3 against 0.03, about six points ahead, every seed above, seeds within half a point
    bn, plain = cosine["chosen"]["BN"], cosine["chosen"]["no BN"]
    assert (bn["learning_rate"], plain["learning_rate"]) == (0.3, 0.03) and not bn["at_grid_edge"]
    assert 0.05 < bn["test_mean"] - plain["test_mean"] < 0.07 and bn["test_min"] > plain["test_max"]
    assert bn["test_max"] - bn["test_min"] < 0.005
