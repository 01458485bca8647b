"""Per-channel statistics of large arrays, read in chunks: value histograms, extrema, mean and variance.

Statistics are computed over every axis but the last, so images (N, H, W, C) get
one statistic per colour channel and tables (N, D) one per column. Arrays are
read ``chunk_size`` samples at a time, so a 50,000-image uint8 array is never
copied whole to float.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import finite_array, numeric_array, positive_int

DEFAULT_CHUNK = 512


def as_samples(x, name: str = "x") -> np.ndarray:
    """Return ``x`` as a numeric ndarray of rank >= 2 (N, ..., C) without copying or converting it."""
    arr = numeric_array(x, name)
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have rank >= 2: (N, D) features or (N, H, W, C) images, got shape {arr.shape} "
            f"(rank {arr.ndim}); for a single sample use x[None]"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} holds no samples (shape {arr.shape}): statistics need at least one")
    if 0 in arr.shape[1:]:
        raise ValueError(f"{name} has an empty axis (shape {arr.shape}): each sample needs at least one value "
                         "in every axis, and at least one channel (the last axis)")
    return arr


def sample_chunks(n: int, chunk_size: int):
    """Slices ``[0:chunk_size], [chunk_size:2*chunk_size], ...`` covering samples 0..n-1."""
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def check_finite(block: np.ndarray, name: str) -> None:
    """Raise, naming ``name``, when ``block`` holds NaN or infinity."""
    finite_array(block, name, "clean or impute the data before fitting a scaler or transforming with it")


def check_statistics(values: np.ndarray, what: str, x: np.ndarray) -> None:
    """Raise if a statistic overflowed float64 (values near 1e200 and beyond)."""
    if not np.all(np.isfinite(values)):
        channel = int(np.flatnonzero(~np.isfinite(values))[0])
        largest = float(np.max(np.abs(x[..., channel])))
        raise ValueError(
            f"the {what} of channel {channel} overflows float64 (its values reach {largest:.3g}; float64 stops "
            f"at {np.finfo(np.float64).max:.3g}): divide the data by a constant before scaling it"
        )


def uint8_histograms(x, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Counts of each value 0..255 per channel of uint8 data (N, ..., C): int64 array (C, 256)."""
    arr = as_samples(x)
    if arr.dtype != np.uint8:
        raise TypeError(f"x must be uint8 for value histograms, got dtype {arr.dtype}")
    chunk_size = positive_int(chunk_size, "chunk_size")
    channels = arr.shape[-1]
    hist = np.zeros((channels, 256), dtype=np.int64)
    for part in sample_chunks(arr.shape[0], chunk_size):
        block = arr[part].reshape(-1, channels)
        for c in range(channels):
            hist[c] += np.bincount(block[:, c], minlength=256)
    return hist


def channel_extrema(x, chunk_size: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel minimum and maximum over every axis but the last: two float64 arrays of shape (C,)."""
    arr = as_samples(x)
    chunk_size = positive_int(chunk_size, "chunk_size")
    lo = np.full(arr.shape[-1], np.inf)
    hi = np.full(arr.shape[-1], -np.inf)
    axes = tuple(range(arr.ndim - 1))
    for part in sample_chunks(arr.shape[0], chunk_size):
        block = arr[part]
        check_finite(block, "x")
        lo = np.minimum(lo, block.min(axis=axes).astype(np.float64))
        hi = np.maximum(hi, block.max(axis=axes).astype(np.float64))
    return lo, hi


def channel_moments(x, chunk_size: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and population variance over every axis but the last.

    Returns ``(mean, var, count)``: float64 arrays of shape (C,) and the number
    of values per channel. Chunks of ``chunk_size`` samples are converted to
    float64 one at a time and merged with Chan et al.'s pairwise formula

    .. math:: M_{2,AB} = M_{2,A} + M_{2,B} + \\delta^2 \\frac{n_A n_B}{n_A + n_B},
              \\quad \\delta = \\bar x_B - \\bar x_A,

    which stays accurate where the one-pass ``E[x^2] - E[x]^2`` would cancel.
    uint8 images take an exact shortcut: a 256-bin histogram per channel
    (:func:`uint8_histograms`), from which the moments follow.
    """
    arr = as_samples(x)
    chunk_size = positive_int(chunk_size, "chunk_size")
    channels = arr.shape[-1]
    if arr.dtype == np.uint8:  # exact and fast: a 256-bin histogram per channel
        hist = uint8_histograms(arr, chunk_size)
        values = np.arange(256, dtype=np.float64)
        count = int(hist[0].sum())
        mean = hist @ values / count
        var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / count
        return mean, var, count
    count, mean, m2 = 0, np.zeros(channels), np.zeros(channels)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by channel
        for part in sample_chunks(arr.shape[0], chunk_size):
            block = arr[part].reshape(-1, channels).astype(np.float64)
            check_finite(block, "x")
            n_b = block.shape[0]
            mean_b = block.mean(axis=0)
            m2_b = ((block - mean_b) ** 2).sum(axis=0)
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
    check_statistics(mean, "mean", arr)
    check_statistics(m2 / count, "variance", arr)
    return mean, m2 / count, count
