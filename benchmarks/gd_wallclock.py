"""Batch, mini-batch and stochastic gradient descent against the clock: which lowers the loss first?

Lesson 08 (section 3.5) compares the three variants per epoch of data, where a step on one example
costs as much as a step on all of them. On a processor it does not: 3.5.1 measures a step of the
small CNN at a few milliseconds whatever its size up to a few dozen images. This benchmark trains
lesson 08's network (``cnnkit.experiments.small_cnn``) on 2,000 of lesson 08's training images with
plain SGD at a constant rate, with batches of 1 (SGD), 32 (mini-batch) and all 2,000 (batch GD),
for the same ``BUDGET`` seconds each, through the kit's pipeline and fit loop (one endless stream,
no validation, nothing else in the loop). At fixed moments of training time the weights are copied
(the clock stops meanwhile); afterwards each copy's loss on all 2,000 training images, the
empirical risk that every variant descends, is computed. The clock starts after the first step,
which also compiles it. Each variant's rate is the one of its grid with the lowest mean loss at the
end of the budget, three seeds each::

    python benchmarks/gd_wallclock.py --data-dir /work/cifar --json cnnkit/results/gd_wallclock.json
    python benchmarks/gd_wallclock.py --dataset offline --fast --json /tmp/gd.json   # smoke run

The times depend on the machine: run it alone, and compare only runs from the same one.
"""
from __future__ import annotations

import math
import sys
import time

# benchmarks/ is on sys.path (the script's own folder): the options, the start and lesson 08's draw are shared
from optimizer_rates import lesson08_data, reusable_runs, start, write_record

N_TRAIN, BUDGET = 2000, 30.0
# variant -> (batch size, constant learning rates of plain SGD); None: every training image
GRID = {"SGD (b = 1)": (1, (0.003, 0.01, 0.03, 0.1)), "mini-batch (b = 32)": (32, (0.1, 0.3, 1.0)),
        "batch GD (b = n)": (None, (0.3, 1.0, 3.0))}
SEEDS = (0, 1, 2)
FAST = dict(n_train=256, budget=3.0, seeds=(0, 1),
            grid={"SGD (b = 1)": (1, (0.003,)), "mini-batch (b = 32)": (32, (0.1,)), "batch GD (b = n)": (None, (0.3,))})


def snapshot_times(budget: float) -> list[float]:
    """Seconds of training at which the weights are copied: 0.25, 0.5, then every second up to ``budget``."""
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget >= 1):
        raise ValueError(f"budget must be a number of seconds, at least 1, got {budget!r}")
    return [0.25, 0.5] + [float(s) for s in range(1, int(budget) + 1)]


def seconds_to(curve: list[list[float]], target: float) -> float | None:
    """The first time (seconds) in ``curve`` (``[[seconds, loss], ...]``, in time order) at which the
    loss is at most ``target``; ``None`` if it never is."""
    return next((seconds for seconds, loss in curve if loss <= target), None)


def choose(runs: list[dict]) -> dict[str, dict]:
    """Per variant, the rate with the lowest mean final loss over its seeds (a loss that is not a
    number counts as infinite; ties go to the smaller rate), with its runs' final losses, steps and
    epochs in seed order."""
    from cnnkit.records import by_rate

    curves, steps, epochs = (by_rate({"runs": runs}, field, key="variant") for field in ("curve", "steps", "epochs"))

    def mean(values):
        return sum(values) / len(values) if all(math.isfinite(v) for v in values) else math.inf

    chosen = {}
    for variant, by_rate_curves in curves.items():
        finals = {rate: [curve[-1][1] for curve in seeds] for rate, seeds in by_rate_curves.items()}
        best = min(finals, key=lambda rate: (mean(finals[rate]), rate))
        chosen[variant] = {"learning_rate": best, "final": finals[best], "final_mean": mean(finals[best]),
                           "steps": steps[variant][best], "epochs": epochs[variant][best],
                           "at_grid_edge": best in (min(finals), max(finals))}
    return chosen


def reach(chosen: dict[str, dict], runs: list[dict]) -> dict[str, dict]:
    """For each variant's mean final loss (at its chosen rate) as a target: the seconds every variant's
    chosen runs took to reach it (:func:`seconds_to`, one per seed; ``None``: not within the budget)."""
    from cnnkit.records import by_rate

    curves = by_rate({"runs": runs}, "curve", key="variant")
    return {target: {"loss": c["final_mean"], "seconds": {
        variant: [seconds_to(curve, c["final_mean"]) for curve in curves[variant][other["learning_rate"]]]
        for variant, other in chosen.items()}} for target, c in chosen.items()}


