"""Each optimiser of lesson 08 at its own best learning rate: does SGD catch up once its rate is tuned?

Lesson 08 compares SGD, SGD with momentum, RMSprop and Adam at one learning rate each (their
usual defaults) and finds the adaptive two ahead. A default rate is not a tuned one. This
benchmark trains the lesson's network on the lesson's data (the small CNN, 3,000 training
images drawn exactly as lesson 08 draws them, 6 epochs, batches of 64) at a grid of rates per
optimiser, three seeds each, and then:

* **chooses** each optimiser's rate by its mean **validation** accuracy (the lesson's 1,000
  held-out training images) over the seeds;
* **reports** the **test** accuracy (all 10,000 test images) of the chosen rate's runs. The
  test images play no part in the choice, so the reported figures are not tuned on them.

Every run is kept in the record, so a reader can check the choice::

    python benchmarks/optimizer_rates.py --data-dir /work/cifar --json cnnkit/results/optimizer_rates.json
    python benchmarks/optimizer_rates.py --dataset offline --fast --json /tmp/rates.json   # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# optimiser (cnnkit.experiments' name) -> learning rates tried, about a factor of 3 apart, each
# grid centred on the rate lesson 08 uses (SGD 0.01 and 0.1, momentum 0.01, RMSprop and Adam 0.001)
GRID = {
    "sgd": (0.01, 0.03, 0.1, 0.3),
    "momentum": (0.003, 0.01, 0.03, 0.1),
    "rmsprop": (0.0001, 0.0003, 0.001, 0.003),
    "adam": (0.0003, 0.001, 0.003, 0.01),
}
SEEDS = (0, 1, 2)
EPOCHS, BATCH, N_TRAIN = 6, 64, 3000
FAST = dict(epochs=1, n_train=300, n_test=500, grid={"sgd": (0.03, 0.1), "adam": (0.001, 0.003)}, seeds=(0, 1))


def choose(runs: list[dict], key: str = "optimizer") -> dict[str, dict]:
    """Per optimiser (or per value of the run field ``key``), the rate with the highest mean
    validation accuracy over its seeds.

    ``runs``: one dict per training with ``key``, ``learning_rate``, ``seed``,
    ``val_accuracy`` and ``test_accuracy``. Returns optimiser -> ``{"learning_rate",
    "val_mean", "test": [per seed], "test_mean", "test_min", "test_max", "at_grid_edge"}``.
    Test accuracy never enters the choice; ties go to the smaller rate. ``at_grid_edge`` says
    the chosen rate is the grid's smallest or largest (a wider grid might do better).
    """
    if not runs:
        raise ValueError("runs is empty: nothing to choose from")
    grouped: dict[str, dict[float, list[dict]]] = {}
    for run in runs:
        grouped.setdefault(run[key], {}).setdefault(float(run["learning_rate"]), []).append(run)
    chosen = {}
    for optimizer, by_rate in grouped.items():
        seed_counts = {rate: len(r) for rate, r in by_rate.items()}
        if len(set(seed_counts.values())) != 1:
            raise ValueError(f"{optimizer}: every rate needs the same number of seeds, got {seed_counts}")

        def val_mean(rate):
            return sum(r["val_accuracy"] for r in by_rate[rate]) / len(by_rate[rate])

        best = min(by_rate, key=lambda rate: (-val_mean(rate), rate))
        tests = [r["test_accuracy"] for r in sorted(by_rate[best], key=lambda r: r["seed"])]
        chosen[optimizer] = {"learning_rate": best, "val_mean": val_mean(best), "test": tests,
                             "test_mean": sum(tests) / len(tests), "test_min": min(tests), "test_max": max(tests),
                             "at_grid_edge": best in (min(by_rate), max(by_rate))}
    return chosen


def markdown(chosen: dict[str, dict], runs: list[dict], key: str = "optimizer") -> str:
    """The table of the chosen rates, then every rate's mean validation accuracy."""
    label = "optimiser" if key == "optimizer" else key
    lines = [f"| {label} | chosen rate | validation, mean | test: mean [lowest, highest] | per seed |",
             "|---|---|---|---|---|"]
    for name, c in sorted(chosen.items(), key=lambda item: -item[1]["test_mean"]):
        edge = " (grid edge)" if c["at_grid_edge"] else ""
        lines.append(f"| {name} | {c['learning_rate']:g}{edge} | {c['val_mean']:.1%} | {c['test_mean']:.1%} "
                     f"[{c['test_min']:.1%}, {c['test_max']:.1%}] | {', '.join(f'{t:.1%}' for t in c['test'])} |")
    lines += ["", f"| {label} | rate | validation accuracy, mean over seeds |", "|---|---|---|"]
    means: dict[tuple[str, float], list[float]] = {}
    for run in runs:
        means.setdefault((run[key], run["learning_rate"]), []).append(run["val_accuracy"])
    for (name, rate), values in sorted(means.items()):
        lines.append(f"| {name} | {rate:g} | {sum(values) / len(values):.1%} |")
    return "\n".join(lines) + "\n"


