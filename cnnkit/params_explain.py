"""Walk a built Keras model layer by layer and fill in each layer's parameter formula.

:func:`explain` returns an :class:`~cnnkit.params_table.Explanation` whose rows
come from the formulas of :mod:`cnnkit.params`; with ``verify`` every row is
compared with the weights the layer really holds. Only Keras' public API is
used: ``model.layers``, ``layer.input`` / ``layer.output`` (the tensors of a
layer's first call) and the layer's configuration attributes.

Keras is imported inside the two functions that need it (:func:`_keras_types`,
:func:`profiler_flops`): :mod:`cnnkit.params` re-exports this module and must
stay importable without starting TensorFlow (about 4 s), because the exercise
notebook of lesson 05 uses only the formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from cnnkit.params_formulas import (
    UnsupportedLayerError, bn_params, conv_madds, conv_params, dense_madds, dense_params, depthwise_madds,
    depthwise_params, separable_madds, separable_params,
)
from cnnkit.params_table import Explanation, LayerRow

__all__ = ["explain", "explain_layer", "count", "supported_layer_types", "profiler_flops"]


@dataclass
class _Count:
    trainable: int
    non_trainable: int
    formula: str
    multiply_adds: int | None = 0
    madds_formula: str = ""


def _shape_of(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _io_shapes(layer) -> tuple[list[tuple], list[tuple]]:
    """Input and output shapes of the layer's first call (the one the weights were built for).

    ``layer.input`` and ``layer.output`` are the tensors of that first call: one
    tensor, or a list of them for a layer that merges several inputs.
    """
    try:
        ins, outs = layer.input, layer.output
    except (AttributeError, ValueError):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has never been called, so its input shape "
            "is unknown: build the model with keras.Input(shape) first"
        ) from None
    as_list = lambda t: list(t) if isinstance(t, (list, tuple)) else [t]  # noqa: E731
    return [_shape_of(t) for t in as_list(ins)], [_shape_of(t) for t in as_list(outs)]


def _output_shape(layer):
    outs = _io_shapes(layer)[1]
    return outs[0] if len(outs) == 1 else outs


def _channels(layer, shape: tuple) -> int:
    axis = 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1
    c = shape[axis]
    if c is None:
        raise UnsupportedLayerError(layer.name, type(layer).__name__, "its number of input channels is not fixed")
    return int(c)


def _spatial(layer, shape: tuple) -> tuple | None:
    dims = shape[2:] if getattr(layer, "data_format", "channels_last") == "channels_first" else shape[1:-1]
    return None if any(d is None for d in dims) else tuple(int(d) for d in dims)


def _star(values) -> str:
    return "*".join(str(v) for v in values)


def _reject_variants(layer) -> None:
    if getattr(layer, "lora_enabled", False):
        raise UnsupportedLayerError(layer.name, type(layer).__name__, "LoRA adapters are enabled")
    if getattr(layer, "quantization_mode", None):
        raise UnsupportedLayerError(layer.name, type(layer).__name__,
                                    f"it is quantized ({layer.quantization_mode})")


def _explain_conv(layer, ins, outs) -> _Count:
    _reject_variants(layer)
    kernel = tuple(layer.kernel_size)
    c_in = _channels(layer, ins[0])
    k, g, bias = int(layer.filters), int(getattr(layer, "groups", 1)), bool(layer.use_bias)
    n = conv_params(kernel, c_in, k, bias=bias, groups=g)
    per_filter = _star(kernel) + "*" + (f"({c_in}/{g})" if g > 1 else str(c_in))
    formula = f"({per_filter} + 1)*{k} = {n:,}" if bias else f"{per_filter}*{k} = {n:,}"
    out = _spatial(layer, outs[0])
    if out is None:
        return _Count(n, 0, formula, None, "output size not fixed")
    madds = conv_madds(kernel, c_in, k, out, groups=g)
    return _Count(n, 0, formula, madds, f"{per_filter}*{k} * {_star(out)} = {madds:,}")


def _explain_depthwise(layer, ins, outs) -> _Count:
    _reject_variants(layer)
    kernel = tuple(layer.kernel_size)
    c_in = _channels(layer, ins[0])
    m, bias = int(layer.depth_multiplier), bool(layer.use_bias)
    n = depthwise_params(kernel, c_in, m, bias=bias)
    chans = f"{c_in}*{m}" if m > 1 else str(c_in)
    formula = f"({_star(kernel)} + 1)*{chans} = {n:,}" if bias else f"{_star(kernel)}*{chans} = {n:,}"
    out = _spatial(layer, outs[0])
    if out is None:
        return _Count(n, 0, formula, None, "output size not fixed")
    madds = depthwise_madds(kernel, c_in, out, m)
    return _Count(n, 0, formula, madds, f"{_star(kernel)}*{chans} * {_star(out)} = {madds:,}")


def _explain_separable(layer, ins, outs) -> _Count:
    _reject_variants(layer)
    kernel = tuple(layer.kernel_size)
    c_in = _channels(layer, ins[0])
    k, m, bias = int(layer.filters), int(layer.depth_multiplier), bool(layer.use_bias)
    n = separable_params(kernel, c_in, k, m, bias=bias)
    mid = f"{c_in}*{m}" if m > 1 else str(c_in)
    point = f"({mid} + 1)*{k}" if bias else f"{mid}*{k}"
    formula = f"{_star(kernel)}*{mid} (depthwise) + {point} (pointwise) = {n:,}"
    out = _spatial(layer, outs[0])
    if out is None:
        return _Count(n, 0, formula, None, "output size not fixed")
    madds = separable_madds(kernel, c_in, k, out, m)
    return _Count(n, 0, formula, madds, f"({_star(kernel)}*{mid} + {mid}*{k}) * {_star(out)} = {madds:,}")


def _explain_dense(layer, ins, outs) -> _Count:
    _reject_variants(layer)
    n_in = ins[0][-1]
    if n_in is None:
        raise UnsupportedLayerError(layer.name, "Dense", "its input size is not fixed")
    n_out, bias = int(layer.units), bool(layer.use_bias)
    n = dense_params(n_in, n_out, bias=bias)
    formula = f"({n_in} + 1)*{n_out} = {n:,}" if bias else f"{n_in}*{n_out} = {n:,}"
    positions_dims = ins[0][1:-1]
    if any(d is None for d in positions_dims):
        return _Count(n, 0, formula, None, "input size not fixed")
    positions = math.prod(positions_dims) if positions_dims else 1
    madds = dense_madds(n_in, n_out, positions)
    where = f" * {_star(positions_dims)}" if positions_dims else ""
    return _Count(n, 0, formula, madds, f"{n_in}*{n_out}{where} = {madds:,}")


def _normalized_size(layer, shape: tuple, axes) -> tuple[int, str]:
    axes = [axes] if isinstance(axes, int) else list(axes)
    dims = [shape[a] for a in axes]
    if any(d is None for d in dims):
        raise UnsupportedLayerError(layer.name, type(layer).__name__, "its normalised axis size is not fixed")
    return math.prod(dims), _star(dims)


def _explain_batchnorm(layer, ins, outs) -> _Count:
    k, k_text = _normalized_size(layer, ins[0], layer.axis)
    counts = bn_params(k, center=bool(layer.center), scale=bool(layer.scale))
    learned = [n for n, on in (("gamma", layer.scale), ("beta", layer.center)) if on]
    n_learned = len(learned)
    tr = (f"{n_learned}*{k_text} = {counts.trainable:,} trainable ({', '.join(learned)})"
          if n_learned else "0 trainable (no gamma, no beta)")
    formula = f"{tr} + 2*{k_text} = {counts.non_trainable:,} non-trainable (moving mean, variance)"
    return _Count(counts.trainable, counts.non_trainable, formula)


def _explain_layernorm(layer, ins, outs) -> _Count:
    k, k_text = _normalized_size(layer, ins[0], layer.axis)
    rms = bool(getattr(layer, "rms_scaling", False))
    learned = [n for n, on in (("gamma", layer.scale or rms), ("beta", layer.center and not rms)) if on]
    n = len(learned) * k
    formula = f"{len(learned)}*{k_text} = {n:,} trainable ({', '.join(learned) or 'none'})"
    return _Count(n, 0, formula)


def _explain_normalization(layer, ins, outs) -> _Count:
    if getattr(layer, "input_mean", None) is not None:
        return _Count(0, 0, "0 (mean and variance given as constants)")
    k, k_text = _normalized_size(layer, ins[0], layer.axis)
    n = 2 * k + 1
    return _Count(0, n, f"2*{k_text} + 1 = {n:,} non-trainable (mean, variance, sample count)")


def _zero(reason: str) -> Callable:
    def explainer(layer, ins, outs) -> _Count:
        return _Count(0, 0, f"0 ({reason})")
    return explainer


_ZERO_LAYERS = {
    "input": ("InputLayer",),
    "pooling has no weights": (
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"),
    "reshapes only": ("Flatten", "Reshape", "Permute", "RepeatVector"),
    "dropout/noise has no weights": (
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout"),
    "activation has no weights": ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"),
    "merges inputs, no weights": ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"),
    "padding/cropping/resizing has no weights": (
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
        "UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing", "CenterCrop"),
    "fixed scale and offset": ("Rescaling",),
    "identity": ("Identity",),
    "random augmentation, no weights": (
        "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
        "RandomContrast", "RandomBrightness"),
}

#: The models whose graph :func:`explain` walks. Keras exports ``Sequential`` but
#: not the class of a model built as ``keras.Model(inputs, outputs)``, whose name
#: is ``Functional``: it is recognised by that name (a subclassed model has its own).
_GRAPH_MODELS = ("Functional", "Sequential")
_KERAS_TYPES: dict = {}


def _keras_types() -> dict:
    """``{"explainers": {Keras layer class: explainer}, "model": keras.Model}``, made on first use.

    The one place this module imports Keras. Explainers match exact classes:
    a custom subclass of a layer may hold other weights, so it is not matched.
    """
    if not _KERAS_TYPES:
        import keras

        table = {}
        for reason, names in _ZERO_LAYERS.items():
            for name in names:
                table[name] = _zero(reason)
        table.update({
            "Conv1D": _explain_conv, "Conv2D": _explain_conv, "Conv3D": _explain_conv,
            "DepthwiseConv1D": _explain_depthwise, "DepthwiseConv2D": _explain_depthwise,
            "SeparableConv1D": _explain_separable, "SeparableConv2D": _explain_separable,
            "Dense": _explain_dense, "BatchNormalization": _explain_batchnorm,
            "LayerNormalization": _explain_layernorm, "Normalization": _explain_normalization,
        })
        _KERAS_TYPES["explainers"] = {getattr(keras.layers, name): fn for name, fn in table.items()
                                      if hasattr(keras.layers, name)}
        _KERAS_TYPES["model"] = keras.Model
    return _KERAS_TYPES


def supported_layer_types() -> list[str]:
    """Names of the Keras layer classes :func:`explain` has a formula for (plus nested models)."""
    return sorted({cls.__name__ for cls in _keras_types()["explainers"]} | set(_GRAPH_MODELS))


def _is_model(obj) -> bool:
    return isinstance(obj, _keras_types()["model"])


def _is_nested_model(layer) -> bool:
    return _is_model(layer) and type(layer).__name__ in _GRAPH_MODELS


def _weight_count(variables) -> int:
    return int(sum(math.prod(int(d) for d in v.shape) for v in variables))


def explain_layer(layer, *, name: str | None = None, frozen: bool = False, verify: bool = True) -> LayerRow:
    """Explain one called (built) Keras layer: counts, filled-in formula, multiply-adds.

    ``frozen`` marks a layer inside a frozen parent. With ``verify`` (default) the
    formula's counts are compared with the weights the layer actually holds, and
    any difference raises :class:`UnsupportedLayerError`: a configuration the
    formulas do not cover is reported, never guessed.
    """
    layer_type = type(layer).__name__
    name = layer.name if name is None else name
    explainer = _keras_types()["explainers"].get(type(layer))
    if explainer is None:
        raise UnsupportedLayerError(name, layer_type)
    ins, outs = _io_shapes(layer)
    c = explainer(layer, ins, outs)
    trainable, non_trainable, formula = c.trainable, c.non_trainable, c.formula
    if (frozen or not layer.trainable) and trainable:
        formula += f"; frozen (trainable=False): all {trainable + non_trainable:,} counted non-trainable"
        trainable, non_trainable = 0, trainable + non_trainable
    if verify:
        held = (_weight_count(layer.trainable_weights), _weight_count(layer.non_trainable_weights))
        if held != (trainable, non_trainable):
            raise UnsupportedLayerError(
                name, layer_type,
                f"the formula gives {trainable:,} trainable + {non_trainable:,} non-trainable but the layer "
                f"holds {held[0]:,} + {held[1]:,}: this configuration is not covered",
            )
    return LayerRow(name, layer_type, outs[0] if len(outs) == 1 else outs, trainable, non_trainable, formula,
                    c.multiply_adds, c.madds_formula)


def _walk(model, prefix: str, frozen: bool, expand_nested: bool, verify: bool, seen: dict) -> list[LayerRow]:
    rows = []
    for layer in model.layers:
        name = prefix + layer.name
        if id(layer) in seen:  # reused in two nested models: weights held once, computed twice
            first = explain_layer(layer, name=name, verify=False) if not _is_nested_model(layer) else None
            rows.append(LayerRow(name, type(layer).__name__, _output_shape(layer), 0, 0,
                                 f"0 (weights shared with {seen[id(layer)]})",
                                 first.multiply_adds if first else None,
                                 first.madds_formula if first else ""))
            continue
        seen[id(layer)] = name
        layer_frozen = frozen or not layer.trainable
        if _is_nested_model(layer):
            inner = _walk(layer, name + ".", layer_frozen, expand_nested, verify, seen)
            if expand_nested:
                rows.extend(inner)
            else:
                sub = Explanation(inner)
                rows.append(LayerRow(name, type(layer).__name__, _output_shape(layer),
                                     sub.trainable, sub.non_trainable,
                                     f"sum over its {len(inner)} layers = {sub.total:,}",
                                     sub.multiply_adds, "sum over its layers"))
        else:
            rows.append(explain_layer(layer, name=name, frozen=layer_frozen, verify=verify))
    return rows


def _has_been_called(layer) -> bool:
    try:
        layer.output
    except (AttributeError, ValueError):
        return False
    return True


def explain(model, *, expand_nested: bool = True, verify: bool = True) -> Explanation:
    """Explain a built Keras model (Sequential or Functional) layer by layer.

    Returns an :class:`Explanation`: one :class:`LayerRow` per layer (name, layer
    type, output shape, trainable, non-trainable, formula, multiply-adds for one
    input), with totals; it prints as a text table and shows as HTML in a notebook.
    A nested model (a model used as a layer) is explained layer by layer with
    dotted names (``"backbone.conv1"``), or as one row with ``expand_nested=False``.
    A layer listed twice (shared by two nested models) holds its weights once: its
    second row counts 0 parameters but its multiply-adds again. A layer called
    several times inside one graph is listed once by Keras, with the multiply-adds
    of its first call.
    Raises :class:`UnsupportedLayerError` for any layer without a formula here.
    """
    if not _is_model(model):
        raise TypeError(
            f"explain expects a Keras Sequential or Functional model, got {type(model).__name__}; "
            "for a single layer use explain_layer(layer)"
        )
    if not _is_nested_model(model):
        raise UnsupportedLayerError(model.name, type(model).__name__,
                                    "subclassed models hide their graph; only Sequential and Functional models are walked")
    if not model.built or not model.layers or not _has_been_called(model.layers[-1]):
        raise ValueError(
            f"model {model.name!r} is not built: start it with keras.Input(shape=...) "
            "(or call model.build(input_shape)) before explaining it"
        )
    rows = _walk(model, "", not model.trainable, expand_nested, verify, {})
    return Explanation(rows, model_name=model.name)


def count(model) -> tuple[int, int]:
    """``(trainable, non_trainable)`` parameter counts of a model, from the formulas of :func:`explain`."""
    e = explain(model)
    return e.trainable, e.non_trainable


def profiler_flops(model) -> int:
    """Float operations of one forward pass for one input, counted by TensorFlow's graph profiler.

    An independent check of :func:`explain`'s multiply-adds: TensorFlow counts each
    multiply-add of a convolution or matrix product as 2 float operations, and
    adds its own counts for bias additions (one per output value), batch norm,
    activations and pooling. For a model of bias-free convolutions and dense
    layers, ``profiler_flops(model) == 2 * explain(model).multiply_adds``.
    """
    from cnnkit.env import import_tensorflow

    tf = import_tensorflow()
    # Freezing the variables into constants lets the profiler see every weight's shape; TensorFlow
    # offers this for TF2 functions only under tensorflow.python (tf.compat.v1's version needs a Session).
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if not _is_model(model) or len(model.inputs) != 1:
        raise TypeError(f"profiler_flops expects a built Keras model with one input, got {type(model).__name__}")
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"profiler_flops needs a fixed input size, got input shape {shape}")
    spec = tf.TensorSpec((1,) + shape, tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(fn).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)
