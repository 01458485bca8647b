"""Checks for lesson 07 (AlexNet, GoogLeNet, ResNet): Exercise 2's hand count, a residual block, an inception block.

Every reference value comes from a Keras model (the weights its layers really
hold) or from :mod:`cnnkit.architectures`; a failed check names the likely
mistake (a forgotten bias, the moving statistics counted as trainable, a
flatten size that skipped a pooling, a shortcut without projection, ReLU in the
wrong place, branches concatenated in another order...).
"""
from __future__ import annotations


import numpy as np

from cnnkit.checks import (
    NotABlock, _raised_name, block_model, case_rng, cases, expect_callable, fail, passed, unanswered,
)
from cnnkit.checks.parameters import finite_count
from cnnkit.checks.quiz import Question, check_choice

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
# inception 3a of GoogLeNet: 28x28x192 in; (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
INCEPTION_3A = {"input_shape": (28, 28, 192), "widths": (64, 96, 128, 16, 32, 32)}


def _keras():
    from cnnkit.env import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _trainable(model_or_layer) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model_or_layer.trainable_weights))


def _non_trainable(model_or_layer) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model_or_layer.non_trainable_weights))


# --------------------------------------------------------------------------- Exercise 2: count by hand


def exercise2_model():
    """The model of Exercise 2, built from :data:`EXERCISE2` on a 32x32x3 input."""
    keras = _keras()
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for name, kind, kwargs in EXERCISE2:
        x = getattr(keras.layers, kind)(name=name, **kwargs)(x)
    return keras.Model(inputs, x, name="exercise2")


def describe_exercise2() -> str:
    """The layers of Exercise 2 in words (no counts), one per line."""
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
    lines += [f"{name:<11} {kind:<19} {words[kind](kwargs)}" for name, kind, kwargs in EXERCISE2]
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


def check_exercise2_layers(trainable_counts) -> None:
    """``trainable_counts`` maps every layer name of Exercise 2 to its number of trainable parameters."""
    unanswered(trainable_counts, "trainable_counts")
    if not isinstance(trainable_counts, dict):
        fail(f"trainable_counts should be a dict {{layer name: count}}, got {type(trainable_counts).__name__}")
    model = exercise2_model()
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


def check_exercise2_totals(total_trainable, total_non_trainable) -> None:
    """The totals Keras' ``model.summary()`` would print for Exercise 2: trainable and non-trainable."""
    got_t = finite_count(total_trainable, "total_trainable")
    got_n = finite_count(total_non_trainable, "total_non_trainable")
    model = exercise2_model()
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


# --------------------------------------------------------------------------- building a block


def _build(fn, label: str, input_shape, *args, **kwargs):
    """Call the student's block on a fresh keras.Input; return the model, or fail with what went wrong."""
    call = f"{label}(x, {', '.join(map(repr, args))}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
    try:
        return block_model(fn, input_shape, args, kwargs), call, None
    except NotImplementedError:
        fail(f"{label} is not written yet: replace `raise NotImplementedError()` with your code")
    except NotABlock as exc:
        fail(f"{call} on an input of shape {tuple(input_shape)} {exc}")
    except Exception as exc:  # the student's bug: report it, do not crash the check
        return None, call, exc


def _by_type(model) -> dict[str, int]:
    from cnnkit.architectures import params_by_type

    return params_by_type(model)


def _zero_convs(model, only_spatial: bool = False) -> None:
    """Set conv kernels and biases to 0 (only the kernels larger than 1x1 with ``only_spatial``)."""
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D" and not (only_spatial and tuple(layer.kernel_size) == (1, 1)):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


def _randomise_batch_norm(model, rng) -> None:
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def _draw_residual_cases(rng: np.random.Generator) -> list[tuple[tuple, tuple]]:
    """A hidden (input shape, ((filters, stride), ...)): identity shortcut, projection for a stride, for new channels."""
    c = int(rng.integers(4, 13))
    shape = (int(rng.integers(5, 11)), int(rng.integers(5, 11)), c)
    wider = c + int(rng.integers(1, 9))
    return [(shape, ((c, 1), (wider, 2), (c + int(rng.integers(1, 9)), 1)))]


