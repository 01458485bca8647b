"""Checks for lesson 05 (parameter counting): conv, dense, batch norm, a walk through a small model.

Every check compares the student's answer with a reference computed by Keras
(the weights a layer really holds) and by :mod:`cnnkit.params`, and names the
likely mistake: a forgotten bias, the bias counted once instead of per filter,
the input channels left out, the moving statistics counted as trainable...
"""
from __future__ import annotations


import numpy as np

from cnnkit.checks import call_answer, cases, expect_callable, expect_count, fail, passed, unanswered
from cnnkit.checks.quiz import Question, check_choice
from cnnkit.params_formulas import conv_params, dense_params

# (F, C_in, K, bias) configurations a conv-count function is tried on
CONV_CASES = ((3, 1, 16, True), (3, 8, 32, True), (5, 16, 8, False), (1, 64, 32, True), (7, 3, 64, False))
DENSE_CASES = ((120, 64), (4096, 10), (1, 1), (300, 7))


def _draw_conv_cases(rng: np.random.Generator) -> list[tuple[int, int, int, bool]]:
    """Five hidden (F, C_in, K, bias) layers: both bias settings, 1x1 to 7x7 kernels, C_in != K, one C_in = 1."""
    drawn = []
    for i, bias in enumerate((True, True, False, True, False)):
        f = int(rng.choice([1, 3, 5, 7])) if i else 3
        c_in = 1 if i == 0 else int(rng.integers(2, 129))
        k = int(rng.integers(2, 129))
        while k == c_in:
            k += 1
        drawn.append((f, c_in, k, bias))
    return drawn


def _draw_dense_cases(rng: np.random.Generator) -> list[tuple[int, int]]:
    """Four hidden (n_in, n_out) layers, a 1 -> 1 layer among them, n_in != n_out elsewhere."""
    drawn = [(1, 1)]
    while len(drawn) < 4:
        n_in, n_out = int(rng.integers(2, 5000)), int(rng.integers(2, 200))
        if n_in != n_out:
            drawn.append((n_in, n_out))
    return [drawn[i] for i in rng.permutation(4)]


finite_count = expect_count  # the name the topic checks use; NaN and infinity fail with a clear message


def _keras():
    from cnnkit.env import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _keras_conv_count(f: int, c_in: int, k: int, bias: bool) -> int:
    layer = _keras().layers.Conv2D(k, f, use_bias=bias)
    layer.build((None, f + 4, f + 4, c_in))
    return layer.count_params()


def _keras_dense_count(n_in: int, n_out: int) -> int:
    layer = _keras().layers.Dense(n_out)
    layer.build((None, n_in))
    return layer.count_params()


def _call(fn, name: str, *args):
    return call_answer(fn, f"{name}{args}", *args)


def conv_hint(got: int, f: int, c_in: int, k: int, bias: bool) -> str:
    """The likely mistake behind a wrong convolution count (empty when none is recognised)."""
    weights = f * f * c_in * k
    guesses = {
        weights: f"you forgot the bias: add one per filter (+{k})" if bias else "",
        weights + k: "this layer has use_bias=False: there is no +1 per filter" if not bias else "",
        weights + 1: "the bias is one number per filter, so +K, not +1",
        (f * f + int(bias)) * k: "each filter spans all C_in input channels: multiply F*F by C_in",
        (f * c_in + int(bias)) * k: "the kernel is F x F: use F*F, not F",
        (f * f * c_in + int(bias)): "there are K filters, each with its own weights: multiply by K",
        (f * f * k + int(bias)) * c_in: "C_in and K are swapped in the bias term: the bias belongs to each of the K filters",
    }
    return guesses.get(got, "")


