"""Checks for the exercises of lesson 01 (convolution, ReLU, output sizes).

Each check compares a student's answer with cnnkit's reference (itself tested
against TensorFlow) and, when they differ, names the likely mistake: a flipped
kernel, a missing bias, a forgotten ``+ 1``, rounding up instead of down, the
odd "same" zero on the wrong side.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from cnnkit.checks import (
    call_answer, case_rng, cases, expect_array, expect_callable, expect_shape, fail, passed, unanswered,
)
from cnnkit.checks.backward import check_conv_backward, check_relu_backward  # noqa: F401 (the notebook's `checks`)
from cnnkit.checks.quiz import Question, check_choice
from cnnkit.conv import conv2d, output_size, same_padding

# The exercise's 5x5 image (the tutorial's) and a 3x3 kernel without any symmetry (not the
# lesson's Sobel filter, whose result the lesson prints): flipping it, rotating it or swapping
# its rows and columns all change the answer.
EXERCISE_IMAGE = np.array([
    [1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 1, 1],
    [0, 0, 1, 1, 0],
    [0, 1, 1, 0, 0],
], dtype=float)
EXERCISE_KERNEL = np.array([
    [1, 2, 0],
    [0, 1, -1],
    [-1, 0, -2],
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


def _draw_output_size_cases(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Twelve hidden (n, f, stride, padding) cases, as demanding as OUTPUT_SIZE_CASES.

    Three kinds, four of each: stride 1 without padding, stride 1 with padding (a
    wrong 2p shows), and stride 2..4 where the stride does not divide n + 2p - f
    (a rounding mistake shows), with and without padding; kernels 1..11, odd and even.
    """
    drawn = []
    for kind in (0, 1, 2) * 4:
        f = int(rng.choice([1, 2, 3, 3, 5, 5, 7, 11]))
        stride = 1 if kind < 2 else int(rng.integers(2, 5))
        pad = 0 if kind == 0 else int(rng.integers(1, 4))
        if kind == 2 and rng.random() < 0.4:
            pad = 0
        n = int(rng.integers(max(f, 5), 65))
        while kind == 2 and (n + 2 * pad - f) % stride == 0:
            n += 1
        drawn.append((n, f, stride, pad))
    return drawn


