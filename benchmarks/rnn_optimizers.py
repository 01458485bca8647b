"""Is RMSProp the optimiser for recurrent networks? Four optimisers, each at its own best rate, on a memory task.

Section 4.3 of the tutorial recommends RMSProp for recurrent networks. Lesson 08 trains no
recurrent network, so this benchmark gives the claim a test. The task is a classification
form of the adding problem (Hochreiter and Schmidhuber's test of long memory): each input is a
sequence of ``LENGTH`` steps, each step a value drawn uniformly from [0, 1) and a marker that
is 1 at exactly two steps (one in each half) and 0 elsewhere; the label says whether the two
marked values sum to more than 1. Three levels of skill are easy to read off:

* 50% -- chance (the two classes are equally likely);
* 75% -- the level of a network that remembers only the second marked value (it answers
  "more than 1" when that value exceeds 0.5);
* near 100% -- the network carries the first marked value across up to ``LENGTH`` steps.

The network is one LSTM layer of ``UNITS`` units and a softmax over the two classes. Each of
SGD, SGD with momentum 0.9, RMSprop and Adam is trained at a grid of learning rates with
three seeds; the rate is **chosen** on mean validation accuracy and the chosen runs are
**reported** on a separate test set (``optimizer_rates.run_grid`` and ``choose``: test accuracy never enters the
choice, ties go to the smaller rate). Every run is kept in the record::

    python benchmarks/rnn_optimizers.py --json cnnkit/results/rnn_optimizers.json
    python benchmarks/rnn_optimizers.py --fast --json /tmp/rnn.json   # smoke run
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# benchmarks/ is on sys.path (the script's own folder): the grid, the choice and the record are shared
from optimizer_rates import run_grid

LENGTH, UNITS, EPOCHS, BATCH = 40, 32, 15, 64
N_TRAIN, N_VAL, N_TEST = 6000, 2000, 4000
# rates a factor of about 3 apart, from well below each optimiser's best to above it. SGD's and
# momentum's grids start far above Keras' default of 0.01: a first probe (seed 0, 8,000 sequences)
# found their best rates at the top of the grids 0.1-1 and 0.03-0.3. RMSprop's and Adam's grids
# began at four rates and were widened upwards, reusing the runs already made (--reuse), until the
# chosen rate had a larger, worse one beside it
GRID = {
    "sgd": (0.1, 0.3, 1.0, 3.0),
    "momentum": (0.03, 0.1, 0.3, 1.0),
    "rmsprop": (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3),
    "adam": (0.001, 0.003, 0.01, 0.03, 0.1),
}
SEEDS = (0, 1, 2)
FAST = dict(length=10, epochs=1, n_train=256, n_val=128, n_test=128,
            grid={"sgd": (0.1, 0.3), "adam": (0.001, 0.003)}, seeds=(0, 1))


def marked_sum_task(n: int, length: int = LENGTH, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of the adding problem as a two-class task.

    Returns ``x`` of shape (n, length, 2) float32 (value in [0, 1), marker 0 or 1) and
    ``y`` of shape (n,) int32: 1 where the two marked values sum to more than 1. The first
    marker falls in the first half of the sequence, the second in the second half.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer number of sequences, got {n!r}")
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer of at least 2 (one step per half), got {length!r}")
    rng = np.random.default_rng(seed)
    values = rng.random((n, length)).astype(np.float32)
    first = rng.integers(0, length // 2, n)
    second = rng.integers(length // 2, length, n)
    markers = np.zeros((n, length), np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    labels = (values[rows, first] + values[rows, second] > 1.0).astype(np.int32)
    return np.stack([values, markers], axis=-1), labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="a smoke run: short sequences, few, 1 epoch, a smaller grid")
    parser.add_argument("--json", required=True, help="where to write the record")
    parser.add_argument("--reuse", default=None, help="an earlier record of the same setup: its runs are not trained again")
    args = parser.parse_args(argv)

    from cnnkit import experiments
    from cnnkit.env import import_tensorflow, setup

    setup(seed=0)
    tf = import_tensorflow()
    import keras

    length, epochs, n_train, n_val, n_test, grid, seeds = LENGTH, EPOCHS, N_TRAIN, N_VAL, N_TEST, GRID, SEEDS
    if args.fast:
        length, epochs, n_train, n_val, n_test, grid, seeds = (
            FAST["length"], FAST["epochs"], FAST["n_train"], FAST["n_val"], FAST["n_test"], FAST["grid"], FAST["seeds"])
    (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = (
        marked_sum_task(n, length, seed) for n, seed in ((n_train, 0), (n_val, 1), (n_test, 2)))

    def batches(x, y, shuffle_seed=None):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(BATCH if shuffle_seed is not None else 1000).prefetch(2)

    val_ds, test_ds = batches(x_val, y_val), batches(x_test, y_test)

    def train_one(optimizer, rate, seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((length, 2)), keras.layers.LSTM(UNITS),
                                  keras.layers.Dense(2, activation="softmax")], name="lstm_marked_sum")
        experiments.compile_for_training(model, optimizer=experiments.named_optimizer(optimizer, rate),
                                         loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = experiments.fit(model, batches(x_tr, y_tr, shuffle_seed=seed), val_ds, epochs=epochs)
        _, test_accuracy = model.evaluate(test_ds, verbose=0)
        return history, test_accuracy

    setup_record = {
        "task": "marked sum (adding problem as two classes)", "length": length,
        "network": f"LSTM({UNITS}) -> Dense(2, softmax)", "n_train": n_train, "n_val": n_val, "n_test": n_test,
        "epochs": epochs, "batch_size": BATCH, "seeds": list(seeds), "grid": {k: list(v) for k, v in grid.items()},
        "chosen_by": "mean validation accuracy", "fast": args.fast}
    run_grid(grid, seeds, train_one, setup_record, Path(args.json), reuse_from=args.reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
