"""Checks for the exercises of lesson 02 (pooling, output sizes, Exercise 1's stack).

The references are :mod:`cnnkit.pooling` and :func:`cnnkit.conv.trace_shapes`
(both tested against TensorFlow/Keras); failures say which layer or window is
wrong and the likely cause: average instead of max, channels mixed, the stride
ignored, an off-by-one from rounding up.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from cnnkit.checks import case_rng, cases, expect_array, expect_callable, fail, passed, unanswered
from cnnkit.checks.backward import check_max_pool_backward  # noqa: F401 (the notebook's `checks`)
from cnnkit.checks.convolution import _as_array, _call, whole_number
from cnnkit.checks.quiz import Question, check_choice
from cnnkit.conv import conv_spec, pool_spec, trace_shapes
from cnnkit.pooling import avg_pool2d, max_pool2d, pool_output_size

# A 4x4 feature map for pooling by hand (one image, one channel).
FEATURE_MAP = np.array([
    [1, 3, 2, 0],
    [4, 6, 1, 5],
    [0, 2, 7, 3],
    [8, 1, 4, 2],
], dtype=float)

# Exercise 1: the network whose output volume students trace by formula.
EXERCISE1_INPUT = (64, 64, 3)
EXERCISE1_LAYERS = [
    conv_spec(16, 5, stride=1, padding="valid"),
    pool_spec(2),
    conv_spec(32, 3, stride=2, padding="valid"),
    pool_spec(3, stride=2),
    conv_spec(64, 3, stride=2, padding="same"),
    pool_spec(2, padding="same"),
]

# (n, size, stride) for the pooling output size
POOL_SIZE_CASES = [(32, 2, 2), (31, 2, 2), (28, 2, 2), (13, 3, 2), (14, 3, 2), (7, 3, 1), (9, 2, 1), (10, 4, 3)]


AXIS_NAMES = ("batch", "height", "width", "channels")


def _draw_pool_size_cases(rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Eight hidden (n, size, stride) cases like POOL_SIZE_CASES.

    Windows that tile and windows that do not (a rounding mistake shows), a size
    different from the stride and a stride of 1 (an ignored stride or a missing
    size shows), overlapping 3x3 windows with stride 2.
    """
    drawn = []
    for size, stride in ((2, 2), (2, 2), (3, 2), (3, 2), (3, 1), (2, 1), (4, 3), (int(rng.integers(2, 6)), 0)):
        stride = stride or int(rng.integers(1, size + 1))
        n = int(rng.integers(size + 1, 60))
        drawn.append((n, size, stride))
    for i in (1, 3, 6):  # windows that do not tile: the stride does not divide n - size
        n, size, stride = drawn[i]
        while (n - size) % stride == 0:
            n += 1
        drawn[i] = (n, size, stride)
    order = rng.permutation(len(drawn))
    return [drawn[i] for i in order]


def _draw_max_pool_cases(rng: np.random.Generator) -> list[tuple[tuple, int, int]]:
    """Three hidden (x shape, size, stride) cases: tiling windows, windows that do not tile, overlapping windows.

    The first has N and C at least the window size, so that pooling over the
    batch or channel axis by mistake gives a result the hints can name.
    """
    size = int(rng.integers(2, 4))
    first = (size + int(rng.integers(0, 2)), size * int(rng.integers(2, 4)), size * int(rng.integers(2, 4)),
             size + int(rng.integers(0, 2)))
    size2, stride2 = int(rng.integers(2, 4)), 2
    second = (1, int(rng.integers(size2 + 2, 11)), int(rng.integers(size2 + 2, 11)), int(rng.integers(1, 4)))
    third = (int(rng.integers(1, 3)), int(rng.integers(3, 8)), int(rng.integers(3, 8)), int(rng.integers(2, 5)))
    return [(first, size, size), (second, size2, stride2), (third, 2, 1)]


