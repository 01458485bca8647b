"""Argument checks shared by the kit: messages name the value and what was expected.

Every public function checks its arguments here before doing any work, so a bad
value fails at once with a message that names it, instead of deep inside numpy
(or after allocating gigabytes).

Memory limit
------------
:data:`MAX_ARRAY_BYTES` is the largest array (in bytes) that one call of a
from-scratch layer may create: 2 GiB, the whole memory of a Binder session. An
argument that would need more (a padding of 10,000 on a small image, a pooling
window of thousands of cells) is refused by :func:`check_array_bytes` with
:class:`ArrayTooLargeError` before anything is allocated; the message gives the
size asked for and the limit.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

#: Largest array, in bytes, a single from-scratch operation may allocate (2 GiB).
MAX_ARRAY_BYTES = 2 * 1024**3


class ArrayTooLargeError(ValueError):
    """An argument asks for an array larger than :data:`MAX_ARRAY_BYTES`."""


def _gib(n_bytes: int) -> str:
    return f"{n_bytes:,} bytes = {n_bytes / 1024**3:.3g} GiB"


def check_array_bytes(shape, dtype, what: str) -> int:
    """Return the size in bytes of an array of ``shape`` and ``dtype``; raise if it exceeds the limit.

    ``what`` says which array and why it is that large, e.g. ``"the padded input
    (padding 10000)"``. Raises :class:`ArrayTooLargeError` (a ValueError) when
    ``prod(shape) * itemsize > MAX_ARRAY_BYTES``; nothing is allocated.
    """
    n_bytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    if n_bytes > MAX_ARRAY_BYTES:
        raise ArrayTooLargeError(
            f"{what} would have shape {tuple(int(s) for s in shape)} and need {_gib(n_bytes)}, more than the "
            f"limit of {_gib(MAX_ARRAY_BYTES)} (cnnkit._validate.MAX_ARRAY_BYTES); use smaller sizes"
        )
    return n_bytes


def as_float_array(x, name: str, ndim: int | tuple[int, ...] | None = None, layout: str = "") -> np.ndarray:
    """Return ``x`` as a float ndarray (float32 stays float32, others become float64).

    Raises TypeError for non-numeric input and ValueError for a wrong rank; the
    message names the argument, its shape and the expected layout.
    """
    arr = numeric_array(x, name)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            extra = f" ({layout})" if layout else ""
            raise ValueError(f"{name} must have rank {want}{extra}, got shape {arr.shape} (rank {arr.ndim})")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    return arr


def numeric_array(x, name: str) -> np.ndarray:
    """Return ``x`` as a real numeric (or boolean) ndarray, without converting its dtype.

    Raises TypeError for ragged lists, objects, strings and complex numbers.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    return arr


def finite_array(arr: np.ndarray, name: str, advice: str = "") -> np.ndarray:
    """Return ``arr`` unchanged; raise ValueError if it holds NaN or infinity (integers always pass)."""
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s){': ' + advice if advice else ''}")
    return arr


def integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as int, checking that it is an integer (not a bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value}")
    return int(value)


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


def positive_int_sequence(values, name: str) -> tuple[int, ...]:
    """Return ``values`` (a non-empty sequence of integers >= 1) as a tuple of ints; raise naming the bad entry."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values!r}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(values))


def real(value, name: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float in the interval from ``low`` to ``high``.

    ``low_open`` / ``high_open`` exclude the end itself, e.g.
    ``real(lr, "learning_rate", low=0, low_open=True)`` wants ``lr > 0``. Bools,
    strings, NaN and infinities are refused (TypeError for a non-number,
    ValueError for a number out of range); the message names the value and the
    interval.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    interval = (f"{'(' if low is None or low_open else '['}{'-inf' if low is None else f'{low:g}'}, "
                f"{'inf' if high is None else f'{high:g}'}{')' if high is None or high_open else ']'}")
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return v


def probability(value, name: str, *, upper_inclusive: bool = False) -> float:
    """Return ``value`` as float, checking 0 <= value < 1 (or <= 1)."""
    return real(value, name, low=0.0, high=1.0, high_open=not upper_inclusive)


def boolean(value, name: str) -> bool:
    """Return ``value`` as bool; only True, False (and numpy's bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def one_of(value, name: str, choices) -> str:
    """Return ``value`` if it is one of the strings ``choices``; otherwise raise naming them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value
