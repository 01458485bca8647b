"""Train a capstone recipe from the command line, headless.

    python -m cnnkit.train --recipe quick --epochs 10 --out runs/quick
    python -m cnnkit.train --recipe good --out runs/good --data-dir /path/to/cifar
    python -m cnnkit.train --recipe quick --epochs 1 --out runs/smoke --dataset offline --fast

Writes into ``--out``:

* ``model.keras``  -- the model with the best validation accuracy, or the last one when the
  recipe trains its fixed schedule to the end (``patience=0``) (reload with
  ``cnnkit.training.load_model``; inputs are standardised images, see metrics.json);
* ``metrics.json`` -- ``test_accuracy`` (with flip test-time augmentation when the recipe
  asks for it), ``test_accuracy_plain``, ``train_seconds``, ``train_cpu_seconds``,
  ``epochs``, ``recipe``, ``dataset``, per-class accuracy, the history, the training
  split's mean and std, load averages, versions and the machine (CPU model, the devices
  TensorFlow trained on, the precision used, the tf.distribute strategy and its replicas);
* ``curves.png`` (loss and accuracy per epoch), ``learning_rate.png``, ``confusion.png``.

``--out`` is checked before any data is loaded: its missing parent folders are created,
a folder that cannot be written is reported with the operating system's reason, and an
``--out`` that already holds any of these files from an earlier run is refused unless
``--overwrite`` is given. Everything is written into a hidden temporary sibling of
``--out`` and moved into place only when the run has succeeded, so a failed or
interrupted run leaves ``--out`` as it was (other files there are never touched, and
parent folders the run created are removed again). Exit status: 0 on success, 2 for bad
arguments (an ``--out`` that cannot be used included), 3 when the data cannot be found or
read, 1 for any other failure.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cnnkit.env import cpu_model

EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_FAILED = 1
FAST_TRAIN = 2000  # images kept (before the validation split) with --fast
FAST_TEST = 500
FAST_EPOCHS = 2  # with --fast and no --epochs
OUTPUT_FILES = ("model.keras", "metrics.json", "curves.png", "learning_rate.png", "confusion.png")


class UsageError(Exception):
    """A bad command-line value; the message says which and what is expected."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (>= 1), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from cnnkit.data import DATASETS
    from cnnkit.recipes import PRECISIONS, RECIPES

    parser = argparse.ArgumentParser(
        prog="python -m cnnkit.train",
        description="Train a cnnkit capstone recipe on CIFAR-10 (or the offline dataset) and save "
                    "model.keras, metrics.json and figures into --out.",
    )
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="quick", help="which recipe (default: quick)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="number of epochs (default: the recipe's); the schedule is stretched to it")
    parser.add_argument("--out", required=True,
                        help="output directory (created with its parents; refused, before any training, "
                             "when it already holds files of an earlier run, unless --overwrite; other files "
                             "in it are kept)")
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace the files of an earlier run in --out ({', '.join(OUTPUT_FILES)})")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding cifar-10-batches-py or cifar-10-python.tar.gz "
                             "(default: $CNNKIT_DATA_DIR, then Keras' cache)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="cifar10 (default, or $CNNKIT_DATASET) or offline (generated, no download)")
    parser.add_argument("--fast", action="store_true",
                        help=f"smoke test: {FAST_TRAIN} training and {FAST_TEST} test images, "
                             f"{FAST_EPOCHS} epochs unless --epochs says otherwise")
    parser.add_argument("--download", action="store_true",
                        help="allow downloading CIFAR-10 through Keras when no local copy is found")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="float32, bfloat16 (Keras' mixed_bfloat16) or auto: bfloat16 only where the "
                             "hardware runs it faster (default: the recipe's, auto)")
    parser.add_argument("--cpu-devices", type=_positive_int, default=1, metavar="N",
                        help="split the CPU into N logical devices and train on them with MirroredStrategy "
                             "(shows the multi-device path without GPUs; no faster). Several GPUs are "
                             "mirrored without it, and TF_CONFIG selects several machines; see docs/devices.md")
    return parser


def _os_reason(exc: OSError) -> str:
    """``exc``'s reason without the file name it carries, e.g. 'Permission denied (EACCES)'."""
    name = errno.errorcode.get(exc.errno or 0)
    return f"{exc.strerror} ({name})" if exc.strerror and name else str(exc)