def pool_over_axes(x: np.ndarray, size: int, stride: int, axes: tuple[int, int]) -> np.ndarray:
    """Max pooling of the 4-D ``x`` over the two given ``axes`` instead of (1, 2): the wrong-axes answer."""
    moved = np.moveaxis(x, list(axes), [1, 2])
    return np.moveaxis(max_pool2d(moved, size, stride), [1, 2], list(axes))


def _wrong_axes_hint(got: np.ndarray, x: np.ndarray, size: int, stride: int) -> str:
    """Which axes an answer pooled over, when it matches max pooling over another pair (or over N or C too)."""
    advice = "pool over axes 1 and 2 (height and width) of (N, H, W, C), one image and one channel at a time"
    expected = max_pool2d(x, size, stride)
    if got.shape == expected.shape:
        for axis in (0, 3):
            if np.allclose(got, np.max(expected, axis=axis, keepdims=True) + 0 * expected):
                across = "images" if axis == 0 else "channels"
                return (f": the max was also taken across {across} (axis {axis}, {AXIS_NAMES[axis]}), so every "
                        f"{across[:-1]} gets the same values; {advice}")
    for axes in itertools.combinations(range(4), 2):
        if axes == (1, 2) or any(x.shape[a] < size for a in axes):
            continue
        wrong = pool_over_axes(x, size, stride, axes)
        if got.shape == wrong.shape and (got.shape != expected.shape or np.allclose(got, wrong)):
            names = " and ".join(AXIS_NAMES[a] for a in axes)
            return f": you pooled over axes {axes[0]} and {axes[1]} ({names}); {advice}"
    return ""


def describe_layer(spec: dict) -> str:
    """One-line description of a layer spec, e.g. ``conv 32 filters 3x3, stride 2, padding 'valid'``."""
    if spec["type"] == "conv":
        k = spec["kernel"]
        return f"conv {spec['filters']} filters {k}x{k}, stride {spec['stride']}, padding {spec['padding']!r}"
    return f"max pool {spec['size']}x{spec['size']}, stride {spec['stride']}, padding {spec['padding']!r}"


def check_max_pool_by_hand(result) -> None:
    """``result``: 2x2 max pooling (stride 2) of FEATURE_MAP, a 2x2 array."""
    got = _as_array(result, "result")
    expected = max_pool2d(FEATURE_MAP[None, :, :, None], 2)[0, :, :, 0]
    if got.shape == (3, 3):
        fail("result has shape (3, 3): the window moved by 1; with stride 2 the 2x2 windows do not overlap "
             "and a 4x4 map gives 2x2")
    if got.shape == expected.shape:
        if np.allclose(got, avg_pool2d(FEATURE_MAP[None, :, :, None], 2)[0, :, :, 0]):
            fail("result holds the averages of the windows: max pooling keeps the LARGEST value of each window")
        if np.allclose(got, expected.T) and not np.allclose(got, expected):
            fail("result is transposed: the top-right value comes from the window in rows 0-1, columns 2-3")
    expect_array("result", got, expected)
    passed(f"max pooling by hand gives {expected.astype(int).tolist()}")


