"""Dropout and batch norm over a longer budget: when does regularisation pay in accuracy?

Lesson 04 trains the tutorial's section 2.4 model (``cnnkit.experiments.sample_model``) on 2,000
CIFAR-10 images for 12 epochs, three seeds per variant: without dropout the model overfits, and
with dropout it overfits less but still trails in validation accuracy, because it learns more
slowly. This benchmark runs the same five variants (neither, batch norm, dropout, both, and tanh in
place of ReLU), the same images, seeds and optimiser (Adam at 0.001, batches of 128), for ``EPOCHS``
epochs, and keeps every epoch's numbers. At the lesson's last epoch (``LESSON_EPOCHS``) it also
takes :func:`cnnkit.overfitting.fit_numbers` of the model (accuracy on its training images in
inference mode, the zeros of its dense block, the variance shift where batch norm follows dropout),
which lesson 04's table shows. Each run is scored on all 10,000 test images twice:

* **at its last epoch** (a fixed budget, nothing chosen);
* **at its best epoch** by validation accuracy (the weights of that epoch are kept in memory):
  early stopping, the other remedy for overfitting, chosen on validation images only.

Adam runs at a constant rate, so the first 12 epochs of each run are the runs lesson 04 describes;
the lesson trains one of them again and checks that it agrees with its record::

    python benchmarks/regularization_budget.py --data-dir /work/cifar --json cnnkit/results/regularization_budget.json
    python benchmarks/regularization_budget.py --dataset offline --fast --json /tmp/reg.json   # smoke run
"""
from __future__ import annotations

import sys
import time

# benchmarks/ is on sys.path (the script's own folder): the options and the start are shared
from optimizer_rates import lesson_draw, recorded_run, start, write_record

VARIANTS = {
    "neither": dict(batch_norm=False, dropout=0.0),
    "BN (0.9)": dict(batch_norm=True, dropout=0.0, bn_momentum=0.9),
    "dropout 0.5": dict(batch_norm=False, dropout=0.5),
    "BN (0.9) + dropout 0.5": dict(batch_norm=True, dropout=0.5, bn_momentum=0.9),
    "neither, tanh for ReLU": dict(batch_norm=False, dropout=0.0, activation="tanh"),
}
SEEDS = (0, 1, 2)
EPOCHS, LESSON_EPOCHS, N_POOL, N_VAL, N_SMALL = 60, 12, 10000, 2000, 2000
FAST = dict(epochs=3, lesson_epochs=2, n_pool=600, n_val=200, n_small=300, n_test=300, seeds=(0, 1))


