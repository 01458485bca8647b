"""Checks for the backward-pass exercises of lessons 01, 02 and 04: gradients written by hand.

Each check calls the student's backward pass on visible inputs (and, when
graded, on hidden ones), compares every gradient with :mod:`cnnkit.backward`
(itself checked against ``tf.GradientTape``) and, when one differs, compares
it with what a classic mistake computes, so that the message names the mistake:

* convolution: ``dx`` with ``w`` not transposed in its channel axes or the
  kernel flipped the wrong way; ``dw`` averaged over the batch, taken from one
  image, flipped, or with its channel axes swapped; ``db`` averaged;
* ReLU: the gradient not masked, masked by ``relu(z)`` or by ``dout > 0``;
* max pooling: the gradient sent to every cell of a window, averaged over it,
  or overwritten (``=`` instead of ``+=``) where windows overlap;
* batch norm: the forgotten ``- x_hat * sum(dx_hat * x_hat)`` term (the path
  through the variance), the forgotten ``- sum(dx_hat)`` term (the path
  through the mean), or both;
* dropout: no ``1 / (1 - rate)`` scale, a division by ``rate``, the mask
  inverted or not applied.

The topic modules (:mod:`cnnkit.checks.convolution`, ``pooling``,
``batchnorm_dropout``) re-export these checks, so a notebook calls them
through its usual ``checks`` alias.
"""
from __future__ import annotations

import numpy as np

from cnnkit.backward import (
    batch_norm_backward,
    batch_norm_forward_train,
    conv2d_backward,
    dropout_backward,
    max_pool2d_backward,
    relu_backward,
)
from cnnkit.checks import (
    call_answer,
    case_rng,
    cases,
    expect_array,
    expect_callable,
    expect_shape,
    fail,
    passed,
)
from cnnkit.conv import output_size

# A float32 answer is fine: rtol 1e-4 is far below the size of every mistake named here.
RTOL, ATOL = 1e-4, 1e-6
BN_EPSILON = 1e-3  # Keras' default


# --------------------------------------------------------------------------- shared helpers


def _shown(args) -> str:
    return ", ".join(f"<array {np.shape(a)}>" if isinstance(a, np.ndarray) else repr(a) for a in args)


def _unpack(result, call: str, names: tuple[str, ...], shapes: list[tuple], shape_hints: dict) -> list[np.ndarray]:
    """The answer's gradients as float arrays of the expected shapes, or a failure naming what is wrong."""
    if len(names) == 1:
        result = (result,)
    elif not isinstance(result, (tuple, list)) or len(result) != len(names):
        length = f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        fail(f"{call} should return a tuple ({', '.join(names)}), got {type(result).__name__}{length}")
    out = []
    for name, value, shape in zip(names, result, shapes):
        hint = shape_hints.get(name)
        if hint is not None and np.shape(value) != tuple(shape):
            fail(f"{name} from {call} has shape {np.shape(value)}, expected {tuple(shape)}: {hint}")
        arr = expect_shape(f"{name} from {call}", value, shape)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            fail(f"{name} from {call} should hold numbers, got dtype {arr.dtype}")
        out.append(arr.astype(np.float64))
    return out