def check_conv_count(conv_count) -> None:
    """``conv_count(f, c_in, k, bias)`` must give the parameters of a Conv2D, as Keras counts them."""
    expect_callable(conv_count, "conv_count")
    table = cases(CONV_CASES, _draw_conv_cases, seed=5)
    for f, c_in, k, bias in table:
        got = finite_count(_call(conv_count, "conv_count", f, c_in, k, bias), f"conv_count({f}, {c_in}, {k}, {bias})")
        expected = _keras_conv_count(f, c_in, k, bias)
        if got != expected:
            hint = conv_hint(got, f, c_in, k, bias)
            fail(
                f"conv_count({f}, {c_in}, {k}, bias={bias}) = {got:,}, but Keras' Conv2D({k}, {f}, "
                f"use_bias={bias}) with C_in = {c_in} holds {expected:,} parameters"
                + (f": {hint}" if hint else "")
            )
    passed(f"conv_count matches Keras on {len(table)} layers, with and without bias")


def check_dense_count(dense_count) -> None:
    """``dense_count(n_in, n_out)`` must give the parameters of a Dense layer with bias."""
    expect_callable(dense_count, "dense_count")
    table = cases(DENSE_CASES, _draw_dense_cases, seed=6)
    for n_in, n_out in table:
        got = finite_count(_call(dense_count, "dense_count", n_in, n_out), f"dense_count({n_in}, {n_out})")
        expected = _keras_dense_count(n_in, n_out)
        if got != expected:
            hints = {
                n_in * n_out: f"you forgot the biases: one per output unit (+{n_out})",
                n_in * n_out + 1: "the bias is one per output unit, so +n_out, not +1",
                n_in * (n_out + 1): "the +1 goes with the inputs: (n_in + 1) * n_out",
                n_in + n_out: "every input connects to every output: multiply, do not add",
            }
            hint = hints.get(got, "")
            fail(f"dense_count({n_in}, {n_out}) = {got:,}, but Keras' Dense holds {expected:,}"
                 + (f": {hint}" if hint else ""))
    passed(f"dense_count matches Keras on {len(table)} layers")


def check_bn_counts(channels: int, trainable, non_trainable) -> None:
    """Trainable and non-trainable counts of a BatchNormalization after a layer with ``channels`` outputs."""
    t = finite_count(trainable, "bn_trainable")
    n = finite_count(non_trainable, "bn_non_trainable")
    keras = _keras()
    layer = keras.layers.BatchNormalization()
    layer.build((None, 8, 8, channels))
    exp_t = sum(_size(w.shape) for w in layer.trainable_weights)
    exp_n = sum(_size(w.shape) for w in layer.non_trainable_weights)
    if (t, n) == (exp_t, exp_n):
        passed(f"batch norm on {channels} channels: {t} trainable (gamma, beta) + {n} non-trainable "
               "(moving mean, moving variance)")
        return
    if t == exp_t + exp_n:
        fail(f"bn_trainable = {t}: you counted the moving statistics as trainable. Only gamma and beta "
             f"({exp_t}) are learned by gradient descent; the moving mean and variance are updated by averaging")
    if t == channels:
        fail(f"bn_trainable = {t}: there are two learned vectors per channel, gamma (scale) and beta (shift)")
    if t != exp_t:
        fail(f"bn_trainable = {t}, expected {exp_t}: gamma and beta, one of each per channel ({channels} channels)")
    if n == 0:
        fail(f"bn_non_trainable = 0: Keras also stores a moving mean and a moving variance per channel "
             f"(+{exp_n}), used at test time")
    fail(f"bn_non_trainable = {n}, expected {exp_n}: a moving mean and a moving variance per channel")


