"""Checks for Exercise 2 of lesson 07: a small CNN's parameters counted by hand, layer by layer and in total.

The reference counts are the weights the layers of a Keras model really hold
(:func:`exercise2_model`, built from a table such as :data:`HAND_COUNT`); a wrong count is
compared with the usual slips (a forgotten bias, the moving statistics counted
as trainable, a flatten size that skipped a pooling, C_in taken from the wrong
layer) so the message can name the one that was made.
"""
from __future__ import annotations

import numpy as np

from cnnkit.checks import fail, passed, unanswered
from cnnkit.checks.parameters import finite_count

__all__ = ["EXERCISE2", "HAND_COUNT", "INPUT_SHAPE", "check_exercise2_layers", "check_exercise2_totals", "describe_exercise2",
           "exercise2_model"]

INPUT_SHAPE = (32, 32, 3)
# Exercise 2: (name, Keras layer type, arguments); the model is built from this table
EXERCISE2 = (
    ("conv1", "Conv2D", {"filters": 32, "kernel_size": 5, "padding": "valid"}),
    ("pool1", "MaxPooling2D", {"pool_size": 2}),
    ("conv2", "Conv2D", {"filters": 64, "kernel_size": 3, "padding": "same", "use_bias": False}),
    ("bn2", "BatchNormalization", {}),
    ("relu2", "ReLU", {}),
    ("pool2", "MaxPooling2D", {"pool_size": 2}),
    ("reduce3", "Conv2D", {"filters": 16, "kernel_size": 1}),
    ("flatten", "Flatten", {}),
    ("fc4", "Dense", {"units": 128, "activation": "relu"}),
    ("dropout4", "Dropout", {"rate": 0.5}),
    ("classifier", "Dense", {"units": 10, "activation": "softmax"}),
)


def _resized(table, **widths):
    """``table`` with the filters (Conv2D) or units (Dense) of the named layers replaced."""
    key = {"Conv2D": "filters", "Dense": "units"}
    return tuple((name, kind, {**args, key[kind]: widths[name]} if name in widths else args)
                 for name, kind, args in table)


# the model the exercise notebook asks about: the same layers with other widths, so that none of its
# counts (18,432 for conv2, 1,040 for reduce3, 1,290 for the classifier...) is one that lesson 07 prints
HAND_COUNT = _resized(EXERCISE2, conv1=24, conv2=48, reduce3=12, fc4=96)


def _keras():
    from cnnkit.env import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _trainable(model_or_layer) -> int:
    from cnnkit.arch_measure import trainable_params

    return trainable_params(model_or_layer)


def _non_trainable(model_or_layer) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model_or_layer.non_trainable_weights))


# --------------------------------------------------------------------------- Exercise 2: count by hand


def _layer_table(table) -> tuple:
    """``table`` as given, once it is a sequence of (name, Keras layer type, arguments) with Exercise 2's names."""
    names = [row[0] for row in EXERCISE2]
    try:
        ok = [row[0] for row in table] == names and all(isinstance(row[2], dict) for row in table)
    except (TypeError, IndexError, KeyError):
        ok = False
    if not ok:
        raise ValueError(f"table must hold one (name, layer type, arguments) row per layer, named {names}; "
                         f"got {table!r}")
    return tuple(table)


def exercise2_model(table=EXERCISE2):
    """The model of Exercise 2, built from ``table`` (:data:`EXERCISE2` or :data:`HAND_COUNT`) on a 32x32x3 input."""
    keras = _keras()
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for name, kind, kwargs in _layer_table(table):
        x = getattr(keras.layers, kind)(name=name, **kwargs)(x)
    return keras.Model(inputs, x, name="exercise2")


def describe_exercise2(table=EXERCISE2) -> str:
    """The layers of ``table`` in words (no counts), one per line."""
    words = {
        "Conv2D": lambda a: (f"{a['filters']} filters of {a['kernel_size']}x{a['kernel_size']}, stride 1, "
                             f"padding '{a.get('padding', 'valid')}', "
                             f"{'no bias' if a.get('use_bias') is False else 'with bias'}"),
        "MaxPooling2D": lambda a: f"{a['pool_size']}x{a['pool_size']} max pooling, stride {a['pool_size']}",
        "BatchNormalization": lambda a: "batch normalization over the channels",
        "ReLU": lambda a: "ReLU",
        "Flatten": lambda a: "flatten to a vector",
        "Dense": lambda a: f"{a['units']} units, with bias, {a.get('activation', 'linear')} activation",
        "Dropout": lambda a: f"dropout, rate {a['rate']}",
    }
    lines = [f"input: {INPUT_SHAPE[0]}x{INPUT_SHAPE[1]}x{INPUT_SHAPE[2]} image"]
    lines += [f"{name:<11} {kind:<19} {words[kind](kwargs)}" for name, kind, kwargs in _layer_table(table)]
    return "\n".join(lines)


def _layer_facts(model) -> dict[str, dict]:
    """Per layer: type, input shape (no batch), trainable and non-trainable counts."""
    facts = {}
    for layer in model.layers[1:]:
        facts[layer.name] = {
            "type": type(layer).__name__,
            "in": tuple(layer.input.shape[1:]),
            "out": tuple(layer.output.shape[1:]),
            "trainable": _trainable(layer),
            "non_trainable": _non_trainable(layer),
            "layer": layer,
        }
    return facts


