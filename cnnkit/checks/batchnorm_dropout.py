"""Checks for the exercises of lesson 04 (batch normalization and dropout, tutorial 2.2-2.6).

* :func:`check_batch_norm_training` / :func:`check_batch_norm_inference` -- batch norm by hand, both modes;
* :func:`check_inverted_dropout` -- dropout that keeps the expectation, identity at inference;
* :func:`check_bn_parameters` -- trainable and non-trainable counts of BN layers and of the tutorial's sample model.

References: :func:`cnnkit.normalization.batch_norm` (tested against
``keras.layers.BatchNormalization``) and Keras' own parameter counts.
"""
from __future__ import annotations

import numbers

import numpy as np

from cnnkit.checks import (
    CheckFailed, _raised_name, call_answer, case_rng, cases, expect_callable, expect_shape, fail, passed, unanswered,
)
from cnnkit.checks.backward import check_batch_norm_backward, check_dropout_backward  # noqa: F401 (`checks`)
from cnnkit.checks.quiz import Question, check_choice
from cnnkit._validate import positive_int
from cnnkit.normalization import batch_norm

MOMENTUM, EPSILON = 0.9, 1e-3


def _call(fn, name: str, *args, **kwargs):
    return call_answer(fn, name, *args, **kwargs)


# --------------------------------------------------------------------------- batch norm by hand