def mean_range(values) -> dict:
    """``{"mean", "min", "max"}`` of a non-empty sequence of numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_range needs at least one value, got none")
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def summarise(runs: list[dict]) -> dict[str, dict]:
    """Per variant, mean/min/max over its seeds of: the last and the best validation accuracy, the
    best epoch (1-based), and the test accuracy at the last and at the best epoch."""
    out: dict[str, dict] = {}
    for variant in dict.fromkeys(run["variant"] for run in runs):
        mine = [run for run in runs if run["variant"] == variant]
        out[variant] = {
            "val_last": mean_range([r["history"]["val_accuracy"][-1] for r in mine]),
            "val_best": mean_range([max(r["history"]["val_accuracy"]) for r in mine]),
            "best_epoch": mean_range([r["best_epoch"] for r in mine]),
            "test_last": mean_range([r["test_last"] for r in mine]),
            "test_best": mean_range([r["test_best"] for r in mine]),
        }
    return out


def markdown(summary: dict[str, dict], epochs: int) -> str:
    """The summary as a table: mean [lowest, highest] over the seeds."""
    def cell(s, fmt=".1%"):
        return f"{s['mean']:{fmt}} [{s['min']:{fmt}}, {s['max']:{fmt}}]"

    lines = [f"| variant | test, epoch {epochs} | best epoch (validation) | test at the best epoch |",
             "|---|---|---|---|"]
    for variant, s in summary.items():
        lines.append(f"| {variant} | {cell(s['test_last'])} | {cell(s['best_epoch'], '.0f')} | {cell(s['test_best'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 3 epochs, two seeds", reuse=False)
    import keras

    from cnnkit import experiments, overfitting
    from cnnkit.data import stratified_subset
    from cnnkit.normalization import StandardScaler
    from cnnkit.pipeline import make_dataset

    epochs, lesson_epochs, n_pool, n_val, n_small, seeds = EPOCHS, LESSON_EPOCHS, N_POOL, N_VAL, N_SMALL, SEEDS
    if args.fast:
        epochs, lesson_epochs, n_pool, n_val, n_small, seeds = (
            FAST["epochs"], FAST["lesson_epochs"], FAST["n_pool"], FAST["n_val"], FAST["n_small"], FAST["seeds"])
    # lesson 04's draw: 10,000 + 2,000 images; the z-score fitted on the 10,000; the regularisation
    # experiment trains on 2,000 of them
    (x_pool, y_pool), (x_va, y_va), (x_test, y_test) = lesson_draw(args.dataset, args.data_dir, n_pool, n_val,
                                                                  FAST["n_test"] if args.fast else None)
    zscore = StandardScaler().fit(x_pool).batch_fn()
    x_tr, y_tr = stratified_subset(x_pool, y_pool, min(n_small, len(y_pool)), seed=1)
    del x_pool, y_pool
    test_ds = make_dataset(x_test, y_test, 500, preprocess=zscore)

    class KeepBest(keras.callbacks.Callback):
        """Keeps a copy of the weights (moving statistics included) of the epoch with the best validation accuracy."""

        def on_train_begin(self, logs=None):
            self.best, self.epoch, self.weights = -1.0, 0, None

        def on_epoch_end(self, epoch, logs=None):
            if logs["val_accuracy"] > self.best:
                self.best, self.epoch, self.weights = logs["val_accuracy"], epoch + 1, self.model.get_weights()
            if epoch + 1 == lesson_epochs:  # inference-mode probes: no weight and no random state changes
                self.at_lesson_epoch = overfitting.fit_numbers(self.model, x_tr, y_tr, preprocess=zscore)

    runs, started = [], time.perf_counter()
    total = len(VARIANTS) * len(seeds)
    for seed in seeds:
        for variant, options in VARIANTS.items():
            keras.backend.clear_session()
            model = experiments.sample_model(**options, seed=seed)
            keep = KeepBest()
            history = experiments.train(model, (x_tr, y_tr), (x_va, y_va), epochs=epochs, preprocess=zscore,
                                        seed=seed, callbacks=[keep])
            _, test_last = model.evaluate(test_ds, verbose=0)
            model.set_weights(keep.weights)
            _, test_best = model.evaluate(test_ds, verbose=0)
            runs.append(recorded_run(history, variant=variant, seed=seed, best_epoch=keep.epoch,
                                     test_last=float(test_last), test_best=float(test_best),
                                     at_lesson_epoch={k: round(v, 5) for k, v in keep.at_lesson_epoch.items()}))
            print(f"[{len(runs)}/{total}] seed {seed} {variant}: validation {history['val_accuracy'][-1]:.1%} at the "
                  f"end, best {keep.best:.1%} at epoch {keep.epoch}; test {test_last:.1%} at the end, "
                  f"{test_best:.1%} at the best epoch ({history['seconds']:.0f} s)", flush=True)
    summary = summarise(runs)
    table = markdown(summary, epochs)
    print(table)
    record = {"setup": {"network": "cnnkit.experiments.sample_model", "variants": VARIANTS, "n_train": len(y_tr),
                        "n_val": len(y_va), "n_test": len(y_test), "epochs": epochs, "lesson_epochs": lesson_epochs,
                        "batch_size": 128,
                        "optimizer": "adam", "learning_rate": 1e-3, "seeds": list(seeds), "dataset": args.dataset,
                        "fast": args.fast},
              "summary": summary, "runs": runs, "markdown": table}
    write_record(args.json, record, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
