"""How much JPEG compression costs a strong model and a weak one: both trained on re-compressed CIFAR-10.

The CIFAR-10 copy these benchmarks run on is itself JPEG-compressed (about quality 75), and
the original files are not at hand to compare with. What can be measured is the next step
down: every training and test image encoded again as JPEG at ``--quality`` Q (Pillow,
4:2:0 chroma subsampling, its default) and decoded back to uint8, then the TensorFlow
tutorial's CNN and a capstone recipe trained on that copy exactly as
``benchmarks/capstone.py`` trains them (same seeds, same splits, same code). Set beside the
benchmark's own run on the copy as it is, the drop tells whether compression costs the
recipe more points than it costs the weaker model::

    python benchmarks/jpeg_quality.py --data-dir /work/cifar --quality 50 --json runs/jpeg50.json
    python benchmarks/jpeg_quality.py --dataset offline --fast --quality 50 --json /tmp/j.json  # smoke run

The record keeps, per model, the test accuracy, the training time and the mean absolute
pixel change the re-compression made (on the 0..255 scale).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # capstone.py: the models and how they are trained

FAST_TRAIN, FAST_TEST = 2000, 500


def recompress(images: np.ndarray, quality: int) -> np.ndarray:
    """Encode each uint8 image (N, H, W, 3) as JPEG at ``quality`` (1..95) and decode it; same shape and dtype."""
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an integer in 1..95 (Pillow's useful range), got {quality!r}")
    out = np.empty_like(images)
    buffer = io.BytesIO()
    for i, image in enumerate(images):
        buffer.seek(0)
        buffer.truncate()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py (default: $CNNKIT_DATA_DIR)")
    parser.add_argument("--dataset", choices=("cifar10", "offline"), default="cifar10")
    parser.add_argument("--quality", type=int, required=True, help="JPEG quality of the re-compression, 1..95")
    parser.add_argument("--models", default="tutorial,quick", help="comma-separated subset of tutorial,quick,good")
    parser.add_argument("--fast", action="store_true", help=f"{FAST_TRAIN} training and {FAST_TEST} test images, "
                                                          "1 epoch per model (smoke run)")
    parser.add_argument("--json", required=True, help="where to write the record")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality must be in 1..95, got {args.quality}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - {"tutorial", "quick", "good"}
    if unknown or not models:
        parser.error(f"--models: unknown {sorted(unknown) or models!r}; choose from tutorial, quick, good")

    from capstone import _load, run_recipe, run_tutorial

    from cnnkit.data import load_dataset, stratified_subset
    from cnnkit.env import cpu_model, import_tensorflow, setup
    from cnnkit.files import write_atomic

    setup(seed=0)
    import_tensorflow()
    dataset = load_dataset(args.dataset, args.data_dir, download=False)
    if args.fast:
        x_tr, y_tr = stratified_subset(dataset.x_train, dataset.y_train, FAST_TRAIN)
        x_te, y_te = stratified_subset(dataset.x_test, dataset.y_test, FAST_TEST)
        dataset = dataclasses.replace(dataset, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    start = time.perf_counter()
    x_train, x_test = recompress(dataset.x_train, args.quality), recompress(dataset.x_test, args.quality)
    change = float(np.mean(np.abs(x_train.astype(np.int16) - dataset.x_train.astype(np.int16))))
    print(f"re-compressed {len(x_train) + len(x_test)} images at quality {args.quality} in "
          f"{time.perf_counter() - start:.0f} s; mean absolute pixel change {change:.2f} / 255", flush=True)
    dataset = dataclasses.replace(dataset, x_train=x_train, x_test=x_test,
                                  source=f"{dataset.source}, re-compressed as JPEG at quality {args.quality}")
    results = {}
    for name in models:
        print(f"[{time.strftime('%H:%M:%S')}] training {name} (load average {_load()}) ...", flush=True)
        if name == "tutorial":
            results[name] = run_tutorial(dataset, 1 if args.fast else 10, 32)
        else:
            results[name] = run_recipe(name, dataset, epochs=1 if args.fast else None)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: test accuracy {results[name]['test_accuracy']:.2%}, "
              f"{results[name]['train_seconds']:.0f} s", flush=True)
    record = {"quality": args.quality, "mean_abs_pixel_change": round(change, 3), "fast": args.fast,
              "dataset": dataset.name, "cpu": cpu_model(), "cpu_count": os.cpu_count(), "results": results,
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_atomic(Path(args.json), json.dumps(record, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