def check_residual_block(residual_block) -> None:
    """``residual_block(x, filters, stride=1)`` must build ReLU(F(x) + shortcut(x)) like torchvision's BasicBlock.

    F: 3x3 conv (stride, no bias) -> BN -> ReLU -> 3x3 conv (no bias) -> BN. The
    shortcut is x itself when the shape is kept, else a 1x1 conv (stride, no
    bias) followed by BN. Tried on 8x8x16 inputs with 16 and 32 filters, stride 1 and 2 (hidden
    inputs: another size, the same three kinds of configuration).
    """
    from cnnkit.architectures import residual_block as reference

    keras = _keras()
    expect_callable(residual_block, "residual_block")
    shape, configs = cases([((8, 8, 16), ((16, 1), (32, 2), (32, 1)))], _draw_residual_cases, seed=0)[0]
    h, w, c = shape
    rng = case_rng(0)
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    for filters, stride in configs:
        model, call, error = _build(residual_block, "residual_block", shape, filters, stride=stride)
        out_h, out_w = -(-h // stride), -(-w // stride)
        projected = stride != 1 or filters != c
        if error is not None:
            hint = ""
            if projected and ("shape" in str(error).lower() or "Add" in str(error)):
                why = f"stride {stride}" if stride != 1 else f"the channels change ({c} -> {filters})"
                hint = (f" -- here F(x) is {out_h}x{out_w}x{filters} but x is {h}x{w}x{c} ({why}): the "
                        f"shortcut needs a projection, Conv2D({filters}, 1, strides={stride}, use_bias=False) then "
                        "BatchNormalization, whenever the stride is not 1 or the channel count changes")
            fail(f"{call} on a {h}x{w}x{c} input raised {_raised_name(error)}: {error}{hint}")
        want_shape = (None, out_h, out_w, filters)
        if model.output_shape != want_shape:
            hint = " (apply the stride in the first 3x3 convolution)" if model.output_shape[1:3] != (out_h, out_w) else ""
            fail(f"{call} on a {h}x{w}x{c} input gives shape {model.output_shape}, expected {want_shape}{hint}")
        kinds = [type(layer).__name__ for layer in model.layers]
        if "Add" not in kinds:
            fail(f"{call} has no Add layer: a residual block adds the shortcut to F(x), "
                 "layers.Add()([f, shortcut]), before the last ReLU")
        inputs = keras.Input(shape)
        ref = keras.Model(inputs, reference(inputs, filters, stride=stride))
        got_n, want_n = _trainable(model), _trainable(ref)
        if got_n != want_n:
            proj = c * filters + 2 * filters
            if not projected and got_n == want_n + c * filters + 2 * filters:
                hint = "input and output shapes are equal here, so the shortcut is the identity: no projection"
            elif projected and got_n == want_n - 2 * filters:
                hint = "the projection conv needs its own BatchNormalization"
            elif projected and got_n == want_n + 8 * c * filters:
                hint = "the projection is a 1x1 convolution, not 3x3"
            elif got_n - want_n in (2 * filters, 2 * filters + (filters if projected else 0)):
                hint = "the convolutions take use_bias=False (BN's beta replaces the bias)"
            elif projected and got_n == want_n - proj:
                hint = "the shortcut should be projected"
            else:
                hint = f"by layer type you have {_by_type(model)}, expected {_by_type(ref)}"
            fail(f"{call} has {got_n:,} trainable parameters, expected {want_n:,}: {hint}")
        # with the 3x3 kernels set to zero, F(x) = BN(0) = 0 and the block must return ReLU(shortcut(x))
        _zero_convs(model, only_spatial=True)
        out = np.asarray(model(x, training=False))
        if not projected:
            if np.allclose(out, x, atol=1e-5):
                fail(f"{call}: with F(x) = 0 the block returns x, negative values included: apply the ReLU "
                     "after the addition, ReLU(F(x) + x)")
            if np.allclose(out, 0, atol=1e-6):
                fail(f"{call}: with F(x) = 0 the block returns 0: the shortcut x is not added")
            if not np.allclose(out, np.maximum(x, 0), atol=1e-5):
                fail(f"{call}: with F(x) = 0 the block should return ReLU(x) exactly; check that the "
                     "shortcut is x itself and that nothing follows the final ReLU")
        else:
            projections = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"
                           and tuple(layer.kernel_size) == (1, 1)]
            if not projections or all(tuple(p.strides) != (stride, stride) for p in projections):
                fail(f"{call}: the shortcut should be a 1x1 convolution with strides={stride}")
            if np.allclose(out, 0, atol=1e-6):
                fail(f"{call}: with F(x) = 0 the block returns 0: the projected shortcut is not added")
        # the full block: ReLU output, and F(x) really contributes
        model, _, _ = _build(residual_block, "residual_block", shape, filters, stride=stride)
        _randomise_batch_norm(model, rng)
        out = np.asarray(model(x, training=False))
        if out.min() < 0:
            fail(f"{call} returns negative values: end the block with a ReLU after the addition")
    passed("identity shortcut when the shape is kept, 1x1 projection when stride or channels change, "
           "ReLU(F(x) + shortcut) out")


