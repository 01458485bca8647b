"""Training speed of a recipe's model in float32 and in mixed_bfloat16, in one process.

Run by hand (not in CI)::

    python benchmarks/precision.py                         # the good recipe, batch 256
    python benchmarks/precision.py --steps 200 --rounds 2 --json runs/precision.json
    python benchmarks/precision.py --accuracy --recipe quick --train-size 10000 --epochs 3 --data-dir /work/cifar

Both models are built by ``cnnkit.resnet9.build_model`` (the same layers the trainer
uses, with the whitening layer and the logits kept in float32 under bfloat16) and
compiled by ``cnnkit.training.compile_model``; they train on the same random uint8
images, standardised in float32 as the pipeline does. Each precision first runs
``--warmup`` untimed steps (graph tracing, oneDNN kernel selection), then the two take
turns for ``--rounds`` rounds of ``--steps`` timed steps each, so that a change of load
on a shared machine hits both alike. The best round of each counts (the least disturbed).
The result is images per second for each and the ratio bfloat16 / float32: above 1,
bfloat16 pays on this machine. The CPU's bfloat16 features (AMX, AVX512_BF16) are
printed with it: ``cnnkit.devices.resolve_precision`` decides ``"auto"`` from them.

``--accuracy`` checks instead that bfloat16 costs no accuracy: it trains the recipe with
``fit_recipe`` in each precision on the same CIFAR-10 subset (``--train-size`` images
before the validation split, 2,000 test images, ``--epochs``) and prints the test
accuracy (flip TTA), wall and process CPU seconds of each.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from cnnkit.env import cpu_model
from cnnkit.files import write_atomic


def _model(recipe, precision: str, steps_per_epoch: int):
    from cnnkit.resnet9 import build_model
    from cnnkit.training import compile_model

    model = build_model(recipe, precision=precision, seed=recipe.seed)
    return compile_model(model, recipe, steps_per_epoch)


def _batches(batch: int, seed: int = 0):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(batch, 32, 32, 3), dtype=np.uint8)
    z = ((x.astype(np.float32) - 120.0) / 64.0).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    return tf.data.Dataset.from_tensors((z, y)).repeat()


def _timed_steps(model, data, steps: int) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return time.perf_counter() - start


def accuracy_check(recipe, data_dir, train_size: int, epochs: int) -> dict:
    """Train ``recipe`` in float32 and in bfloat16 on one CIFAR-10 subset; test accuracy and time of each."""
    from cnnkit.data import load_dataset
    from cnnkit.training import evaluate, fit_recipe, prepare_data

    data = prepare_data(load_dataset("cifar10", data_dir, download=False), val_fraction=recipe.val_fraction,
                        seed=recipe.seed, train_size=train_size, test_size=2000)
    results = {}
    for precision in ("float32", "bfloat16"):
        result = fit_recipe(recipe.replace(precision=precision), data, epochs=epochs)
        evaluation = evaluate(result.model, data, tta=True)
        results[precision] = {"test_accuracy_tta": evaluation.accuracy_tta, "test_accuracy": evaluation.accuracy,
                              "train_seconds": result.seconds, "train_cpu_seconds": result.cpu_seconds,
                              "val_accuracy": result.history.get("val_accuracy", [])}
        print(f"{precision:<9} test accuracy {evaluation.accuracy_tta:.2%} (TTA), {evaluation.accuracy:.2%} plain; "
              f"{result.seconds:.0f} s wall, {result.cpu_seconds:.0f} CPU-s", flush=True)
    return {"recipe": recipe.name, "train_size": train_size, "epochs": epochs, "test_size": 2000, **results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="good", help="recipe whose model is timed (default: good)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the recipe's)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per round and precision")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per precision")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per precision first")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--accuracy", action="store_true",
                        help="train on CIFAR-10 in both precisions and compare test accuracy instead")
    parser.add_argument("--data-dir", default=None, help="--accuracy: folder with cifar-10-batches-py")
    parser.add_argument("--train-size", type=int, default=10000, help="--accuracy: training images kept")
    parser.add_argument("--epochs", type=int, default=3, help="--accuracy: epochs per precision")
    args = parser.parse_args(argv)
    for name in ("batch", "steps", "rounds", "train_size", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")

    from cnnkit.devices import bf16_hardware, cpu_flags, resolve_precision
    from cnnkit.env import setup
    from cnnkit.recipes import get_recipe

    versions = setup(seed=0)
    recipe = get_recipe(args.recipe)
    if args.accuracy:
        report = accuracy_check(recipe, args.data_dir, args.train_size, args.epochs)
        report.update(machine={"cpu": cpu_model(), "cpu_count": os.cpu_count(), "bf16_hardware": bf16_hardware()},
                      versions={"python": sys.version.split()[0], **versions})
        if args.json:
            _write_json(Path(args.json), report)
        return 0
    batch = args.batch or recipe.batch_size
    data = _batches(batch)
    total = args.steps * args.rounds + args.warmup
    models = {p: _model(recipe, p, total) for p in ("float32", "bfloat16")}
    for precision, model in models.items():
        if args.warmup:
            _timed_steps(model, data, args.warmup)
        print(f"{precision}: compute dtype of stage1_conv {model.get_layer('stage1_conv').compute_dtype}, "
              f"of the logits {model.get_layer('logits').compute_dtype}", flush=True)
    seconds = {p: [] for p in models}
    for round_ in range(args.rounds):
        for precision, model in models.items():
            seconds[precision].append(_timed_steps(model, data, args.steps))
            print(f"round {round_ + 1} {precision}: {args.steps} steps of {batch} in "
                  f"{seconds[precision][-1]:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
    rate = {p: args.steps * batch / min(s) for p, s in seconds.items()}
    ratio = rate["bfloat16"] / rate["float32"]
    per_round = [f / b for f, b in zip(seconds["float32"], seconds["bfloat16"])]
    flags = cpu_flags()
    hardware = bf16_hardware(flags, [])
    print(f"\n{cpu_model()} ({os.cpu_count()} CPUs), bfloat16 hardware: {hardware or 'none'}")
    print(f"float32   {rate['float32']:8.1f} images/s")
    print(f"bfloat16  {rate['bfloat16']:8.1f} images/s")
    print(f"bfloat16 / float32 = {ratio:.2f} (best rounds; round by round: "
          f"{', '.join(f'{r:.2f}' for r in per_round)})   ('auto' here: {resolve_precision('auto', flags=flags)})")
    if args.json:
        report = {"recipe": recipe.name, "batch": batch, "steps": args.steps, "rounds": args.rounds,
                  "seconds": seconds, "images_per_second": rate, "bf16_over_f32": ratio,
                  "bf16_over_f32_per_round": per_round,
                  "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "bf16_hardware": hardware,
                              "platform": platform.platform()},
                  "versions": {"python": sys.version.split()[0], **versions}}
        _write_json(Path(args.json), report)
    return 0


def _write_json(out: Path, report: dict) -> None:
    write_atomic(out, json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