# wrong formulas students often write, with what to tell them when every answer follows one
_POOL_SIZE_MISTAKES = [
    (lambda n, f, s: (n + f) // s + 1,
     "you added the window size: the formula is (n - F) / S + 1 (the slide lost its minus sign)"),
    (lambda n, f, s: n // s, "n // stride is only right when the window fits exactly; use floor((n - F) / S) + 1"),
    (lambda n, f, s: -(-(n - f) // s) + 1,
     "you rounded up: a window that runs past the edge is not counted, so take the floor"),
    (lambda n, f, s: (n - f) // s, "one too few everywhere: the +1 (the first window) is missing"),
    (lambda n, f, s: n - f + 1, "the stride is ignored: divide (n - F) by S before adding 1"),
]


def check_pool_output_size(fn) -> None:
    """``fn(n, size, stride)``: the pooled length of an axis of n cells, no padding."""
    expect_callable(fn, "pool_output_size")
    table = cases(POOL_SIZE_CASES, _draw_pool_size_cases, seed=4)
    answers = []
    for n, f, s in table:
        got = _call(fn, "pool_output_size", n, f, s)
        answers.append(whole_number(got, f"pool_output_size({n}, {f}, {s})", pool_output_size(n, f, s),
                                    "a window that does not fit is dropped, so round down (//)"))
    expected = [pool_output_size(n, f, s) for n, f, s in table]
    if answers == expected:
        passed(f"pool_output_size agrees on all {len(table)} cases")
        return
    hint = "use floor((n - F) / S) + 1"
    for formula, advice in _POOL_SIZE_MISTAKES:
        if answers == [formula(*case) for case in table]:
            hint = advice
            break
    i = next(i for i, (a, e) in enumerate(zip(answers, expected)) if a != e)
    n_wrong = sum(a != e for a, e in zip(answers, expected))
    fail(f"{n_wrong} of {len(expected)} cases wrong; first: pool_output_size{table[i]} returned "
         f"{answers[i]}, expected {expected[i]}: {hint}")


def check_max_pool(fn) -> None:
    """``fn(x, size, stride)``: max pooling of NHWC ``x`` with square windows, no padding."""
    expect_callable(fn, "max_pool")
    rng = case_rng(11)
    table = cases([((2, 6, 6, 3), 2, 2), ((1, 7, 9, 2), 3, 2), ((2, 5, 5, 4), 2, 1)], _draw_max_pool_cases, seed=11)
    for shape, size, stride in table:
        x = rng.normal(size=shape)
        expected = max_pool2d(x, size, stride)
        where = f"max_pool(x {shape}, size={size}, stride={stride})"
        got = _as_array(_call(fn, "max_pool", x.copy(), size, stride), where)
        if got.shape != expected.shape:
            hint = _wrong_axes_hint(got, x, size, stride) if got.ndim == 4 else ""
            if not hint and got.ndim == 4 and got.shape[3] != shape[3]:
                hint = f": pooling works on each channel separately, so the output keeps {shape[3]} channels"
            elif not hint and got.ndim == 3 and got.shape == expected.shape[:3]:
                hint = ": the channel axis was pooled away; take the max over the window only (axes 1, 2)"
            elif not hint and got.ndim == 4:
                hint = f": the output size is floor((n - {size}) / {stride}) + 1 along each axis"
            fail(f"{where} has shape {got.shape}, expected {expected.shape}{hint}")
        if np.allclose(got, avg_pool2d(x, size, stride)):
            fail(f"{where} returned window averages: max pooling keeps the largest value")
        if not np.allclose(got, expected):
            hint = _wrong_axes_hint(got, x, size, stride)
            if hint:
                fail(f"{where}{hint}")
        expect_array(where, got, expected)
    passed(f"max_pool matches cnnkit.pooling.max_pool2d (and so tf.nn.max_pool2d) on {len(table)} cases")


def check_stack_shapes(shapes) -> None:
    """``shapes``: the output (H, W, C) of each layer of EXERCISE1_LAYERS applied to EXERCISE1_INPUT."""
    unanswered(shapes, "shapes")
    expected = trace_shapes(EXERCISE1_INPUT, EXERCISE1_LAYERS)
    try:
        got = [tuple(int(v) for v in s) for s in shapes]
    except Exception:
        fail(f"shapes should be a list of (height, width, channels) tuples, one per layer, got {shapes!r}")
    if len(got) != len(expected):
        fail(f"shapes has {len(got)} entries, expected {len(expected)}: one (H, W, C) per layer, input not included")
    previous = EXERCISE1_INPUT
    for i, (g, e, spec) in enumerate(zip(got, expected, EXERCISE1_LAYERS)):
        if g != e:
            layer = describe_layer(spec)
            if len(g) != 3:
                fail(f"layer {i} ({layer}): {g} should be (height, width, channels)")
            hint = ""
            if g[:2] == e[:2]:
                hint = (f"the size is right but the depth is not: a conv layer outputs one channel per filter, "
                        f"a pooling layer keeps the {previous[2]} channels it receives")
            elif all(abs(a - b) == 1 for a, b in zip(g[:2], e[:2])):
                hint = "off by one: round down (floor) and remember the +1"
                if spec["padding"] == "same":
                    hint = "'same' padding gives ceil(n / stride), whatever the kernel"
            elif spec["padding"] == "same":
                hint = f"'same' padding gives ceil(n / stride) = ceil({previous[0]} / {spec['stride']})"
            else:
                hint = f"use floor((n - F) / S) + 1 with n = {previous[0]}"
            fail(f"layer {i} ({layer}) receives {previous} and outputs {e}, you wrote {g}: {hint}")
        previous = e
    passed(f"all {len(expected)} shapes right; the stack ends at {expected[-1]}")


def check_flatten_size(n_features) -> None:
    """``n_features``: the number of values Flatten() gives after Exercise 1's stack."""
    unanswered(n_features, "n_features")
    h, w, c = trace_shapes(EXERCISE1_INPUT, EXERCISE1_LAYERS)[-1]
    expected = h * w * c
    if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral):
        fail(f"n_features should be an int, got {n_features!r}")
    if n_features == h * w:
        fail(f"n_features is {n_features} = H * W: every one of the {c} channels contributes H * W values")
    if n_features != expected:
        fail(f"n_features is {n_features}, expected H * W * C of the last layer's output")
    passed(f"Flatten gives {expected} values")


# --------------------------------------------------------------------------- question of judgment

_SIZE, _STRIDE, _WIDTH = 3, 2, 9
_STARTS = list(range(0, _WIDTH - _SIZE + 1, _STRIDE))  # first column of each window


def _windows_seeing(column: int) -> list[int]:
    return [j for j, start in enumerate(_STARTS) if start <= column < start + _SIZE]


SHIFT = Question(
    f"A {_WIDTH}x{_WIDTH} one-channel image is black except for one bright pixel. It goes through a "
    f"{_SIZE}x{_SIZE} max pool with stride {_STRIDE} ({len(_STARTS)}x{len(_STARTS)} output). The pixel moves one "
    "column to the right. What happens to the pooled output?",
    choices={
        "a": "Nothing, wherever the pixel is: max pooling makes the output invariant to one-pixel shifts",
        "b": "The bright output moves one column to the right too",
        "c": "It depends on the pixel's column: the windows overlap, so the pixel lights one or two output "
             "columns, and a one-pixel move can add one, remove one, or change nothing",
        "d": "The bright value can disappear from the output",
    },
    answer="c",
    why=f"The windows start at columns {_STARTS} and are {_SIZE} wide. A pixel in column 2 lights output "
        f"columns {_windows_seeing(2)}; moved to column 3 it lights {_windows_seeing(3)}; moved to column 4, "
        f"{_windows_seeing(4)}. Pooling makes the output robust to small shifts, not invariant to them.",
    hints={
        "a": f"Follow the pixel from column 2 to column 3: column 2 lies in windows {_windows_seeing(2)}, "
             f"column 3 only in {_windows_seeing(3)}.",
        "b": f"The output has about half the resolution (stride {_STRIDE}): one input column is half an output "
             "column, so the output cannot follow every one-pixel move.",
        "d": f"Here the windows cover every column (0 to {_STARTS[-1] + _SIZE - 1}) and a max keeps the bright value "
             "of every window that contains it.",
    },
)


def check_quiz_shift(answer) -> None:
    """What a 3x3, stride-2 max pool does with a one-pixel shift."""
    check_choice(SHIFT, answer)
