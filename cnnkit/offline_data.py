"""The offline dataset: ten classes of synthetic 32x32 colour pictures with CIFAR-10's shapes and dtypes.

Generated deterministically from a seed, for machines with no network; used only
when asked for (``load_dataset("offline")`` or ``CNNKIT_DATASET=offline``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from cnnkit._validate import check_array_bytes, integer, non_negative_int

OFFLINE_CLASS_NAMES = (
    "circle", "ring", "square", "diamond", "cross",
    "horizontal stripes", "vertical stripes", "diagonal stripes", "checkerboard", "dots",
)


def _offline_masks(kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean foreground masks (N, 32, 32) for the class ids in ``kind``; positions and sizes vary."""
    n = kind.shape[0]
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    yy, xx = yy[None], xx[None]
    draws = {
        "cy": rng.uniform(10, 22, n), "cx": rng.uniform(10, 22, n), "r": rng.uniform(6, 10, n),
        "width": rng.uniform(1.5, 3.0, n), "period": rng.uniform(5, 9, n), "phase": rng.uniform(0, 2 * np.pi, n),
    }
    masks = np.zeros((n, 32, 32), dtype=bool)
    for k in range(10):
        idx = np.flatnonzero(kind == k)
        p = {name: v[idx].astype(np.float32)[:, None, None] for name, v in draws.items()}
        dy, dx = yy - p["cy"], xx - p["cx"]
        r, width, phase = p["r"], p["width"], p["phase"]
        wave = 2 * np.pi / p["period"]
        if k == 0:
            m = dy**2 + dx**2 < r**2
        elif k == 1:
            d2 = dy**2 + dx**2
            m = (d2 < r**2) & (d2 > (r - 2 * width) ** 2)
        elif k == 2:
            m = np.maximum(np.abs(dy), np.abs(dx)) < r * 0.8
        elif k == 3:
            m = np.abs(dy) + np.abs(dx) < r
        elif k == 4:
            m = ((np.abs(dx) < width) & (np.abs(dy) < r)) | ((np.abs(dy) < width) & (np.abs(dx) < r))
        elif k == 5:
            m = np.sin(wave * yy + phase) > 0
        elif k == 6:
            m = np.sin(wave * xx + phase) > 0
        elif k == 7:
            m = np.sin(wave * (xx + yy) / np.sqrt(2) + phase) > 0
        elif k == 8:
            m = np.sin(wave * xx + phase) * np.sin(wave * yy + phase) > 0
        else:
            cell = np.floor(p["period"] * 1.2)
            m = ((np.mod(xx + phase, cell) - cell / 2) ** 2 + (np.mod(yy + phase, cell) - cell / 2) ** 2) < (cell / 4) ** 2
        masks[idx] = m
    return masks


@lru_cache(maxsize=4)
def make_offline(n_train: int = 10000, n_test: int = 2000, seed: int = 0):
    """Generate the offline dataset: ``(x_train, y_train), (x_test, y_test)``.

    Ten balanced classes (:data:`OFFLINE_CLASS_NAMES`) of 32x32 RGB uint8
    pictures: a shape or texture in one random colour on a background of a
    contrasting random colour, at a random place and size, with pixel noise.
    Colour says nothing about the class; only the spatial pattern does, so a
    small CNN must learn shapes to score well. Deterministic for a given seed.
    """
    for value, name in ((n_train, "n_train"), (n_test, "n_test")):
        integer(value, name, minimum=10)  # one image per class at least
        check_array_bytes((value, 32, 32, 3), np.float32, f"the offline images ({name}={value})")
    rng = np.random.default_rng(non_negative_int(seed, "seed"))
    out = []
    for n in (n_train, n_test):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        masks = _offline_masks(labels, rng)
        background = rng.uniform(0, 255, (n, 1, 1, 3)).astype(np.float32)
        foreground = np.mod(background + 128 + rng.uniform(-40, 40, (n, 1, 1, 3)).astype(np.float32), 256)
        images = np.where(masks[..., None], foreground, background)
        images += rng.standard_normal(images.shape, dtype=np.float32) * 14
        out.append((np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)))
    for arrays in out:
        for a in arrays:
            a.setflags(write=False)
    return tuple(out)