def _close(a, b) -> bool:
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def _compare(label: str, got: np.ndarray, expected: np.ndarray, mistakes) -> None:
    """Pass when ``got`` matches ``expected``; else name the first mistake (candidate, message) it matches."""
    if _close(got, expected):
        return
    for candidate, message in mistakes:
        if candidate is not None and _close(got, np.asarray(candidate, dtype=np.float64)):
            fail(f"{label}: {message}")
    expect_array(label, got, expected, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- convolution (lesson 01)

# (x shape NHWC, w shape HWIO, stride): C == K in the first (a missing transpose keeps the shapes),
# stride 2 in the second, whose last input row no window reaches.
CONV_CASES = [((2, 6, 6, 3), (3, 3, 3, 3), 1), ((2, 10, 8, 2), (3, 2, 2, 4), 2)]


def _draw_conv_cases(rng: np.random.Generator) -> list[tuple[tuple, tuple, int]]:
    """Two hidden cases like CONV_CASES: C == K with stride 1, then C != K with stride 2 or 3."""
    f1, f2, c = int(rng.integers(2, 4)), int(rng.integers(2, 4)), int(rng.integers(2, 5))
    first = ((int(rng.integers(2, 4)), int(rng.integers(f1 + 2, 9)), int(rng.integers(f2 + 2, 9)), c),
             (f1, f2, c, c), 1)
    f1, f2, stride = int(rng.integers(2, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
    c, k = int(rng.integers(1, 4)), int(rng.integers(4, 7))
    second = ((int(rng.integers(2, 4)), int(rng.integers(f1 + 4, 12)), int(rng.integers(f2 + 4, 12)), c),
              (f1, f2, c, k), stride)
    return [first, second]


def _conv_mistakes(dout, x, w, stride, expected):
    """Lists of (candidate, message) for dx, dw and db; ``expected`` is the reference (dx, dw, db)."""
    ref_dw = expected[1]
    square = w.shape[2] == w.shape[3]
    swapped = w.transpose(0, 1, 3, 2)
    flipped = w[::-1, ::-1]
    transpose = ("w is used without swapping its channel axes (a missing transpose): input channel c receives "
                 "sum over k of dout[..., k] * w[u, v, c, k], so at each offset the product is "
                 "dout (.., K) @ w[u, v].T (K, C)")
    flip = ("the kernel is flipped the wrong way: input cell (i*s + u, j*s + v) receives dout[i, j] * w[u, v]. "
            "In a scatter-add use w as it is; written as a full correlation of the zero-padded dout, the kernel "
            "must be flipped (w[::-1, ::-1]) exactly once")
    dx_mistakes = [(conv2d_backward(dout, x, flipped, stride)[0], flip)]
    if square:
        dx_mistakes += [(conv2d_backward(dout, x, swapped, stride)[0], transpose),
                        (conv2d_backward(dout, x, swapped[::-1, ::-1], stride)[0],
                         f"two mistakes at once: {transpose}; and {flip}")]
    dw_mistakes = [
        (ref_dw / x.shape[0], ("dw is averaged over the batch (divided by N); the loss adds up every image, so "
                              "dw sums over the batch and every output position (axes n, i, j)")),
        (conv2d_backward(dout[:1], x[:1], w, stride)[1],
         "dw comes from the first image only; sum the products over the batch axis too"),
        (ref_dw[::-1, ::-1], ("dw is flipped in both spatial axes: dw[u, v] pairs x[i*s + u, j*s + v] with "
                             "dout[i, j], no flip (the forward pass is a cross-correlation)")),
    ]
    if square:
        dw_mistakes.append((ref_dw.transpose(0, 1, 3, 2),
                            ("dw has its channel axes swapped: dw[u, v, c, k] = sum of x-patch[..., c] * "
                            "dout[..., k], laid out HWIO like w (patch.T @ dout, not dout.T @ patch)")))
    db_mistakes = [(dout.mean(axis=(0, 1, 2)), ("db is averaged; it is the SUM of dout over the batch and every "
                                               "output position, since b[k] is added to each of them"))]
    return dx_mistakes, dw_mistakes, db_mistakes


def check_conv_backward(conv_backward) -> None:
    """``conv_backward(dout, x, w, stride)`` -> ``(dx, dw, db)`` of a valid convolution (NHWC x, HWIO w)."""
    expect_callable(conv_backward, "conv_backward")
    rng = case_rng(21)
    table = cases(CONV_CASES, _draw_conv_cases, seed=21)
    for shape_x, shape_w, stride in table:
        x, w = rng.normal(size=shape_x), rng.normal(size=shape_w)
        out_shape = (shape_x[0], output_size(shape_x[1], shape_w[0], stride, 0),
                     output_size(shape_x[2], shape_w[1], stride, 0), shape_w[3])
        dout = rng.normal(size=out_shape)
        expected = conv2d_backward(dout, x, w, stride)
        call = f"conv_backward(dout {out_shape}, x {shape_x}, w {shape_w}, stride={stride})"
        got = call_answer(conv_backward, call, dout.copy(), x.copy(), w.copy(), stride,
                          detail=" (a shape error in dx often means w[u, v] is not transposed: dout (.., K) "
                                 "@ w[u, v].T gives (.., C))")
        hints = {"dw": f"one value per weight, shaped like w {shape_w} (sum over the batch, no batch axis)",
                 "db": f"one value per filter, ({shape_w[3]},): sum dout over axes 0, 1 and 2"}
        dx, dw, db = _unpack(got, call, ("dx", "dw", "db"), [shape_x, shape_w, (shape_w[3],)], hints)
        dx_mistakes, dw_mistakes, db_mistakes = _conv_mistakes(dout, x, w, stride, expected)
        _compare(f"dx of {call}", dx, expected[0], dx_mistakes)
        _compare(f"dw of {call}", dw, expected[1], dw_mistakes)
        _compare(f"db of {call}", db, expected[2], db_mistakes)
    strides = " and ".join(str(s) for s in sorted({case[2] for case in table}))
    passed(f"dx, dw and db match cnnkit.backward.conv2d_backward (checked against tf.GradientTape) "
           f"with stride {strides}")


# --------------------------------------------------------------------------- ReLU (lesson 01)


def _draw_relu_shapes(rng: np.random.Generator) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in rng.integers(2, 6, size=int(rng.integers(2, 5)))), (int(rng.integers(5, 12)),)]


def check_relu_backward(relu_backward_fn) -> None:
    """``relu_backward(dout, z)`` -> ``dx = dout * [z > 0]``, any shape."""
    expect_callable(relu_backward_fn, "relu_backward")
    rng = case_rng(23)
    table = cases([(3, 4, 5), (9,)], _draw_relu_shapes, seed=23)
    for shape in table:
        z = rng.normal(size=shape)
        z[z == 0] = 0.5  # the slope at exactly 0 is a convention: not tested
        dout = rng.normal(size=shape)
        call = f"relu_backward(dout {shape}, z {shape})"
        (dx,) = _unpack(call_answer(relu_backward_fn, call, dout.copy(), z.copy()), call, ("dx",), [shape], {})
        _compare(f"dx of {call}", dx, relu_backward(dout, z), [
            (dout, ("dx equals dout: ReLU's gradient is not masked. Where z <= 0 the unit outputs the constant 0, "
                   "so no gradient passes there: dx = dout * (z > 0)")),
            (dout * np.maximum(z, 0), ("dx is dout * relu(z): multiply by ReLU's slope (1 where z > 0, else 0), "
                                      "not by its output")),
            ((z > 0).astype(float), ("dx is the mask (z > 0) alone: by the chain rule multiply it by dout, the "
                                    "gradient arriving from above")),
            (dout * (dout > 0), ("dx is masked where dout > 0: the mask comes from the forward input z, "
                                "not from the gradient")),
            (dout * (z < 0), "the mask is inverted: the gradient passes where z > 0 (the unit was active)"),
        ])
    passed(f"relu_backward matches dout * (z > 0) on {len(table)} arrays")


# --------------------------------------------------------------------------- max pooling (lesson 02)

# (x shape NHWC, size, stride): windows that tile (with a row no window reaches), then overlapping ones.
POOL_CASES = [((2, 5, 6, 2), 2, 2), ((1, 7, 7, 3), 3, 2)]


def _draw_pool_cases(rng: np.random.Generator) -> list[tuple[tuple, int, int]]:
    size = int(rng.integers(2, 4))
    tiling = ((int(rng.integers(1, 3)), int(rng.integers(size + 2, 10)), int(rng.integers(size + 2, 10)),
               int(rng.integers(1, 4))), size, size)
    size = int(rng.integers(2, 4))
    stride = int(rng.integers(1, size))
    overlapping = ((int(rng.integers(1, 3)), int(rng.integers(size + 3, 10)), int(rng.integers(size + 3, 10)),
                    int(rng.integers(1, 4))), size, stride)
    return [tiling, overlapping]


def _pool_windows(shape, size: int, stride: int):
    """(i, j, rows, cols) of every window of a valid max pool over an (N, H, W, C) input."""
    h_out, w_out = output_size(shape[1], size, stride, 0), output_size(shape[2], size, stride, 0)
    for i in range(h_out):
        for j in range(w_out):
            yield i, j, slice(i * stride, i * stride + size), slice(j * stride, j * stride + size)


def _pool_mistakes(dout, x, size: int, stride: int):
    """(candidate, message) pairs: gradient to every cell, averaged, or overwritten where windows overlap."""
    spread, overwritten = np.zeros_like(x), np.zeros_like(x)
    for i, j, rows, cols in _pool_windows(x.shape, size, stride):
        spread[:, rows, cols, :] += dout[:, i:i + 1, j:j + 1, :]
        window = x[:, rows, cols, :].reshape(x.shape[0], -1, x.shape[3])
        winner = window.argmax(axis=1)                               # (N, C), row-major first maximum
        for n in range(x.shape[0]):
            for c in range(x.shape[3]):
                u, v = divmod(int(winner[n, c]), size)
                overwritten[n, rows.start + u, cols.start + v, c] = dout[n, i, j, c]
    return [
        (spread, ("the gradient goes to every cell of the window; only the cell that held the maximum passed its "
                 "value on, so only that cell receives dout (the others get 0)")),
        (spread / size ** 2, ("the gradient is averaged over the window: that is average pooling's backward pass; "
                             "max pooling sends all of dout to the window's maximum")),
        (overwritten, ("where windows overlap, a cell that is the maximum of several windows must receive the SUM "
                      "of their gradients: accumulate with +=, do not assign with =")),
    ]


def check_max_pool_backward(max_pool_backward) -> None:
    """``max_pool_backward(dout, x, size, stride)`` -> ``dx`` of a valid max pool over NHWC ``x``."""
    expect_callable(max_pool_backward, "max_pool_backward")
    rng = case_rng(25)
    table = cases(POOL_CASES, _draw_pool_cases, seed=25)
    for shape, size, stride in table:
        x = rng.normal(size=shape)
        if stride < size:  # a cell that is the maximum of four overlapping windows
            x[:, stride, stride, :] = x.max() + 1.0
        out_shape = (shape[0], output_size(shape[1], size, stride, 0), output_size(shape[2], size, stride, 0),
                     shape[3])
        dout = rng.normal(size=out_shape)
        call = f"max_pool_backward(dout {out_shape}, x {shape}, size={size}, stride={stride})"
        got = call_answer(max_pool_backward, call, dout.copy(), x.copy(), size, stride)
        (dx,) = _unpack(got, call, ("dx",), [shape], {})
        _compare(f"dx of {call}", dx, max_pool2d_backward(dout, x, size, stride), _pool_mistakes(dout, x, size, stride))
    passed(f"max_pool_backward routes every gradient to its window's maximum ({len(table)} cases, "
           "overlapping windows included)")


# --------------------------------------------------------------------------- batch norm (lesson 04)


def _draw_bn_shapes(rng: np.random.Generator) -> list[tuple[int, ...]]:
    return [(int(rng.integers(4, 12)), int(rng.integers(2, 7))),
            (int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 5)))]


