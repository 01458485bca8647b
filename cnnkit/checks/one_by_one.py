"""Checks for lesson 06 (1x1 convolution): the per-pixel channel map, and a bottleneck's cost.

References come from Keras: a ``Conv2D(K, 1)`` layer with the student's weights
loaded, and small models whose parameters Keras counts and whose multiply-adds
:func:`cnnkit.params.explain` computes (itself checked against TensorFlow's
profiler in ``tests/test_params.py``).
"""
from __future__ import annotations

import numbers

import numpy as np

from cnnkit.checks import call_answer, case_rng, cases, expect_callable, expect_shape, fail, passed
from cnnkit.checks.parameters import finite_count
from cnnkit.checks.quiz import Question, check_choice
from cnnkit.params_formulas import conv_madds

# (H, W, C_in, K): the last is square (C_in == K) so that a transposed weight matrix shows
ONE_BY_ONE_CASES = ((4, 5, 3, 2), (1, 1, 6, 4), (7, 3, 8, 16), (5, 5, 4, 4))
# (H, W, C_in, C_mid, K, F) bottlenecks: one shaped like the tutorial's (smaller, so the lesson's counts are
# not the answer) and a few others
BOTTLENECK_CASES = ((16, 16, 192, 48, 96, 5), (8, 8, 16, 4, 32, 3), (14, 10, 64, 16, 64, 3), (7, 7, 512, 128, 256, 1))