def _conv_hint(got: int, layer, c_in: int, others: set[int]) -> str:
    f = layer.kernel_size[0]
    k = layer.filters
    bias = int(layer.use_bias)
    guesses = {
        f * f * c_in * k: f"you forgot the bias: one per filter, +{k}" if bias else "",
        f * f * c_in * k + k: "this convolution has use_bias=False: no bias terms" if not bias else "",
        f * f * c_in * k + 1: "the bias is one number per filter: +K, not +1",
        (f * f + bias) * k: f"each filter spans all {c_in} input channels: multiply F*F by C_in",
        f * f * c_in + bias: f"there are K = {k} filters: multiply by K",
    }
    for c in others - {c_in}:
        guesses.setdefault((f * f * c + bias) * k,
                           f"C_in is the number of channels coming into this layer: {c_in}, "
                           f"the filters of the convolution before it, not {c}")
    return guesses.get(got, f"use (F*F*C_in{' + 1' if bias else ''})*K with F = {f}, C_in = {c_in}, K = {k}")


def _dense_hint(got: int, n_in: int, n_out: int, flatten_chain: str) -> str:
    if got == n_in * n_out:
        return f"you forgot the bias: one per output unit, +{n_out}"
    if got % n_out == 0 and got // n_out - 1 != n_in:
        used = got // n_out - 1
        return (f"your count uses {used:,} inputs, but this layer receives {n_in:,}; {flatten_chain}")
    return f"use (inputs + 1)*outputs with {n_in:,} inputs and {n_out} outputs"


def check_exercise2_layers(trainable_counts, table=EXERCISE2) -> None:
    """``trainable_counts`` maps every layer name of the model built from ``table`` to its trainable parameters."""
    unanswered(trainable_counts, "trainable_counts")
    if not isinstance(trainable_counts, dict):
        fail(f"trainable_counts should be a dict {{layer name: count}}, got {type(trainable_counts).__name__}")
    model = exercise2_model(table)
    facts = _layer_facts(model)
    missing = [n for n in facts if n not in trainable_counts]
    extra = [n for n in trainable_counts if n not in facts]
    if missing or extra:
        fail(f"trainable_counts must have one entry per layer, named {list(facts)}; "
             f"missing: {missing or 'none'}, unknown: {extra or 'none'} (layers without weights count 0)")
    flat = facts["flatten"]["out"][0]
    h, w, c = facts["flatten"]["in"]
    chain = (f"follow the shape: conv1 (5x5, valid) gives {facts['conv1']['out']}, pool1 {facts['pool1']['out']}, "
             f"pool2 {facts['pool2']['out']}, the 1x1 conv keeps {h}x{w} and makes {c} channels, so flatten gives "
             f"{h}*{w}*{c} = {flat}")
    channels = {3} | {f["out"][-1] for f in facts.values() if f["type"] == "Conv2D"}
    wrong = []
    for name, fact in facts.items():
        got = finite_count(trainable_counts[name], f"trainable_counts[{name!r}]")
        want = fact["trainable"]
        if got == want:
            continue
        layer = fact["layer"]
        if fact["type"] == "Conv2D":
            hint = _conv_hint(got, layer, fact["in"][-1], channels)
        elif fact["type"] == "Dense":
            hint = _dense_hint(got, fact["in"][-1], layer.units, chain)
        elif fact["type"] == "BatchNormalization":
            k = fact["in"][-1]
            hint = {4 * k: "4K is Keras' summary total: only gamma and beta (2K) are trainable; the moving "
                           "mean and variance are non-trainable",
                    k: "two trainable numbers per channel: gamma (scale) and beta (shift)"}.get(
                got, f"2K trainable with K = {k} channels")
        else:
            hint = f"a {fact['type']} layer has no weights: count 0"
        wrong.append(f"{name} ({fact['type']}): you wrote {got:,}, expected {want:,} -- {hint}")
    if wrong:
        fail(f"{len(wrong)} of {len(facts)} layer counts are wrong:\n  " + "\n  ".join(wrong))
    passed(f"all {len(facts)} layer counts match Keras ({sum(f['trainable'] for f in facts.values()):,} "
           "trainable parameters in all)")


def check_exercise2_totals(total_trainable, total_non_trainable, table=EXERCISE2) -> None:
    """The totals Keras' ``model.summary()`` would print for the model of ``table``: trainable and non-trainable."""
    got_t = finite_count(total_trainable, "total_trainable")
    got_n = finite_count(total_non_trainable, "total_non_trainable")
    model = exercise2_model(table)
    want_t, want_n = _trainable(model), _non_trainable(model)
    bn = model.get_layer("bn2")
    if got_t != want_t:
        hint = ""
        if got_t == want_t + want_n:
            hint = " -- the moving mean and variance of bn2 are not trainable: leave them out of this total"
        elif got_t == want_t - _trainable(bn):
            hint = " -- bn2's gamma and beta are trainable: add them"
        fail(f"total_trainable is {got_t:,}, expected {want_t:,}{hint} (add up the per-layer counts)")
    if got_n != want_n:
        hint = (f" -- the only non-trainable weights are bn2's moving mean and variance, one each per channel "
                f"({bn.input.shape[-1]} channels)")
        fail(f"total_non_trainable is {got_n:,}, expected {want_n:,}{hint}")
    passed(f"{want_t:,} trainable + {want_n:,} non-trainable = {want_t + want_n:,}, as model.summary() says")

