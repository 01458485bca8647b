"""Batch norm's higher learning rates over a longer run: does the rate it tolerates pay?

Lesson 04 (section "Higher learning rates and any initial scale") trains its small CNN (three
convolution blocks of 8, 16 and 32 channels, He-normal kernels) with and without batch norm after
each convolution for 64 steps, SGD with momentum 0.9 at a constant rate: batch norm trains at rates
ten times higher than the plain network tolerates, but within those 64 steps both do best at the
smallest rate tried. This benchmark gives the same two networks 24 times the steps (all 10,000 of
the lesson's training images, ``EPOCHS`` epochs of batches of 64, the same optimiser, z-score and
moving-statistics momentum 0.9) over a grid of constant rates, three seeds each, and keeps every
epoch's validation accuracy and training loss. Each network's rate is chosen on the lesson's 2,000
validation images (``optimizer_rates.run_grid``) and scored on the 10,000 test images.

A constant rate keeps every step as large as the first, so a high rate ends its run as noisy as it
started. ``--cosine`` runs the same grid with the rate following a cosine from its peak to zero
(``cnnkit.schedules.WarmupDecay``, no warm-up), the usual way to profit from a high rate::

    python benchmarks/batchnorm_rates.py --data-dir /work/cifar --json cnnkit/results/batchnorm_rates.json
    python benchmarks/batchnorm_rates.py --data-dir /work/cifar --cosine --json cnnkit/results/batchnorm_rates_cosine.json
    python benchmarks/batchnorm_rates.py --dataset offline --fast --json /tmp/bn_rates.json   # smoke run
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ is on sys.path (the script's own folder): the options, the start, the draw and the grid are shared
from optimizer_rates import lesson_draw, run_grid, start

# network -> constant learning rates (SGD, momentum 0.9), a factor of about 3 apart; the lesson's
# grid was 0.03, 0.3 and 1 for both
GRID = {"no BN": (0.003, 0.01, 0.03, 0.1, 0.3), "BN": (0.01, 0.03, 0.1, 0.3, 1.0)}
SEEDS = (0, 1, 2)
EPOCHS, BATCH, N_TRAIN, N_VAL, WIDTHS = 10, 64, 10000, 2000, (8, 16, 32)
FAST = dict(epochs=2, n_train=400, n_val=200, n_test=300, grid={"no BN": (0.03,), "BN": (0.03, 0.3)}, seeds=(0, 1))


def network(batch_norm: bool, seed: int):
    """Lesson 04's grid network: ``small_cnn`` with widths 8/16/32, He-normal kernels, batch norm
    (moving-statistics momentum 0.9) after every convolution or none."""
    from cnnkit.experiments import small_cnn

    return small_cnn(widths=WIDTHS, batch_norm=batch_norm, bn_momentum=0.9, kernel_initializer="he_normal",
                     seed=seed)


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 2 epochs, a smaller grid",
                 flags={"--cosine": "the rate follows a cosine from its peak to zero (default: constant)"})
    from cnnkit import experiments
    from cnnkit.normalization import StandardScaler
    from cnnkit.pipeline import make_dataset
    from cnnkit.schedules import WarmupDecay

    epochs, n_train, n_val, grid, seeds = EPOCHS, N_TRAIN, N_VAL, GRID, SEEDS
    if args.fast:
        epochs, n_train, n_val, grid, seeds = (FAST["epochs"], FAST["n_train"], FAST["n_val"], FAST["grid"],
                                               FAST["seeds"])
    (x_tr, y_tr), (x_va, y_va), (x_test, y_test) = lesson_draw(args.dataset, args.data_dir, n_train, n_val,
                                                              FAST["n_test"] if args.fast else None)
    zscore = StandardScaler().fit(x_tr).batch_fn()
    test_ds = make_dataset(x_test, y_test, 500, preprocess=zscore)
    steps = epochs * -(-len(y_tr) // BATCH)

    def train_one(name, rate, seed):
        model = network(name == "BN", seed)
        optimizer = experiments.named_optimizer("momentum", WarmupDecay(rate, steps, shape="cosine") if args.cosine else rate)
        history = experiments.train(model, (x_tr, y_tr), (x_va, y_va), epochs=epochs, batch_size=BATCH,
                                    optimizer=optimizer, learning_rate=rate, preprocess=zscore, seed=seed)
        _, test_accuracy = model.evaluate(test_ds, verbose=0)
        return history, test_accuracy

    rate_setup = ({"optimizer": "SGD, momentum 0.9", "schedule": "cosine from the peak rate to 0, no warm-up",
                   "steps": steps} if args.cosine else {"optimizer": "SGD, momentum 0.9, constant rate"})
    setup = {"network": f"cnnkit.experiments.small_cnn(widths={WIDTHS}, kernel_initializer='he_normal', "
                        "bn_momentum=0.9)", **rate_setup,
             "preprocess": "z-score fitted on the training images", "n_train": len(y_tr), "n_val": len(y_va),
             "n_test": len(y_test), "epochs": epochs, "batch_size": BATCH, "seeds": list(seeds),
             "grid": {k: list(v) for k, v in grid.items()}, "chosen_by": "mean validation accuracy",
             "dataset": args.dataset, "fast": args.fast}
    run_grid(grid, seeds, train_one, setup, Path(args.json), reuse_from=args.reuse, key="network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