def _draw_bn_shapes(rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Hidden shapes: one (N, D) batch and one (N, H, W, C) batch, N >= 3 so the variance is not degenerate."""
    return [(int(rng.integers(3, 12)), int(rng.integers(2, 8))),
            (int(rng.integers(3, 7)), int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 5)))]


def _bn_cases(seed: int):
    """Two batch-norm cases, a (N, D) and a (N, H, W, C) one, with random parameters and moving statistics."""
    rng = case_rng(seed)
    out = []
    for shape in cases([(8, 5), (4, 3, 3, 2)], _draw_bn_shapes, seed=seed):
        c = shape[-1]
        out.append(dict(
            x=rng.normal(3.0, 2.0, shape), gamma=rng.uniform(0.5, 2.0, c), beta=rng.normal(0, 1, c),
            moving_mean=rng.normal(0, 1, c), moving_var=rng.uniform(0.5, 2.0, c),
        ))
    return out


def _args(case):
    """Positional arguments x, gamma, beta, moving_mean, moving_var (copies: an answer may modify them)."""
    return [case[k].copy() for k in ("x", "gamma", "beta", "moving_mean", "moving_var")]


def _unpack(result, name: str, shape, channels):
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        fail(f"{name} should return a tuple (y, new_moving_mean, new_moving_var), got {type(result).__name__}"
             + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
    y = expect_shape("y", result[0], shape).astype(np.float64)
    mean = expect_shape("new_moving_mean", result[1], (channels,)).astype(np.float64)
    var = expect_shape("new_moving_var", result[2], (channels,)).astype(np.float64)
    for label, arr in (("y", y), ("new_moving_mean", mean), ("new_moving_var", var)):
        if not np.all(np.isfinite(arr)):
            fail(f"{label} contains NaN or infinity")
    return y, mean, var


def _close(a, b) -> bool:
    return np.allclose(a, b, rtol=1e-5, atol=1e-6)


def _layout(x) -> str:
    return "(N, D)" if x.ndim == 2 else "(N, H, W, C)"


def check_batch_norm_training(my_batch_norm) -> None:
    """Training mode: batch statistics over every axis but the last, biased variance, Keras' moving-average update."""
    unanswered(my_batch_norm, "my_batch_norm")
    expect_callable(my_batch_norm, "my_batch_norm")
    for case in _bn_cases(404):
        x, c = case["x"], case["x"].shape[-1]
        got = _call(my_batch_norm, "my_batch_norm", *_args(case), True, MOMENTUM, EPSILON)
        y, new_mean, new_var = _unpack(got, "my_batch_norm", x.shape, c)
        ref_y, ref_mean, ref_var = batch_norm(**case, training=True, momentum=MOMENTUM, epsilon=EPSILON)
        axes = tuple(range(x.ndim - 1))
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        where = f"for x of shape {x.shape} {_layout(x)}"
        if not _close(y, ref_y):
            g, b = case["gamma"], case["beta"]
            if _close(y, g * (x - mu) / np.sqrt(x.var(axis=axes, ddof=1) + EPSILON) + b):
                fail(f"y is off {where}: you used the unbiased variance (ddof=1); batch norm divides by m, the "
                     "number of values per channel")
            if _close(y, g * (x - mu) / (np.sqrt(var) + EPSILON) + b):
                fail(f"y is off {where}: epsilon goes inside the square root, sqrt(var + eps)")
            if _close(y, (x - mu) / np.sqrt(var + EPSILON)):
                fail(f"y is off {where}: you returned x_hat; scale and shift it: y = gamma * x_hat + beta")
            if _close(y, g * (x - case["moving_mean"]) / np.sqrt(case["moving_var"] + EPSILON) + b):
                fail(f"y is off {where}: in training mode normalise with the batch's own mean and variance, "
                     "not the moving ones")
            if x.ndim == 4 and _close(y, g * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + EPSILON) + b):
                fail(f"y is off {where}: you averaged over the batch axis only; for images each channel's "
                     "statistics pool N, H and W: mean(axis=(0, 1, 2))")
            per_sample = tuple(range(1, x.ndim))
            if _close(y, g * (x - x.mean(axis=per_sample, keepdims=True))
                      / np.sqrt(x.var(axis=per_sample, keepdims=True) + EPSILON) + b):
                fail(f"y is off {where}: you normalised each sample over its features (that is layer norm); "
                     "batch norm normalises each channel over the batch")
            worst = np.unravel_index(np.argmax(np.abs(y - ref_y)), y.shape)
            fail(f"y is off {where}: {y[worst]:.6g} at index {tuple(int(i) for i in worst)}, expected "
                 f"{ref_y[worst]:.6g}; y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta")
        old_mean, old_var = case["moving_mean"], case["moving_var"]
        for label, got_stat, ref, old, batch, ddof_batch in (
                ("new_moving_mean", new_mean, ref_mean, old_mean, mu, mu),
                ("new_moving_var", new_var, ref_var, old_var, var, x.var(axis=axes, ddof=1))):
            if _close(got_stat, ref):
                continue
            if _close(got_stat, old):
                fail(f"{label} was not updated in training mode {where}: "
                     "moving = momentum * moving + (1 - momentum) * batch statistic")
            if _close(got_stat, (1 - MOMENTUM) * old + MOMENTUM * batch):
                fail(f"{label} {where}: momentum is on the wrong term; Keras keeps momentum of the OLD value: "
                     "moving = momentum * moving + (1 - momentum) * batch statistic")
            if _close(got_stat, batch):
                fail(f"{label} {where}: you stored the batch statistic itself; it must be a moving average "
                     "(momentum * moving + (1 - momentum) * batch)")
            if _close(got_stat, MOMENTUM * old + (1 - MOMENTUM) * ddof_batch):
                fail(f"{label} {where}: Keras averages the biased batch variance (divide by m, not m - 1)")
            fail(f"{label} {where}: got {np.round(got_stat, 5).tolist()}, expected {np.round(ref, 5).tolist()}")
    passed("training mode matches Keras' BatchNormalization: batch statistics, gamma/beta, and the moving-average update")


