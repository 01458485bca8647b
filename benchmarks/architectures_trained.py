"""Lesson 07's two trainings with three seeds each: 32 layers with and without shortcuts, and the three families.

Lesson 07 trains, on the same 4,000 CIFAR-10 training images and validates on the same 2,000
(held out from the training split), with Adam at 0.001, batches of 128, for 2 epochs:

* **depth**: ``cnnkit.architectures.plain_cnn`` and ``resnet_cifar`` with 5 blocks per stage at
  8, 16 and 32 channels (32 weight layers), the same but for the shortcuts;
* **trio**: the CIFAR-sized AlexNet-, GoogLeNet- and ResNet-style networks
  (``alexnet_cifar``, ``googlenet_cifar``, ``resnet_cifar((1, 1, 1))``).

Each with seeds 0, 1 and 2, each seed fixing the initial weights and the batch order. Fifteen
trainings take four and a half to eight minutes on two cores, too long for the lesson to run them all; this
script runs them with the lesson's own code, data draw and seeds and keeps every epoch's numbers.
The lesson shows the record and trains seed 0 of the depth pair and of the AlexNet-style network
again, checking that they agree with it::

    python benchmarks/architectures_trained.py --data-dir /work/cifar --json cnnkit/results/architectures_trained.json
    python benchmarks/architectures_trained.py --dataset offline --fast --json /tmp/arch.json   # smoke run
"""
from __future__ import annotations

import sys
import time

# benchmarks/ is on sys.path (the script's own folder): the options and the start are shared
from optimizer_rates import recorded_run, start, write_record

BLOCKS, WIDTHS = (5, 5, 5), (8, 16, 32)
N_TRAIN, N_VAL, EPOCHS, BATCH, LEARNING_RATE = 4000, 2000, 2, 128, 1e-3
SEEDS = (0, 1, 2)
FAST = dict(n_train=300, n_val=200, blocks=(1, 1, 1), seeds=(0,))


def lesson07_draw(dataset: str, data_dir, n_train: int, n_val: int):
    """Lesson 07's draw: a stratified ``n_train + n_val`` of the training split (seed 0), split into
    ``(x_tr, y_tr), (x_val, y_val)`` with every class in proportion in both (seed 0)."""
    from cnnkit.data import load_dataset, stratified_subset, train_val_split

    data = load_dataset(dataset, data_dir, download=False)
    x_sub, y_sub = stratified_subset(data.x_train, data.y_train, n_train + n_val, seed=0)
    return train_val_split(x_sub, y_sub, val_fraction=n_val / (n_train + n_val), seed=0)


def builders(blocks) -> dict[str, dict]:
    """experiment -> {network label as the lesson names it -> function seed -> new model}."""
    from cnnkit import architectures as arch

    depth = 2 * sum(blocks) + 2
    return {
        "depth": {f"plain{depth}": lambda seed: arch.plain_cnn(blocks, WIDTHS, seed=seed),
                  f"resnet{depth}": lambda seed: arch.resnet_cifar(blocks, WIDTHS, seed=seed)},
        "trio": {"AlexNet-style": lambda seed: arch.alexnet_cifar(seed=seed),
                 "GoogLeNet-style": lambda seed: arch.googlenet_cifar(seed=seed),
                 "ResNet-style": lambda seed: arch.resnet_cifar((1, 1, 1), seed=seed)},
    }


def main(argv=None) -> int:
    args = start(__doc__, argv, fast_help="a smoke run: few images, one block per stage, one seed", reuse=False)
    from cnnkit import experiments
    from cnnkit.data import stratified_subset

    n_train, n_val, blocks, seeds = N_TRAIN, N_VAL, BLOCKS, SEEDS
    if args.fast:
        n_train, n_val, blocks, seeds = FAST["n_train"], FAST["n_val"], FAST["blocks"], FAST["seeds"]
    train_set, val_set = lesson07_draw(args.dataset, args.data_dir, n_train, n_val)
    # the lesson trains the trio on a stratified draw of the twins' training part (all of it at these sizes)
    trio_train = stratified_subset(*train_set, min(n_train, len(train_set[1])), seed=0)
    started, runs = time.perf_counter(), []
    for experiment, nets in builders(blocks).items():
        data = train_set if experiment == "depth" else trio_train
        trained = experiments.compare_seeds(nets, data, val_set, seeds=seeds, epochs=EPOCHS, batch_size=BATCH,
                                            learning_rate=LEARNING_RATE)
        for network, histories in trained.items():
            for seed, history in zip(seeds, histories):
                runs.append(recorded_run(history, experiment=experiment, network=network, seed=seed,
                                         learning_rate=LEARNING_RATE))
                print(f"{experiment} {network} seed {seed}: validation {history['val_accuracy'][-1]:.1%}, training "
                      f"loss {history['loss'][-1]:.3f} ({history['seconds']:.0f} s)", flush=True)
    record = {"setup": {"blocks": list(blocks), "widths": list(WIDTHS), "n_train": len(train_set[1]),
                        "n_val": len(val_set[1]), "epochs": EPOCHS, "batch_size": BATCH, "optimizer": "adam",
                        "learning_rate": LEARNING_RATE, "seeds": list(seeds), "dataset": args.dataset,
                        "fast": args.fast},
              "runs": runs}
    write_record(args.json, record, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
