"""2-D convolution as CNNs compute it: a loop for reading, a vectorised version for use.

Layouts are TensorFlow's: images ``x`` are NHWC (batch, height, width,
channels) and kernels ``w`` are HWIO (kernel height, kernel width, input
channels, output channels = number of filters K).

What a convolutional layer computes is a **cross-correlation** (the kernel is
not flipped)::

    y[n, i, j, k] = b[k] + sum_{u, v, c} xp[n, i*sh + u, j*sw + v, c] * w[u, v, c, k]

where ``xp`` is ``x`` zero-padded and ``(sh, sw)`` the stride. Flipping the
kernel (``w[::-1, ::-1]``) turns it into the convolution of signal processing.

Output sizes, "same" padding and the shapes through a stack of layers are
computed in :mod:`cnnkit.conv_shapes`, the fast lowering behind :func:`conv2d`
in :mod:`cnnkit.conv_fast`, and the pictures of the sliding window in
:mod:`cnnkit.conv_explorer`; lesson 01 reaches all of them from here
(``ck.conv.output_size``, ``ck.conv.conv_explorer``, ...).
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, check_array_bytes, pair
from cnnkit.conv_explorer import conv_explorer, draw_conv_geometry
from cnnkit.conv_fast import lowered_conv
from cnnkit.conv_shapes import (
    PADDINGS, _padding_value, conv_spec,  # noqa: F401  (PADDINGS is re-exported)
    keras_trace_shapes, output_size, padding_amounts, pool_spec,
    same_padding, trace_shapes,
)

__all__ = [
    "conv2d", "conv2d_naive", "output_size", "same_padding", "padding_amounts",
    "conv_spec", "pool_spec", "trace_shapes", "keras_trace_shapes",
    "draw_conv_geometry", "conv_explorer",
]


# --------------------------------------------------------------------------- argument checks


def _conv_args(x, w, b, stride, padding):
    """Validate conv2d's arguments; return arrays, strides, paddings and output size."""
    x = as_float_array(x, "x", ndim=4, layout="NHWC: batch, height, width, channels")
    w = as_float_array(w, "w", ndim=4, layout="HWIO: kernel height, kernel width, in channels, filters")
    if 0 in w.shape:
        raise ValueError(f"w must have no empty axis, got shape {w.shape}")
    if 0 in x.shape[1:]:
        raise ValueError(f"x must have non-empty height, width and channels, got shape {x.shape}")
    f1, f2, c_in, k = w.shape
    if x.shape[3] != c_in:
        raise ValueError(
            f"channel mismatch: x has {x.shape[3]} channels (shape {x.shape}) but w expects "
            f"{c_in} input channels (shape {w.shape}, HWIO)"
        )
    dtype = np.float32 if x.dtype == w.dtype == np.float32 else np.float64
    if b is not None:
        b = as_float_array(b, "b", ndim=1, layout="one bias per filter")
        if b.shape != (k,):
            raise ValueError(f"b must have shape ({k},) (one bias per filter), got {b.shape}")
        b = b.astype(dtype, copy=False)
    sh, sw = pair(stride, "stride")
    padding = _padding_value(padding)
    _, h, wd, _ = x.shape
    pads = (padding_amounts(h, f1, sh, padding), padding_amounts(wd, f2, sw, padding))
    hp, wp = h + sum(pads[0]), wd + sum(pads[1])
    if f1 > hp or f2 > wp:
        raise ValueError(
            f"kernel {f1}x{f2} is larger than the padded input {hp}x{wp} "
            f"(input {h}x{wd}, padding {padding!r}); no position fits"
        )
    out_hw = ((hp - f1) // sh + 1, (wp - f2) // sw + 1)
    n = x.shape[0]
    if hp != h or wp != wd:
        check_array_bytes((n, hp, wp, c_in), dtype, f"the padded input (input {h}x{wd}, padding {padding!r})")
    check_array_bytes((n, *out_hw, k), dtype, f"the output (padding {padding!r}, stride {(sh, sw)})")
    if f1 * f2 > 1:  # the smallest block the lowering copies: one output row of patches
        check_array_bytes((out_hw[1], f1 * f2 * c_in), dtype, f"one output row of {f1}x{f2}x{c_in} patches")
    return x.astype(dtype, copy=False), w.astype(dtype, copy=False), b, (sh, sw), pads, out_hw


def _pad(x, pads, value=0.0):
    """Return ``x`` (NHWC) with ``pads = ((top, bottom), (left, right))`` cells of ``value`` added."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    xp = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    xp[:, top:top + h, left:left + w, :] = x
    return xp


# --------------------------------------------------------------------------- the loop version


def conv2d_naive(x, w, b=None, stride=1, padding="valid"):
    """Cross-correlation of NHWC ``x`` with HWIO ``w``, written as the formula's loops.

    ``y[n, i, j, k] = b[k] + sum_{u, v, c} xp[n, i*sh + u, j*sw + v, c] * w[u, v, c, k]``

    Same arguments and result as :func:`conv2d`; meant for reading (it is
    hundreds to thousands of times slower).
    """
    x, w, b, (sh, sw), pads, (h_out, w_out) = _conv_args(x, w, b, stride, padding)
    xp = _pad(x, pads)
    n_images = x.shape[0]
    f1, f2, c_in, n_filters = w.shape
    y = np.zeros((n_images, h_out, w_out, n_filters), dtype=x.dtype)
    for n in range(n_images):
        for i in range(h_out):
            for j in range(w_out):
                for k in range(n_filters):
                    total = 0.0
                    for u in range(f1):
                        for v in range(f2):
                            for c in range(c_in):
                                total += xp[n, i * sh + u, j * sw + v, c] * w[u, v, c, k]
                    y[n, i, j, k] = total + (b[k] if b is not None else 0.0)
    return y


# --------------------------------------------------------------------------- the vectorised version


def conv2d(x, w, b=None, stride=1, padding="valid"):
    """Cross-correlation of a batch of images with a bank of filters, vectorised.

    Parameters
    ----------
    x : array (N, H, W, C)
        images, NHWC.
    w : array (F1, F2, C, K)
        K filters of size F1 x F2 over C channels, HWIO (as ``tf.nn.conv2d``).
    b : array (K,), optional
        one bias per filter.
    stride : int or (int, int)
        step of the window, rows then columns.
    padding : "valid", "same", int or (int, int)
        "valid": no padding; "same": TensorFlow's rule (output ``ceil(H / s)``,
        an odd zero at the bottom / right); an int p: p zeros on every side.

    Returns
    -------
    array (N, H_out, W_out, K), ``H_out = floor((H + pad_top + pad_bottom - F1) / s) + 1``.
    float32 when x and w are float32, float64 otherwise.

    How (no Python loop over pixels): every output value is the dot product of
    one F1 x F2 x C patch with one filter, so with the patches as the rows of a
    matrix P (one row per output pixel) and the filters as the columns of
    ``w_mat = w.reshape(F1*F2*C, K)``, the whole layer is one matrix product
    ``P @ w_mat``: the *im2col* method. P is read from the padded input through
    ``as_strided`` (a view), copied one cache-sized block of images or rows at
    a time, each block followed by its product; with fewer than 128 filters
    the blocks are shared out among as many threads as numpy's BLAS may use
    (with more, BLAS threads each product itself). Patches overlap, so P repeats
    each pixel F1*F2 times; where that copying dominates (large kernels on few
    channels, a single large image), a leaner lowering copies each output
    column's *strip* (all rows, F2 columns, C channels) once: the patch of
    output row i is a contiguous slice of the strip, so each output row is one
    product read straight from the strips (F1 times less copying). A 1x1
    kernel needs no copy at all: ``x.reshape(-1, C) @ w_mat``.
    """
    x, w, b, stride, pads, (h_out, w_out) = _conv_args(x, w, b, stride, padding)
    n_images = x.shape[0]
    f1, f2, c_in, n_filters = w.shape
    w_mat = w.reshape(f1 * f2 * c_in, n_filters)  # row (u, v, c) matches a patch flattened in that order
    y = np.empty((n_images, h_out, w_out, n_filters), dtype=x.dtype)
    if n_images == 0:
        return y
    xp = _pad(x, pads)
    if f1 == f2 == 1:
        sh, sw = stride
        pixels = xp[:, : (h_out - 1) * sh + 1: sh, : (w_out - 1) * sw + 1: sw, :]
        np.matmul(pixels.reshape(-1, c_in), w_mat, out=y.reshape(-1, n_filters))
    else:
        lowered_conv(xp, w_mat, (f1, f2), stride, y)
    if b is not None:
        y += b
    return y
