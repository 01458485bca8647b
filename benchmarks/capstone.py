"""Capstone benchmark: the kit's recipes against the model of TensorFlow's CNN tutorial.

Trains, in one run, on the same machine and data:

* ``tutorial`` -- the CNN of https://www.tensorflow.org/tutorials/images/cnn:
  Conv(32)-MaxPool-Conv(64)-MaxPool-Conv(64)-Flatten-Dense(64)-Dense(10), Adam (default
  rate), inputs x/255, batch 32, 10 epochs on all 50,000 training images, validated on the
  test set after every epoch as the tutorial does. (One deviation: the tutorial divides
  the uint8 arrays by 255.0, which gives float64; this script builds float32 arrays,
  which Keras would cast to anyway.)
* ``quick``, ``good`` and ``best`` -- ``cnnkit.training`` recipes (``--models``; the default
  trains tutorial, quick and good), trained with ``fit_recipe`` on
  the recipe's training split (49,000 images, 1,000 held out to watch the run), evaluated with
  the recipe's test-time augmentation (the mirror image and 1-pixel shifts).

It prints test accuracy, training time (wall and process CPU seconds) and each recipe's
time as a ratio of the tutorial model's, checks the targets ("quick": >= 85 % in at most
the tutorial's time; "good": >= 90 % in at most 5 times it; "best", an aim: >= 93 % in at most
10 times it), and writes a JSON file.

The load average is recorded before and after every model: on a shared machine wall
times are inflated by other processes, so compare times only within one run, and look at
the CPU-second ratios too (less sensitive to sharing).

    python benchmarks/capstone.py --data-dir /work/cifar --json runs/capstone_benchmark.json

Ablation mode (``--ablate``) trains the good recipe, then the same recipe with each trick
removed in turn (``cnnkit.recipes.ablations``: whitening, residual blocks, label smoothing,
test-time augmentation, warm-up, weight decay, bfloat16), and writes a table of test
accuracy, training time and both as a ratio to the full recipe, as Markdown and JSON.
A variant whose training would be identical to one already trained (only the test-time
augmentation differs, or bfloat16 removed where "auto" already chose float32) is
evaluated on that model instead of trained again; the table says so::

    python benchmarks/capstone.py --ablate --data-dir /work/cifar --json runs/ablation.json
    python benchmarks/capstone.py --ablate --dataset offline --fast --epochs 1   # a smoke run

An ablation recorded in parts (``--tricks``), and the step times that
``benchmarks/speed_ratio.py --ablate`` measured in turns, are joined into one report with
``--merge`` (``cnnkit.ablation.merge``; the parts must agree on the full recipe's accuracy)::

    python benchmarks/capstone.py --merge part1.json part2.json --speed speed.json --json ablation.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from cnnkit.env import cpu_model, portable_paths
from cnnkit.files import write_atomic

TARGETS = {"quick": (0.85, 1.0), "good": (0.90, 5.0), "best": (0.93, 10.0)}  # (accuracy at least, time ratio at most;
# best's is an aim, reported, not required)
FAST_TRAIN, FAST_TEST = 2000, 500  # images kept with --fast (as python -m cnnkit.train --fast)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def tutorial_model():
    """The network of TensorFlow's CNN tutorial (logits out, as there)."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10),
    ], name="tensorflow_tutorial_cnn")