def check_batch_norm_inference(my_batch_norm) -> None:
    """Inference mode: normalise with the moving statistics and leave them unchanged."""
    unanswered(my_batch_norm, "my_batch_norm")
    expect_callable(my_batch_norm, "my_batch_norm")
    for case in _bn_cases(505):
        x, c = case["x"], case["x"].shape[-1]
        got = _call(my_batch_norm, "my_batch_norm", *_args(case), False, MOMENTUM, EPSILON)
        y, new_mean, new_var = _unpack(got, "my_batch_norm", x.shape, c)
        ref_y, _, _ = batch_norm(**case, training=False, momentum=MOMENTUM, epsilon=EPSILON)
        where = f"for x of shape {x.shape} {_layout(x)}"
        if not _close(y, ref_y):
            train_y, _, _ = batch_norm(**case, training=True, momentum=MOMENTUM, epsilon=EPSILON)
            if _close(y, train_y):
                fail(f"y is off {where}: at inference normalise with moving_mean and moving_var, not the batch's "
                     "statistics (a prediction must not depend on the other images of the batch)")
            worst = np.unravel_index(np.argmax(np.abs(y - ref_y)), y.shape)
            fail(f"y is off {where}: {y[worst]:.6g} at index {tuple(int(i) for i in worst)}, expected "
                 f"{ref_y[worst]:.6g}; y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta")
        if not (_close(new_mean, case["moving_mean"]) and _close(new_var, case["moving_var"])):
            fail(f"the moving statistics changed in inference mode {where}: return them unchanged; "
                 "only training updates them")
    passed("inference mode uses the moving statistics and leaves them untouched")


# --------------------------------------------------------------------------- inverted dropout


def check_inverted_dropout(my_dropout) -> None:
    """``my_dropout(x, rate, training, rng)``: keep with probability 1 - rate, scale by 1/(1 - rate); identity at inference."""
    unanswered(my_dropout, "my_dropout")
    expect_callable(my_dropout, "my_dropout")
    shape = cases([(200, 50)], lambda r: [(int(r.integers(150, 260)), int(r.integers(40, 70)))], seed=99)[0]
    x = case_rng(99).uniform(1.0, 2.0, size=shape)  # no zeros, so a zero output is a drop
    # every call gets a fresh generator of its own seed: what one call draws never shifts the next call's
    streams = iter(range(2024, 2100))

    def dropout(rate, training):
        shown = f"my_dropout(x, {rate}, training={training}, rng)"
        return _call(my_dropout, shown, x.copy(), rate, training, case_rng(next(streams)))

    y = expect_shape("my_dropout(x, 0.3, training=False, rng)", dropout(0.3, False), x.shape).astype(np.float64)
    if not np.allclose(y, x):
        if np.isclose((y == 0).mean(), 0.3, atol=0.05):
            fail("at inference (training=False) nothing may be dropped: return x unchanged")
        if np.allclose(y, x * 0.7) or np.allclose(y, x / 0.7):
            fail("at inference return x unchanged: with inverted dropout the scaling happens during training only")
        fail("at inference (training=False) the output must equal x")

    for rate in (0.3, 0.6):
        y = expect_shape(f"my_dropout(x, {rate}, training=True, rng)", dropout(rate, True), x.shape).astype(np.float64)
        dropped = y == 0
        kept_fraction = 1 - dropped.mean()
        se = np.sqrt(rate * (1 - rate) / x.size)
        if dropped.mean() == 0:
            fail(f"nothing was dropped in training with rate={rate}: zero each unit with probability rate")
        if abs(kept_fraction - rate) < 5 * se and abs(rate - 0.5) > 0.05:
            fail(f"you kept {kept_fraction:.3f} of the units with rate={rate}: units are DROPPED with probability "
                 "rate, kept with probability 1 - rate (e.g. keep = rng.random(x.shape) >= rate)")
        if abs(kept_fraction - (1 - rate)) > 5 * se:
            fail(f"with rate={rate} you kept {kept_fraction:.3f} of the units; expected about {1 - rate:.3f}")
        kept = ~dropped
        ratio = y[kept] / x[kept]
        if np.allclose(ratio, 1.0):
            fail("the kept units are not rescaled: multiply them by 1 / (1 - rate) so that E[y] = x "
                 "(otherwise the test-time network sees larger activations than in training)")
        if np.allclose(ratio, 1 - rate):
            fail("you multiplied the kept units by (1 - rate); inverted dropout divides by it: x / (1 - rate)")
        if not np.allclose(ratio, 1 / (1 - rate)):
            fail(f"kept units should equal x / (1 - rate) = x * {1 / (1 - rate):.4g}; found ratios from "
                 f"{ratio.min():.4g} to {ratio.max():.4g}")
        mean_ratio = y.mean() / x.mean()
        # standard error of that ratio for a right answer: sqrt(rate / (1 - rate) * E[x^2] / (E[x]^2 N))
        ratio_se = np.sqrt(rate / (1 - rate) * np.mean(x**2) / (x.mean() ** 2 * x.size))
        if abs(mean_ratio - 1) > 5 * ratio_se:
            fail(f"the mean of the output is {mean_ratio:.3f} times the mean of x; it should stay about 1")

    first = expect_shape("my_dropout(x, 0.5, training=True, rng)", dropout(0.5, True), x.shape)
    second = expect_shape("my_dropout(x, 0.5, training=True, rng)", dropout(0.5, True), x.shape)
    if np.array_equal(first == 0, second == 0):
        fail("two calls with two different generators gave the same mask: draw the mask from the rng argument "
             "(e.g. rng.random(x.shape)), do not create a new generator with a fixed seed inside the function")
    y = expect_shape("my_dropout(x, 0.0, training=True, rng)", dropout(0.0, True), x.shape)
    if not np.allclose(y, x):
        fail("rate=0 should keep every unit unchanged")
    for bad in (1.0, -0.2):
        try:
            dropout(bad, True)
        except CheckFailed as failure:
            raised = failure.__context__  # what the answer raised, when it raised
            if raised is None or isinstance(raised, CheckFailed) or _raised_name(raised) == "NotImplementedError":
                raise
            if _raised_name(raised) == "ValueError":
                continue
            fail(f"rate={bad} should raise ValueError (rate must be in [0, 1)), it raised {_raised_name(raised)}")
        fail(f"rate={bad} should raise ValueError: rate must be in [0, 1) (rate 1 would divide by zero)")
    passed("inverted dropout: drops with probability rate, scales survivors by 1/(1 - rate), identity at inference")