def _missing_folders(folder: Path) -> list[Path]:
    """The folders from the first missing ancestor of ``folder`` down to ``folder`` itself."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{str(folder)!r} is a file, not a folder")
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where they are empty; leave anything else alone."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _prepare_out(out: str, overwrite: bool) -> tuple[Path, Path, list[Path]]:
    """Check ``--out`` before any data is loaded; create its missing parents and the staging folder.

    Returns ``(out, staging, created)``: the output folder, an empty hidden sibling of it
    that the run writes into, and the parent folders created here (removed again when the
    run fails). Raises UsageError naming the folder and the reason when ``--out`` cannot be
    used, or when it already holds files of an earlier run and ``overwrite`` is false.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out!r} exists and is not a directory")
    if path.is_dir() and not overwrite:
        earlier = [name for name in OUTPUT_FILES if (path / name).exists()]
        if earlier:
            found = ", ".join(repr(str(path / name)) for name in earlier)
            raise UsageError(f"--out {out!r} already holds {found} from an earlier run; pass --overwrite "
                             "to replace them, or choose another --out")
    parent = path.resolve().parent
    try:
        created = _missing_folders(parent)
    except UsageError as exc:
        raise UsageError(f"--out {out!r}: cannot create the folder {str(parent)!r}: {exc}") from None
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise UsageError(f"--out {out!r}: cannot create the folder {str(parent)!r}: {_os_reason(exc)}") from None
    folder = parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=parent))
        if path.is_dir():  # the finished files are moved into it one by one
            folder = path
            tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        if folder == path:
            shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise UsageError(f"--out {out!r}: cannot write into the folder {str(folder)!r}: {_os_reason(exc)}") from None
    return path, staging, created


def _check_data_dir(data_dir: str | None) -> None:
    from cnnkit.data import DataNotFoundError

    if data_dir is not None and not Path(data_dir).exists():
        raise DataNotFoundError(f"--data-dir {data_dir!r} does not exist; it should be a folder holding "
                                "cifar-10-batches-py/ or cifar-10-python.tar.gz")


def _save_figures(result, evaluation, data, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from cnnkit import plotting

    written = []
    fig = plotting.training_curves({result.model.name: result.history}, title="training curves")
    fig.savefig(folder / "curves.png", dpi=110)
    plt.close(fig)
    written.append("curves.png")
    steps = np.arange(result.steps_per_epoch * result.epochs_run + 1)
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.plot(steps / result.steps_per_epoch, result.schedule.values(steps))
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("warm-up then decay")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "learning_rate.png", dpi=110)
    plt.close(fig)
    written.append("learning_rate.png")
    fig = plotting.confusion_matrix(data.y_test, evaluation.predictions, data.class_names,
                                    title=f"test confusion matrix ({evaluation.accuracy_tta:.1%} accuracy)")
    fig.savefig(folder / "confusion.png", dpi=110)
    plt.close(fig)
    written.append("confusion.png")
    return written


def _progress_callback(total_epochs: int):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch, for logs that are not a terminal."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = [f"{name} {logs[key]:.4f}" for key, name in (("loss", "loss"), ("accuracy", "acc"),
                     ("val_loss", "val_loss"), ("val_accuracy", "val_acc")) if key in logs]  # no val_*: val_fraction=0
            print(f"epoch {epoch + 1}/{total_epochs}  {'  '.join(shown)}  ({time.perf_counter() - self.start:.1f} s)",
                  flush=True)

    return EpochLine()


def _machine(tf, result) -> dict:
    """What the run trained on: CPU model, TensorFlow's devices, the precision and the replicas used."""
    from cnnkit.devices import bf16_hardware, keras_policy

    devices = [d.name for d in tf.config.list_logical_devices()]
    return {"cpu": cpu_model(), "devices": devices, "device_count": len(devices),
            "bf16_hardware": bf16_hardware(), "precision": result.precision,
            "keras_policy": keras_policy(result.precision), "strategy": result.strategy,
            "replicas": result.replicas, "global_batch": result.global_batch}