def _draw_one_by_one_cases(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Four hidden (H, W, C_in, K) inputs: a 1x1 image, C_in != K twice, and a square C_in == K (a transposed w shows)."""
    def size():
        return int(rng.integers(2, 8))

    c_in = int(rng.integers(2, 9))
    k = c_in + int(rng.integers(1, 9))
    square = int(rng.integers(2, 9))
    other = (int(rng.integers(2, 17)), int(rng.integers(2, 17)))
    return [(size(), size(), c_in, k), (1, 1, k, c_in), (size(), size(), *other), (size(), size(), square, square)]


def _draw_bottleneck_cases(rng: np.random.Generator) -> list[tuple[int, int, int, int, int, int]]:
    """Four hidden (H, W, C_in, C_mid, K, F) bottlenecks: C_mid < C_in, F of 1, 3 or 5, H != W in one."""
    drawn = []
    for f in (5, 3, 3, 1):
        h = int(rng.integers(4, 40))
        w = h if len(drawn) != 2 else h + int(rng.integers(1, 9))
        c_in = int(rng.choice([16, 32, 64, 128, 192, 256, 512]))
        c_mid = max(c_in // int(rng.choice([2, 4, 8])), 2)
        k = int(rng.choice([16, 32, 64, 128, 256]))
        drawn.append((h, w, c_in, c_mid, k, f))
    return drawn


def _keras():
    from cnnkit.env import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _call(fn, name: str, *args):
    shapes = ", ".join(str(np.shape(a)) if isinstance(a, np.ndarray) else repr(a) for a in args)
    return call_answer(fn, f"{name}({shapes})", *args)


def keras_one_by_one(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keras' ``Conv2D(K, 1)`` on one image ``x`` (H, W, C_in) with kernel ``w`` (C_in, K) and bias ``b`` (K,)."""
    keras = _keras()
    c_in, k = w.shape
    layer = keras.layers.Conv2D(k, 1)
    layer.build((None,) + x.shape)
    layer.set_weights([w.reshape(1, 1, c_in, k), b])
    return np.asarray(layer(x[None].astype("float32")))[0]


def check_one_by_one(one_by_one_conv) -> None:
    """``one_by_one_conv(x, w, b)``: x (H, W, C_in), w (C_in, K), b (K,) -> (H, W, K), as Keras' 1x1 Conv2D."""
    expect_callable(one_by_one_conv, "one_by_one_conv")
    rng = case_rng(5)
    table = cases(ONE_BY_ONE_CASES, _draw_one_by_one_cases, seed=5)
    for h, wd, c_in, k in table:
        x = rng.normal(size=(h, wd, c_in)).astype("float32")
        w = rng.normal(size=(c_in, k)).astype("float32")
        b = rng.normal(size=(k,)).astype("float32")
        expected = keras_one_by_one(x, w, b)
        got = _call(one_by_one_conv, "one_by_one_conv", x.copy(), w.copy(), b.copy())
        where = f"on an input of shape {x.shape} with w of shape {w.shape}"
        if np.shape(got) != expected.shape and np.size(got) == expected.size:
            fail(f"one_by_one_conv {where} returned shape {np.shape(got)}, expected {expected.shape}: "
                 "keep height and width in place and put the K output channels last")
        got = expect_shape(f"one_by_one_conv {where}", got, expected.shape).astype("float64")
        if np.allclose(got, expected, rtol=1e-4, atol=1e-4):
            continue
        if np.allclose(got, x @ w, rtol=1e-4, atol=1e-4):
            fail(f"one_by_one_conv {where}: the bias is missing (add b[k] to every pixel of channel k)")
        if c_in == k and np.allclose(got, x @ w.T + b, rtol=1e-4, atol=1e-4):
            fail(f"one_by_one_conv {where}: the weight matrix is transposed; output channel k is "
                 "sum over c of x[..., c] * w[c, k]")
        bad = np.argwhere(~np.isclose(got, expected, rtol=1e-4, atol=1e-4))[0]
        fail(f"one_by_one_conv {where}: value at (row, col, channel) {tuple(int(i) for i in bad)} is "
             f"{got[tuple(bad)]:.4f}, Keras gives {expected[tuple(bad)]:.4f}; each output pixel is "
             "x[i, j, :] @ w + b, the same linear map at every pixel")
    passed(f"one_by_one_conv matches Keras' 1x1 Conv2D on {len(table)} inputs")


def reference_bottleneck(h: int, w: int, c_in: int, c_mid: int, k: int, f: int) -> tuple[int, int]:
    """(parameters, multiply-adds) of 1x1 conv to ``c_mid`` then ``f x f`` 'same' conv to ``k``, both with bias."""
    from cnnkit.params import explain

    keras = _keras()
    model = keras.Sequential([
        keras.Input((h, w, c_in)),
        keras.layers.Conv2D(c_mid, 1),
        keras.layers.Conv2D(k, f, padding="same"),
    ])
    return model.count_params(), explain(model).multiply_adds


def _pair_of_ints(value, name: str) -> tuple[int, int]:
    if value is None or value is Ellipsis:
        fail(f"{name} returned {value!r}: return a pair (parameters, multiply_adds)")
    try:
        params, madds = value
    except (TypeError, ValueError):
        fail(f"{name} should return a pair (parameters, multiply_adds), got {value!r}")
    for label, v in (("parameters", params), ("multiply_adds", madds)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            fail(f"{name}: {label} should be a whole number, got {v!r}")
    return (finite_count(params, f"{name}: parameters"), finite_count(madds, f"{name}: multiply_adds"))


def check_bottleneck_cost(bottleneck_cost) -> None:
    """``bottleneck_cost(h, w, c_in, c_mid, k, f)`` -> (parameters, multiply-adds) of the two-layer bottleneck."""
    expect_callable(bottleneck_cost, "bottleneck_cost")
    table = cases(BOTTLENECK_CASES, _draw_bottleneck_cases, seed=6)
    for h, w, c_in, c_mid, k, f in table:
        args = (h, w, c_in, c_mid, k, f)
        name = f"bottleneck_cost{args}"
        params, madds = _pair_of_ints(_call(bottleneck_cost, "bottleneck_cost", *args), name)
        exp_params, exp_madds = reference_bottleneck(*args)
        if params != exp_params:
            no_bias = c_in * c_mid + f * f * c_mid * k
            hints = {
                no_bias: f"you forgot the biases: one per filter of each layer (+{c_mid} + {k})",
                no_bias + 2: f"the bias is one per filter: +{c_mid} for the 1x1 layer and +{k} for the {f}x{f} layer",
                (c_in + 1) * c_mid + (f * f * c_in + 1) * k: f"the {f}x{f} convolution sees the {c_mid} reduced channels, not {c_in}",
                (f * f * c_in + 1) * k: f"that is the cost without the bottleneck; add the 1x1 layer and use {c_mid} channels",
            }
            hint = hints.get(params, "")
            fail(f"{name}: {params:,} parameters, Keras counts {exp_params:,}" + (f": {hint}" if hint else ""))
        if madds != exp_madds:
            per_pixel = c_in * c_mid + f * f * c_mid * k
            hints = {
                per_pixel: f"that is the count for one pixel: both layers run at all {h}*{w} positions",
                exp_params: "parameters are not multiply-adds: every weight is used once at each output position",
                (c_in * c_mid + f * f * c_mid * k + c_mid + k) * h * w:
                    "multiply-adds count the products only; the bias additions are not included",
                (c_in * c_mid + f * f * c_in * k) * h * w: f"the {f}x{f} layer multiplies over {c_mid} channels, not {c_in}",
            }
            hint = hints.get(madds, "")
            fail(f"{name}: {madds:,} multiply-adds, expected {exp_madds:,}" + (f": {hint}" if hint else ""))
    passed(f"bottleneck_cost matches Keras and cnnkit.params on {len(table)} bottlenecks")


# --------------------------------------------------------------------------- question of judgment

_HW, _C, _MID = 16, 256, 64
_DIRECT = conv_madds(3, _C, _C, (_HW, _HW))
_BOTTLENECK = conv_madds(1, _C, _MID, (_HW, _HW)) + conv_madds(3, _MID, _MID, (_HW, _HW)) + conv_madds(1, _MID, _C, (_HW, _HW))
CHEAPER_LAYOUT = Question(
    f"A {_HW}x{_HW}x{_C} feature map becomes {_HW}x{_HW}x{_C} again. Layout A: one 3x3 convolution, {_C} -> {_C} "
    f"channels. Layout B (ResNet's bottleneck): a 1x1 convolution {_C} -> {_MID}, a 3x3 convolution {_MID} -> {_MID}, "
    f"a 1x1 convolution {_MID} -> {_C}. Which needs fewer multiply-adds (biases aside)?",
    choices={
        "a": "A: one layer does less work than three",
        "b": f"B, about {_DIRECT / _BOTTLENECK:.1f} times fewer",
        "c": "Neither: both map the same input shape to the same output shape, so they cost the same",
        "d": "B, but only by about a third: its three layers add up",
    },
    answer="b",
    why=f"Per output position A costs 3 x 3 x {_C} x {_C} = {_DIRECT // _HW ** 2:,}; B costs {_C} x {_MID} + "
        f"3 x 3 x {_MID} x {_MID} + {_MID} x {_C} = {_BOTTLENECK // _HW ** 2:,}. Over the {_HW}x{_HW} positions: "
        f"{_DIRECT:,} against {_BOTTLENECK:,}. The 3x3 work is done on {_MID} channels instead of {_C}.",
    hints={
        "a": "Count the work, not the layers: a 3x3 convolution pairs every input channel with every output "
             f"channel, {_C} x {_C} pairs nine times over.",
        "c": f"The cost depends on the channels inside: B's 3x3 convolution pairs {_MID} x {_MID} channels, "
             f"{(_C // _MID) ** 2} times fewer than A's {_C} x {_C}.",
        "d": "Add the three layers' costs per position and compare with 3 x 3 x 256 x 256: the 1x1 layers are cheap.",
    },
).relabelled('bacd')  # the answer letters of the course vary


def check_quiz_cheaper_layout(answer) -> None:
    """Which of two layouts costs fewer multiply-adds."""
    check_choice(CHEAPER_LAYOUT, answer)
