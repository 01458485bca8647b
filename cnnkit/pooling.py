"""Max and average pooling over NHWC batches, with TensorFlow's sizes and padding.

A pooling window of ``size`` (F1 x F2) moves with ``stride`` (default: the
size, so windows do not overlap) over each channel separately::

    max:      y[n, i, j, c] = max_{u < F1, v < F2} x[n, i*s1 + u - top, j*s2 + v - left, c]
    average:  y[n, i, j, c] = mean of the same window, over the cells inside the image

Output size per axis, as for a convolution (see :mod:`cnnkit.conv`)::

    "valid":  floor((n - F) / s) + 1
    "same":   ceil(n / s)   (padding split as TensorFlow does, the odd cell at the bottom / right)

With "same", the padded cells are *ignored*, as in TensorFlow: they never win
a max, and an average divides by the number of real cells in the window (a
corner window of a 2x2 average may hold one real value and be that value).
Pooling has no parameters; the channel count is unchanged.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, check_array_bytes, pair, positive_int
from cnnkit.conv import output_size, padding_amounts

__all__ = ["max_pool2d", "avg_pool2d", "pool_output_size", "pool_output_shape"]

POOL_PADDINGS = ("valid", "same")


def _padding(padding) -> str:
    if not isinstance(padding, str) or padding.lower() not in POOL_PADDINGS:
        raise ValueError(f"unknown padding {padding!r} for pooling: expected 'valid' or 'same'")
    return padding.lower()


def pool_output_size(n: int, size: int = 2, stride: int | None = None, padding: str = "valid") -> int:
    """Pooled length of an axis of ``n`` cells: ``floor((n - size) / stride) + 1`` ("valid") or ``ceil(n / stride)`` ("same").

    ``stride`` defaults to ``size``.

    >>> pool_output_size(32), pool_output_size(7, 2), pool_output_size(7, 2, padding="same"), pool_output_size(13, 3, 2)
    (16, 3, 4, 6)
    """
    return output_size(n, size, size if stride is None else stride, _padding(padding))


def pool_output_shape(input_shape, size=2, stride=None, padding: str = "valid") -> tuple[int, int, int]:
    """Shape (H_out, W_out, C) after pooling an (H, W, C) volume; C is unchanged."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {tuple(input_shape)!r}")
    h, w, c = (positive_int(v, f"input_shape[{i}]") for i, v in enumerate(input_shape))
    (f1, f2) = pair(size, "size")
    (s1, s2) = pair(size if stride is None else stride, "stride")
    return pool_output_size(h, f1, s1, padding), pool_output_size(w, f2, s2, padding), int(c)


