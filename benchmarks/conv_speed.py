"""How fast is ``cnnkit.conv.conv2d`` next to ``tf.nn.conv2d`` on the CPU?

Run by hand (not in CI)::

    python benchmarks/conv_speed.py              # the whole suite, default threading
    python benchmarks/conv_speed.py --threads 1  # both sides on one thread
    python benchmarks/conv_speed.py --repeats 30 --json out.json

For each shape the two functions get the same float32 arrays (TensorFlow gets
its tensors ready-made, so conversion is not counted against it); each is timed
``--repeats`` times, alternating, and the best time of each is kept (the
minimum is the least disturbed by other programs on a shared machine). The
table gives the ratio cnnkit / TensorFlow per shape and the geometric mean of
the ratios. Targets: geometric mean <= 1.25, no shape above 2.0. The loop
version ``conv2d_naive`` is timed once on a small case, to show what the
vectorisation buys.

``--threads N`` limits both sides to N threads (OpenBLAS / MKL / OpenMP through
their environment variables, set before numpy is imported, and TensorFlow's
intra-op pool). On a machine shared with other work, multi-threaded BLAS
calls can stall while a helper thread waits for a core, so a one-thread
comparison is the steadier of the two.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

np = None  # imported in main(), after the thread limits are in place
conv2d = conv2d_naive = None

TARGET_GEOMEAN = 1.25
TARGET_WORST = 2.0

# name, x shape (NHWC), w shape (HWIO), stride, padding
SUITE = [
    ("CIFAR batch, first layer", (128, 32, 32, 3), (3, 3, 3, 32), 1, "same"),
    ("CIFAR batch, second block", (128, 16, 16, 32), (3, 3, 32, 64), 1, "same"),
    ("CIFAR batch, 5x5 valid", (128, 32, 32, 3), (5, 5, 3, 16), 1, "valid"),
    ("stride 2, 64 channels", (64, 32, 32, 64), (3, 3, 64, 64), 2, "same"),
    ("wide channels 256->256", (32, 8, 8, 256), (3, 3, 256, 256), 1, "same"),
    ("1x1 bottleneck 128->64", (64, 16, 16, 128), (1, 1, 128, 64), 1, "valid"),
    ("large photograph 300x451", (1, 300, 451, 3), (5, 5, 3, 16), 1, "same"),
]
NAIVE_CASE = ("small: 1x16x16x3, 3x3x3x8", (1, 16, 16, 3), (3, 3, 3, 8), 1, "same")


def photograph() -> np.ndarray:
    """The photograph the lessons use (cnnkit.photos.chelsea, 300x451x3), as float32 in [0, 1], batch of one."""
    from cnnkit.photos import chelsea

    return chelsea()[None].astype(np.float32) / 255.0


def best_times(functions, repeats: int) -> list[float]:
    """Run each function once to warm up, then ``repeats`` rounds alternating them; return each one's best time."""
    for fn in functions:
        fn()
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def run(repeats: int = 15, seed: int = 0, threads: int | None = None) -> dict:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    rng = np.random.default_rng(seed)
    rows = []
    for name, x_shape, w_shape, stride, padding in SUITE:
        x = photograph() if "photograph" in name else rng.standard_normal(x_shape, dtype=np.float32)
        w = (rng.standard_normal(w_shape, dtype=np.float32) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
        xt, wt = tf.constant(x), tf.constant(w)
        ours = conv2d(x, w, stride=stride, padding=padding)
        theirs = tf.nn.conv2d(xt, wt, stride, padding.upper()).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4, err_msg=name)
        t_ours, t_tf = best_times(
            [lambda: conv2d(x, w, stride=stride, padding=padding),
             lambda: tf.nn.conv2d(xt, wt, stride, padding.upper()).numpy()], repeats)
        rows.append({"name": name, "x": x_shape, "w": w_shape, "stride": stride, "padding": padding,
                     "cnnkit_ms": 1e3 * t_ours, "tf_ms": 1e3 * t_tf, "ratio": t_ours / t_tf})
        r = rows[-1]
        print(f"{name:28s} {str(x_shape):18s} {str(w_shape):16s} s={stride} {padding:5s} "
              f"cnnkit {r['cnnkit_ms']:8.2f} ms  tf {r['tf_ms']:8.2f} ms  ratio {r['ratio']:5.2f}", flush=True)
    ratios = np.array([r["ratio"] for r in rows])
    geomean = float(np.exp(np.log(ratios).mean()))
    worst = rows[int(ratios.argmax())]

    name, x_shape, w_shape, stride, padding = NAIVE_CASE
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    np.testing.assert_allclose(conv2d_naive(x, w, stride=stride, padding=padding),
                               conv2d(x, w, stride=stride, padding=padding), rtol=1e-4, atol=1e-4)
    t_naive, t_fast = best_times([lambda: conv2d_naive(x, w, stride=stride, padding=padding),
                                  lambda: conv2d(x, w, stride=stride, padding=padding)], 3)
    naive = {"name": name, "naive_ms": 1e3 * t_naive, "conv2d_ms": 1e3 * t_fast, "slowdown": t_naive / t_fast}

    print(f"\ngeometric mean ratio {geomean:.2f} (target <= {TARGET_GEOMEAN}); "
          f"worst {worst['ratio']:.2f} on '{worst['name']}' (target <= {TARGET_WORST})")
    print(f"targets met: {geomean <= TARGET_GEOMEAN and worst['ratio'] <= TARGET_WORST}")
    print(f"loop version on {name}: {naive['naive_ms']:.0f} ms, vectorised {naive['conv2d_ms']:.3f} ms "
          f"({naive['slowdown']:.0f}x slower)")
    return {"rows": rows, "geomean": geomean, "worst": worst["ratio"], "naive": naive,
            "threads": threads or "default",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "numpy": np.__version__, "tensorflow": tf.__version__,
                        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per shape (best kept)")
    parser.add_argument("--threads", type=int, help="limit BLAS and TensorFlow to this many threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        for name in THREAD_VARIABLES:
            os.environ[name] = str(args.threads)
    global np, conv2d, conv2d_naive
    import numpy as np

    from cnnkit.conv import conv2d, conv2d_naive

    threads = f"{args.threads} thread(s)" if args.threads else "default threading"
    if hasattr(os, "getloadavg"):
        print(f"{os.cpu_count()} CPUs, {threads}, load average {os.getloadavg()[0]:.2f} at start "
              "(other programs on the machine slow both sides unevenly)")
    results = run(args.repeats, threads=args.threads)
    if args.json:
        from cnnkit.files import write_atomic

        write_atomic(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
