"""Numerical gradient checking: is a hand-written backward pass right?

A backward pass is checked against a numerical gradient, the slope of the
forward pass measured by nudging each input entry in turn::

    g_i  ~  (L(x + h e_i) - L(x - h e_i)) / (2h),      L(x) = sum(f(x) * dout)

where ``e_i`` is the i-th unit array. ``L`` is what makes an array-valued
``f`` checkable: its gradient is exactly what a backward pass returns when it
is given ``dout`` as the upstream gradient.

Why *centred* differences: by Taylor's theorem the one-sided quotient
``(L(x + h e_i) - L(x)) / h`` is off by ``h/2 L''``, an error of order h,
while in the centred one the even terms cancel and the error is of order
``h^2 / 6 L'''``: with h = 1e-5, about 1e-10 instead of 1e-5.

Why *float64*: subtracting two nearly equal values of L keeps only the
digits in which they differ. Rounding makes each value uncertain by about
``eps |L|`` (eps = 2.2e-16 in float64, 1.2e-7 in float32), so the quotient
carries an error of about ``eps |L| / h``: 1e-11 in float64 but 1e-2 in
float32, larger than the bugs one is looking for. Check in float64.

How to read :func:`relative_error` (float64, h = 1e-5):

* below 1e-7: very good, the gradient is right;
* 1e-7 to 1e-5: look at it; fine where f has kinks (ReLU at 0, ties in a
  max, where the numerical slope averages two sides), suspicious otherwise;
* above 1e-5: probably wrong.

:func:`check_gradient` applies those thresholds and, when they fail, names
the worst element, its index and both values.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, positive_int, real

__all__ = [
    "MAX_EVALUATIONS",
    "PROBABLY_WRONG",
    "VERY_GOOD",
    "GradientCheckError",
    "check_gradient",
    "numerical_gradient",
    "relative_error",
]

#: Largest number of evaluations of f that :func:`numerical_gradient` makes unless told otherwise
#: (two per element of x: 50,000 elements).
MAX_EVALUATIONS = 100_000
#: Relative errors below this are very good (float64, h = 1e-5).
VERY_GOOD = 1e-7
#: Relative errors above this are probably a bug; :func:`check_gradient`'s default tolerance.
PROBABLY_WRONG = 1e-5
#: Floor of the denominator |a| + |b| in :func:`relative_error` (see there).
DEFAULT_FLOOR = 1e-8

_THRESHOLDS = (f"in float64, below {VERY_GOOD:g} is very good; {VERY_GOOD:g} to {PROBABLY_WRONG:g} deserves a "
               "look (fine at kinks: ReLU at 0, ties in a max); above "
               f"{PROBABLY_WRONG:g} the gradient is probably wrong")


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one beyond the tolerance."""


def _output(f, x: np.ndarray) -> np.ndarray:
    """``f(x)`` as a finite float64 array; raise naming what f returned otherwise."""
    value = f(x)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], np.ndarray):
        raise TypeError(f"f must return one array, got a {type(value).__name__} of {len(value)} items: "
                        "wrap the forward pass so that it returns the output to differentiate, "
                        "e.g. lambda x: forward(x)[0]")
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"f must return a numeric array, got {type(value).__name__}") from None
    if not np.all(np.isfinite(out)):
        raise ValueError(f"f returned {int(np.count_nonzero(~np.isfinite(out)))} NaN or infinite value(s): "
                         "a numerical gradient needs finite outputs")
    return out


