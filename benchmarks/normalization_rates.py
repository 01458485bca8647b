"""Does normalising the inputs still matter once the learning rate is tuned for each input?

Lesson 03 trains its small CNN on three versions of CIFAR-10's pixels (raw 0..255, divided
by 255, per-channel z-scores) at one learning rate per optimiser: SGD with momentum at 0.01
and Adam at 0.001. Under Adam the raw pixels ended level with the z-scores. One explanation
is that a larger input acts like a larger learning rate for the first layer, so a fixed rate
favours whichever input happens to suit it. This benchmark gives each (optimiser, input) pair
its own rate: the lesson's network and data (the same draw of 8,000 training and 2,000
validation images, 6 epochs, batches of 128), a grid of rates, three seeds per rate. Each
pair's rate is **chosen** on mean validation accuracy and its runs are **reported** on all
10,000 test images (``optimizer_rates.run_grid`` and ``choose``: the test images never enter
the choice). Every run is kept in the record::

    python benchmarks/normalization_rates.py --data-dir /work/cifar --json cnnkit/results/normalization_rates.json
    python benchmarks/normalization_rates.py --dataset offline --fast --json /tmp/norm.json   # smoke run
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ is on sys.path (the script's own folder): the grid, the choice and the record are shared
from optimizer_rates import lesson_draw, run_grid, start

INPUTS = ("raw 0..255", "x / 255", "z-score")
# one grid per optimiser, the same for every input; each spans the lesson's rate by at least a factor
# of 10 both ways (a raw input may want a rate far below the others' best)
RATES = {
    "momentum": (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1),
    "adam": (0.0001, 0.0003, 0.001, 0.003, 0.01),
}
# grids extended (--reuse) where the first run chose a rate at the edge: SGD's steps are not rescaled, and
# raw pixels make the first layer's gradients about 255 times those of x / 255, so their best momentum rate
# lies below the shared grid; for the two scaled inputs it lay at the top of it
EXTRA_RATES = {("momentum", "raw 0..255"): (0.00001, 0.00003), ("momentum", "x / 255"): (0.3,),
               ("momentum", "z-score"): (0.3,)}
SEEDS = (0, 1, 2)
EPOCHS, BATCH, N_TRAIN, N_VAL, WIDTHS = 6, 128, 8000, 2000, (16, 32, 64)
FAST = dict(epochs=1, n_train=300, n_val=200, n_test=300, rates={"momentum": (0.01,), "adam": (0.001, 0.003)},
            seeds=(0,))


def setting(optimizer: str, input_name: str) -> str:
    """The grid's name for one (optimiser, input) pair, e.g. ``"adam, z-score"``."""
    return f"{optimizer}, {input_name}"


def split_setting(name: str) -> tuple[str, str]:
    """The inverse of :func:`setting`: ``"adam, z-score"`` -> ``("adam", "z-score")``."""
    optimizer, sep, input_name = name.partition(", ")
    if not sep or input_name not in INPUTS:
        raise ValueError(f"not a setting of this benchmark: {name!r} (expected '<optimiser>, <one of {INPUTS}>')")
    return optimizer, input_name


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 1 epoch, a smaller grid")
    from cnnkit import experiments
    from cnnkit.normalization import StandardScaler
    from cnnkit.pipeline import make_dataset

    epochs, n_train, n_val, rates, seeds = EPOCHS, N_TRAIN, N_VAL, RATES, SEEDS
    if args.fast:
        epochs, n_train, n_val, rates, seeds = (FAST["epochs"], FAST["n_train"], FAST["n_val"], FAST["rates"],
                                                FAST["seeds"])
    (x_tr, y_tr), (x_va, y_va), (x_test, y_test) = lesson_draw(args.dataset, args.data_dir, n_train, n_val,
                                                              FAST["n_test"] if args.fast else None)
    preprocess = {"raw 0..255": "raw", "x / 255": "scale", "z-score": StandardScaler().fit(x_tr).batch_fn()}
    test_sets = {name: make_dataset(x_test, y_test, 512, preprocess=pre) for name, pre in preprocess.items()}

    def train_one(name, rate, seed):
        optimizer, input_name = split_setting(name)
        model = experiments.small_cnn(widths=WIDTHS, seed=seed)
        history = experiments.train(model, (x_tr, y_tr), (x_va, y_va), epochs=epochs, batch_size=BATCH,
                                    optimizer=optimizer, learning_rate=rate, preprocess=preprocess[input_name],
                                    seed=seed)
        _, test_accuracy = model.evaluate(test_sets[input_name], verbose=0)
        return history, test_accuracy

    extra = {} if args.fast else EXTRA_RATES
    grid = {setting(optimizer, input_name): tuple(sorted({*grid_rates, *extra.get((optimizer, input_name), ())}))
            for optimizer, grid_rates in rates.items() for input_name in INPUTS}
    setup_record = {"network": f"cnnkit.experiments.small_cnn(widths={WIDTHS})", "n_train": len(y_tr),
                    "n_val": len(y_va), "n_test": len(y_test), "epochs": epochs, "batch_size": BATCH,
                    "seeds": list(seeds), "grid": {k: list(v) for k, v in grid.items()},
                    "z_score_fitted_on": "the training subset", "chosen_by": "mean validation accuracy",
                    "dataset": args.dataset, "fast": args.fast}
    run_grid(grid, seeds, train_one, setup_record, Path(args.json), reuse_from=args.reuse, key="setting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