def run_tutorial(dataset, epochs: int, batch_size: int, seed: int = 0) -> dict:
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    x_train = dataset.x_train.astype(np.float32) / 255.0
    x_test = dataset.x_test.astype(np.float32) / 255.0
    model = tutorial_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    load_before = _load()
    start, cpu = time.perf_counter(), time.process_time()
    history = model.fit(x_train, dataset.y_train, epochs=epochs, batch_size=batch_size,
                        validation_data=(x_test, dataset.y_test), verbose=0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    load_after = _load()
    _, accuracy = model.evaluate(x_test, dataset.y_test, verbose=0, batch_size=500)
    return {"model": "tutorial", "test_accuracy": float(accuracy), "train_seconds": seconds,
            "train_cpu_seconds": cpu_seconds, "epochs": epochs, "batch_size": batch_size,
            "parameters": int(model.count_params()), "n_train": int(len(x_train)),
            "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
            "load_average_before": load_before, "load_average_after": load_after}


def run_recipe(name: str, dataset, epochs: int | None = None) -> dict:
    from cnnkit.training import evaluate, fit_recipe, get_recipe, prepare_data

    recipe = get_recipe(name)
    data = prepare_data(dataset, val_fraction=recipe.val_fraction, seed=recipe.seed)
    load_before = _load()
    result = fit_recipe(recipe, data, epochs=epochs)
    load_after = _load()
    evaluation = evaluate(result.model, data, tta=recipe.tta, tta_translate=recipe.tta_translate)
    return {"model": name, "test_accuracy": evaluation.accuracy_tta if recipe.tta else evaluation.accuracy,
            "test_accuracy_plain": evaluation.accuracy, "train_seconds": result.seconds,
            "train_cpu_seconds": result.cpu_seconds, "epochs": result.epochs_run, "best_epoch": result.best_epoch,
            "batch_size": recipe.batch_size, "parameters": int(result.model.count_params()),
            "n_train": int(len(data.y_train)), "val_accuracy": result.history.get("val_accuracy", []),
            "recipe": recipe.to_dict(), "precision": result.precision, "replicas": result.replicas,
            "load_average_before": load_before, "load_average_after": load_after}


def _training_key(recipe, precision: str) -> str:
    """What decides a training run: every recipe field but the name and test-time augmentation."""
    settings = recipe.to_dict()
    for evaluation_only in ("name", "tta", "tta_translate"):
        settings.pop(evaluation_only)
    settings["precision"] = precision
    return json.dumps(settings, sort_keys=True)


def ablate(recipe, data, *, epochs: int | None = None, tricks=None, fit=None, log=print) -> list[dict]:
    """Train ``recipe`` and each of its ablations on ``data``; one row per variant, the full recipe first.

    Each row: variant, the fields changed, test accuracy (with TTA when the variant keeps
    it), training seconds, the precision used, and ``accuracy_ratio`` / ``time_ratio``: the
    row's value over the full recipe's. ``reused`` names the variant whose trained model
    served when the training would have been identical (its time is that run's).
    """
    from cnnkit.devices import resolve_precision
    from cnnkit.recipes import ablations
    from cnnkit.training import evaluate, fit_recipe

    fit = fit or fit_recipe
    trained: dict[str, tuple[str, object]] = {}
    rows = []
    for variant, (changed, changes) in ablations(recipe, tricks).items():
        precision = resolve_precision(changed.precision)
        key = _training_key(changed, precision)
        reused = trained[key][0] if key in trained else None
        if reused is None:
            log(f"[{time.strftime('%H:%M:%S')}] training {variant} ({changed.name}, {precision}) ...")
            result = fit(changed, data, epochs=epochs)
            trained[key] = (variant, result)
        result = trained[key][1]
        evaluation = evaluate(result.model, data, tta=changed.tta, tta_translate=changed.tta_translate)
        accuracy = evaluation.accuracy_tta if changed.tta else evaluation.accuracy
        rows.append({"variant": variant, "recipe": changed.name,
                     "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
                     "test_accuracy": accuracy, "train_seconds": result.seconds,
                     "train_cpu_seconds": result.cpu_seconds, "epochs": result.epochs_run,
                     "precision": result.precision, "replicas": result.replicas, "reused": reused})
        log(f"  {variant}: test accuracy {accuracy:.2%}, {result.seconds:.1f} s"
            + (f" (model of {reused!r})" if reused else ""))
    full = rows[0]
    for row in rows:
        row["accuracy_ratio"] = row["test_accuracy"] / full["test_accuracy"] if full["test_accuracy"] else None
        row["time_ratio"] = row["train_seconds"] / full["train_seconds"]
    return rows


def run_ablation(args, dataset, machine: dict) -> int:
    from cnnkit.recipes import get_recipe
    from cnnkit.training import prepare_data

    recipe = get_recipe(args.recipe)
    data = prepare_data(dataset, val_fraction=recipe.val_fraction, seed=recipe.seed,
                        train_size=args.train_size or (FAST_TRAIN if args.fast else None),
                        test_size=FAST_TEST if args.fast else None)
    epochs = args.epochs or (1 if args.fast else None)
    rows = ablate(recipe, data, epochs=epochs, tricks=args.tricks)
    report = {"rows": rows, "recipe": recipe.to_dict(), "epochs": epochs or recipe.epochs,
              "dataset": data.dataset, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
              "fast": bool(args.fast), "machine": machine, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    return _write_ablation(report, args)


def _write_ablation(report: dict, args) -> int:
    """Print ``report``'s table, then write it as JSON to ``--json`` and as Markdown beside it (or ``--markdown``)."""
    from cnnkit.ablation import markdown

    table = markdown(report["rows"], f"Ablation of the {report['recipe']['name']!r} recipe: {report['dataset']}, "
                     f"{report['n_train']} training images, {report['epochs']} epoch(s), {report['machine']['cpu']}")
    print()
    print(table)
    out = Path(args.json)
    markdown_path = Path(args.markdown) if args.markdown else out.with_suffix(".md")
    write_atomic(out, json.dumps(report, indent=2))
    write_atomic(markdown_path, table)
    print(f"wrote {out} and {markdown_path}")
    return 0


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise SystemExit(f"error: cannot read {what} {path}: {err.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SystemExit(f"error: {path} is not JSON ({what} expected): {err}") from None


def run_merge(args) -> int:
    """``--merge``: join ablation parts (and ``--speed`` step times) into one report; trains nothing."""
    from cnnkit.ablation import merge, with_step_times

    try:
        report = merge([_read_json(path, "an ablation report") for path in args.merge])
        if args.speed:
            report = with_step_times(report, _read_json(args.speed, "a speed_ratio.py --ablate report"))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return _write_ablation(report, args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py (default: $CNNKIT_DATA_DIR)")
    parser.add_argument("--json", default="runs/capstone_benchmark.json", help="where to write the results")
    parser.add_argument("--models", default="tutorial,quick,good",
                        help="comma-separated subset of tutorial and the recipes (quick, good, best; ratios need tutorial)")
    parser.add_argument("--tutorial-epochs", type=int, default=10)
    parser.add_argument("--tutorial-batch", type=int, default=32)
    parser.add_argument("--ablate", action="store_true",
                        help="train --recipe with each trick removed in turn; write a Markdown and a JSON table")
    parser.add_argument("--recipe", default="good", help="the recipe --ablate takes apart (default: good)")
    parser.add_argument("--tricks", default=None,
                        help="comma-separated subset of the tricks to remove (default: all of them)")
    parser.add_argument("--markdown", default=None, help="where --ablate writes its table (default: --json as .md)")
    parser.add_argument("--dataset", choices=("cifar10", "offline"), default="cifar10",
                        help="cifar10 (default) or offline (generated; for smoke runs)")
    parser.add_argument("--fast", action="store_true",
                        help=f"--ablate on {FAST_TRAIN} training and {FAST_TEST} test images, 1 epoch unless --epochs")
    parser.add_argument("--epochs", type=int, default=None, help="--ablate: epochs per run (default: the recipe's)")
    parser.add_argument("--train-size", type=int, default=None, help="--ablate: training images kept")
    parser.add_argument("--merge", nargs="+", default=None, metavar="PART",
                        help="join the JSON of ablation runs of one recipe (--tricks in parts) into --json; trains nothing")
    parser.add_argument("--speed", default=None,
                        help="--merge: add the step-time ratios of this speed_ratio.py --ablate JSON")
    args = parser.parse_args(argv)
    if args.speed and not args.merge:
        parser.error("--speed goes with --merge")
    if args.merge:
        if args.json == parser.get_default("json"):
            parser.error("--merge needs --json, the file to write")
        return run_merge(args)
    for name in ("epochs", "train_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.tricks is not None:
        from cnnkit.recipes import ABLATIONS

        args.tricks = [t.strip() for t in args.tricks.split(",") if t.strip()]
        unknown = [t for t in args.tricks if t not in ABLATIONS]
        if unknown or not args.tricks:
            parser.error(f"--tricks: unknown {unknown or args.tricks!r}; choose from {', '.join(ABLATIONS)}")
    if args.ablate and args.json == parser.get_default("json"):
        args.json = "runs/ablation.json"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from cnnkit.recipes import RECIPES

    known = ["tutorial", *RECIPES]
    unknown = set(models) - set(known)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {', '.join(known)}")

    from cnnkit.env import import_tensorflow, setup

    setup(seed=0)
    tf = import_tensorflow()
    import keras

    from cnnkit.data import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir, download=False)
    print(dataset.describe(), flush=True)
    if args.ablate:
        from cnnkit.devices import bf16_hardware

        return run_ablation(args, dataset, {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                                            "bf16_hardware": bf16_hardware(), "platform": platform.platform(),
                                            "tensorflow": tf.__version__, "keras": keras.__version__})
    results = {}
    for name in models:
        print(f"[{time.strftime('%H:%M:%S')}] training {name} (load average {_load()}) ...", flush=True)
        if name == "tutorial":
            results[name] = run_tutorial(dataset, args.tutorial_epochs, args.tutorial_batch)
        else:
            results[name] = run_recipe(name, dataset)
        r = results[name]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: test accuracy {r['test_accuracy']:.2%}, "
              f"{r['train_seconds']:.0f} s wall, {r['train_cpu_seconds']:.0f} CPU-s "
              f"(load {r['load_average_before']} -> {r['load_average_after']})", flush=True)

    base = results.get("tutorial")
    print()
    print(f"{'model':<10}{'test acc':>10}{'train s':>10}{'CPU s':>10}{'x tutorial':>12}{'x tut. CPU':>12}  target")
    for name, r in results.items():
        ratio = r["train_seconds"] / base["train_seconds"] if base else None
        cpu_ratio = r["train_cpu_seconds"] / base["train_cpu_seconds"] if base else None
        r["time_ratio"], r["cpu_time_ratio"] = ratio, cpu_ratio
        verdict = ""
        if name in TARGETS and base:
            acc_min, ratio_max = TARGETS[name]
            r["target"] = {"accuracy_at_least": acc_min, "time_ratio_at_most": ratio_max,
                           "accuracy_met": r["test_accuracy"] >= acc_min, "time_met": ratio <= ratio_max,
                           "cpu_time_met": cpu_ratio <= ratio_max}
            verdict = (f">= {acc_min:.0%}: {'yes' if r['target']['accuracy_met'] else 'NO'}; "
                       f"<= {ratio_max:g}x: {'yes' if r['target']['time_met'] else 'NO'} (wall), "
                       f"{'yes' if r['target']['cpu_time_met'] else 'NO'} (CPU)")
        fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
        print(f"{name:<10}{r['test_accuracy']:>10.2%}{r['train_seconds']:>10.0f}{r['train_cpu_seconds']:>10.0f}"
              f"{fmt(ratio):>12}{fmt(cpu_ratio):>12}  {verdict}")

    report = {
        "results": results,
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__},
        "dataset": portable_paths(dataset.describe(), args.data_dir),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "note": "wall times are inflated when other processes share the CPU; compare within one run",
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
