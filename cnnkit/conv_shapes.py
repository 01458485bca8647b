"""Output sizes of a sliding window, TensorFlow's "same" padding, and shapes through a stack of layers.

Along one axis (input n, kernel f, stride s, padding p per side)::

    n_out = floor((n + 2p - f) / s) + 1            # "valid" is p = 0
    n_out = ceil(n / s)                            # "same" (TensorFlow's rule)

For "same", TensorFlow pads ``max((n_out - 1) * s + f - n, 0)`` zeros in total,
half before and the rest (the odd one) after: bottom / right.

Exercise 1's helper :func:`trace_shapes` follows an (H, W, C) volume through a
list of layer specs; a spec is a dict, made most easily with :func:`conv_spec`
and :func:`pool_spec`::

    trace_shapes((32, 32, 3), [conv_spec(32, 3, padding="same"), pool_spec(2)])
    # -> [(32, 32, 32), (16, 16, 32)]

:func:`keras_trace_shapes` reads the same shapes from a Keras model, the
lesson's second opinion. It is the one function here that needs Keras, and
imports it when called: everything else is plain Python, and ``import
cnnkit.conv`` must not start TensorFlow (about 4 s) for a numpy-only lesson.
"""
from __future__ import annotations

from cnnkit._validate import non_negative_int, pair, positive_int

PADDINGS = ("valid", "same")

__all__ = ["output_size", "same_padding", "padding_amounts", "conv_spec", "pool_spec", "trace_shapes",
           "keras_trace_shapes"]



def _padding_value(padding, name: str = "padding"):
    """Return "valid", "same", or a non-negative int / (before, after) pair; raise otherwise."""
    if isinstance(padding, str):
        key = padding.lower()
        if key not in PADDINGS:
            raise ValueError(f"unknown {name} {padding!r}: expected 'valid', 'same' or a non-negative int")
        return key
    if isinstance(padding, (tuple, list)):
        return pair(padding, name, check=non_negative_int)
    try:
        return non_negative_int(padding, name)
    except TypeError:
        raise TypeError(f"{name} must be 'valid', 'same' or a non-negative int, got {padding!r}") from None