def _draw_same_padding_cases(rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Nine hidden (n, f, stride) cases like SAME_PADDING_CASES.

    Odd totals (the odd zero's side shows), even kernels, strides 2 and 3, a 1x1
    kernel with a stride (the total would be negative without the max) and a
    kernel wider than the axis.
    """
    drawn = []
    while len(drawn) < 5:  # stride 1 or 2..3 with an odd total
        n, f, s = int(rng.integers(4, 40)), int(rng.integers(2, 8)), int(rng.choice([1, 2, 3]))
        out = -(-n // s)
        if ((out - 1) * s + f - n) % 2 == 1 and (out - 1) * s + f - n > 0:
            drawn.append((n, f, s))
    n = int(rng.integers(5, 40))
    drawn.append((n, int(rng.choice([3, 5])), 1))                      # even total, stride 1
    drawn.append((2 * int(rng.integers(3, 20)), 1, 2))                 # would be negative without max(., 0)
    n = int(rng.integers(2, 6))
    drawn.append((n, n + int(rng.integers(1, 4)), 1))                  # kernel wider than the axis
    drawn.append((int(rng.integers(8, 40)), int(rng.choice([2, 4, 6])), int(rng.choice([2, 3]))))
    order = rng.permutation(len(drawn))
    return [drawn[i] for i in order]


def _draw_conv_layer_cases(rng: np.random.Generator) -> list[tuple[tuple, tuple, int]]:
    """Two hidden (x shape, w shape, stride) cases: one with stride 1, one with stride 2 or 3."""
    drawn = []
    for stride in (1, int(rng.integers(2, 4))):
        f1, f2 = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        shape_x = (int(rng.integers(1, 3)), int(rng.integers(f1 + 2, 10)), int(rng.integers(f2 + 2, 10)),
                   int(rng.integers(1, 4)))
        drawn.append((shape_x, (f1, f2, shape_x[3], int(rng.integers(2, 6))), stride))
    return drawn


def whole_number(got, call: str, expected, rounding: str) -> int:
    """``got`` as an int, failing with a message a student can act on when it is not a whole number.

    ``rounding`` says why a fraction appears (e.g. "the division must round down (use //)").
    """
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        fail(f"{call} returned {got!r} ({type(got).__name__}); expected a whole number such as {expected}")
    if not math.isfinite(got):
        fail(f"{call} returned {got!r}: a size is a whole number of cells; NaN or infinity comes from float "
             f"arithmetic (a 0 / 0 or a division by zero): compute with integers, //")
    if float(got) != int(got):
        fail(f"{call} returned {got!r}, not a whole number: {rounding}")
    return int(got)


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
    table = cases(OUTPUT_SIZE_CASES, _draw_output_size_cases, seed=1)
    for n, f, s, p in table:
        got = _call(fn, "conv_output_size", n, f, s, p)
        expected = output_size(n, f, s, p)
        got = whole_number(got, f"conv_output_size({n}, {f}, {s}, {p})", expected,
                           "the division must round down (use //), since a window that does not fit "
                           "entirely is not counted")
        if got != expected:
            wrong.append(((n, f, s, p), got, expected))
    if not wrong:
        passed(f"conv_output_size agrees on all {len(table)} cases")
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
    fail(f"{len(wrong)} of {len(table)} cases wrong; first: conv_output_size({n}, {f}, {s}, {p}) "
         f"returned {got!r}, expected {expected}.{hint}")


def check_same_padding(fn) -> None:
    """``fn(n, f, stride)`` -> (before, after): the zeros TensorFlow's "same" padding adds to one axis."""
    expect_callable(fn, "same_pad")
    table = cases(SAME_PADDING_CASES, _draw_same_padding_cases, seed=2)
    for n, f, s in table:
        got = _call(fn, "same_pad", n, f, s)
        expected = same_padding(n, f, s)
        got_pair = _padding_pair(got, f"same_pad({n}, {f}, {s})", expected)
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
    passed(f"same_pad agrees with TensorFlow's rule on all {len(table)} cases")


def _padding_pair(got, call: str, expected: tuple[int, int]) -> tuple[int, int]:
    """``got`` as a pair of ints (before, after), or a failure that says what is wrong with it."""
    try:
        values = list(got)
    except TypeError:
        values = None
    if values is None or len(values) != 2:
        fail(f"{call} returned {got!r}; expected a pair (before, after) such as {expected}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values):
        fail(f"{call} returned {got!r}; expected a pair of whole numbers (before, after) such as {expected}")
    if not all(math.isfinite(v) for v in values):
        fail(f"{call} returned {got!r}: NaN (or infinity) comes from float arithmetic such as 0 / 0 or "
             "math.ceil of a float; padding counts whole cells, so compute it with integers only: "
             "ceil(n / stride) as -(-n // stride), and split the total with //")
    if any(float(v) != int(v) for v in values):
        fail(f"{call} returned {got!r}: half a zero cannot be added; split the total with integer division, "
             "before = total // 2, after = total - before")
    return int(values[0]), int(values[1])


def check_relu(relu_fn, relu_grad_fn) -> None:
    """``relu_fn(z)`` = max(0, z) and ``relu_grad_fn(z)`` = 1 where z > 0 else 0, element-wise, any shape."""
    expect_callable(relu_fn, "relu")
    expect_callable(relu_grad_fn, "relu_grad")
    shape = cases([(4, 5, 6)], lambda r: [tuple(int(d) for d in r.integers(1, 7, size=int(r.integers(1, 4))))
                                          + (int(r.integers(5, 8)),)], seed=3)[0]
    z = case_rng(3).normal(size=shape)
    # Edge values, then one clearly negative and one clearly positive value, so that even the
    # smallest hidden array (five values) tells max(0, z) from z and from |z|.
    z.reshape(-1, shape[-1])[0, :5] = [0.0, -0.0, 1e-12, -1.5, 0.75]
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
    rng = case_rng(7)
    table = cases([((2, 7, 7, 3), (3, 3, 3, 4), 1), ((1, 9, 8, 2), (3, 2, 2, 5), 2)], _draw_conv_layer_cases, seed=7)
    for shape_x, shape_w, stride in table:
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
        right = np.allclose(got, expected, rtol=1e-5, atol=1e-6)
        if not right and np.allclose(got, expected - b):
            fail(f"{where}: the values are right except for the bias: add b[k] to every output of filter k")
        if not right and np.allclose(got, conv2d(x, w[::-1, ::-1], b, stride=stride)):
            fail(f"{where}: you flipped the kernel (true convolution); a CNN layer computes cross-correlation")
        expect_array(where, got, expected, rtol=1e-5, atol=1e-6)
    strides = " and ".join(str(stride) for stride in sorted({c[2] for c in table}))
    passed(f"conv_forward matches cnnkit.conv.conv2d (and so tf.nn.conv2d) with stride {strides}")


# --------------------------------------------------------------------------- question of judgment

_N, _F = 32, 7
PADDING = Question(
    f"A {_F}x{_F} convolution with stride 1 must keep a {_N}x{_N} feature map at {_N}x{_N}, so that a residual "
    "block can add its input back to its output. How many zeros of padding go on each side?",
    choices={"a": "0 ('valid')", "b": f"{(_F - 1) // 2}", "c": f"{_F - 1}", "d": f"{_F}"},
    answer="b",
    why=f"(n + 2p - f) / s + 1 = {_N} + 2p - {_F} + 1 equals {_N} exactly when 2p = f - 1 = {_F - 1}: "
        f"p = {(_F - 1) // 2} on each side, which is what 'same' padding adds for an odd kernel and stride 1.",
    hints={
        "a": f"Without padding a {_F}-wide kernel fits {_N} - {_F} + 1 = {output_size(_N, _F, 1, 0)} times: "
             f"the map shrinks by f - 1 = {_F - 1} cells per axis.",
        "c": f"{_F - 1} is the total, f - 1; it is split between the two sides (the formula adds 2p), giving "
             f"{output_size(_N, _F, 1, _F - 1)} positions.",
        "d": f"With p = {_F} the output has {_N} + {2 * _F} - {_F} + 1 = {output_size(_N, _F, 1, _F)} positions: "
             "larger than the input.",
    },
).relabelled('adbc')  # the answer letters of the course vary


def check_quiz_padding(answer) -> None:
    """The padding that keeps the size under a 7x7 kernel with stride 1."""
    check_choice(PADDING, answer)