def reusable_runs(path: str | None, setup: dict, key: str = "optimizer") -> dict:
    """The runs of an earlier record at ``path`` made with the same ``setup`` (its grid aside), by
    (optimiser or the run field ``key``, rate, seed); ``{}`` when ``path`` is None. Each training is seeded, so the same
    setup retrains to the same result: a grid can be widened without training its old points again.
    Raises ``ValueError`` naming the first setting that differs."""
    if path is None:
        return {}
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        earlier = record["setup"]
        runs = record["runs"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"--reuse {path}: not a record of this benchmark ({type(err).__name__}: {err})") from None
    for name in sorted(set(setup) | set(earlier)):
        if name != "grid" and setup.get(name) != earlier.get(name):
            raise ValueError(f"--reuse {path}: its {name} is {earlier.get(name)!r}, this run's {setup.get(name)!r}; "
                             "only runs of the same setup can be reused")
    try:
        return {(run[key], float(run["learning_rate"]), run["seed"]): run for run in runs}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"--reuse {path}: a run lacks {key!r}, 'learning_rate' or 'seed' "
                         f"({type(err).__name__}: {err})") from None


def run_grid(grid: dict, seeds, train_one, setup: dict, out: Path, reuse_from: str | None = None,
             key: str = "optimizer") -> dict:
    """Train every (seed, optimiser, rate) of ``grid``, choose the rates, write the record to ``out``.

    ``grid`` maps a name (an optimiser; or any setting, stored in each run under ``key``) to
    its learning rates. ``train_one(name, rate, seed)`` builds and trains one network on a fresh Keras
    session and returns its history (``cnnkit.experiments.fit``'s dict) and test accuracy.
    Each run keeps its last validation accuracy (the choice), its test accuracy (the
    report), the validation curve, the last training loss and its seconds. A point found in
    the record ``reuse_from`` (:func:`reusable_runs`; a record of another setup stops the run
    with the reason, before any training) is taken from there, marked ``"reused": true``.
    Returns the record: ``setup``, ``chosen`` (:func:`choose`), ``runs``, ``markdown``, the
    CPU, timing.
    """
    import keras

    try:
        reuse = reusable_runs(reuse_from, setup, key)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    runs, started = [], time.perf_counter()
    total = sum(len(rates) for rates in grid.values()) * len(seeds)
    for seed in seeds:
        for name, rates in grid.items():
            for rate in rates:
                earlier = reuse.get((name, float(rate), seed))
                if earlier is not None:
                    runs.append({**earlier, "reused": True})
                    continue
                keras.backend.clear_session()
                history, test_accuracy = train_one(name, rate, seed)
                runs.append({key: name, "learning_rate": rate, "seed": seed,
                             "val_accuracy": history["val_accuracy"][-1], "test_accuracy": float(test_accuracy),
                             "val_curve": [round(v, 4) for v in history["val_accuracy"]],
                             "train_loss": history["loss"][-1],
                             "loss_curve": [round(v, 4) for v in history["loss"]],
                             "seconds": round(history["seconds"], 1)})
                print(f"[{len(runs)}/{total}] seed {seed} {name} {rate:g}: validation "
                      f"{runs[-1]['val_accuracy']:.1%}, test {test_accuracy:.1%} ({history['seconds']:.0f} s)", flush=True)
    chosen = choose(runs, key)
    table = markdown(chosen, runs, key)
    print(table)
    return write_record(out, {"setup": setup, "chosen": chosen, "runs": runs, "markdown": table}, started)


def recorded_run(history: dict, **fields) -> dict:
    """One training as a record keeps it: ``fields`` (what ran: a network, a seed, scores), its ``seconds``
    (to 0.1 s) and its ``history``, one list per metric of ``cnnkit.experiments.train``, each value to 5 decimals."""
    curves = {name: [round(float(v), 5) for v in values] for name, values in history.items() if name != "seconds"}
    return {**fields, "seconds": round(history["seconds"], 1), "history": curves}


