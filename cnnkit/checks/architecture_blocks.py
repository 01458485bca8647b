"""Checks for the blocks of lesson 07: a residual block, an inception block, and what the 1x1 reductions save.

A student's block function is called on a fresh ``keras.Input`` and the model
it makes is compared with :mod:`cnnkit.architectures` (torchvision's
BasicBlock; the 2014 paper's inception module): output shape, trainable
parameters, and its behaviour with chosen weights (3x3 kernels set to zero
show whether ReLU(F(x) + shortcut) is built; biases set to the branch number
show the order of the concatenated branches).
"""
from __future__ import annotations

import numpy as np

from cnnkit.checks import (
    NotABlock,
    _raised_name,
    block_model,
    case_rng,
    cases,
    expect_callable,
    fail,
    passed,
)
from cnnkit.checks.parameters import finite_count

__all__ = ["INCEPTION_3A", "SMALL_INCEPTION", "check_inception_block", "check_inception_savings", "check_residual_block"]

# inception 3a of GoogLeNet: 28x28x192 in; (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
INCEPTION_3A = {"input_shape": (28, 28, 192), "widths": (64, 96, 128, 16, 32, 32)}
# the block the exercise notebook asks about: 3a's layout at CIFAR scale, whose counts lesson 07 does not print
SMALL_INCEPTION = {"input_shape": (16, 16, 128), "widths": (48, 64, 96, 12, 24, 24)}


def _keras():
    from cnnkit.env import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _trainable(model_or_layer) -> int:
    from cnnkit.arch_measure import trainable_params

    return trainable_params(model_or_layer)


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


def check_inception_savings(params_naive, params_reduced, block=INCEPTION_3A) -> None:
    """Trainable parameters of an inception block without and with the 1x1 reductions (biased convs).

    ``block``: ``{"input_shape": (H, W, C_in), "widths": (c1, c3_reduce, c3, c5_reduce, c5, pool_proj)}``,
    GoogLeNet's 3a (28x28x192 in; 64, 96, 128, 16, 32, 32) unless told. Naive: 1x1 (c1), 3x3 (c3) and
    5x5 (c5) convolutions straight on the input, max pool without projection. Reduced: the block itself.
    """
    from cnnkit.architectures import inception_block, naive_inception_block

    keras = _keras()
    got_naive = finite_count(params_naive, "params_naive")
    got_reduced = finite_count(params_reduced, "params_reduced")
    try:
        shape, widths = tuple(block["input_shape"]), tuple(block["widths"])
    except (TypeError, KeyError):
        raise ValueError(f"block must be a dict with 'input_shape' and 'widths', got {block!r}") from None
    if len(shape) != 3 or len(widths) != 6:
        raise ValueError(f"block needs an (H, W, C_in) input shape and six widths, got {block!r}")
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
                                                                f"projection (it passes the {c_in} channels through)",
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