def run(args) -> dict:
    """Train, evaluate and write everything; returns the metrics. Raises on failure (nothing moved into --out).

    ``--out`` is checked (and its staging folder created) before the data is loaded, so a
    folder that cannot be used fails in a second, not after the training.
    """
    out, staging, created = _prepare_out(args.out, args.overwrite)
    try:
        return _train_into(args, out, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise


def _train_into(args, out: Path, staging: Path) -> dict:
    """The run itself: load, train, evaluate, write into ``staging``, then move it into ``out``."""
    _check_data_dir(args.data_dir)

    import numpy as np

    from cnnkit import __version__
    from cnnkit.data import load_dataset
    from cnnkit.env import import_tensorflow, seed_everything
    from cnnkit.training import evaluate, fit_recipe, get_recipe, prepare_data

    recipe = get_recipe(args.recipe)
    if args.precision is not None:
        recipe = recipe.replace(precision=args.precision)
    dataset = load_dataset(args.dataset, args.data_dir, download=args.download)  # fails fast, before TensorFlow
    print(dataset.describe(), flush=True)
    tf = import_tensorflow()
    import keras

    from cnnkit.devices import make_strategy, split_cpu

    devices = split_cpu(args.cpu_devices) if args.cpu_devices > 1 else None  # before any TensorFlow op
    strategy = make_strategy(devices)

    seed_everything(recipe.seed)
    data = prepare_data(dataset, val_fraction=recipe.val_fraction, seed=recipe.seed,
                        train_size=FAST_TRAIN if args.fast else None, test_size=FAST_TEST if args.fast else None)
    del dataset
    epochs = args.epochs or (FAST_EPOCHS if args.fast else recipe.epochs)
    print(f"recipe {recipe.name!r}: {epochs} epochs | {data.describe()} | "
          f"{strategy.num_replicas_in_sync} replica(s)", flush=True)

    interactive = sys.stdout.isatty() and not args.quiet
    callbacks = [] if (interactive or args.quiet) else [_progress_callback(epochs)]
    load_before = os.getloadavg()
    result = fit_recipe(recipe, data, epochs=epochs, verbose=1 if interactive else 0, callbacks=callbacks,
                        checkpoint_path=staging / "model.keras", strategy=strategy)
    load_after = os.getloadavg()
    if not (staging / "model.keras").exists():  # no epoch improved on the first: keep the final weights
        result.model.save(staging / "model.keras")
    evaluation = evaluate(result.model, data, tta=recipe.tta, tta_translate=recipe.tta_translate)
    metrics = {
        "test_accuracy": evaluation.accuracy_tta if recipe.tta else evaluation.accuracy,
        "test_accuracy_plain": evaluation.accuracy,
        "test_accuracy_tta": evaluation.accuracy_tta if recipe.tta else None,
        "tta": {"mirror": recipe.tta, "shift_pixels": recipe.tta_translate},
        "train_seconds": round(result.seconds, 2),
        "train_cpu_seconds": round(result.cpu_seconds, 2),
        "epochs": result.epochs_run,
        "epochs_planned": epochs,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": max(result.history["val_accuracy"]) if "val_accuracy" in result.history else None,
        "recipe": recipe.name,
        "recipe_settings": recipe.to_dict(),
        "dataset": data.dataset,
        "fast": bool(args.fast),
        "n_train": int(data.x_train.shape[0]),
        "n_val": int(data.x_val.shape[0]),
        "n_test": int(data.x_test.shape[0]),
        "class_names": list(data.class_names),
        "per_class_accuracy": {name: round(float(a), 4) for name, a in
                               zip(data.class_names, evaluation.per_class)},
        "normalization": {"mean": np.round(data.mean, 4).tolist(), "std": np.round(data.std, 4).tolist(),
                          "fitted_on": "training split"},
        "parameters": int(result.model.count_params()),
        "history": result.history,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "cpu_count": os.cpu_count(),
        "machine": _machine(tf, result),
        "versions": {"cnnkit": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__},
        "command": sys.argv,
    }
    metrics["figures"] = _save_figures(result, evaluation, data, staging)
    with open(staging / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    _publish(staging, out)
    return metrics


def _publish(staging: Path, out: Path) -> None:
    """Move the finished files into ``out``: a rename when ``out`` is new, else file by file (same names replaced)."""
    if not out.exists():
        os.replace(staging, out)
        return
    for item in sorted(staging.iterdir()):
        os.replace(item, out / item.name)
    staging.rmdir()


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage and the reason
        return int(exc.code or 0) and EXIT_USAGE
    from cnnkit.data import CorruptDataError, DataNotFoundError

    try:
        metrics = run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DataNotFoundError, CorruptDataError) as exc:
        print(f"error: the data could not be loaded: {exc}", file=sys.stderr)
        print("hint: pass --data-dir DIR (a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz), "
              "set CNNKIT_DATA_DIR, add --download, or use --dataset offline", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print(f"interrupted: nothing was written to {args.out}", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"error: training failed ({type(exc).__name__}: {exc}); nothing was written to {args.out}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"test accuracy {metrics['test_accuracy']:.2%} | {metrics['epochs']} epochs in "
          f"{metrics['train_seconds']:.1f} s | wrote {args.out}/model.keras, metrics.json, "
          f"{', '.join(metrics['figures'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