def numerical_gradient(f, x, dout=None, h: float = 1e-5, *, max_evaluations: int = MAX_EVALUATIONS):
    """Centred-difference gradient of ``L(x) = sum(f(x) * dout)`` with respect to ``x``, element by element.

    Parameters
    ----------
    f : callable
        the forward pass, ``f(x) -> array``; it may also ignore its argument
        and read ``x`` from elsewhere (a closure over a weight array), since
        ``x`` is changed in place.
    x : float64 ndarray
        the point; each element is moved to ``x_i + h``, then ``x_i - h``,
        then restored (also when f raises), so x is unchanged on return.
    dout : array shaped like f(x), optional
        the upstream gradient; None means ones (the gradient of ``sum f(x)``).
    h : float
        the step, 1e-5 by default (see the module's notes).
    max_evaluations : int
        refuse when ``2 * x.size`` evaluations of f would exceed it.

    Returns
    -------
    float64 array shaped like ``x``::

        grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2 h)

    (the outputs are subtracted before being weighted and summed, so the
    outputs that do not depend on x_i cancel exactly).
    """
    if not callable(f):
        raise TypeError(f"f must be a function of x, got {type(f).__name__}")
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        what = f"an ndarray of dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"x must be a float64 numpy array, changed in place and restored, got {what}: pass "
                        "np.array(x, dtype=np.float64) (float32 loses too many digits in the difference "
                        "quotient: errors near 1e-2)")
    if not x.flags.writeable:
        raise ValueError("x is read-only: numerical_gradient changes its elements one at a time; pass a copy")
    h = real(h, "h", low=0.0, low_open=True)
    max_evaluations = positive_int(max_evaluations, "max_evaluations")
    evaluations = 2 * x.size
    if evaluations > max_evaluations:
        raise ValueError(
            f"x has {x.size:,} elements: a numerical gradient needs {evaluations:,} evaluations of f, more than "
            f"the limit of {max_evaluations:,} (max_evaluations): check a smaller input (a few images, a few "
            "channels), which finds the same bugs"
        )
    out = _output(f, x)
    if dout is None:
        weights = np.ones(out.shape)
    else:
        weights = as_float_array(dout, "dout").astype(np.float64)
        if weights.shape != out.shape:
            raise ValueError(f"dout must have the shape of f(x), {out.shape}, got {weights.shape}")
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(*x.shape):
        saved = x[index]
        try:
            x[index] = saved + h
            above = _output(f, x)
            x[index] = saved - h
            below = _output(f, x)
        finally:
            x[index] = saved
        if above.shape != out.shape or below.shape != out.shape:
            changed = above.shape if above.shape != out.shape else below.shape
            raise ValueError(f"f(x) changed shape from {out.shape} to {changed} when x{list(index)} moved by {h:g}")
        grad[index] = np.sum((above - below) * weights) / (2 * h)
    return grad


def _pair(a, b, floor) -> tuple[np.ndarray, np.ndarray, float]:
    a = as_float_array(a, "a").astype(np.float64)
    b = as_float_array(b, "b").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two gradients must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError(f"the gradients are empty (shape {a.shape}): nothing to compare")
    floor = real(floor, "floor", low=0.0, low_open=True)
    return a, b, floor


def _elementwise_errors(a: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        errors = np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)
    return np.where(np.isnan(errors), np.inf, errors)  # a NaN anywhere is a failure, never a pass


def relative_error(a, b, floor: float = DEFAULT_FLOOR) -> float:
    """Largest element-wise relative error, ``max_i |a_i - b_i| / max(|a_i| + |b_i|, floor)``.

    Relative, so that it reads the same for gradients of any size; the
    ``floor`` (1e-8) keeps elements where both gradients are (nearly) zero
    from dividing rounding noise by almost nothing. NaN counts as infinitely
    wrong. ``a`` and ``b`` must have the same shape.
    """
    a, b, floor = _pair(a, b, floor)
    return float(np.max(_elementwise_errors(a, b, floor)))


def check_gradient(name: str, analytic, numeric, tolerance: float = PROBABLY_WRONG,
                   floor: float = DEFAULT_FLOOR) -> str:
    """Compare an analytic gradient with a numerical one; return a one-line report, or raise.

    ``name`` says which gradient it is ("conv dx"). The verdict follows the
    thresholds of the module's notes (float64): below 1e-7 "very good",
    up to ``tolerance`` (1e-5) "look at it", and above it
    :class:`GradientCheckError` is raised, naming the worst element (its
    index, both values and its relative error), how many elements fail, and
    the thresholds.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string naming the gradient, got {name!r}")
    a, b, floor = _pair(analytic, numeric, floor)
    tolerance = real(tolerance, "tolerance", low=0.0, low_open=True)
    errors = _elementwise_errors(a, b, floor)
    worst = np.unravel_index(int(np.argmax(errors)), errors.shape)
    largest = float(errors[worst])
    where = f"index {tuple(int(i) for i in worst)}"
    if largest > tolerance:
        failing = int(np.count_nonzero(errors > tolerance))
        raise GradientCheckError(
            f"{name}: relative error {largest:.3g} at {where}: "
            f"analytic {float(a[worst])!r}, numeric {float(b[worst])!r} "
            f"({failing} of {errors.size} elements above {tolerance:g}); {_THRESHOLDS}"
        )
    verdict = "very good" if largest < VERY_GOOD else "look at it: acceptable only near kinks (ReLU at 0, max ties)"
    return f"{name}: relative error {largest:.2e} ({verdict}), worst at {where} of shape {a.shape}"
