"""Checks for the exercises of lesson 01 (convolution, ReLU, output sizes).

Each check compares a student's answer with cnnkit's reference (itself tested
against TensorFlow) and, when they differ, names the likely mistake: a flipped
kernel, a missing bias, a forgotten ``+ 1``, rounding up instead of down, the
odd "same" zero on the wrong side.
"""
from __future__ import annotations

import numbers

import numpy as np

from cnnkit.checks import call_answer, expect_array, expect_callable, expect_shape, fail, passed, unanswered
from cnnkit.conv import conv2d, output_size, same_padding

# The exercise's 5x5 image (the tutorial's) and an asymmetric 3x3 kernel: with
# it, forgetting that CNNs do not flip the kernel changes the answer.
EXERCISE_IMAGE = np.array([
    [1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 1, 1],
    [0, 0, 1, 1, 0],
    [0, 1, 1, 0, 0],
], dtype=float)
EXERCISE_KERNEL = np.array([
    [1, 0, -1],
    [2, 0, -2],
    [1, 0, -1],
], dtype=float)

# (n, f, stride, padding): includes strides that do not divide n + 2p - f
OUTPUT_SIZE_CASES = [
    (32, 3, 1, 0), (32, 3, 1, 1), (32, 5, 1, 2), (28, 5, 1, 0), (32, 3, 2, 0), (32, 3, 2, 1),
    (227, 11, 4, 0), (224, 7, 2, 3), (7, 3, 3, 0), (10, 4, 3, 1), (5, 5, 1, 0), (6, 1, 2, 0),
]
# (n, f, stride): even kernels and strides that leave an odd total padding
SAME_PADDING_CASES = [
    (5, 3, 1), (6, 4, 1), (7, 2, 1), (7, 3, 2), (8, 3, 2), (32, 3, 2), (9, 5, 3), (10, 1, 2), (4, 6, 1),
]


def _call(fn, name: str, *args):
    """Call the student's ``fn(*args)``, showing the call in any failure."""
    shown = ", ".join(repr(a) if np.isscalar(a) else f"<array {np.shape(a)}>" for a in args)
    return call_answer(fn, f"{name}({shown})", *args)


def _as_array(value, name: str) -> np.ndarray:
    """``value`` as a float array, failing with a readable message when it is not numeric or is ragged."""
    unanswered(value, name)
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        fail(f"{name} should be an array of numbers, got {type(value).__name__}: {exc}")


def check_conv_by_hand(result) -> None:
    """``result``: the 3x3 output of sliding EXERCISE_KERNEL over EXERCISE_IMAGE (stride 1, no padding)."""
    unanswered(result, "result")
    image, kernel = EXERCISE_IMAGE[None, :, :, None], EXERCISE_KERNEL[:, :, None, None]
    expected = conv2d(image, kernel)[0, :, :, 0]
    got = _as_array(result, "result")
    if got.shape == (5, 5):
        fail("result has shape (5, 5), expected (3, 3): without padding a 3x3 kernel fits 5 - 3 + 1 = 3 times per axis")
    got = expect_shape("result", got, expected.shape)
    flipped = conv2d(image, kernel[::-1, ::-1])[0, :, :, 0]
    if np.allclose(got, flipped) and not np.allclose(got, expected):
        fail("result is the true (flipped-kernel) convolution; a CNN layer does not flip the kernel: "
             "multiply image[i + u, j + v] by kernel[u, v]")
    if np.allclose(got, expected.T) and not np.allclose(got, expected):
        fail("result is transposed: row i of the output comes from rows i..i+2 of the image")
    expect_array("result", got, expected)
    passed(f"the 3x3 result matches, top-left value {expected[0, 0]:g}")


def check_output_size(fn) -> None:
    """``fn(n, f, stride, padding)``: the output length of a convolution, padding ``p`` zeros on each side."""
    expect_callable(fn, "conv_output_size")
    wrong = []
    for n, f, s, p in OUTPUT_SIZE_CASES:
        got = _call(fn, "conv_output_size", n, f, s, p)
        expected = output_size(n, f, s, p)
        call = f"conv_output_size({n}, {f}, {s}, {p})"
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            fail(f"{call} returned {got!r} ({type(got).__name__}); expected a whole number such as {expected}")
        if float(got) != int(got):
            fail(f"{call} returned {got!r}, not a whole number: the division must round down (use //), "
                 "since a window that does not fit entirely is not counted")
        if int(got) != expected:
            wrong.append(((n, f, s, p), int(got), expected))
    if not wrong:
        passed(f"conv_output_size agrees on all {len(OUTPUT_SIZE_CASES)} cases")
        return
    (n, f, s, p), got, expected = wrong[0]
    diffs = [g - e for _, g, e in wrong]
    hint = ""
    if all(d == -1 for d in diffs):
        hint = " Every wrong answer is one too small: is the +1 (the window's first position) missing?"
    elif all(d == 1 for d in diffs):
        if all((c[0] + 2 * c[3] - c[1]) % c[2] for c, _, _ in wrong):
            hint = (" Off by one only where the stride does not divide n + 2p - f: round down (floor, //),"
                    " not up or to the nearest.")
        else:
            hint = " Every wrong answer is one too large: check the +1 and the floor."
    elif all(c[3] > 0 for c, _, _ in wrong):
        hint = " Only cases with padding are wrong: the padding adds p zeros on BOTH sides (2p)."
    elif all(c[2] > 1 for c, _, _ in wrong):
        hint = " Only cases with stride > 1 are wrong: divide (n + 2p - f) by the stride before adding 1."
    fail(f"{len(wrong)} of {len(OUTPUT_SIZE_CASES)} cases wrong; first: conv_output_size({n}, {f}, {s}, {p}) "
         f"returned {got!r}, expected {expected}.{hint}")


