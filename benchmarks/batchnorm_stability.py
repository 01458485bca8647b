"""Lesson 04's stability grids: with and without batch norm, three learning rates and three initial scales.

Lesson 04 tests two promises of batch norm where a plain network stops training: that it lets a
network train at higher learning rates, and that it makes the network depend less on the size of
its initial weights. The network is ``cnnkit.experiments.small_cnn`` (8, 16 and 32 channels,
He-normal kernels, moving statistics with momentum 0.9), with or without batch norm after each
convolution; it trains for 2 epochs on 2,000 of the lesson's training images (z-scored with the
statistics of its 10,000) in batches of 64, SGD with momentum 0.9, and is validated on 1,000 of
its validation images. Two grids, three seeds per cell:

* **learning rate** 0.03, 0.3 and 1, kernels as initialised;
* **initial scale**: every kernel multiplied by 0.1 or 10 after initialisation
  (``cnnkit.experiments.scale_initial_weights``), at rate 0.03 (scale 1 is the first grid's run
  at that rate).

Thirty trainings take one to two minutes on two cores; the lesson reads this record and trains
one of them again (batch norm at rate 0.3, seed 0), checking that it agrees::

    python benchmarks/batchnorm_stability.py --data-dir /work/cifar --json cnnkit/results/batchnorm_stability.json
    python benchmarks/batchnorm_stability.py --dataset offline --fast --json /tmp/stability.json   # smoke run
"""
from __future__ import annotations

import sys
import time

# benchmarks/ is on sys.path (the script's own folder): the options and the start are shared
from optimizer_rates import lesson_draw, recorded_run, start, write_record

WIDTHS, NORMS = (8, 16, 32), {"no BN": False, "BN": True}
RATES, SCALES, RATE_FOR_SCALES = (0.03, 0.3, 1.0), (0.1, 10.0), 0.03
SEEDS, EPOCHS, BATCH = (0, 1, 2), 2, 64
N_POOL, N_VAL, N_GRID, N_GRID_VAL = 10000, 2000, 2000, 1000
FAST = dict(n_pool=600, n_val=300, n_grid=200, n_grid_val=100, seeds=(0,), epochs=1)


def grid_model(batch_norm: bool, seed: int, scale: float = 1.0):
    """small_cnn with He-normal kernels, each multiplied by ``scale``; batch norm after every convolution or none."""
    from cnnkit.experiments import scale_initial_weights, small_cnn

    model = small_cnn(widths=WIDTHS, batch_norm=batch_norm, bn_momentum=0.9, kernel_initializer="he_normal", seed=seed)
    return scale_initial_weights(model, scale)


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 1 epoch, one seed", reuse=False)
    from cnnkit.data import stratified_subset
    from cnnkit.experiments import compare_seeds
    from cnnkit.normalization import StandardScaler

    n_pool, n_val, n_grid, n_grid_val, seeds, epochs = N_POOL, N_VAL, N_GRID, N_GRID_VAL, SEEDS, EPOCHS
    if args.fast:
        n_pool, n_val, n_grid, n_grid_val, seeds, epochs = (FAST[k] for k in ("n_pool", "n_val", "n_grid",
                                                                              "n_grid_val", "seeds", "epochs"))
    # lesson 04's draw: 10,000 + 2,000 images, the z-score fitted on the 10,000, the grids on subsets of both
    (x_pool, y_pool), (x_va, y_va), _ = lesson_draw(args.dataset, args.data_dir, n_pool, n_val, n_test=10)
    zscore = StandardScaler().fit(x_pool).batch_fn()
    train = stratified_subset(x_pool, y_pool, n_grid, seed=2)
    val = stratified_subset(x_va, y_va, n_grid_val, seed=2)
    del x_pool, y_pool
    fit = dict(seeds=seeds, epochs=epochs, batch_size=BATCH, optimizer="momentum", preprocess=zscore)
    started, runs = time.perf_counter(), []
    grids = {"learning rate": {(name, lr, 1.0): (lambda seed, bn=bn: grid_model(bn, seed))
                               for name, bn in NORMS.items() for lr in RATES},
             "initial scale": {(name, RATE_FOR_SCALES, s): (lambda seed, bn=bn, s=s: grid_model(bn, seed, s))
                               for name, bn in NORMS.items() for s in SCALES}}
    for grid, builders in grids.items():
        trained = compare_seeds(builders, train, val, learning_rate=RATE_FOR_SCALES,
                                per_model={key: {"learning_rate": key[1]} for key in builders}, **fit)
        for (name, lr, scale), histories in trained.items():
            for seed, history in zip(seeds, histories):
                runs.append(recorded_run(history, grid=grid, network=name, learning_rate=lr, init_scale=scale,
                                         seed=seed))
                print(f"{name} rate {lr:g} scale {scale:g} seed {seed}: validation {history['val_accuracy'][-1]:.1%} "
                      f"({history['seconds']:.1f} s)", flush=True)
    record = {"setup": {"widths": list(WIDTHS), "networks": NORMS, "rates": list(RATES),
                        "init_scales": sorted({1.0, *SCALES}), "rate_for_scales": RATE_FOR_SCALES,
                        "n_train": len(train[1]), "n_val": len(val[1]), "epochs": epochs, "batch_size": BATCH,
                        "optimizer": "momentum", "seeds": list(seeds), "dataset": args.dataset, "fast": args.fast},
              "runs": runs}
    write_record(args.json, record, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