def markdown(chosen: dict[str, dict], budget: float) -> str:
    """The chosen rates' losses after ``budget`` seconds, steps and epochs, mean [lowest, highest]."""
    def cell(values, fmt):
        return f"{sum(values) / len(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"

    lines = [f"| variant | rate | training loss after {budget:g} s | steps | epochs of data |", "|---|---|---|---|---|"]
    for variant, c in chosen.items():
        edge = " (grid edge)" if c["at_grid_edge"] else ""
        lines.append(f"| {variant} | {c['learning_rate']:g}{edge} | {cell(c['final'], '.3f')} | "
                     f"{cell(c['steps'], ',.0f')} | {cell(c['epochs'], '.1f')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 3 seconds, one rate each")
    import keras

    from cnnkit import experiments
    from cnnkit.pipeline import batches, make_dataset

    n_train, budget, grid, seeds = N_TRAIN, BUDGET, GRID, SEEDS
    if args.fast:
        n_train, budget, grid, seeds = FAST["n_train"], FAST["budget"], FAST["grid"], FAST["seeds"]
    (x_tr, y_tr), _, _ = lesson08_data(args.dataset, args.data_dir, n_train, n_test=100)
    n = len(y_tr)
    loss_ds = make_dataset(x_tr, y_tr, 500)
    moments = snapshot_times(budget)
    setup = {"network": "cnnkit.experiments.small_cnn()", "optimizer": "SGD, constant rate", "n_train": n,
             "budget_seconds": budget, "snapshots": moments,
             "grid": {k: {"batch_size": n if s is None else s, "rates": list(r)} for k, (s, r) in grid.items()},
             "seeds": list(seeds), "chosen_by": "lowest mean training loss at the end of the budget",
             "dataset": args.dataset, "fast": args.fast}
    try:
        reuse = reusable_runs(args.reuse, setup, key="variant")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None

    class Clock(keras.callbacks.Callback):
        """Copies the weights at each of ``moments`` seconds of training and stops at the last one.
        The clock starts after the first step (which compiles it) and stops while the weights are copied."""

        def on_train_begin(self, logs=None):
            self.copies, self.started, self.steps = [(0.0, 0, self.model.get_weights())], None, 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            now = time.perf_counter()
            if self.started is None:
                self.started = now
                return
            elapsed = now - self.started
            if elapsed >= moments[len(self.copies) - 1]:
                self.copies.append((elapsed, self.steps, self.model.get_weights()))
                self.started += time.perf_counter() - now  # the copy is not training time
                if len(self.copies) > len(moments):
                    self.model.stop_training = True

    runs, started = [], time.perf_counter()
    total = sum(len(rates) for _, rates in grid.values()) * len(seeds)
    for seed in seeds:
        for variant, (size, rates) in grid.items():
            b = n if size is None else size
            for rate in rates:
                earlier = reuse.get((variant, float(rate), seed))
                if earlier is not None:  # the times come from the earlier run's machine state
                    runs.append({**earlier, "reused": True})
                    continue
                keras.backend.clear_session()
                keras.utils.set_random_seed(seed)
                model = experiments.small_cnn(seed=seed)
                experiments.compile_for_training(model, optimizer=experiments.named_optimizer("sgd", rate),
                                                 loss="sparse_categorical_crossentropy")
                stream = batches(x_tr, y_tr, batch_size=b, preprocess="scale", shuffle=True, seed=seed, repeat=True)
                clock = Clock()
                experiments.fit(model, stream, None, epochs=1, steps_per_epoch=10**9, callbacks=[clock])
                curve = []
                for seconds, _, weights in clock.copies:
                    model.set_weights(weights)
                    curve.append([round(seconds, 3), float(model.evaluate(loss_ds, verbose=0))])
                steps = clock.copies[-1][1]
                runs.append({"variant": variant, "batch_size": b, "learning_rate": rate, "seed": seed,
                             "steps": steps, "epochs": round(steps * b / n, 2),
                             "ms_per_step": round(1e3 * clock.copies[-1][0] / max(steps - 1, 1), 3),
                             "curve": [[s, round(v, 5) if math.isfinite(v) else v] for s, v in curve]})
                print(f"[{len(runs)}/{total}] seed {seed} {variant} {rate:g}: loss {curve[-1][1]:.4f} after "
                      f"{steps} steps ({runs[-1]['ms_per_step']:.2f} ms each)", flush=True)
                del model, clock
    chosen = choose(runs)
    table = markdown(chosen, budget)
    print(table)
    write_record(args.json, {"setup": setup, "chosen": chosen, "reach": reach(chosen, runs), "runs": runs,
                             "markdown": table}, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
