"""Does a layer fed by ReLU's non-negative outputs train more slowly than one fed centred outputs?

Lesson 01 shows why it might: a unit whose inputs h_i are all >= 0 gets the weight gradients
``delta * h_i``, all of one sign, so its weights can only move up together or down together in a
step. This benchmark measures what that costs. Two networks differ only in that: a multilayer
perceptron on CIFAR-10's pixels (z-scores per channel, so the first layer's inputs are centred in
both), ``DEPTH`` hidden layers of ``WIDTH`` units, He-normal weights drawn with the same seeds in
both. In ``"relu"`` each hidden layer passes on ReLU(z) >= 0; in ``"centred relu"`` it passes on
ReLU(z) - c, where c is each unit's mean output on 1,000 training images at initialisation, fixed
from then on (a non-trainable shift, set layer by layer). The shift changes no function the
network can compute (the next layer's bias can absorb it), only the geometry that plain SGD, with
no momentum and no batch norm to hide the effect, has to descend.

Each setting gets a grid of learning rates, three seeds per rate, on lesson 03's draw of images
(8,000 training, 2,000 validation); the rate is **chosen** on mean validation accuracy and the
chosen runs are **reported** on the 10,000 test images (``optimizer_rates.run_grid``). Every run
keeps its training-loss curve, the measure of how fast it converges::

    python benchmarks/centred_activations.py --data-dir /work/cifar --json cnnkit/results/centred_activations.json
    python benchmarks/centred_activations.py --dataset offline --fast --json /tmp/centred.json   # smoke run
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# benchmarks/ is on sys.path (the script's own folder): the grid, the choice and the record are shared
from optimizer_rates import lesson_draw, run_grid, start

SETTINGS = ("relu", "centred relu")
RATES = (0.003, 0.01, 0.03, 0.1, 0.3)
SEEDS = (0, 1, 2)
EPOCHS, BATCH, N_TRAIN, N_VAL, DEPTH, WIDTH, N_CALIBRATE = 10, 128, 8000, 2000, 4, 256, 1000
FAST = dict(epochs=1, n_train=300, n_val=200, n_test=300, rates=(0.01, 0.03), seeds=(0,), depth=2, width=32)


def mlp(setting: str, calibration, *, depth: int, width: int, seed: int):
    """The benchmark's network: Flatten -> [Dense(width) -> ReLU (-> minus c)] x depth -> Dense(10, softmax).

    ``calibration``: (N, 32, 32, 3) float32 inputs, already normalised, on which each hidden unit's
    mean output c is measured (``"centred relu"`` only), layer by layer as the network is built.
    The kernels are drawn from seeds derived from ``seed`` and the layer's index, so both settings
    start from the same weights.
    """
    import keras
    from keras import layers

    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=calibration.shape[1:]), layers.Flatten()], name=setting.replace(" ", "_"))
    for i in range(depth):
        model.add(layers.Dense(width, kernel_initializer=keras.initializers.HeNormal(seed=1000 * seed + i)))
        model.add(layers.ReLU())
        if setting == "centred relu":
            # a direct call: model.predict would reuse the function it traced before this layer was added
            mean = np.asarray(model(calibration, training=False)).mean(axis=0)
            model.add(layers.Normalization(mean=mean, variance=np.ones_like(mean)))  # subtracts c, fixed
    model.add(layers.Dense(10, activation="softmax",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=1000 * seed + depth)))
    return model


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, 1 epoch, a smaller network and grid")
    from cnnkit import experiments
    from cnnkit.normalization import StandardScaler
    from cnnkit.pipeline import make_dataset

    epochs, n_train, n_val, rates, seeds, depth, width = EPOCHS, N_TRAIN, N_VAL, RATES, SEEDS, DEPTH, WIDTH
    if args.fast:
        epochs, n_train, n_val, rates, seeds, depth, width = (FAST[k] for k in (
            "epochs", "n_train", "n_val", "rates", "seeds", "depth", "width"))
    (x_tr, y_tr), (x_va, y_va), (x_test, y_test) = lesson_draw(args.dataset, args.data_dir, n_train, n_val,
                                                                FAST["n_test"] if args.fast else None)
    scaler = StandardScaler().fit(x_tr)
    calibration = scaler.transform(x_tr[:N_CALIBRATE]).astype(np.float32)
    test_set = make_dataset(x_test, y_test, 512, preprocess=scaler.batch_fn())

    def train_one(setting, rate, seed):
        model = mlp(setting, calibration, depth=depth, width=width, seed=seed)
        history = experiments.train(model, (x_tr, y_tr), (x_va, y_va), epochs=epochs, batch_size=BATCH,
                                    optimizer="sgd", learning_rate=rate, preprocess=scaler.batch_fn(), seed=seed)
        _, test_accuracy = model.evaluate(test_set, verbose=0)
        return history, test_accuracy

    setup_record = {"network": f"MLP, {depth} hidden layers of {width} ReLU units, He-normal, no batch norm",
                    "centring": f"each hidden unit's mean output on {N_CALIBRATE} training images at initialisation",
                    "optimizer": "sgd (no momentum)", "n_train": len(y_tr), "n_val": len(y_va),
                    "n_test": len(y_test), "epochs": epochs, "batch_size": BATCH, "seeds": list(seeds),
                    "grid": {s: list(rates) for s in SETTINGS}, "inputs": "z-scores per channel (training subset)",
                    "chosen_by": "mean validation accuracy", "dataset": args.dataset, "fast": args.fast}
    run_grid({s: rates for s in SETTINGS}, seeds, train_one, setup_record, Path(args.json), reuse_from=args.reuse,
             key="setting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
