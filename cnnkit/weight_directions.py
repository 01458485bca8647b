"""Random directions in a network's weight space, scaled filter by filter like the weights (numpy only).

Used to draw the loss of a trained network along a line or over a plane
through its weights (Li et al., "Visualizing the Loss Landscape of Neural
Nets", 2018): see :mod:`cnnkit.loss_slices`.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import positive_int

__all__ = ["filter_normalized_directions"]


def filter_normalized_directions(weights, seed: int = 0, count: int = 2) -> list[list[np.ndarray]]:
    """``count`` random directions in weight space, each scaled filter by filter like the weights.

    For every weight array of rank >= 2 (Conv2D kernels (kh, kw, c_in, c_out),
    Dense kernels (n_in, n_out)) a Gaussian direction d is drawn and each
    filter (the slice ``[..., j]`` feeding output unit j) is rescaled so that
    ||d[..., j]|| = ||w[..., j]||. Biases and other rank-1 arrays get a zero
    direction (they stay at their trained values). Without this rescaling,
    layers with small weights would be moved relatively much further than
    layers with large ones and the slice would mislead.
    """
    rng = np.random.default_rng(seed)
    dirs = []
    for _ in range(positive_int(count, "count")):
        d_list = []
        for w in weights:
            w = np.asarray(w, dtype=np.float64)
            if w.ndim < 2:
                d_list.append(np.zeros_like(w))
                continue
            d = rng.standard_normal(w.shape)
            axes = tuple(range(w.ndim - 1))
            w_norm = np.sqrt(np.sum(w ** 2, axis=axes, keepdims=True))
            d_norm = np.sqrt(np.sum(d ** 2, axis=axes, keepdims=True))
            d_list.append(d * w_norm / np.maximum(d_norm, 1e-12))
        dirs.append(d_list)
    return dirs