def write_record(out, record: dict, started: float) -> dict:
    """Complete a benchmark's ``record`` with the machine (CPU model and count), the seconds since
    ``started`` (a ``time.perf_counter()`` reading) and the time it finished, write it to ``out``
    as JSON in one step (nothing half-written on failure) and return it."""
    from cnnkit.env import cpu_model
    from cnnkit.files import write_atomic

    record = {**record, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
              "seconds": round(time.perf_counter() - started, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_atomic(Path(out), json.dumps(record, indent=2))
    print(f"wrote {out}")
    return record


def lesson_draw(dataset: str, data_dir, n_train: int, n_val: int, n_test: int | None = None):
    """Lessons 03 and 04's draw of CIFAR-10 (or the offline set): ``(x_tr, y_tr), (x_val, y_val), (x_test, y_test)``.

    10% of the training split held out (seed 0), then a stratified ``n_train`` of the rest and
    ``n_val`` of the held-out part (seed 0); the test split whole, or a stratified ``n_test``.
    All uint8 arrays; the full dataset is let go.
    """
    from cnnkit.data import load_dataset, stratified_subset, train_val_split

    data = load_dataset(dataset, data_dir, download=False)
    (x_train, y_train), (x_val, y_val) = train_val_split(data.x_train, data.y_train, val_fraction=0.1, seed=0)
    x_tr, y_tr = stratified_subset(x_train, y_train, min(n_train, len(y_train)), seed=0)
    x_va, y_va = stratified_subset(x_val, y_val, min(n_val, len(y_val)), seed=0)
    x_test, y_test = data.x_test, data.y_test
    if n_test is not None:
        x_test, y_test = stratified_subset(x_test, y_test, n_test, seed=0)
    return (x_tr, y_tr), (x_va, y_va), (x_test, y_test)


def lesson08_data(dataset: str, data_dir, n_train: int, n_test: int | None = None):
    """Lesson 08's draw of CIFAR-10 (or the offline set): ``(x_tr, y_tr), (x_val, y_val), (test_ds, y_test)``.

    A pool of 6,000 training images, 1/6 of it held out for validation, ``n_train`` of the rest
    trained on (uint8 arrays); the test split (all of it, or a stratified ``n_test``) as a
    ``tf.data`` pipeline scaled by 1/255, batches of 512.
    """
    from cnnkit.data import load_dataset, stratified_subset, train_val_split
    from cnnkit.pipeline import make_dataset

    data = load_dataset(dataset, data_dir, download=False)
    x_pool, y_pool = stratified_subset(data.x_train, data.y_train, min(6000, len(data.y_train)), seed=3)
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x_pool, y_pool, val_fraction=1 / 6, seed=0)
    x_tr, y_tr = stratified_subset(x_tr, y_tr, min(n_train, len(y_tr)), seed=0)
    x_test, y_test = data.x_test, data.y_test
    if n_test is not None:
        x_test, y_test = stratified_subset(x_test, y_test, n_test, seed=0)
    return (x_tr, y_tr), (x_val, y_val), (make_dataset(x_test, y_test, 512, preprocess="scale"), y_test)


def start(doc: str, argv=None, *, fast_help: str, reuse: bool = True, flags=None) -> argparse.Namespace:
    """The common start of the benchmarks that train on CIFAR-10 for a lesson: parse their shared options
    (``--data-dir``, ``--dataset``, ``--fast``, ``--json`` and, with ``reuse``, ``--reuse``) and the
    script's own on/off ``flags`` (``{"--name": help}``), then seed everything and start TensorFlow
    (``cnnkit.env.setup``). ``doc``: the script's docstring, whose first paragraph describes it in ``--help``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py (default: $CNNKIT_DATA_DIR)")
    parser.add_argument("--dataset", choices=("cifar10", "offline"), default="cifar10")
    parser.add_argument("--fast", action="store_true", help=fast_help)
    parser.add_argument("--json", required=True, help="where to write the record")
    if reuse:
        parser.add_argument("--reuse", default=None,
                            help="an earlier record of the same setup: its runs are not trained again")
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args(argv)

    from cnnkit.env import import_tensorflow, setup

    setup(seed=0)
    import_tensorflow()
    return args


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 1 epoch, a smaller grid")
    from cnnkit import experiments

    epochs, n_train, grid, seeds = EPOCHS, N_TRAIN, GRID, SEEDS
    if args.fast:
        epochs, n_train, grid, seeds = FAST["epochs"], FAST["n_train"], FAST["grid"], FAST["seeds"]
    (x_tr, y_tr), (x_val, y_val), (test_ds, y_test) = lesson08_data(args.dataset, args.data_dir, n_train,
                                                                    FAST["n_test"] if args.fast else None)

    def train_one(optimizer, rate, seed):
        model = experiments.small_cnn(seed=seed)
        history = experiments.train(model, (x_tr, y_tr), (x_val, y_val), epochs=epochs, batch_size=BATCH,
                                    optimizer=optimizer, learning_rate=rate, seed=seed)
        _, test_accuracy = model.evaluate(test_ds, verbose=0)
        return history, test_accuracy

    setup_record = {"network": "cnnkit.experiments.small_cnn()", "n_train": len(y_tr), "n_val": len(y_val),
                    "n_test": len(y_test), "epochs": epochs, "batch_size": BATCH, "seeds": list(seeds),
                    "grid": {k: list(v) for k, v in grid.items()}, "chosen_by": "mean validation accuracy",
                    "dataset": args.dataset, "fast": args.fast}
    run_grid(grid, seeds, train_one, setup_record, Path(args.json), reuse_from=args.reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
