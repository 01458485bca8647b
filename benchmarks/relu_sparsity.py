"""Do ReLU's zeros save time? A dense layer's product with a kernel that skips zeros, against the dense one.

A dense kernel multiplies a zero like any other number, so the zeros that ReLU leaves in its
outputs save nothing there. A sparse kernel stores only the non-zero entries and skips the
rest; whether that pays depends on how many zeros there are. This benchmark times one fully
connected layer's product ``h @ W``, h (``BATCH``, ``UNITS``) ReLU outputs with a given fraction
of zeros and W (``UNITS``, ``UNITS``) float32, two ways in TensorFlow:

* ``tf.matmul`` on the dense h (every entry multiplied);
* ``tf.sparse.sparse_dense_matmul`` on h stored as a ``tf.SparseTensor`` (only the non-zero
  entries), timed without and with the conversion ``tf.sparse.from_dense``, which a network
  would pay in every step.

The activations are ReLU(z - t) for z ~ N(0, 1), the threshold t set so that the wanted fraction
of entries is zero (t = 0 gives plain ReLU's half). The three products take turns, round after
round, so that the machine's drift cancels in their ratios; each round gives the median time of
``REPEATS`` calls, and the record keeps the median over rounds and the range of the ratios::

    python benchmarks/relu_sparsity.py --json cnnkit/results/relu_sparsity.json
    python benchmarks/relu_sparsity.py --fast --json /tmp/sparsity.json   # a smoke run
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

# benchmarks/ is on sys.path (the script's own folder): the record is written as the others are
from optimizer_rates import write_record

FRACTIONS = (0.0, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995)
BATCH, UNITS, ROUNDS, REPEATS = 256, 1024, 7, 9
FAST = dict(fractions=(0.5, 0.99), batch=32, units=64, rounds=2, repeats=3)


def relu_outputs(fraction: float, shape, seed: int = 0) -> np.ndarray:
    """ReLU(z - t), z ~ N(0, 1) of ``shape`` (float32), with t chosen so that ``fraction`` of the entries are 0."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction of zeros must be in [0, 1), got {fraction!r}")
    z = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    if fraction == 0.0:
        return np.abs(z) + np.float32(1e-3)  # no zeros at all: the dense reference
    threshold = np.quantile(z, fraction)
    return np.maximum(z - threshold, 0.0).astype(np.float32)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()  # .numpy() waits for the result
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure(fractions=FRACTIONS, *, batch: int = BATCH, units: int = UNITS, rounds: int = ROUNDS,
            repeats: int = REPEATS) -> list[dict]:
    """One entry per fraction of zeros: the three products' median ms and each sparse way's ratio to dense."""
    import tensorflow as tf

    w = tf.constant(np.random.default_rng(1).normal(scale=units ** -0.5, size=(units, units)).astype(np.float32))
    cases = []
    for fraction in fractions:
        h = relu_outputs(fraction, (batch, units))
        dense_h = tf.constant(h)
        sparse_h = tf.sparse.from_dense(dense_h)
        np.testing.assert_allclose(tf.sparse.sparse_dense_matmul(sparse_h, w).numpy(), (dense_h @ w).numpy(),
                                   rtol=1e-4, atol=1e-4)  # the same product, two kernels
        cases.append({"fraction": fraction, "measured_zeros": float(np.mean(h == 0)), "ways": {
            "dense": lambda h=dense_h: tf.matmul(h, w),
            "sparse": lambda s=sparse_h: tf.sparse.sparse_dense_matmul(s, w),
            "sparse with conversion": lambda h=dense_h: tf.sparse.sparse_dense_matmul(tf.sparse.from_dense(h), w)}})
    times = [{name: [] for name in case["ways"]} for case in cases]
    for _ in range(rounds):
        for case, kept in zip(cases, times):
            for name, fn in case["ways"].items():
                kept[name].append(_median_ms(fn, repeats))
    results = []
    for case, kept in zip(cases, times):
        entry = {"fraction_zeros": case["fraction"], "measured_zeros": round(case["measured_zeros"], 4)}
        for name, values in kept.items():
            entry[f"{name} ms"] = round(float(np.median(values)), 4)
        for name in ("sparse", "sparse with conversion"):
            ratios = np.asarray(kept[name]) / np.asarray(kept["dense"])
            entry[f"{name} / dense"] = {"median": round(float(np.median(ratios)), 3),
                                        "min": round(float(ratios.min()), 3), "max": round(float(ratios.max()), 3)}
        results.append(entry)
    return results


def break_even(results: list[dict], way: str = "sparse") -> float | None:
    """The smallest fraction of zeros from which on the sparse way's median ratio stays below 1 (None: never)."""
    found = None
    for entry in reversed(results):
        if entry[f"{way} / dense"]["median"] >= 1.0:
            break
        found = entry["fraction_zeros"]
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="a smoke run: small matrices, two fractions, two rounds")
    parser.add_argument("--json", required=True, help="where to write the record")
    args = parser.parse_args(argv)
    from cnnkit.env import import_tensorflow

    import_tensorflow()
    settings = dict(fractions=FRACTIONS, batch=BATCH, units=UNITS, rounds=ROUNDS, repeats=REPEATS)
    if args.fast:
        settings = FAST
    started = time.perf_counter()
    results = measure(**settings)
    for entry in results:
        print(f"{entry['fraction_zeros']:6.1%} zeros: dense {entry['dense ms']:.3f} ms, sparse "
              f"{entry['sparse ms']:.3f} ms ({entry['sparse / dense']['median']:.2f}x), with conversion "
              f"{entry['sparse with conversion ms']:.3f} ms ({entry['sparse with conversion / dense']['median']:.2f}x)")
    record = {"setup": {"product": "h @ W", "h": [settings["batch"], settings["units"]],
                        "W": [settings["units"], settings["units"]], "dtype": "float32", "rounds": settings["rounds"],
                        "repeats": settings["repeats"], "fast": args.fast},
              "results": results, "break_even": {way: break_even(results, way)
                                                 for way in ("sparse", "sparse with conversion")}}
    print(f"break-even fraction of zeros: {record['break_even']}")
    write_record(args.json, record, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