def _size(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def walk_model():
    """The small model of the exercise: 28x28x1 -> conv 8@3x3 -> pool -> conv 16@3x3 same, no bias -> BN -> flatten -> dense 10."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, name="conv1"),
            layers.MaxPooling2D(2, name="pool"),
            layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv2"),
            layers.BatchNormalization(name="bn"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, name="dense"),
        ],
        name="walk",
    )


def check_model_walk(answer) -> None:
    """``answer``: one ``(output_shape_without_batch, total_parameters)`` per layer of :func:`walk_model`."""
    from cnnkit.params import explain

    unanswered(answer, "walk")
    model = walk_model()
    rows = explain(model).rows
    try:
        answer = list(answer)
    except TypeError:
        fail(f"walk should be a list of (shape, parameters) pairs, got {type(answer).__name__}")
    if len(answer) != len(rows):
        fail(f"walk has {len(answer)} entries, but the model has {len(rows)} layers "
             f"({', '.join(r.name for r in rows)}): one (shape, parameters) pair per layer")
    for i, (entry, row) in enumerate(zip(answer, rows)):
        try:
            shape, params = entry
            shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            fail(f"walk[{i}] should be a pair like ((26, 26, 8), 80), got {entry!r}")
        expected_shape = tuple(row.output_shape[1:])
        if shape != expected_shape:
            hint = ""
            if row.layer_type == "MaxPooling2D":
                hint = ": 2x2 pooling with stride 2 halves height and width (floor), and keeps the channels"
            elif row.layer_type == "Conv2D":
                padding = model.get_layer(row.name).padding
                hint = (": a 'valid' 3x3 convolution shrinks each side by F - 1 = 2, and has K channels"
                        if padding == "valid" else
                        ": 'same' padding keeps height and width; the channels become the number of filters")
            elif row.layer_type == "Flatten":
                hint = ": Flatten multiplies height, width and channels"
            fail(f"walk[{i}] ({row.name}, {row.layer_type}): shape {shape}, expected {expected_shape}{hint}")
        got = finite_count(params, f"walk[{i}] parameters")
        if got != row.total:
            hint = ""
            if row.layer_type == "BatchNormalization" and got == row.trainable:
                hint = (f": Keras' count includes the {row.non_trainable} non-trainable moving statistics "
                        "(use the total, trainable + non-trainable)")
            elif row.layer_type == "Conv2D":
                layer = model.get_layer(row.name)
                c_in = int(layer.input.shape[-1])
                hint = conv_hint(got, 3, c_in, layer.filters, layer.use_bias)
                hint = f": {hint}" if hint else ""
            elif row.layer_type == "Dense":
                hint = f": the dense layer sees the flattened {rows[i - 1].output_shape[1]} values, plus one bias per unit"
            elif row.total == 0:
                hint = f": a {row.layer_type} layer has no weights"
            fail(f"walk[{i}] ({row.name}, {row.layer_type}): {got:,} parameters, expected {row.total:,}{hint}")
    passed(f"all {len(rows)} layers: shapes and parameter counts match Keras ({sum(r.total for r in rows):,} in total)")


# --------------------------------------------------------------------------- question of judgment

_CONV2 = conv_params(3, 32, 64)
_DENSE1 = dense_params(8 * 8 * 64, 256)
_DENSE2 = dense_params(256, 10)
BIGGEST_LAYER = Question(
    "On 32x32x3 inputs: Conv2D(32, 3x3, 'same') -> MaxPooling2D(2) -> Conv2D(64, 3x3, 'same') -> MaxPooling2D(2) "
    "-> Flatten -> Dense(256) -> Dense(10). Which layer holds the most parameters?",
    choices={"a": "the second Conv2D (64 filters)", "b": "Dense(256)", "c": "Dense(10)",
             "d": "the second MaxPooling2D, which sees the largest number of values"},
    answer="b",
    why=f"Flatten hands Dense(256) 8 x 8 x 64 = {8 * 8 * 64:,} values, each connected to 256 units: "
        f"{_DENSE1:,} parameters, against {_CONV2:,} for the second convolution and {_DENSE2:,} for Dense(10). "
        "The first dense layer after Flatten usually dominates a small CNN; pooling more, or global average "
        "pooling, shrinks it.",
    hints={
        "a": f"3 x 3 x 32 x 64 + 64 = {_CONV2:,}: many filters, but each is small and shared over all positions.",
        "c": f"(256 + 1) x 10 = {_DENSE2:,}: only ten outputs.",
        "d": "Pooling takes a maximum; it has no weights at all.",
    },
).relabelled('adbc')  # the answer letters of the course vary


def check_quiz_biggest_layer(answer) -> None:
    """Which layer of a small CNN holds the most parameters."""
    check_choice(BIGGEST_LAYER, answer)