# --------------------------------------------------------------------------- inception block


def _inception_reference(input_shape, widths):
    from cnnkit.architectures import inception_block

    keras = _keras()
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, inception_block(inputs, *widths, name="ref", variant="paper"))


def _inception_count(c_in, c1, c3r, c3, c5r, c5, pp, *, bias=True, k3=5, reductions=True) -> int:
    b = int(bias)
    if not reductions:
        return (c_in + b) * c1 + (9 * c_in + b) * c3 + (k3 * k3 * c_in + b) * c5 + (c_in + b) * pp
    return ((c_in + b) * (c1 + c3r + c5r + pp) + (9 * c3r + b) * c3 + (k3 * k3 * c5r + b) * c5)


def _branch_of_channels(model) -> list[tuple[int, int]]:
    """(kernel size, filters) of the conv that produced each output channel block, found with zero kernels.

    Every kernel is set to 0 and the bias of conv ``i`` to ``i + 1``, so an output
    channel holds the (ReLU'd) bias of the last conv of its branch.
    """
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    for i, layer in enumerate(convs):
        weights = layer.get_weights()
        if len(weights) == 2:
            layer.set_weights([np.zeros_like(weights[0]), np.full_like(weights[1], i + 1)])
    x = np.ones((1, *model.input_shape[1:]), np.float32)
    values = np.asarray(model(x))[0, 0, 0]
    found = []
    for v in values:
        i = int(round(float(v))) - 1
        found.append((convs[i].kernel_size[0], convs[i].filters) if 0 <= i < len(convs) else (0, 0))
    return found


def _draw_inception_cases(rng: np.random.Generator) -> list[tuple[tuple, tuple]]:
    """Two hidden (input shape, widths): sizes of 5..12, branch widths of 1..10, all six widths distinct."""
    drawn = []
    for _ in range(2):
        shape = (int(rng.integers(5, 13)), int(rng.integers(5, 13)), int(rng.integers(3, 21)))
        widths = tuple(int(v) for v in rng.choice(np.arange(1, 11), size=6, replace=False))
        drawn.append((shape, widths))
    return drawn


