"""Adam against SGD with momentum over a longer run whose learning rate decays: does momentum close the gap?

Lesson 08 compares the optimisers over 6 epochs at a constant rate, and ``optimizer_rates.py``
tunes each one's rate at that budget: Adam stays ahead of SGD with momentum. SGD with
momentum is usually trained longer, with a rate that decays to zero (the capstone trains that
way). This benchmark gives both optimisers that treatment: lesson 08's network and images
(``optimizer_rates.lesson08_data``), ``EPOCHS`` epochs, the rate following a cosine from its
peak to zero (``cnnkit.schedules.WarmupDecay``, no warm-up), a grid of peak rates around each
optimiser's tuned 6-epoch rate, three seeds. The peak is **chosen** on mean validation accuracy
and the chosen runs are **reported** on all 10,000 test images (``optimizer_rates.run_grid``)::

    python benchmarks/optimizer_schedule.py --data-dir /work/cifar --json cnnkit/results/optimizer_schedule.json
    python benchmarks/optimizer_schedule.py --dataset offline --fast --json /tmp/schedule.json   # smoke run
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ is on sys.path (the script's own folder): the data, the grid and the record are shared
from optimizer_rates import BATCH, N_TRAIN, SEEDS, lesson08_data, run_grid, start

# peak rates a factor of about 3 apart, centred on each optimiser's best constant rate at 6 epochs
# (optimizer_rates.json: momentum 0.03, Adam 0.003)
GRID = {"momentum": (0.01, 0.03, 0.1), "adam": (0.001, 0.003, 0.01)}
EPOCHS = 24
FAST = dict(epochs=2, n_train=300, n_test=300, grid={"momentum": (0.03,), "adam": (0.003,)}, seeds=(0,))


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 2 epochs, one rate each")
    from cnnkit import experiments
    from cnnkit.schedules import WarmupDecay

    epochs, n_train, grid, seeds = EPOCHS, N_TRAIN, GRID, SEEDS
    if args.fast:
        epochs, n_train, grid, seeds = FAST["epochs"], FAST["n_train"], FAST["grid"], FAST["seeds"]
    (x_tr, y_tr), (x_val, y_val), (test_ds, y_test) = lesson08_data(args.dataset, args.data_dir, n_train,
                                                                    FAST["n_test"] if args.fast else None)
    steps = epochs * -(-len(y_tr) // BATCH)

    def train_one(optimizer, peak, seed):
        model = experiments.small_cnn(seed=seed)
        schedule = WarmupDecay(peak, steps, shape="cosine")
        history = experiments.train(model, (x_tr, y_tr), (x_val, y_val), epochs=epochs, batch_size=BATCH,
                                    optimizer=experiments.named_optimizer(optimizer, schedule), learning_rate=peak,
                                    seed=seed)
        _, test_accuracy = model.evaluate(test_ds, verbose=0)
        return history, test_accuracy

    setup_record = {"network": "cnnkit.experiments.small_cnn()", "n_train": len(y_tr), "n_val": len(y_val),
                    "n_test": len(y_test), "epochs": epochs, "batch_size": BATCH, "seeds": list(seeds),
                    "schedule": "cosine from the peak rate to 0, no warm-up", "steps": steps,
                    "grid": {k: list(v) for k, v in grid.items()}, "chosen_by": "mean validation accuracy",
                    "dataset": args.dataset, "fast": args.fast}
    run_grid(grid, seeds, train_one, setup_record, Path(args.json), reuse_from=args.reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