def check_batch_norm_backward(batch_norm_backward_fn) -> None:
    """``batch_norm_backward(dout, x, gamma, eps)`` -> ``(dx, dgamma, dbeta)`` of batch norm in training mode."""
    expect_callable(batch_norm_backward_fn, "batch_norm_backward")
    rng = case_rng(27)
    table = cases([(6, 4), (3, 4, 4, 2)], _draw_bn_shapes, seed=27)
    for shape in table:
        c = shape[-1]
        x = rng.normal(1.5, 2.0, shape)
        gamma = rng.uniform(0.5, 2.0, c)
        _, cache = batch_norm_forward_train(x, gamma, np.zeros(c), BN_EPSILON)
        # an offset and a part along x_hat: both sums of dx are then far from zero, so each forgotten term shows
        dout = rng.normal(0.5, 1.0, shape) + 0.8 * cache.x_hat
        ref_dx, ref_dgamma, ref_dbeta = batch_norm_backward(dout, cache)
        call = f"batch_norm_backward(dout {shape}, x {shape}, gamma ({c},), eps={BN_EPSILON})"
        got = call_answer(batch_norm_backward_fn, call, dout.copy(), x.copy(), gamma.copy(), BN_EPSILON)
        per_channel = f"one value per channel, ({c},): sum over every axis but the last"
        dx, dgamma, dbeta = _unpack(got, call, ("dx", "dgamma", "dbeta"), [shape, (c,), (c,)],
                                    {"dgamma": per_channel, "dbeta": per_channel})
        axes = tuple(range(len(shape) - 1))
        m, x_hat, sigma = x.size // c, cache.x_hat, cache.sigma
        dx_hat = dout * gamma
        sum_dx_hat, sum_dx_hat_x_hat = dx_hat.sum(axis=axes), (dx_hat * x_hat).sum(axis=axes)
        _compare(f"dx of {call}", dx, ref_dx, [
            ((m * dx_hat - sum_dx_hat) / (m * sigma),
             ("dx lacks the term - x_hat * sum(dx_hat * x_hat), the path through the variance: every x moves "
             "sigma, and so every x_hat. dx = (m dx_hat - sum(dx_hat) - x_hat sum(dx_hat x_hat)) / (m sigma)")),
            ((m * dx_hat - x_hat * sum_dx_hat_x_hat) / (m * sigma),
             ("dx lacks the term - sum(dx_hat), the path through the mean: every x moves mu, and so every x_hat. "
             "dx = (m dx_hat - sum(dx_hat) - x_hat sum(dx_hat x_hat)) / (m sigma)")),
            (dx_hat / sigma, ("dx = dout * gamma / sigma treats the batch mean and variance as constants; in "
                             "training mode they are computed from x, which adds the terms - sum(dx_hat) and "
                             "- x_hat sum(dx_hat x_hat) (divided by m sigma)")),
            (ref_dx / gamma, "dx lacks the factor gamma: the gradient reaching x_hat is dx_hat = dout * gamma"),
        ])
        if _close(dgamma, ref_dbeta) and _close(dbeta, ref_dgamma):
            fail(f"{call} returned dgamma and dbeta swapped: return (dx, dgamma, dbeta)")
        _compare(f"dgamma of {call}", dgamma, ref_dgamma, [
            (dout.sum(axis=axes), "dgamma is sum(dout): gamma multiplies x_hat, so dgamma = sum(dout * x_hat)"),
            ((dout * x).sum(axis=axes), ("dgamma uses x; gamma multiplies the normalised x_hat: "
                                        "dgamma = sum(dout * x_hat)")),
        ])
        _compare(f"dbeta of {call}", dbeta, ref_dbeta, [
            (dout.mean(axis=axes), ("dbeta is averaged; beta is added to all m values of its channel, "
                                   "so dbeta = sum(dout)")),
        ])
    passed(f"dx, dgamma and dbeta match cnnkit.backward.batch_norm_backward (checked against tf.GradientTape) "
           f"for {' and '.join(str(s) for s in table)} inputs")


