"""The photograph the lessons filter, pool and mix: *Chelsea*, a cat, shipped inside cnnkit.

``cnnkit/images/chelsea.png`` (300 x 451 pixels, RGB, 8 bits per channel) is the
photograph of Chelsea the cat by Stefan van der Walt, released under CC0 1.0 (public
domain dedication) and distributed with scikit-image as ``skimage.data.chelsea()``;
the pixels here are the same, re-compressed losslessly. It is read with
matplotlib, which every lesson already imports, so no image library is needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGES = Path(__file__).resolve().parent / "images"
CHELSEA = IMAGES / "chelsea.png"

# ITU-R BT.709 luma weights for linear RGB: Y = 0.2125 R + 0.7154 G + 0.0721 B
LUMA_709 = np.array([0.2125, 0.7154, 0.0721])


def read_png(path) -> np.ndarray:
    """Read an 8-bit PNG as a uint8 array of shape (H, W, C), C = 3 (RGB) or 4 (RGBA).

    matplotlib returns 8-bit PNGs as float32 in [0, 1] (each value k/255), so
    rounding ``255 * value`` gives back the stored bytes exactly.
    """
    from matplotlib import image as mpl_image

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"read_png reads PNG files only, got {str(path)!r}")
    pixels = mpl_image.imread(path)
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(pixels * 255.0).astype(np.uint8)


def chelsea() -> np.ndarray:
    """The lessons' photograph: Chelsea the cat, shape (300, 451, 3), dtype uint8."""
    return read_png(CHELSEA)[..., :3]


def rgb_to_gray(rgb) -> np.ndarray:
    """Grey-scale image from an RGB one: ``Y = 0.2125 R + 0.7154 G + 0.0721 B``.

    ``rgb`` has shape (..., 3): uint8 values are first divided by 255, floats are taken
    as they are (expected in [0, 1]). Returns float64 of shape (...), in [0, 1] for
    inputs in that range.
    """
    arr = np.asarray(rgb)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (..., 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    elif not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"rgb must be uint8 (0..255) or float (0..1), got dtype {arr.dtype}")
    return arr.astype(np.float64) @ LUMA_709
