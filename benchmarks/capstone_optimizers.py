"""Adam against SGD with momentum on the capstone's network: is Adam the better choice for a CNN there too?

Lesson 08's comparisons run on a small CNN without batch norm. The capstone's quick recipe trains
a residual network with batch norm, a whitening layer, label smoothing and a warm-up then linear
decay, with SGD and Nesterov momentum at a rate of 0.8. This benchmark trains that recipe as it is
and with AdamW in its place (``Recipe.optimizer="adamw"``, the same schedule, warm-up and epochs)
at a grid of peak rates, three seeds each. Keras applies weight decay as ``w -= rate * decay * w``
for both optimisers, so AdamW's decay is set to keep the recipe's shrink per step at the peak
(0.8 x 2.5e-3 = 2e-3): decay = 2e-3 / rate. The 1,000 validation images of the recipe's split
**choose** each optimiser's rate (mean over seeds of the last epoch's accuracy); the chosen runs
are **reported** on the 10,000 test images with the recipe's test-time augmentation
(``optimizer_rates.run_grid``). A seed changes the initial weights and the order of the batches,
not the split::

    python benchmarks/capstone_optimizers.py --data-dir /work/cifar --json cnnkit/results/capstone_optimizers.json
    python benchmarks/capstone_optimizers.py --dataset offline --fast --json /tmp/capopt.json   # smoke run
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ is on sys.path (the script's own folder): the grid, the choice and the record are shared
from optimizer_rates import run_grid, start

RECIPE = "quick"
# AdamW's grid was widened upwards (--reuse) when its best rate came out at the top of (0.001, 0.003, 0.01);
# with 0.03 added, 0.01 stays the best on validation
GRID = {"nesterov": (0.8,), "adamw": (0.001, 0.003, 0.01, 0.03)}
SEEDS = (0, 1, 2)
SHRINK_PER_STEP = 0.8 * 2.5e-3  # the quick recipe's rate x weight decay at the peak
FAST = dict(train_size=2000, test_size=500, epochs=2, grid={"nesterov": (0.8,), "adamw": (0.003,)}, seeds=(0,))


def recipe_for(optimizer: str, rate: float, seed: int, epochs: int | None = None):
    """The quick recipe with ``optimizer`` at peak ``rate`` and the decay that keeps its shrink per step."""
    from cnnkit.recipes import get_recipe

    base = get_recipe(RECIPE)
    changes = {"optimizer": optimizer, "learning_rate": rate, "seed": seed,
               "weight_decay": SHRINK_PER_STEP / rate}
    if epochs is not None:
        changes["epochs"] = epochs
    return base.replace(**changes)


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: 2,000 images, 2 epochs, one rate per optimiser, one seed")
    from cnnkit.data import load_dataset
    from cnnkit.recipes import get_recipe
    from cnnkit.training import evaluate, fit_recipe, prepare_data

    base = get_recipe(RECIPE)
    grid, seeds = (FAST["grid"], FAST["seeds"]) if args.fast else (GRID, SEEDS)
    sizes = {"train_size": FAST["train_size"], "test_size": FAST["test_size"]} if args.fast else {}
    data = prepare_data(load_dataset(args.dataset, args.data_dir, download=False), val_fraction=base.val_fraction,
                        seed=base.seed, **sizes)

    def train_one(optimizer, rate, seed):
        recipe = recipe_for(optimizer, rate, seed, FAST["epochs"] if args.fast else None)
        result = fit_recipe(recipe, data)
        history = {**result.history, "seconds": result.seconds}
        return history, evaluate(result.model, data, tta=recipe.tta, tta_translate=recipe.tta_translate).accuracy_tta

    setup_record = {"network": f"the {RECIPE} recipe's (cnnkit.recipes)", "recipe": base.to_dict(),
                    "weight_decay": f"{SHRINK_PER_STEP:g} / rate (the recipe's shrink per step at its peak)",
                    "n_train": int(len(data.y_train)), "n_val": int(len(data.y_val)), "n_test": int(len(data.y_test)),
                    "epochs": FAST["epochs"] if args.fast else base.epochs, "seeds": list(seeds),
                    "grid": {k: list(v) for k, v in grid.items()}, "test_accuracy": "with the recipe's TTA",
                    "chosen_by": "mean validation accuracy at the last epoch", "dataset": args.dataset,
                    "fast": args.fast}
    run_grid(grid, seeds, train_one, setup_record, Path(args.json), reuse_from=args.reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
