"""The capstone benchmark on Keras' JAX backend: for a GPU machine that has JAX but no TensorFlow.

``benchmarks/capstone.py`` trains with ``cnnkit.training.fit_recipe``, whose input pipeline is
``tf.data``. Where TensorFlow is not installed (a GPU machine with JAX, say), this script
trains the same models on Keras 3's JAX backend. Everything but the input pipeline is the
kit's own:

* ``tutorial`` -- ``capstone.tutorial_model`` trained by ``capstone.run_tutorial`` (10 epochs,
  batch 32, Adam, inputs x/255, validated on the test set every epoch);
* the recipes -- the training split and channel statistics of ``cnnkit.training.prepare_data``,
  the whitening kernel of ``cnnkit.resnet9.patch_whitening_kernel``, the network of
  ``build_model``, the optimiser, schedule and loss of ``cnnkit.training.compile_model``,
  the fit loop ``cnnkit.experiments.fit`` with early stopping as in ``fit_recipe``, and
  ``cnnkit.training.evaluate`` with the recipe's test-time augmentation.

The input pipeline (:func:`stream`) is numpy: each epoch a new shuffle, each image mirrored
with probability 1/2 and shifted by up to ``translate`` pixels with its border reflected into
the gap, then standardised with the training split's mean and standard deviation. That is
what ``cnnkit.pipeline`` does per batch in ``tf.data``, drawn from numpy's generator instead of
TensorFlow's stateless one, so a run here and one with ``fit_recipe`` see different random
draws (compare their accuracies as two seeds, not digit for digit). Recipes with options this
pipeline does not have (alternating flips, crops, lookahead, a whitening bias) are refused.

Times: ``train_seconds`` is everything ``fit_recipe`` times (kernel, model, compile, fit), which
on JAX includes compiling the training step; ``epoch_seconds`` lists each epoch's time, so
the first epoch's excess over the others is about that compile time. Precision is the recipe's
(``auto``: bfloat16 on a GPU of compute capability 8.0 or more, :func:`cnnkit.devices.resolve_precision`).

    KERAS_BACKEND=jax python benchmarks/capstone_jax.py --data-dir DIR --json runs/capstone_jax.json
    KERAS_BACKEND=jax python benchmarks/capstone_jax.py --dataset offline --fast   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # capstone.py, beside this file

from capstone import FAST_TEST, FAST_TRAIN, TARGETS, _load, run_tutorial  # noqa: E402

from cnnkit.env import cpu_model, keras_backend, portable_paths  # noqa: E402
from cnnkit.files import write_atomic  # noqa: E402

UNSUPPORTED = ("alternate_flip", "crop", "lookahead", "whiten_bias_epochs")  # options only cnnkit.pipeline has


def stream(x, y, mean, std, *, batch: int, steps: int, epochs: int, flip: bool, translate: int,
           num_classes: int, seed: int, workers: int = 0):
    """Training batches ``(z, one_hot)`` for ``epochs`` epochs of ``steps`` steps of ``batch`` images.

    x: uint8 (N, H, W, C); y: int (N,). Per epoch a new permutation; per batch the uint8
    images are gathered, mirrored left-right with probability 1/2 (``flip``), shifted by
    (dy, dx) uniform in -t..t (``translate`` t; reflection padding, then an (H, W) window),
    cast to float32 and standardised, ``z = (x - mean) / std``; labels one-hot (B, K).
    Every epoch and every batch draws from its own generator, seeded by (seed, epoch) and
    (seed, epoch, step), so ``workers`` threads (default: one per CPU, at most 8) can
    prepare batches ahead while the accelerator trains, and the stream stays the same.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    eye = np.eye(num_classes, dtype=np.float32)
    mean, scale = np.asarray(mean, np.float32), 1.0 / np.asarray(std, np.float32)
    n, h, w, _ = x.shape
    t = translate
    padded = np.pad(x, ((0, 0), (t, t), (t, t), (0, 0)), mode="reflect") if t else x  # once: the mirror of a
    rows_base, cols_base = np.arange(h), np.arange(w)                               # padded image is the padded mirror

    def make(epoch, step, order):
        rng = np.random.default_rng([seed, epoch, step])
        idx = order[step * batch:(step + 1) * batch]
        images = padded[idx]
        if flip:
            mirror = rng.random(len(idx)) < 0.5
            images[mirror] = images[mirror, :, ::-1]
        if t:
            offsets = rng.integers(0, 2 * t + 1, size=(len(idx), 2))
            rows = offsets[:, :1] + rows_base
            cols = offsets[:, 1:] + cols_base
            images = images[np.arange(len(idx))[:, None, None], rows[:, :, None], cols[:, None, :]]
        z = images.astype(np.float32)
        z -= mean
        z *= scale
        return z, eye[y[idx]]

    workers = workers or min(os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for epoch in range(epochs):
            order = np.random.default_rng([seed, epoch]).permutation(n)
            for step in range(steps):
                pending.append(pool.submit(make, epoch, step, order))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def run_recipe(recipe, dataset, epochs: int | None = None) -> dict:
    """Train ``recipe`` (a name or a Recipe) on ``dataset`` as ``fit_recipe`` would, with :func:`stream` as input."""
    import keras

    from cnnkit.devices import resolve_precision
    from cnnkit.experiments import fit
    from cnnkit.training import evaluate, get_recipe, prepare_data, recipe_model

    recipe = get_recipe(recipe)
    used = [field for field in UNSUPPORTED if getattr(recipe, field)]
    if used:
        raise ValueError(f"recipe {recipe.name!r} uses {', '.join(used)}, which only the tf.data pipeline of fit_recipe has")
    epochs = epochs or recipe.epochs
    data = prepare_data(dataset, val_fraction=recipe.val_fraction, seed=recipe.seed)
    precision = resolve_precision(recipe.precision)
    load_before = _load()
    start, cpu_start = time.perf_counter(), time.process_time()
    batch = min(recipe.batch_size, data.x_train.shape[0])
    steps = data.x_train.shape[0] // batch
    model = recipe_model(recipe, data, steps, epochs, precision=precision)
    train = stream(data.x_train, data.y_train, data.mean, data.std, batch=batch, steps=steps, epochs=epochs,
                   flip=recipe.flip, translate=recipe.translate, num_classes=data.num_classes, seed=recipe.seed)
    val = None
    if data.x_val.shape[0]:
        val = ((data.x_val.astype(np.float32) - data.mean) / data.std,
               np.eye(data.num_classes, dtype=np.float32)[data.y_val])
    callbacks, ends = [], []
    callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter())))
    if recipe.patience and val is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=recipe.patience,
                                                       restore_best_weights=True))
    fit_start = time.perf_counter()
    history = fit(model, train, val, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    load_after = _load()
    evaluation = evaluate(model, data, tta=recipe.tta, tta_translate=recipe.tta_translate)
    epoch_seconds = np.diff([fit_start, *ends]).tolist()
    return {"model": recipe.name, "test_accuracy": evaluation.accuracy_tta if recipe.tta else evaluation.accuracy,
            "test_accuracy_plain": evaluation.accuracy, "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
            "epoch_seconds": epoch_seconds, "epochs": len(history["loss"]), "batch_size": batch,
            "steps_per_epoch": steps, "parameters": int(model.count_params()), "n_train": int(len(data.y_train)),
            "val_accuracy": history.get("val_accuracy", []), "recipe": recipe.to_dict(), "precision": precision,
            "replicas": 1, "load_average_before": load_before, "load_average_after": load_after}


def accelerators() -> list[str]:
    """What JAX computes on: one entry per device, e.g. ``"gpu: NVIDIA H200"``."""
    import jax

    return [f"{d.platform}: {getattr(d, 'device_kind', '?')}" for d in jax.devices()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py (default: $CNNKIT_DATA_DIR)")
    parser.add_argument("--json", default="runs/capstone_jax.json", help="where to write the results")
    parser.add_argument("--models", default="tutorial,quick,good",
                        help="comma-separated subset of tutorial and the recipes (ratios need tutorial)")
    parser.add_argument("--dataset", choices=("cifar10", "offline"), default="cifar10",
                        help="cifar10 (default) or offline (generated; for smoke runs)")
    parser.add_argument("--vary", action="append", default=[], metavar="JSON",
                        help="train each recipe of --models with these fields changed as well, e.g. "
                             "'{\"epochs\": 20, \"patience\": 0}' (repeatable; recipe_variants.py's format)")
    parser.add_argument("--fast", action="store_true",
                        help=f"{FAST_TRAIN} training and {FAST_TEST} test images, 1 epoch per model (a smoke run)")
    args = parser.parse_args(argv)
    if keras_backend() != "jax":
        parser.error(f"run with KERAS_BACKEND=jax (got {keras_backend()!r}); with TensorFlow use benchmarks/capstone.py")
    from cnnkit.recipes import RECIPES

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - {"tutorial", *RECIPES})
    if unknown or not models:
        parser.error(f"unknown models {unknown or models!r}; choose from tutorial, {', '.join(RECIPES)}")
    from recipe_variants import parse_changes

    from cnnkit.recipes import get_recipe

    variants = [parse_changes(text) for text in args.vary]
    for name in models:  # every variant is checked before the first model trains
        for changes in variants:
            if name != "tutorial":
                get_recipe(name).replace(**changes)
    runs = []
    for name in models:
        runs.append((name, {}))
        if name != "tutorial":
            runs += [(name, changes) for changes in variants]
    import keras

    from cnnkit.data import Dataset, load_dataset, stratified_subset
    from cnnkit.env import seed_everything

    seed_everything(0, tensorflow=False)
    dataset = load_dataset(args.dataset, args.data_dir, download=False)
    epochs = None
    if args.fast:  # stratified subsets, every class kept
        dataset = Dataset(dataset.name, *stratified_subset(dataset.x_train, dataset.y_train, FAST_TRAIN),
                          *stratified_subset(dataset.x_test, dataset.y_test, FAST_TEST), dataset.class_names,
                          dataset.source)
        epochs = 1
    print(dataset.describe(), "|", ", ".join(accelerators()), flush=True)
    import jax

    report = {
        "results": {},
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "accelerators": accelerators()},
        "versions": {"python": sys.version.split()[0], "keras": keras.__version__, "backend": keras_backend(),
                     "jax": jax.__version__},
        "dataset": portable_paths(dataset.describe(), args.data_dir),
        "fast": args.fast,
        "note": "the input pipeline is numpy (stream), not cnnkit.pipeline; train_seconds include compiling the step",
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = report["results"]
    for name, changes in runs:
        label = f"{name} {json.dumps(changes)}" if changes else name
        print(f"[{time.strftime('%H:%M:%S')}] training {label} ...", flush=True)
        if name == "tutorial":
            results[label] = run_tutorial(dataset, epochs or 10, 32)
        else:
            results[label] = run_recipe(get_recipe(name).replace(**changes), dataset, epochs)
            results[label]["changes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
        r = results[label]
        print(f"[{time.strftime('%H:%M:%S')}] {label}: test accuracy {r['test_accuracy']:.2%}, "
              f"{r['train_seconds']:.1f} s wall, {r['train_cpu_seconds']:.0f} CPU-s", flush=True)
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        write_atomic(out, json.dumps(report, indent=2))  # after every model: a cut-off run keeps what it trained
    base = results.get("tutorial")
    for name, r in results.items():
        r["time_ratio"] = r["train_seconds"] / base["train_seconds"] if base else None
        if name in TARGETS and base and not r.get("changes"):
            accuracy, ratio = TARGETS[name]
            r["target"] = {"accuracy_at_least": accuracy, "time_ratio_at_most": ratio,
                           "accuracy_met": r["test_accuracy"] >= accuracy, "time_met": r["time_ratio"] <= ratio}
        ratio = f"{r['time_ratio']:.2f}x tutorial" if base else ""
        print(f"{name:<10}{r['test_accuracy']:>8.2%}{r['train_seconds']:>9.1f} s  {ratio}")
    write_atomic(out, json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
