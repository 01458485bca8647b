"""Dropout in numpy: inverted dropout, its masks, and a picture of the sub-networks they choose.

Inverted dropout (tutorial 2.3), for any shape of ``x`` and drop rate ``p``:

.. math::
    m_i \\sim \\text{Bernoulli}(1 - p), \\qquad
    y_i = \\frac{m_i\\, x_i}{1 - p} \\quad\\text{(training)}, \\qquad
    y_i = x_i \\quad\\text{(inference)}

so that :math:`\\mathbb{E}[y_i] = x_i`: scaling the kept units during training
is what lets inference use the network unchanged. This is what
``keras.layers.Dropout`` computes; its random masks come from another
generator, so the kit's masks differ from Keras' but follow the same law.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, boolean, check_array_bytes, non_negative_int, probability

__all__ = ["dropout", "dropout_mask", "apply_dropout_mask", "dropout_with_mask", "plot_dropout_subnetworks"]


def _rate(rate) -> float:
    return probability(rate, "rate")  # [0, 1): rate 1 would drop everything and divide by zero


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    try:
        return np.random.default_rng(non_negative_int(seed, "seed"))
    except (TypeError, ValueError):
        raise ValueError(f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}") from None


def dropout_mask(shape, rate: float, seed=None) -> np.ndarray:
    """Boolean keep-mask of ``shape``: each entry True (kept) with probability ``1 - rate``, independently.

    ``seed``: None (fresh randomness), an int (reproducible) or a numpy ``Generator``
    (draws continue from it, so successive calls give new masks).
    """
    rate = _rate(rate)
    sizes = shape if isinstance(shape, (tuple, list)) else (shape,)
    shape = tuple(non_negative_int(s, f"shape[{i}]") for i, s in enumerate(sizes))
    check_array_bytes(shape, np.float64, "the uniform draws behind the dropout mask")
    rng = _rng(seed)
    return rng.random(shape) >= rate


def apply_dropout_mask(x, mask, rate: float) -> np.ndarray:
    """``y = mask * x / (1 - rate)``: zero the dropped units, scale the kept ones by 1/(1 - rate)."""
    rate = _rate(rate)
    arr = as_float_array(x, "x")
    mask = np.asarray(mask)
    if mask.shape != arr.shape:
        raise ValueError(f"mask has shape {mask.shape} but x has shape {arr.shape}: they must match")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("mask must hold only 0/1 or False/True values")
        mask = mask.astype(bool)
    return np.where(mask, arr / arr.dtype.type(1.0 - rate), arr.dtype.type(0))


def dropout_with_mask(x, rate: float, training: bool, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`dropout`, also returning the boolean keep-mask (all True at inference)."""
    rate = _rate(rate)
    training = boolean(training, "training")
    arr = as_float_array(x, "x")
    if not training or rate == 0:
        return arr.copy(), np.ones(arr.shape, dtype=bool)
    mask = dropout_mask(arr.shape, rate, seed)
    return apply_dropout_mask(arr, mask, rate), mask


def dropout(x, rate: float, training: bool, seed=None) -> np.ndarray:
    """Inverted dropout of ``x`` (any shape) with drop probability ``rate`` in [0, 1).

    Training: each unit is zeroed with probability ``rate`` and the survivors
    are multiplied by ``1 / (1 - rate)``, so ``E[y] = x``. Inference
    (``training=False``): ``y = x``, nothing dropped, nothing scaled.
    Float32 input stays float32. Raises ValueError for a rate outside [0, 1).
    """
    return dropout_with_mask(x, rate, training, seed)[0]


def plot_dropout_subnetworks(masks, layer_sizes, *, input_size: int | None = None, titles=None,
                             ncols: int = 4, title: str | None = None):
    """Draw one small fully connected network per mask, greying out the dropped units and their links.

    ``layer_sizes``: units per hidden layer that dropout acts on, e.g. (6, 6);
    ``masks``: a sequence of keep-masks, each a sequence of boolean arrays, one
    per hidden layer (shapes ``layer_sizes``); ``input_size`` input units (kept,
    default the first hidden size) and one output unit are drawn around them.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    layer_sizes = [int(s) for s in layer_sizes]
    masks = list(masks)
    if not masks:
        raise ValueError("masks is empty: pass one mask (a list of per-layer boolean arrays) per sub-network")
    for k, mask in enumerate(masks):
        if len(mask) != len(layer_sizes):
            raise ValueError(f"masks[{k}] has {len(mask)} layers, layer_sizes has {len(layer_sizes)}")
        for j, (m, size) in enumerate(zip(mask, layer_sizes)):
            if np.asarray(m).shape != (size,):
                raise ValueError(f"masks[{k}][{j}] has shape {np.asarray(m).shape}, expected ({size},)")
    n_in = int(input_size or layer_sizes[0])
    sizes = [n_in, *layer_sizes, 2]
    ncols = max(1, min(ncols, len(masks)))
    nrows = int(np.ceil(len(masks) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.8 * nrows + (0.4 if title else 0)),
                             squeeze=False)
    tallest = max(sizes)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(masks):
            continue
        keep = [np.ones(n_in, bool), *[np.asarray(m, bool) for m in masks[k]], np.ones(2, bool)]
        pos = [[(col, (tallest - 1) / 2 - (size - 1) / 2 + r) for r in range(size)] for col, size in enumerate(sizes)]
        for col in range(len(sizes) - 1):
            for a, (xa, ya) in enumerate(pos[col]):
                for b, (xb, yb) in enumerate(pos[col + 1]):
                    alive = keep[col][a] and keep[col + 1][b]
                    ax.plot([xa, xb], [ya, yb], color="tab:blue" if alive else "0.9",
                            lw=0.8 if alive else 0.4, zorder=1 if alive else 0)
        for col, layer in enumerate(pos):
            for r, (xc, yc) in enumerate(layer):
                alive = keep[col][r]
                ax.scatter([xc], [yc], s=90, zorder=2, color="tab:blue" if alive else "white",
                           edgecolors="tab:blue" if alive else "0.6", linewidths=1.0)
                if not alive:
                    ax.plot([xc - 0.12, xc + 0.12], [yc - 0.35, yc + 0.35], color="crimson", lw=1.2, zorder=3)
        kept = sum(int(m.sum()) for m in keep[1:-1])
        total = sum(layer_sizes)
        caption = titles[k] if titles is not None else f"sub-network {k + 1}: {kept}/{total} hidden units kept"
        ax.set_title(caption, fontsize=9)
        ax.set_xlim(-0.4, len(sizes) - 0.6)
        ax.set_ylim(-0.8, tallest - 0.2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