# --------------------------------------------------------------------------- parameter counts


def reference_sample_model(conv_filters: int = 16, dense_units: int = 128):
    """The tutorial's section 2.4 model, fixed for Keras 3 (list closed, ``keras.Input`` first).

    32x32x3 -> Conv2D(conv_filters, 3x3, same) -> BN -> Dropout -> ReLU -> MaxPooling2D(2) -> Flatten
    -> Dense(dense_units) -> BN -> Dropout -> ReLU -> Dense(10); the defaults are the tutorial's widths.
    """
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=(32, 32, 3)),
        layers.Conv2D(conv_filters, (3, 3), padding="same", activation=None),
        layers.BatchNormalization(),
        layers.Dropout(0.5),
        layers.ReLU(),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(dense_units, activation=None),
        layers.BatchNormalization(),
        layers.Dropout(0.5),
        layers.ReLU(),
        layers.Dense(10, activation="softmax"),
    ])


def keras_counts(model) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts of a built Keras model or layer."""
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    non_trainable = int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))
    return trainable, non_trainable


def _pair(value, name: str) -> tuple[int, int]:
    unanswered(value, name)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        fail(f"{name} should be a pair (trainable, non_trainable), got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            fail(f"{name} should hold two integers, got {value!r}")
    return int(value[0]), int(value[1])


def check_bn_parameters(bn_parameters, sample_model_params, conv_filters: int = 16, dense_units: int = 128) -> None:
    """``bn_parameters(k)`` -> (trainable, non_trainable) of a BN layer on k channels; ``sample_model_params``
    likewise for the whole 2.4 model with ``conv_filters`` filters and ``dense_units`` hidden units."""
    import keras

    conv_filters, dense_units = positive_int(conv_filters, "conv_filters"), positive_int(dense_units, "dense_units")

    unanswered(bn_parameters, "bn_parameters")
    expect_callable(bn_parameters, "bn_parameters")
    for k in cases([16, 128, 7], lambda r: [int(v) for v in r.choice(np.arange(3, 513), size=3, replace=False)],
                   seed=16):
        got = _pair(_call(bn_parameters, "bn_parameters", k), f"bn_parameters({k})")
        layer = keras.layers.BatchNormalization()
        layer.build((None, k))
        expected = keras_counts(layer)
        if got != expected:
            if got == (2 * k, 0):
                fail(f"bn_parameters({k}) = {got}: gamma and beta (2K) are right, but Keras also stores the moving "
                     "mean and variance, K each, as non-trainable weights (the slide counts only the 2K)")
            if got == (4 * k, 0) or got == (0, 4 * k):
                fail(f"bn_parameters({k}) = {got}: split the 4K weights: gamma and beta are trained by the optimiser, "
                     "the moving mean and variance are not")
            if got == (k, k):
                fail(f"bn_parameters({k}) = {got}: count both gamma and beta (K each) as trainable, and both the moving "
                     "mean and the moving variance (K each) as non-trainable")
            fail(f"bn_parameters({k}) = {got}, expected (trainable, non_trainable) = {expected}")
    trainable, non_trainable = _pair(sample_model_params, "sample_model_params")
    expected = keras_counts(reference_sample_model(conv_filters, dense_units))
    if (trainable, non_trainable) != expected:
        total = sum(expected)
        if trainable == total:
            fail(f"sample_model_params = {(trainable, non_trainable)}: {trainable} is the total; the moving "
                 "statistics of the two BN layers are not trainable")
        if trainable + non_trainable == total:
            fail(f"sample_model_params = {(trainable, non_trainable)}: the total {total} is right but the split is "
                 "not: only the BN moving means and variances are non-trainable")
        if trainable != expected[0]:
            fail(f"trainable = {trainable}, expected {expected[0]}: add (3*3*3 + 1)*{conv_filters} for the conv, "
                 f"2K per BN layer, (inputs + 1)*units for each Dense; Flatten sees 16*16*{conv_filters} values")
        fail(f"non_trainable = {non_trainable}, expected {expected[1]}: 2K per BN layer "
             f"(K = {conv_filters} and K = {dense_units})")
    passed(f"BN layers hold 2K trainable + 2K non-trainable weights; the sample model has {expected[0]:,} trainable "
           f"and {expected[1]:,} non-trainable")


# --------------------------------------------------------------------------- question of judgment

_RATE = 0.5
DROPOUT_AT_TEST = Question(
    f"A network was trained with inverted dropout at rate {_RATE} (in training, each unit is dropped with "
    f"probability {_RATE} and the kept ones are divided by 1 - rate = {1 - _RATE:g}). What does that dropout layer "
    "do to its input at test time?",
    choices={
        "a": f"Drops units at random with probability {_RATE} and divides the rest by {1 - _RATE:g}, as in training",
        "b": "Nothing: every unit passes unchanged",
        "c": f"Multiplies every activation by 1 - rate = {1 - _RATE:g}",
        "d": f"Divides every activation by 1 - rate = {1 - _RATE:g}",
    },
    answer="b",
    why="Dividing the kept units by (1 - rate) in training makes each unit's expected output equal to its plain "
        "value; at test time the layer is therefore the identity, and predictions are deterministic.",
    hints={
        "a": "Random drops at test time make every prediction noisy; what training prepared the next layer for is "
             "the expected value, which is the unchanged activation.",
        "c": "That is the rule of the original, non-inverted dropout, which scales at test time; inverted dropout "
             "already scaled in training, so scaling again would shrink every activation.",
        "d": "The division by (1 - rate) compensates for the dropped units in training; with every unit present "
             "it would inflate the activations.",
    },
).relabelled('bcad')  # the answer letters of the course vary


def check_quiz_dropout_at_test(answer) -> None:
    """What inverted dropout does at test time."""
    check_choice(DROPOUT_AT_TEST, answer)
