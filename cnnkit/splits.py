"""Stratified splits and subsets: every class kept in proportion, chosen from a seed.

``x`` is any array with the samples along its first axis, ``y`` its labels of shape (N,).
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import integer, non_negative_int, real


def _check_xy(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    return x, y


def _stratified_choice(y: np.ndarray, n_chosen: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, chosen) with exactly ``n_chosen`` chosen, shared among the classes in proportion.

    Class c with ``n_c`` of the N samples gets ``floor(n_c * n_chosen / N)`` indices, and
    the indices still missing go one each to the classes with the largest remainders
    (ties broken at random from ``seed``), so the counts add up to ``n_chosen`` exactly.
    """
    rng = np.random.default_rng(seed)
    classes, labels = np.unique(y, return_inverse=True)
    counts = np.bincount(labels, minlength=len(classes))
    quotas, remainders = np.divmod(counts * n_chosen, len(y))
    missing = n_chosen - int(quotas.sum())
    order = np.lexsort((rng.random(len(classes)), -remainders))  # largest remainder first
    quotas[order[:missing]] += 1
    chosen, rest = [], []
    for k in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(labels == k))
        chosen.append(idx[:quotas[k]])
        rest.append(idx[quotas[k]:])
    return rng.permutation(np.concatenate(rest)), rng.permutation(np.concatenate(chosen))


def stratified_indices(y, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 0..N-1 into (rest, chosen) with ``fraction`` of every class chosen.

    ``chosen`` holds exactly ``round(fraction * N)`` indices, shared among the classes
    in proportion to their sizes (largest remainder: each class gets
    ``fraction * n_class`` rounded down or up). Both outputs are shuffled with
    ``seed``. Raises ValueError when the fraction rounds to no index or to all of them.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {y.shape}")
    return _stratified_choice(y, _count_of(fraction, len(y), "fraction"), non_negative_int(seed, "seed"))


def _count_of(fraction, n: int, name: str) -> int:
    """``round(fraction * n)``, checking that 0 < fraction < 1 and that both parts keep a sample."""
    fraction = real(fraction, name, low=0.0, high=1.0, low_open=True, high_open=True)
    count = int(round(fraction * n))
    if not 0 < count < n:
        raise ValueError(f"{name}={fraction} of {n} samples rounds to {count}: both parts must keep at least one "
                         f"sample (use a {name} between {0.5 / max(n, 1):.3g} and {1 - 0.5 / max(n, 1):.3g}, "
                         "or more samples)")
    return count


def train_val_split(x, y, val_fraction: float = 0.1, seed: int = 0):
    """Stratified split: ``(x_train, y_train), (x_val, y_val)``, ``val_fraction`` of each class held out.

    The validation split has exactly ``round(val_fraction * N)`` samples (see
    :func:`stratified_indices`). Raises ValueError, naming the class, when a class
    would lose all of its samples to the validation split.
    """
    x, y = _check_xy(x, y)
    n_val = _count_of(val_fraction, len(y), "val_fraction")
    train_idx, val_idx = _stratified_choice(y, n_val, non_negative_int(seed, "seed"))
    classes, counts = np.unique(y, return_counts=True)
    kept = dict(zip(*np.unique(y[train_idx], return_counts=True)))
    lost = [c for c in classes if c not in kept]
    if lost:
        sizes = ", ".join(f"class {c}: {counts[classes == c][0]} sample(s)" for c in lost[:5])
        raise ValueError(f"val_fraction={val_fraction} would leave no training sample of {len(lost)} class(es) "
                         f"({sizes}); every class needs at least 2 samples for a stratified split")
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def stratified_subset(x, y, n: int, seed: int = 0):
    """Return ``(x_sub, y_sub)``: exactly ``n`` samples, every class in proportion, chosen with ``seed``.

    Class c gets ``n * n_c / N`` samples rounded down or up (largest remainder), so
    the counts add up to ``n``. Raises ValueError when ``n`` is not in
    ``classes .. N`` (a subset smaller than the number of classes would lose some).
    """
    x, y = _check_xy(x, y)
    n = integer(n, "n", minimum=1, maximum=len(y))
    seed = non_negative_int(seed, "seed")
    n_classes = len(np.unique(y))
    if n < n_classes:
        raise ValueError(f"n={n} is fewer than the {n_classes} classes: a stratified subset keeps every class, "
                         f"so n must be in {n_classes}..{len(y)} (for a few arbitrary samples, slice x[:n])")
    if n == len(y):
        return x, y
    _, idx = _stratified_choice(y, n, seed)
    return x[idx], y[idx]