def check_inception_block(inception_block) -> None:
    """``inception_block(x, c1, c3_reduce, c3, c5_reduce, c5, pool_proj)`` must build the paper's module.

    Branches, each conv with bias and ReLU, 'same' padding, stride 1:
    1x1 (c1) | 1x1 (c3_reduce) -> 3x3 (c3) | 1x1 (c5_reduce) -> 5x5 (c5) |
    3x3 max pool (stride 1, 'same') -> 1x1 (pool_proj); concatenated on the
    channels in that order.
    """
    expect_callable(inception_block, "inception_block")
    rng = case_rng(0)
    table = cases([((12, 12, 20), (8, 6, 10, 3, 5, 4)), ((7, 9, 11), (2, 3, 4, 5, 6, 7))], _draw_inception_cases, seed=0)
    for input_shape, widths in table:
        c1, c3r, c3, c5r, c5, pp = widths
        c_in = input_shape[-1]
        model, call, error = _build(inception_block, "inception_block", input_shape, *widths)
        if error is not None:
            hint = ""
            if "concat" in str(error).lower() or "shape" in str(error).lower():
                hint = (" -- every branch must keep the height and width: padding='same' in the 3x3 and 5x5 "
                        "convolutions and strides=1, padding='same' in the max pooling")
            fail(f"{call} on a {input_shape} input raised {_raised_name(error)}: {error}{hint}")
        want_channels = c1 + c3 + c5 + pp
        got = model.output_shape
        if got[1:3] != input_shape[:2]:
            fail(f"{call} on a {input_shape} input gives shape {got}: the height and width must stay "
                 f"{input_shape[:2]} (padding='same' everywhere, stride 1 in the max pooling)")
        if got[-1] != want_channels:
            guesses = {
                c1 + c3r + c3 + c5r + c5 + pp: "concatenate only the last layer of each branch, "
                                               "not the 1x1 reductions",
                c1 + c3 + c5 + c_in: "the pool branch needs its 1x1 projection to pool_proj channels",
                c1 + c3 + c5: "the pool branch is missing from the concatenation",
            }
            fail(f"{call} on a {input_shape} input gives {got[-1]} channels, expected c1 + c3 + c5 + pool_proj "
                 f"= {want_channels}" + (f" -- {guesses[got[-1]]}" if got[-1] in guesses else ""))
        got_n = _trainable(model)
        want_n = _trainable(_inception_reference(input_shape, widths))
        if got_n != want_n:
            guesses = {
                _inception_count(c_in, *widths, bias=False): "the paper's convolutions have biases "
                                                             "(use_bias=True, Keras' default)",
                _inception_count(c_in, *widths, k3=3): "the third branch uses a 5x5 kernel (torchvision's 3x3 "
                                                       "is a known deviation from the paper)",
                _inception_count(c_in, *widths, reductions=False): "the 1x1 reductions before the 3x3 and 5x5 "
                                                                   "convolutions are missing",
            }
            types = _by_type(model)
            if "BatchNormalization" in types:
                guesses[got_n] = ("the 2014 block has no batch normalization: biased convolutions with ReLU "
                                  "(torchvision's variant adds it)")
            fail(f"{call} on a {input_shape} input has {got_n:,} trainable parameters, expected {want_n:,}"
                 + (f" -- {guesses[got_n]}" if got_n in guesses else f"; by layer type you have {types}"))
        x = rng.standard_normal((2, *input_shape)).astype(np.float32)
        if np.asarray(model(x)).min() < 0:
            fail(f"{call} outputs negative values: follow every convolution with a ReLU "
                 "(activation='relu')")
        order = _branch_of_channels(model)
        expected = [(1, c1)] * c1 + [(3, c3)] * c3 + [(5, c5)] * c5 + [(1, pp)] * pp
        if order != expected:
            first = next(i for i, (a, b) in enumerate(zip(order, expected)) if a != b)
            k, n = order[first]
            fail(f"{call}: output channel {first} comes from a {k}x{k} convolution with {n} filters, expected "
                 f"{expected[first][0]}x{expected[first][0]} with {expected[first][1]}: concatenate the branches "
                 "in the order [1x1, 3x3, 5x5, pool]")
    passed("four branches with 1x1 reductions, 'same' sizes, ReLU, concatenated in the paper's order")


