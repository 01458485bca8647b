"""Backward passes of the kit's layers: given dL/d(output), return dL/d(input) and dL/d(parameters).

Each function here undoes one forward pass of the kit, in the same layouts
(images NHWC, kernels HWIO) and with the same arguments:

* :func:`conv2d_backward` for ``cnnkit.conv.conv2d``: ``(dx, dw, db)``;
* :func:`max_pool2d_backward` for ``cnnkit.pooling.max_pool2d``: ``dx``;
* :func:`relu_backward` for ``cnnkit.activations.relu``: ``dx``;
* :func:`batch_norm_backward` for :func:`batch_norm_forward_train` (training
  mode, whose output is ``cnnkit.normalization.batch_norm``'s): ``(dx, dgamma, dbeta)``;
* :func:`dropout_backward` for ``cnnkit.regularization.dropout``: ``dx``.

Notation: ``dout`` is the upstream gradient dL/dy, shaped like the forward
output y; every returned gradient is shaped like the value it belongs to.
By the chain rule, for any input entry ``x_a``::

    dL/dx_a = sum over outputs b of dout_b * dy_b/dx_a

so each backward pass is the forward's Jacobian, transposed, applied to
``dout``. ``cnnkit.gradcheck`` checks them numerically. Float32 in, float32
out (when every array given is float32); float64 otherwise.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnnkit._validate import as_float_array, check_array_bytes, finite_array, pair, real
from cnnkit.activations import relu_grad
from cnnkit.conv import output_size, padding_amounts
from cnnkit.normalization import channel_moments
from cnnkit.pooling import max_pool2d
from cnnkit.regularization import apply_dropout_mask

__all__ = [
    "BatchNormCache",
    "batch_norm_backward",
    "batch_norm_forward_train",
    "conv2d_backward",
    "dropout_backward",
    "max_pool2d_backward",
    "relu_backward",
]


# --------------------------------------------------------------------------- shared checks


def _result_dtype(*arrays):
    """float32 when every array is float32, float64 otherwise (as the forward passes do)."""
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


def _upstream(dout, shape, what: str) -> np.ndarray:
    """``dout`` as a float array of exactly ``shape`` (the forward output's); raise naming both shapes."""
    dout = finite_array(as_float_array(dout, "dout"), "dout")
    if dout.shape != tuple(shape):
        raise ValueError(
            f"dout must have the shape of the forward output, {tuple(shape)} ({what}), got {dout.shape}"
        )
    return dout


def _images(x, name: str = "x") -> np.ndarray:
    """``x`` as a finite NHWC float array with non-empty height, width and channels."""
    x = finite_array(as_float_array(x, name, ndim=4, layout="NHWC: batch, height, width, channels"), name)
    if 0 in x.shape[1:]:
        raise ValueError(f"{name} must have non-empty height, width and channels, got shape {x.shape}")
    return x


def _strided_window(arr, u: int, v: int, stride, out_hw):
    """View of the padded NHWC ``arr`` holding, for every output position (i, j), the cell (i*s1 + u, j*s2 + v)."""
    (s1, s2), (h_out, w_out) = stride, out_hw
    return arr[:, u: u + (h_out - 1) * s1 + 1: s1, v: v + (w_out - 1) * s2 + 1: s2, :]


# --------------------------------------------------------------------------- convolution


def conv2d_backward(dout, x, w, stride=1, padding="valid"):
    """Gradients of :func:`cnnkit.conv.conv2d` (cross-correlation) with respect to x, w and b.

    Parameters
    ----------
    dout : array (N, H_out, W_out, K)
        dL/dy, shaped like the forward output.
    x : array (N, H, W, C)
        the forward input, NHWC.
    w : array (F1, F2, C, K)
        the forward kernel, HWIO.
    stride, padding
        as given to ``conv2d``: a stride int or pair; "valid", "same"
        (TensorFlow's rule) or an int number of zeros on every side (a pair
        is read as ``conv2d`` reads it, through ``cnnkit.conv.padding_amounts``).

    Returns
    -------
    ``(dx, dw, db)`` shaped (N, H, W, C), (F1, F2, C, K), (K,).

    With ``xp`` the zero-padded input, the forward pass is
    ``y[n,i,j,k] = b[k] + sum_{u,v,c} xp[n, i*s1+u, j*s2+v, c] w[u,v,c,k]``, so::

        db[k]       = sum_{n,i,j} dout[n,i,j,k]
        dw[u,v,c,k] = sum_{n,i,j} xp[n, i*s1+u, j*s2+v, c] dout[n,i,j,k]   (each patch times its dout)
        dxp[n, i*s1+u, j*s2+v, c] += sum_k dout[n,i,j,k] w[u,v,c,k]       (dout . w^T, scattered back)

    and ``dx`` is ``dxp`` with the padding cut off (padded cells are
    constants: their gradient is dropped). Input cells that no window reaches
    (the floor in the output size) get 0. For stride 1 the scatter-add equals
    a *full* correlation of ``dout`` (padded by F-1 on each side) with the
    kernel flipped in both spatial axes and transposed in its channels,
    ``w[::-1, ::-1].transpose(0, 1, 3, 2)``: the flip is why a convolution's
    input gradient is a true convolution. Here the sums run over the F1*F2
    kernel offsets, each one a matrix product over the whole batch.
    """
    x = _images(x)
    w = finite_array(as_float_array(w, "w", ndim=4,
                                    layout="HWIO: kernel height, kernel width, in channels, filters"), "w")
    if 0 in w.shape:
        raise ValueError(f"w must have no empty axis, got shape {w.shape}")
    f1, f2, c_in, k = w.shape
    n, h, wd, c = x.shape
    if c != c_in:
        raise ValueError(f"channel mismatch: x has {c} channels (shape {x.shape}) but w expects {c_in} "
                         f"input channels (shape {w.shape}, HWIO)")
    s1, s2 = pair(stride, "stride")
    pads = (padding_amounts(h, f1, s1, padding), padding_amounts(wd, f2, s2, padding))
    out_hw = (output_size(h, f1, s1, pads[0]), output_size(wd, f2, s2, pads[1]))
    dout = _upstream(dout, (n, *out_hw, k), f"N, H_out, W_out, K for x {x.shape}, w {w.shape}, "
                                            f"stride {(s1, s2)}, padding {padding!r}")
    dtype = _result_dtype(x, w, dout)
    padded = (n, h + sum(pads[0]), wd + sum(pads[1]), c)
    check_array_bytes(padded, dtype, f"the padded input and its gradient (padding {padding!r})")
    x, w, dout = (a.astype(dtype, copy=False) for a in (x, w, dout))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    dxp = np.zeros(padded, dtype=dtype)
    dw = np.empty_like(w)
    flat_dout = dout.reshape(-1, k)                              # (N*H_out*W_out, K)
    for u in range(f1):
        for v in range(f2):
            patch = _strided_window(xp, u, v, (s1, s2), out_hw)  # (N, H_out, W_out, C)
            dw[u, v] = patch.reshape(-1, c).T @ flat_dout        # (C, K)
            _strided_window(dxp, u, v, (s1, s2), out_hw)[...] += (flat_dout @ w[u, v].T).reshape(patch.shape)
    (top, _), (left, _) = pads
    dx = dxp[:, top: top + h, left: left + wd, :].copy()
    db = dout.sum(axis=(0, 1, 2))
    return dx, dw, db


# --------------------------------------------------------------------------- max pooling


def max_pool2d_backward(dout, x, size=2, stride=None, padding: str = "valid"):
    """Gradient of :func:`cnnkit.pooling.max_pool2d` with respect to its input x (pooling has no parameters).

    ``dout`` is (N, H_out, W_out, C), ``x`` the forward input (N, H, W, C);
    ``size``, ``stride`` (default ``size``) and ``padding`` ("valid" or
    "same") as given to ``max_pool2d``. Returns ``dx`` shaped like ``x``.

    A max passes its input through unchanged at the winning cell and ignores
    the others, so::

        dx[n, a, b, c] = sum over windows (i, j) whose arg-max is (a, b) of dout[n, i, j, c]

    (overlapping windows, stride < size, can send several gradients to one
    cell). Ties: the whole gradient of a window goes to its *first* maximum
    in row-major order (top row first, then left to right), which is what
    TensorFlow's CPU kernel does; other back ends may split it or pick
    another one. Mathematically the max is not differentiable at a tie, so
    gradient checks should use inputs without ties. Padded cells of "same"
    never win (they hold -inf).
    """
    y = max_pool2d(x, size, stride, padding)                     # validates x, size, stride, padding
    x = _images(x)
    f1, f2 = pair(size, "size")
    s1, s2 = pair(size if stride is None else stride, "stride")
    n, h, wd, c = x.shape
    out_hw = y.shape[1:3]
    pads = (padding_amounts(h, f1, s1, padding.lower()), padding_amounts(wd, f2, s2, padding.lower()))
    dout = _upstream(dout, y.shape, f"N, H_out, W_out, C for x {x.shape}, size {(f1, f2)}, "
                                    f"stride {(s1, s2)}, padding {padding!r}")
    dtype = _result_dtype(x, dout)
    padded = (n, h + sum(pads[0]), wd + sum(pads[1]), c)
    check_array_bytes(padded, dtype, f"the padded input and its gradient (padding {padding!r})")
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    dxp = np.zeros(padded, dtype=dtype)
    dout = dout.astype(dtype, copy=False)
    routed = np.zeros(y.shape, dtype=bool)                       # windows whose maximum was found already
    for u in range(f1):                                          # row-major: the first maximum wins
        for v in range(f2):
            wins = (_strided_window(xp, u, v, (s1, s2), out_hw) == y) & ~routed
            _strided_window(dxp, u, v, (s1, s2), out_hw)[...] += np.where(wins, dout, 0)
            routed |= wins
    (top, _), (left, _) = pads
    return dxp[:, top: top + h, left: left + wd, :].copy()


# --------------------------------------------------------------------------- ReLU


def relu_backward(dout, z):
    """Gradient of ReLU, ``y = max(0, z)``, with respect to its input z (any shape).

    ``dx = dout * [z > 0]``: the gradient passes where the unit was active and
    is 0 elsewhere. At exactly ``z = 0`` ReLU has a kink (left slope 0, right
    slope 1); like TensorFlow, the kit takes 0 there
    (:func:`cnnkit.activations.relu_grad`). Taking the mask from the output
    instead, ``[relu(z) > 0]``, is the same mask, zeros included, since
    ``max(0, z) > 0`` exactly when ``z > 0``; a numerical check at z = 0,
    though, sees the average of both slopes, 1/2.
    """
    z = as_float_array(z, "z")
    dout = _upstream(dout, z.shape, "shaped like z")
    dtype = _result_dtype(z, dout)
    return (dout * relu_grad(z)).astype(dtype, copy=False)


# --------------------------------------------------------------------------- batch normalization


class BatchNormCache(NamedTuple):
    """What :func:`batch_norm_backward` needs from the forward pass (float64 arrays).

    ``x_hat``: the normalised input, shaped like x; ``gamma``: (C,);
    ``sigma``: ``sqrt(var + eps)`` per channel, (C,); ``dtype``: the dtype of x.
    """

    x_hat: np.ndarray
    gamma: np.ndarray
    sigma: np.ndarray
    dtype: np.dtype


def _channel_param(value, name: str, channels: int) -> np.ndarray:
    arr = finite_array(as_float_array(value, name), name).astype(np.float64)
    if arr.shape != (channels,):
        raise ValueError(f"{name} must have shape (C,) = ({channels},), one value per channel "
                         f"(the last axis of x), got {arr.shape}")
    return arr


def batch_norm_forward_train(x, gamma, beta, eps: float = 1e-3):
    """Batch normalization in training mode (batch statistics), returning ``(out, cache)`` for the backward pass.

    ``x`` is (N, D) or (N, H, W, C); ``gamma`` and ``beta`` are (C,). Per
    channel, over the m values of the batch (m = N for 2-D input, N*H*W for
    4-D input)::

        mu = mean(x),   var = mean((x - mu)^2)   (biased, as in training)
        sigma = sqrt(var + eps),   x_hat = (x - mu) / sigma,   out = gamma * x_hat + beta

    The statistics are :func:`cnnkit.normalization.channel_moments`'s; ``out``
    equals ``cnnkit.normalization.batch_norm(..., training=True)[0]``
    (``eps`` defaults to Keras' 1e-3). ``cache`` is a :class:`BatchNormCache`.
    """
    arr = as_float_array(x, "x", ndim=(2, 4), layout="(N, D) or (N, H, W, C)")
    eps = real(eps, "eps", low=0.0, low_open=True)
    mean, var, _ = channel_moments(arr)                          # checks: samples, channels, finite values
    channels = arr.shape[-1]
    gamma = _channel_param(gamma, "gamma", channels)
    beta = _channel_param(beta, "beta", channels)
    sigma = np.sqrt(var + eps)
    x_hat = (arr.astype(np.float64) - mean) / sigma
    out = gamma * x_hat + beta
    return out.astype(arr.dtype, copy=False), BatchNormCache(x_hat, gamma, sigma, arr.dtype)


def batch_norm_backward(dout, cache: BatchNormCache):
    """Gradients of :func:`batch_norm_forward_train` with respect to x, gamma and beta.

    ``dout`` is shaped like x; ``cache`` is the forward's
    :class:`BatchNormCache`. Returns ``(dx, dgamma, dbeta)`` shaped like x,
    (C,), (C,). Sums run per channel over the m values of the batch (over N
    for 2-D input, over N, H, W for 4-D input)::

        dbeta  = sum dout
        dgamma = sum dout * x_hat
        dx_hat = dout * gamma
        dx     = (gamma / (m sigma)) (m dout - sum dout - x_hat sum(dout x_hat))
               = (1 / (m sigma)) (m dx_hat - sum dx_hat - x_hat sum(dx_hat x_hat))

    The three terms of dx: the direct path through x_hat, the path through
    the mean (every x moves mu), and the path through the variance (every x
    moves sigma); forgetting the last one, ``- x_hat sum(dx_hat x_hat)``, is
    the classic mistake, and it leaves a gradient that is right only when the
    upstream gradient is uncorrelated with x_hat.
    """
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"cache must be the BatchNormCache returned by batch_norm_forward_train, "
                        f"got {type(cache).__name__}")
    x_hat, gamma, sigma, dtype = cache
    dout = _upstream(dout, x_hat.shape, "shaped like x")
    out_dtype = np.float32 if dtype == np.float32 and dout.dtype == np.float32 else np.float64
    dout = dout.astype(np.float64)
    axes = tuple(range(x_hat.ndim - 1))
    m = x_hat.size // x_hat.shape[-1]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * gamma
    dx = (m * dx_hat - dx_hat.sum(axis=axes) - x_hat * (dx_hat * x_hat).sum(axis=axes)) / (m * sigma)
    return dx.astype(out_dtype, copy=False), dgamma, dbeta


# --------------------------------------------------------------------------- dropout


def dropout_backward(dout, mask, rate: float):
    """Gradient of inverted dropout, ``y = mask * x / (1 - rate)``, with respect to x (any shape).

    ``mask`` is the boolean keep-mask of the forward pass (True = kept, as
    :func:`cnnkit.regularization.dropout_with_mask` returns it) and ``rate``
    the drop probability in [0, 1). The map is linear and diagonal, so its
    gradient is the same map applied to dout::

        dx = mask * dout / (1 - rate)

    Dropped units get no gradient; kept ones get it scaled by 1/(1 - rate),
    the same factor as in the forward pass (leaving it out makes every
    gradient (1 - rate) times too small). At inference (no dropout) the
    gradient is dout itself.
    """
    dout = finite_array(as_float_array(dout, "dout"), "dout")
    mask = np.asarray(mask)
    if mask.shape != dout.shape:
        raise ValueError(f"mask has shape {mask.shape} but dout has shape {dout.shape}: the mask of the forward "
                         "pass is shaped like its input and output, so they must match")
    return apply_dropout_mask(dout, mask, rate)