# --------------------------------------------------------------------------- dropout (lesson 04)


def _draw_dropout_cases(rng: np.random.Generator) -> list[tuple[tuple, float]]:
    """Two hidden (shape, rate) cases; rates away from 0.5, where 1/rate and 1/(1 - rate) coincide."""
    rates = [float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.6, 0.8))]
    shapes = [(int(rng.integers(3, 8)), int(rng.integers(3, 8))),
              tuple(int(d) for d in rng.integers(2, 5, size=4))]
    return list(zip(shapes, rates))


def check_dropout_backward(dropout_backward_fn) -> None:
    """``dropout_backward(dout, mask, rate)`` -> ``dx = mask * dout / (1 - rate)`` (inverted dropout)."""
    expect_callable(dropout_backward_fn, "dropout_backward")
    rng = case_rng(29)
    table = cases([((4, 6), 0.25), ((2, 3, 3, 4), 0.6)], _draw_dropout_cases, seed=29)
    for shape, rate in table:
        dout = rng.normal(size=shape)
        mask = rng.random(shape) >= rate
        mask.flat[:2] = (True, False)  # both kinds of unit, whatever the draw
        call = f"dropout_backward(dout {shape}, mask {shape}, rate={rate:g})"
        got = call_answer(dropout_backward_fn, call, dout.copy(), mask.copy(), rate)
        (dx,) = _unpack(got, call, ("dx",), [shape], {})
        _compare(f"dx of {call}", dx, dropout_backward(dout, mask, rate), [
            (dout * mask, ("dx lacks the 1/(1 - rate) scale: the forward pass divided the kept units by "
                          "(1 - rate), so their gradient is divided too")),
            (dout * mask / rate, "dx is divided by rate; the scale is 1/(1 - rate), one over the keep probability"),
            (dout * mask * (1 - rate), ("dx is multiplied by (1 - rate); inverted dropout divides by it, in the "
                                       "forward pass and so in the backward pass")),
            (dout / (1 - rate), ("dx is not masked: a dropped unit output 0 whatever its input, so it gets no "
                                "gradient: dx = mask * dout / (1 - rate)")),
            (dout * ~mask / (1 - rate), "the mask is inverted: True marks the units that were KEPT"),
            (dout, ("dx equals dout: that is the gradient at inference (no dropout); in training the dropped "
                   "units get 0 and the kept ones dout / (1 - rate)")),
        ])
    passed(f"dropout_backward matches mask * dout / (1 - rate) for rates "
           f"{' and '.join(f'{r:g}' for _, r in table)}")