def check_same_padding(fn) -> None:
    """``fn(n, f, stride)`` -> (before, after): the zeros TensorFlow's "same" padding adds to one axis."""
    expect_callable(fn, "same_pad")
    for n, f, s in SAME_PADDING_CASES:
        got = _call(fn, "same_pad", n, f, s)
        expected = same_padding(n, f, s)
        try:
            got_pair = tuple(int(v) for v in got)
        except Exception:
            fail(f"same_pad({n}, {f}, {s}) returned {got!r}; expected a pair (before, after) such as {expected}")
        if len(got_pair) != 2:
            fail(f"same_pad({n}, {f}, {s}) returned {got!r}; expected a pair (before, after) such as {expected}")
        if got_pair == expected:
            continue
        total = sum(expected)
        out = -(-n // s)
        if got_pair == expected[::-1]:
            hint = "the two sides are swapped: TensorFlow puts the odd zero AFTER (bottom / right)"
        elif min(got_pair) < 0:
            hint = "a negative padding: the total is max((out - 1) * stride + f - n, 0), never below zero"
        elif sum(got_pair) != total:
            hint = (f"the total should be {total}: the output has ceil({n}/{s}) = {out} positions and they need "
                    f"(out - 1) * stride + f = {(out - 1) * s + f} cells")
        else:
            hint = "the total is right but the split is not: before = total // 2, after = total - before"
        fail(f"same_pad({n}, {f}, {s}) returned {got_pair}, expected {expected}: {hint}")
    passed(f"same_pad agrees with TensorFlow's rule on all {len(SAME_PADDING_CASES)} cases")


def check_relu(relu_fn, relu_grad_fn) -> None:
    """``relu_fn(z)`` = max(0, z) and ``relu_grad_fn(z)`` = 1 where z > 0 else 0, element-wise, any shape."""
    expect_callable(relu_fn, "relu")
    expect_callable(relu_grad_fn, "relu_grad")
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 5, 6))
    z[0, 0, :3] = [0.0, -0.0, 1e-12]
    got = _call(relu_fn, "relu", z.copy())
    got = expect_shape("relu(z)", got, z.shape)
    if np.allclose(got, z):
        fail("relu(z) returned z unchanged: negative values must become 0")
    if np.allclose(got, np.abs(z)):
        fail("relu(z) returned |z|: negative values must become 0, not positive")
    expect_array("relu(z)", got, np.maximum(z, 0))
    z_grad = np.where(z == 0, 0.5, z)  # the derivative at exactly 0 is a convention: not tested
    grad = _call(relu_grad_fn, "relu_grad", z_grad.copy())
    grad = expect_shape("relu_grad(z)", grad, z.shape)
    if np.allclose(grad, np.maximum(z_grad, 0)):
        fail("relu_grad(z) returned relu(z): the derivative is 1 for z > 0 (the slope), not z")
    expect_array("relu_grad(z)", np.asarray(grad, dtype=float), (z_grad > 0).astype(float))
    passed(f"relu and relu_grad agree with max(0, z) and its slope on {z.size} values")


def check_conv_layer(fn) -> None:
    """``fn(x, w, b, stride)``: a valid-padding convolution of NHWC ``x`` with HWIO ``w`` plus bias ``b``."""
    expect_callable(fn, "conv_forward")
    rng = np.random.default_rng(7)
    for shape_x, shape_w, stride in [((2, 7, 7, 3), (3, 3, 3, 4), 1), ((1, 9, 8, 2), (3, 2, 2, 5), 2)]:
        x = rng.normal(size=shape_x)
        w = rng.normal(size=shape_w)
        b = rng.normal(size=shape_w[-1])
        expected = conv2d(x, w, b, stride=stride)
        got = _call(fn, "conv_forward", x.copy(), w.copy(), b.copy(), stride)
        where = f"conv_forward(x {shape_x}, w {shape_w}, b, stride={stride})"
        got = _as_array(got, where)
        if got.shape != expected.shape:
            hint = ""
            stride_one = tuple(n - f + 1 for n, f in zip(shape_x[1:3], shape_w[:2]))
            if got.ndim == 4 and got.shape[3] != shape_w[3]:
                hint = f" (the last axis should hold one map per filter: w.shape[3] = {shape_w[3]})"
            elif got.ndim == 4 and stride > 1 and got.shape[1:3] == stride_one:
                hint = " (this is the stride-1 size: move the window by `stride` cells)"
            fail(f"{where} has shape {got.shape}, expected {expected.shape}: output size floor((n - f) / s) + 1{hint}")
        if np.allclose(got, expected - b):
            fail(f"{where}: the values are right except for the bias: add b[k] to every output of filter k")
        if np.allclose(got, conv2d(x, w[::-1, ::-1], b, stride=stride)):
            fail(f"{where}: you flipped the kernel (true convolution); a CNN layer computes cross-correlation")
        expect_array(where, got, expected, rtol=1e-5, atol=1e-6)
    passed("conv_forward matches cnnkit.conv.conv2d (and so tf.nn.conv2d) with stride 1 and 2")
