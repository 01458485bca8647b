"""Training-time ratio of the capstone's recipes to the TensorFlow tutorial's CNN, measured in turns.

A full run of ``benchmarks/capstone.py`` trains each model once, one after the other.
On a shared or virtual machine the speed of the CPU can change between those runs:
here the same two epochs of the quick recipe, run three times in one process on a
quiet machine, took 84, 60 and 84 seconds. A ratio of two such runs inherits that
drift. This script measures the ratio so that drift cancels: every model is built and
compiled as in the benchmark, fed by its own input pipeline (the recipes by the kit's
augmenting pipeline on CIFAR-10, the tutorial's model by batches of 32 images scaled to
0..1), and then the models take turns, each training for a few seconds per round
(``train_on_batch`` on batches from an iterator kept across turns).
Within one round all models see nearly the same machine, so each round gives a ratio::

    predicted training time = epochs x steps per epoch x seconds per step
    ratio (round r)         = predicted time of the recipe / predicted time of the tutorial's model

The report gives the median over rounds and the range. It counts training steps only:
the validation passes, the whitening kernel and model building are left out (about 1-3%
of a recipe's run, and the tutorial's model validates on 10,000 test images after every
epoch), so the full benchmark's ratio differs by those. Run by hand (not in CI)::

    python benchmarks/speed_ratio.py --data-dir /work/cifar
    python benchmarks/speed_ratio.py --data-dir /work/cifar --rounds 8 --seconds 5 --json runs/ratio.json
    python benchmarks/speed_ratio.py --dataset offline --rounds 2 --seconds 0.5   # a smoke run

``--ablate RECIPE`` times the recipe against its ablations instead (``cnnkit.recipes.ablations``;
variants that train the same arithmetic, such as "no test-time augmentation", are left out):
every ratio is then a variant's training time over the full recipe's, the column that a
sequential ablation run (``benchmarks/capstone.py --ablate``) measures with the drift in it::

    python benchmarks/speed_ratio.py --data-dir /work/cifar --ablate quick --json runs/ablation_speed.json

``--vary RECIPE JSON...`` times variants of a recipe (JSON objects of the fields to change, as
``benchmarks/recipe_variants.py`` takes them) against the recipe itself::

    python benchmarks/speed_ratio.py --data-dir /work/cifar --rounds 4 --vary good \
        '{"widths": [64, 128, 128], "residual": [false, false, false], "convs_per_stage": 2}'
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from cnnkit.env import cpu_model
from cnnkit.files import write_atomic

TUTORIAL_EPOCHS, TUTORIAL_BATCH = 10, 32  # as benchmarks/capstone.py trains it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # capstone.py, recipe_variants.py: shared helpers


def _tutorial(dataset):
    import keras
    import numpy as np
    import tensorflow as tf

    from capstone import tutorial_model

    model = tutorial_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x = dataset.x_train[:10_000].astype(np.float32) / 255.0  # what a step computes does not depend on which images
    stream = tf.data.Dataset.from_tensor_slices((x, dataset.y_train[:10_000])).batch(TUTORIAL_BATCH,
                                                                                     drop_remainder=True)
    steps = -(-len(dataset.y_train) // TUTORIAL_BATCH)
    return {"model": model, "data": stream.repeat(), "batch": TUTORIAL_BATCH, "epochs": TUTORIAL_EPOCHS,
            "steps_per_epoch": steps, "precision": "float32"}


def _recipe(name, dataset):
    from cnnkit.devices import resolve_precision
    from cnnkit.resnet9 import build_model
    from cnnkit.training import compile_model, get_recipe, make_pipeline, prepare_data

    recipe = get_recipe(name)
    data = prepare_data(dataset, val_fraction=recipe.val_fraction, seed=recipe.seed)
    precision = resolve_precision(recipe.precision)
    steps = data.x_train.shape[0] // recipe.batch_size
    model = build_model(recipe, input_shape=data.x_train.shape[1:], num_classes=data.num_classes,
                        seed=recipe.seed, precision=precision)
    compile_model(model, recipe, steps)
    stream = make_pipeline(data.x_train, data.y_train, mean=data.mean, std=data.std, batch_size=recipe.batch_size,
                           num_classes=data.num_classes, training=True, flip=recipe.flip,
                           translate=recipe.translate, seed=recipe.seed, repeat=True,
                           alternate_flip=recipe.alternate_flip)
    return {"model": model, "data": stream, "batch": recipe.batch_size, "epochs": recipe.epochs,
            "steps_per_epoch": steps, "precision": precision}


def _timed(entry, steps: int) -> float:
    """Seconds for ``steps`` training steps, batches drawn from one iterator that lives across turns.

    (``model.fit`` per turn would restart the pipeline and set up its loop each time: measured
    here, that overhead was several times the work of a few steps.)
    """
    if "iterator" not in entry:
        entry["iterator"] = iter(entry["data"])
    model, iterator = entry["model"], entry["iterator"]
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(iterator)
        model.train_on_batch(x, y)
    return time.perf_counter() - start


def measure(entries: dict, rounds: int, seconds: float, log=print, reference: str = "tutorial") -> dict:
    """Let the models take turns; per model the seconds per step of every round, and its ratios to ``reference``."""
    if reference not in entries:
        raise ValueError(f"reference {reference!r} is not one of the models timed: {', '.join(entries)}")
    steps = {}
    for name, entry in entries.items():  # trace and warm up, then size each turn to about `seconds`
        _timed(entry, 3)
        probe = _timed(entry, 5) / 5
        steps[name] = max(1, round(seconds / probe))
        log(f"{name}: {probe * 1000:.1f} ms per step when warming up; {steps[name]} steps per turn")
    per_step = {name: [] for name in entries}
    for r in range(rounds):
        for name, entry in entries.items():
            per_step[name].append(_timed(entry, steps[name]) / steps[name])
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1] * 1000:.1f} ms" for n, v in per_step.items()))
    total = {name: [s * e["epochs"] * e["steps_per_epoch"] for s in per_step[name]] for name, e in entries.items()}
    report = {}
    for name, entry in entries.items():
        ratios = [t / ref for t, ref in zip(total[name], total[reference])]
        report[name] = {
            "precision": entry["precision"], "batch_size": entry["batch"], "epochs": entry["epochs"],
            "steps_per_epoch": entry["steps_per_epoch"], "steps_per_turn": steps[name],
            "ms_per_step": [round(s * 1000, 3) for s in per_step[name]],
            "images_per_second_median": round(entry["batch"] / statistics.median(per_step[name]), 1),
            "predicted_train_seconds_median": round(statistics.median(total[name]), 1),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=["quick", "good"], help="recipes to time (default both)")
    parser.add_argument("--rounds", type=int, default=6, help="turns per model (default 6)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of training per turn (default 4)")
    parser.add_argument("--dataset", default="cifar10", help="dataset name (cifar10, or offline for a smoke run)")
    parser.add_argument("--data-dir", default=None, help="where the dataset is (default: cnnkit's search)")
    parser.add_argument("--ablate", default=None, metavar="RECIPE",
                        help="time RECIPE against its ablations (ratios to the full recipe) instead")
    parser.add_argument("--vary", nargs="+", default=None, metavar=("RECIPE", "JSON"),
                        help="time variants of RECIPE (JSON objects of fields to change) against it instead")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.vary is not None and (len(args.vary) < 2 or args.ablate):
        parser.error("--vary needs a recipe and at least one JSON object of changes, and excludes --ablate")

    from cnnkit.data import load_dataset
    from cnnkit.devices import bf16_hardware
    from cnnkit.env import setup
    from cnnkit.recipes import get_recipe

    from cnnkit.recipes import ablations

    for name in [args.ablate] if args.ablate else [args.vary[0]] if args.vary else args.recipes:
        get_recipe(name)  # an unknown name fails now, with the known ones listed
    varied = {}
    if args.vary:
        base = get_recipe(args.vary[0])
        from recipe_variants import parse_changes

        for text in args.vary[1:]:
            try:
                changes = parse_changes(text)
                varied[json.dumps(changes, sort_keys=True)] = base.replace(**changes)
            except (TypeError, ValueError) as error:
                parser.error(f"--vary: {text!r} does not make a valid {base.name} recipe: {error}")
    versions = setup(seed=0)
    dataset = load_dataset(args.dataset, args.data_dir, download=False)
    if args.ablate:
        reference, variants, seen = "full", {}, set()
        from capstone import _training_key
        from cnnkit.devices import resolve_precision

        for label, (recipe, _) in ablations(args.ablate).items():
            arithmetic = _training_key(recipe, resolve_precision(recipe.precision))
            if arithmetic not in seen:  # the same training as a variant already listed: nothing to time
                seen.add(arithmetic)
                variants[label] = recipe
        entries = {label: _recipe(recipe, dataset) for label, recipe in variants.items()}
    elif args.vary:
        reference = args.vary[0]
        entries = {reference: _recipe(reference, dataset), **{label: _recipe(r, dataset) for label, r in varied.items()}}
    else:
        reference = "tutorial"
        entries = {"tutorial": _tutorial(dataset), **{name: _recipe(name, dataset) for name in args.recipes}}
    load_before = round(os.getloadavg()[0], 2)
    report = measure(entries, args.rounds, args.seconds, reference=reference)
    width = max(10, *(len(name) + 2 for name in report))
    print()
    print(f"{'model':<{width}}{'precision':>10}{'img/s':>9}{'predicted s':>13}{'x ' + reference:>12}{'range':>16}")
    for name, row in report.items():
        low, high = row["ratio_range"]
        print(f"{name:<{width}}{row['precision']:>10}{row['images_per_second_median']:>9.0f}"
              f"{row['predicted_train_seconds_median']:>13.0f}{row['ratio_median']:>12.2f}{low:>9.2f}-{high:.2f}")
    if args.json:
        out = {"models": report, "reference": reference, "ablate": args.ablate, "vary": args.vary,
               "rounds": args.rounds,
               "seconds_per_turn": args.seconds,
               "load_average_before": load_before, "load_average_after": round(os.getloadavg()[0], 2),
               "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "bf16_hardware": bf16_hardware()},
               "versions": {"python": sys.version.split()[0], **versions},
               "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        path = Path(args.json)
        write_atomic(path, json.dumps(out, indent=2))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
