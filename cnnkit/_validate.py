"""Argument checks shared by the from-scratch layers: messages name the value and what was expected."""
from __future__ import annotations

import numbers

import numpy as np


def as_float_array(x, name: str, ndim: int | tuple[int, ...] | None = None, layout: str = "") -> np.ndarray:
    """Return ``x`` as a float ndarray (float32 stays float32, others become float64).

    Raises TypeError for non-numeric input and ValueError for a wrong rank; the
    message names the argument, its shape and the expected layout.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            extra = f" ({layout})" if layout else ""
            raise ValueError(f"{name} must have rank {want}{extra}, got shape {arr.shape} (rank {arr.ndim})")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    return arr


def positive_int(value, name: str) -> int:
    """Return ``value`` as int, raising ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}")
    return int(value)


def non_negative_int(value, name: str) -> int:
    """Return ``value`` as int, raising ValueError unless it is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer (>= 0), got {value}")
    return int(value)


def pair(value, name: str, check=positive_int) -> tuple[int, int]:
    """Expand an int or a 2-sequence into ``(rows, cols)``, each checked with ``check``."""
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return check(value[0], f"{name}[0]"), check(value[1], f"{name}[1]")
    v = check(value, name)
    return v, v


def probability(value, name: str, *, upper_inclusive: bool = False) -> float:
    """Return ``value`` as float, checking 0 <= value < 1 (or <= 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    ok = 0 <= value <= 1 if upper_inclusive else 0 <= value < 1
    if not ok:
        rng = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return float(value)