def same_padding(n: int, f: int, stride: int = 1) -> tuple[int, int]:
    """Zeros TensorFlow adds before and after an axis of size ``n`` for ``padding="same"``.

    The output has ``ceil(n / stride)`` positions; the total padding is
    ``max((ceil(n / stride) - 1) * stride + f - n, 0)``, split as
    ``(total // 2, total - total // 2)``: an odd zero goes to the bottom / right.

    >>> same_padding(5, 3, 1), same_padding(6, 4, 1), same_padding(7, 3, 2)
    ((1, 1), (1, 2), (1, 1))
    """
    n = positive_int(n, "n")
    f = positive_int(f, "f")
    stride = positive_int(stride, "stride")
    out = -(-n // stride)
    total = max((out - 1) * stride + f - n, 0)
    return total // 2, total - total // 2


def padding_amounts(n: int, f: int, stride: int = 1, padding="valid") -> tuple[int, int]:
    """Zeros ``(before, after)`` added to one axis for ``padding`` ("valid", "same", int or pair)."""
    padding = _padding_value(padding)
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_padding(n, f, stride)
    if isinstance(padding, tuple):
        return padding
    return padding, padding


def output_size(n: int, f: int, stride: int = 1, padding=0) -> int:
    """Number of positions a kernel of size ``f`` takes along an axis of size ``n``.

    .. math:: n_{out} = \\left\\lfloor \\frac{n + 2p - f}{s} \\right\\rfloor + 1

    ``padding`` is an int ``p`` (zeros on each side), a pair ``(before, after)``,
    ``"valid"`` (p = 0) or ``"same"`` (TensorFlow: ``ceil(n / s)``). Raises
    ValueError when the kernel is larger than the padded axis.

    >>> output_size(32, 3, 1, 0), output_size(32, 3, 2, 1), output_size(7, 3, 2, "same")
    (30, 16, 4)
    """
    n = positive_int(n, "n")
    f = positive_int(f, "f")
    stride = positive_int(stride, "stride")
    before, after = padding_amounts(n, f, stride, padding)
    padded = n + before + after
    if f > padded:
        raise ValueError(
            f"kernel size {f} is larger than the padded input {padded} "
            f"(input {n}, padding {before}+{after}); no position fits"
        )
    return (padded - f) // stride + 1


# --------------------------------------------------------------------------- Exercise 1: shapes through a stack

_CONV_KEYS = {"type", "filters", "kernel", "stride", "padding"}
_POOL_KEYS = {"type", "size", "stride", "padding"}


def conv_spec(filters: int, kernel=3, stride=1, padding="valid") -> dict:
    """A convolution layer for :func:`trace_shapes`: ``{"type": "conv", "filters", "kernel", "stride", "padding"}``."""
    return {"type": "conv", "filters": filters, "kernel": kernel, "stride": stride, "padding": padding}


def pool_spec(size=2, stride=None, padding="valid") -> dict:
    """A pooling layer for :func:`trace_shapes`: ``{"type": "pool", "size", "stride", "padding"}`` (stride defaults to size)."""
    return {"type": "pool", "size": size, "stride": size if stride is None else stride, "padding": padding}


def _layer_geometry(spec, index: int):
    """Return (kind, kernel pair, stride pair, padding, filters or None) for one layer spec."""
    where = f"layer {index}"
    if not isinstance(spec, dict):
        raise TypeError(f"{where} must be a dict such as conv_spec(32, 3) or pool_spec(2), got {spec!r}")
    kind = spec.get("type")
    if kind == "conv":
        unknown = set(spec) - _CONV_KEYS
        if unknown or "filters" not in spec:
            raise ValueError(f"{where}: a conv spec needs 'filters' and may have 'kernel', 'stride', "
                             f"'padding'; got keys {sorted(spec)}")
        kernel = pair(spec.get("kernel", 3), f"{where} kernel")
        filters = positive_int(spec["filters"], f"{where} filters")
        stride = pair(spec.get("stride", 1), f"{where} stride")
    elif kind == "pool":
        unknown = set(spec) - _POOL_KEYS
        if unknown:
            raise ValueError(f"{where}: a pool spec may have 'size', 'stride', 'padding'; got keys {sorted(spec)}")
        kernel = pair(spec.get("size", 2), f"{where} size")
        filters = None
        stride_value = spec.get("stride")
        stride = kernel if stride_value is None else pair(stride_value, f"{where} stride")
    else:
        raise ValueError(f"{where} has type {kind!r}; expected 'conv' or 'pool'")
    padding = _padding_value(spec.get("padding", "valid"), f"{where} padding")
    return kind, kernel, stride, padding, filters


def trace_shapes(input_shape, layers) -> list[tuple[int, int, int]]:
    """Output shape (H, W, C) of every layer in ``layers``, applied in order to ``input_shape`` (H, W, C).

    A conv layer maps C channels to ``filters``; a pooling layer keeps C. Each
    spatial size follows :func:`output_size`. Specs are dicts (see
    :func:`conv_spec`, :func:`pool_spec`)::

        {"type": "conv", "filters": 32, "kernel": 3, "stride": 1, "padding": "same"}
        {"type": "pool", "size": 2, "stride": 2, "padding": "valid"}

    Raises ValueError naming the layer when a kernel no longer fits.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {tuple(input_shape)!r}")
    h, w, c = (positive_int(v, f"input_shape[{i}]") for i, v in enumerate(input_shape))
    shapes = []
    for index, spec in enumerate(layers):
        kind, (f1, f2), (s1, s2), padding, filters = _layer_geometry(spec, index)
        try:
            h, w = output_size(h, f1, s1, padding), output_size(w, f2, s2, padding)
        except ValueError as exc:
            raise ValueError(f"layer {index} ({kind}) does not fit its input of shape {(h, w, c)}: {exc}") from None
        c = filters if kind == "conv" else c
        shapes.append((h, w, c))
    return shapes


def keras_trace_shapes(input_shape, layers, pool: str = "max") -> list[tuple[int, int, int]]:
    """The same shapes as :func:`trace_shapes`, read from a Keras model built from the specs.

    Only "valid" and "same" paddings exist in Keras (an int padding raises
    ValueError). ``pool`` chooses MaxPooling2D or AveragePooling2D.
    """
    import keras

    inputs = keras.Input(shape=tuple(input_shape))
    t = inputs
    shapes = []
    for index, spec in enumerate(layers):
        kind, kernel, stride, padding, filters = _layer_geometry(spec, index)
        if padding not in PADDINGS:
            raise ValueError(f"layer {index}: Keras layers take padding 'valid' or 'same', got {padding!r}")
        if kind == "conv":
            t = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding)(t)
        else:
            layer = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
            t = layer(kernel, strides=stride, padding=padding)(t)
        shapes.append(tuple(int(v) for v in t.shape[1:]))
    return shapes