def check_inception_savings(params_naive, params_reduced) -> None:
    """Trainable parameters of inception 3a (28x28x192 in) without and with the 1x1 reductions (biased convs).

    Naive: 1x1 (64), 3x3 (128) and 5x5 (32) convolutions straight on the input,
    max pool without projection. Reduced: GoogLeNet's block (64, 96, 128, 16, 32, 32).
    """
    from cnnkit.architectures import inception_block, naive_inception_block

    keras = _keras()
    got_naive = finite_count(params_naive, "params_naive")
    got_reduced = finite_count(params_reduced, "params_reduced")
    shape, widths = INCEPTION_3A["input_shape"], INCEPTION_3A["widths"]
    c_in = shape[-1]
    c1, c3r, c3, c5r, c5, pp = widths
    inputs = keras.Input(shape)
    naive = _trainable(keras.Model(inputs, naive_inception_block(inputs, c1, c3, c5, name="naive")))
    reduced = _trainable(keras.Model(inputs, inception_block(inputs, *widths, name="reduced")))
    if got_naive != naive:
        guesses = {
            _inception_count(c_in, c1, c3r, c3, c5r, c5, 0, bias=False, reductions=False):
                "each convolution has one bias per filter",
            _inception_count(c_in, *widths, reductions=False): "the naive module's pool branch has no "
                                                                "projection (it passes the 192 channels through)",
        }
        fail(f"params_naive is {got_naive:,}, expected {naive:,}"
             + (f" -- {guesses[got_naive]}" if got_naive in guesses else
                f": add (1*1*{c_in} + 1)*{c1}, (3*3*{c_in} + 1)*{c3} and (5*5*{c_in} + 1)*{c5}"))
    if got_reduced != reduced:
        guesses = {
            _inception_count(c_in, *widths, bias=False): "each convolution has one bias per filter",
            reduced - (c_in + 1) * pp: "count the pool branch's 1x1 projection too",
            reduced - (c_in + 1) * (c3r + c5r): "count the two 1x1 reduction convolutions too",
            _inception_count(c_in, *widths, k3=3): "the 5x5 branch has 5x5 kernels on its reduced input",
        }
        fail(f"params_reduced is {got_reduced:,}, expected {reduced:,}"
             + (f" -- {guesses[got_reduced]}" if got_reduced in guesses else
                f": the 3x3 sees only {c3r} channels and the 5x5 only {c5r}; add the four 1x1 convolutions"))
    passed(f"naive {naive:,} vs reduced {reduced:,}: the 1x1 reductions save {naive - reduced:,} parameters "
           f"({naive / reduced:.1f}x fewer)")


# --------------------------------------------------------------------------- question of judgment

ZERO_INIT = Question(
    "Every weight and every bias of a small ReLU CNN (convolutions, then dense layers, a softmax output) is "
    "initialised to exactly 0. What happens when it is trained with SGD on CIFAR-10?",
    choices={
        "a": "It trains normally, only more slowly at first",
        "b": "Only the biases of the output layer ever change: the network learns the class frequencies and "
             "nothing else",
        "c": "The gradients explode at the first step",
        "d": "Each filter learns a different feature, as after a random initialisation",
    },
    answer="b",
    why="With zero weights every hidden pre-activation is 0, so every hidden ReLU outputs 0. A weight's gradient "
        "is its input times the gradient arriving at its unit: the output layer's weights see inputs of 0, and "
        "the hidden units receive the output gradient through zero weights (and ReLU's slope 0 at 0). Only the "
        "output biases get a gradient, softmax minus one-hot, so they learn the class frequencies. A random "
        "initialisation (He, Glorot) breaks this symmetry.",
    hints={
        "a": "Follow one hidden unit: pre-activation 0, output 0, and the gradient reaching it passes through the "
             "next layer's weights, which are 0. Slow training would need some nonzero gradient there.",
        "c": "Zero weights give zero activations and zero gradients: there is nothing to blow up.",
        "d": "All filters of a layer start identical and receive identical (here zero) gradients: nothing can "
             "make them differ.",
    },
)


def check_quiz_zero_init(answer) -> None:
    """What happens to a network whose weights all start at zero."""
    check_choice(ZERO_INIT, answer)
