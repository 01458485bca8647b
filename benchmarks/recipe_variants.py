"""Train variants of a capstone recipe, one change at a time, and append one JSON line per variant.

Each variant is a JSON object of recipe fields to change (``cnnkit.recipes.Recipe``), e.g.
``'{"epochs": 7}'`` or ``'{"convs_per_stage": 2, "residual": [false, false, false]}'``; lists
become tuples. Every variant is trained with ``fit_recipe`` on the recipe's own split
and evaluated on the test set without test-time augmentation, with the mirror image,
and with the mirror image plus shifted views of 1 and 2 pixels, so that one training
answers all four. Each line records the changes, the four accuracies, training time
(wall and process CPU seconds), the epochs run, the training-set size, the validation
curve, the precision and the load average when the variant started (times from a
loaded machine are inflated; compare accuracies across runs, times only within one)::

    python benchmarks/recipe_variants.py --recipe quick --data-dir /work/cifar \\
        --out runs/variants.jsonl '{}' '{"epochs": 7}' '{"val_fraction": 0.02}'
    python benchmarks/recipe_variants.py --dataset offline --fast --out /tmp/v.jsonl '{"epochs": 1}'

``docs/recipes.md`` shows the variants measured on CIFAR-10 and what the recipes took from them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cnnkit.env import cpu_model

FAST_TRAIN, FAST_TEST = 2000, 500


def parse_changes(text: str) -> dict:
    """A variant's JSON object of recipe fields; lists become tuples. Errors name the text."""
    try:
        changes = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"a variant must be a JSON object of recipe fields, got {text!r} ({error})") from None
    if not isinstance(changes, dict):
        raise ValueError(f"a variant must be a JSON object of recipe fields, got {text!r}")
    return {key: tuple(value) if isinstance(value, list) else value for key, value in changes.items()}


def run_variant(base, changes: dict, dataset, *, fast: bool = False) -> dict:
    from cnnkit.training import evaluate, fit_recipe, get_recipe, prepare_data

    recipe = get_recipe(base).replace(**changes)
    sizes = {"train_size": FAST_TRAIN, "test_size": FAST_TEST} if fast else {}
    data = prepare_data(dataset, val_fraction=recipe.val_fraction, seed=recipe.seed, **sizes)
    load = round(os.getloadavg()[0], 2)
    result = fit_recipe(recipe, data)
    accuracy = {}
    for name, shift in (("flip", 0), ("flip_shift1", 1), ("flip_shift2", 2)):
        evaluation = evaluate(result.model, data, tta=True, tta_translate=shift)
        accuracy.setdefault("plain", evaluation.accuracy)  # the same plain accuracy from every evaluation
        accuracy[name] = evaluation.accuracy_tta
    accuracy = {key: accuracy[key] for key in ("plain", "flip", "flip_shift1", "flip_shift2")}
    return {"recipe": recipe.name, "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
            "test_accuracy": accuracy, "train_seconds": round(result.seconds, 1),
            "train_cpu_seconds": round(result.cpu_seconds, 1), "epochs_run": result.epochs_run,
            "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
            "val_accuracy": [round(v, 4) for v in result.history.get("val_accuracy", [])],
            "precision": result.precision, "load_average": load, "cpu": cpu_model(),
            "fast": fast, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="JSON objects of recipe fields to change ('{}': the recipe)")
    parser.add_argument("--recipe", default="quick", help="the recipe the changes apply to (default quick)")
    parser.add_argument("--dataset", default="cifar10", help="dataset name (cifar10, or offline for a smoke run)")
    parser.add_argument("--data-dir", default=None, help="where the dataset is (default: cnnkit's search)")
    parser.add_argument("--fast", action="store_true", help=f"{FAST_TRAIN} training and {FAST_TEST} test images: a smoke run")
    parser.add_argument("--out", required=True, type=Path, help="JSON-lines file to append one line per variant to")
    args = parser.parse_args(argv)
    try:
        variants = [parse_changes(text) for text in args.variants]
        from cnnkit.recipes import get_recipe

        for changes in variants:  # every variant is checked before the first one trains
            get_recipe(args.recipe).replace(**changes)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    from cnnkit.data import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir, download=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for changes in variants:
        row = run_variant(args.recipe, changes, dataset, fast=args.fast)
        with open(args.out, "a") as out:  # one complete line per finished variant
            out.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        import keras

        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