def _pool_args(x, size, stride, padding):
    x = as_float_array(x, "x", ndim=4, layout="NHWC: batch, height, width, channels")
    f1, f2 = pair(size, "size")
    s1, s2 = pair(size if stride is None else stride, "stride")
    padding = _padding(padding)
    n, h, w, c = x.shape
    if h == 0 or w == 0:
        raise ValueError(f"x must have non-empty height and width, got shape {x.shape}")
    pads = (padding_amounts(h, f1, s1, padding), padding_amounts(w, f2, s2, padding))
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if f1 > hp or f2 > wp:
        raise ValueError(
            f"pooling window {f1}x{f2} is larger than the padded input {hp}x{wp} "
            f"(input {h}x{w}, padding {padding!r})"
        )
    out = ((hp - f1) // s1 + 1, (wp - f2) // s2 + 1)
    check_array_bytes((n, *out, c), x.dtype, f"the pooled output (window {f1}x{f2}, stride {(s1, s2)})")
    return x, (f1, f2), (s1, s2), pads, out


def _axis_plan(n: int, f: int, s: int, out: int, before: int) -> tuple[list[int], int, int]:
    """Window offsets along one axis that ever land on a real cell, and the padded range they read.

    Offset ``u`` (0 <= u < f) reads the padded positions ``u + i*s``, i = 0..out-1; the
    real cells are ``before .. before + n - 1``. Offsets that read only padding change
    neither a max (padding is -inf) nor an average (padding is not counted), so they are
    skipped: a window far larger than the image then costs no more than the image.
    Returns ``(offsets, lo, hi)``: the useful offsets and the padded positions
    ``lo .. hi - 1`` they read.
    """
    first, last = max(0, before - (out - 1) * s), min(f - 1, before + n - 1)
    useful = []
    for u in range(first, last + 1):
        i = max(0, -(-(before - u) // s))  # first output whose position u + i*s is not before the image
        if i <= out - 1 and u + i * s < before + n:
            useful.append(u)
    return useful, useful[0], useful[-1] + (out - 1) * s + 1


def _window_views(x, pads, size, stride, out, fill):
    """Yield, for each useful offset (u, v) inside the window, the (N, H_out, W_out, C) view of the cells it picks.

    Only the part of the padded input that the useful offsets read is built
    (``fill`` in the padding), so its size follows the image, not the window.
    """
    (f1, f2), (s1, s2), (h_out, w_out) = size, stride, out
    n, h, w, c = x.shape
    rows, r_lo, r_hi = _axis_plan(h, f1, s1, h_out, pads[0][0])
    cols, c_lo, c_hi = _axis_plan(w, f2, s2, w_out, pads[1][0])
    top, left = pads[0][0], pads[1][0]
    if r_lo >= top and r_hi <= top + h and c_lo >= left and c_hi <= left + w:
        xp = x[:, r_lo - top:r_hi - top, c_lo - left:c_hi - left]  # no padding read: a view
    else:
        check_array_bytes((n, r_hi - r_lo, c_hi - c_lo, c), x.dtype, "the padded part of the input")
        xp = np.full((n, r_hi - r_lo, c_hi - c_lo, c), fill, dtype=x.dtype)
        y0, y1 = max(top, r_lo), min(top + h, r_hi)  # real rows inside the range read
        x0, x1 = max(left, c_lo), min(left + w, c_hi)
        xp[:, y0 - r_lo:y1 - r_lo, x0 - c_lo:x1 - c_lo] = x[:, y0 - top:y1 - top, x0 - left:x1 - left]
    for u in rows:
        for v in cols:
            a, b = u - r_lo, v - c_lo
            yield xp[:, a: a + (h_out - 1) * s1 + 1: s1, b: b + (w_out - 1) * s2 + 1: s2]


def max_pool2d(x, size=2, stride=None, padding: str = "valid"):
    """Maximum of each ``size`` window of NHWC ``x``, moved by ``stride`` (default ``size``).

    Returns an array (N, H_out, W_out, C). With "same", padded cells hold
    ``-inf`` and so never win (TensorFlow's behaviour). Vectorised: the only
    Python loop runs over the offsets inside the window (at most F1*F2; offsets
    that would read only padding are skipped).
    """
    x, size, stride, pads, out = _pool_args(x, size, stride, padding)
    views = _window_views(x, pads, size, stride, out, -np.inf)
    y = np.array(next(views))
    for view in views:
        np.maximum(y, view, out=y)
    return y


def avg_pool2d(x, size=2, stride=None, padding: str = "valid"):
    """Mean of each ``size`` window of NHWC ``x``, moved by ``stride`` (default ``size``).

    Returns an array (N, H_out, W_out, C). With "same", each window is
    averaged over its real cells only (padded cells are not counted), as
    ``tf.nn.avg_pool2d`` does.
    """
    x, size, stride, pads, out = _pool_args(x, size, stride, padding)
    views = _window_views(x, pads, size, stride, out, 0.0)
    y = np.array(next(views))
    for view in views:
        y += view
    # how many real (not padded) cells each window holds
    ones = np.ones((1,) + x.shape[1:3] + (1,), dtype=x.dtype)
    counts = sum(_window_views(ones, pads, size, stride, out, 0.0))
    y /= counts
    return y
