"""Parameter counts and multiply-adds, layer by layer, from the formulas.

Two levels:

* **Pure formulas** (no Keras needed), for lessons and exercises::

      conv_params(3, 1, 16)            # (3*3*1 + 1)*16 = 160
      conv_params(3, 1, 16, bias=False)  # 3*3*1*16 = 144
      dense_params(128, 64)            # (128 + 1)*64 = 8256
      bn_params(16)                    # ParamCount(trainable=32, non_trainable=32)
      conv_madds(5, 256, 128, 32)      # 5*5*256*128 * 32*32 multiply-adds

* **Models**: :func:`explain` walks a built Keras model (Sequential or Functional,
  nested models included) and returns one row per layer with its output shape,
  trainable and non-trainable counts, the formula filled in for that layer (for
  example ``(3*3*3 + 1)*16 = 448``) and its multiply-adds for one input.
  :func:`count` returns ``(trainable, non_trainable)``. A layer without a formula
  here raises :class:`UnsupportedLayerError` naming the layer and its type: the
  module never guesses.

Conventions
-----------
* Shapes are channels-last ``(H, W, C)`` unless a layer says ``channels_first``.
* A convolution with ``F_h x F_w`` kernels, ``C_in`` input channels, ``K`` filters
  and ``g`` groups has ``(F_h*F_w*C_in/g + 1)*K`` parameters (no ``+1`` without bias).
* **Multiply-adds** (multiply-accumulates, MACs) count the products of the weighted
  layers for one input: ``F_h*F_w*(C_in/g)*K`` per output position for a
  convolution, ``n_in*n_out`` per position for a dense layer. Bias additions,
  batch norm (foldable into the previous layer at inference), pooling, activations
  and merges are counted as 0, the convention of the ResNet and VGG papers (ResNet-50:
  about 3.9e9 at 224x224). ``None`` when the spatial size is not fixed.
* Frozen layers (``layer.trainable = False``) keep their weights, all counted as
  non-trainable, as Keras does.
"""
from __future__ import annotations

import html
import math
import numbers
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple

__all__ = [
    "UnsupportedLayerError", "ParamCount", "LayerRow", "Explanation",
    "conv_params", "conv_madds", "dense_params", "dense_madds", "bn_params",
    "depthwise_params", "depthwise_madds", "separable_params", "separable_madds",
    "explain", "explain_layer", "count", "supported_layer_types", "profiler_flops",
]


class UnsupportedLayerError(TypeError):
    """``explain`` has no formula for this layer (or this configuration of it)."""

    def __init__(self, name: str, layer_type: str, reason: str = ""):
        self.layer_name = name
        self.layer_type = layer_type
        why = f": {reason}" if reason else ""
        super().__init__(
            f"cannot explain layer {name!r} of type {layer_type}{why}; "
            "cnnkit.params.supported_layer_types() lists the layers it has formulas for"
        )


class ParamCount(NamedTuple):
    """Trainable and non-trainable parameter counts of one layer."""

    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


# --------------------------------------------------------------------------- argument checks


def _count_arg(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _dims(value, name: str, default_rank: int = 2) -> tuple[int, ...]:
    """An int (repeated ``default_rank`` times) or a sequence of positive ints."""
    if isinstance(value, (tuple, list)):
        if len(value) == 0:
            raise ValueError(f"{name} must not be empty")
        return tuple(_count_arg(v, f"{name}[{i}]") for i, v in enumerate(value))
    return (_count_arg(value, name),) * default_rank


def _groups(c_in: int, k: int, groups) -> int:
    groups = _count_arg(groups, "groups")
    if c_in % groups or k % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels (c_in={c_in}) and the filters (k={k})"
        )
    return groups


def _bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


# --------------------------------------------------------------------------- pure formulas


def conv_params(f, c_in: int, k: int, bias: bool = True, groups: int = 1) -> int:
    """Parameters of a convolution: ``(F_h*F_w*C_in/groups + 1)*K``, no ``+1`` without bias.

    ``f`` is the kernel size: an int for a square ``f x f`` kernel, or a tuple
    (``(3,)`` for Conv1D, ``(3, 3, 3)`` for Conv3D). ``c_in`` input channels,
    ``k`` filters (output channels). Each filter spans ``C_in/groups`` channels.
    """
    kernel = _dims(f, "f")
    c_in = _count_arg(c_in, "c_in")
    k = _count_arg(k, "k")
    groups = _groups(c_in, k, groups)
    return (math.prod(kernel) * (c_in // groups) + int(_bool(bias, "bias"))) * k


def conv_madds(f, c_in: int, k: int, out_size, groups: int = 1) -> int:
    """Multiply-adds of a convolution for one input: ``F_h*F_w*(C_in/groups)*K * H_out*W_out``.

    Each of the ``K`` output values at each of the ``H_out*W_out`` positions is a
    dot product of length ``F_h*F_w*C_in/groups``. ``out_size`` is the output's
    spatial size: an int for ``H_out = W_out``, or a tuple such as ``(H_out, W_out)``.
    """
    kernel = _dims(f, "f")
    c_in = _count_arg(c_in, "c_in")
    k = _count_arg(k, "k")
    groups = _groups(c_in, k, groups)
    out = _dims(out_size, "out_size", default_rank=len(kernel))
    return math.prod(kernel) * (c_in // groups) * k * math.prod(out)


def dense_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a dense layer: ``(n_in + 1)*n_out`` (``n_in*n_out`` without bias)."""
    n_in = _count_arg(n_in, "n_in")
    n_out = _count_arg(n_out, "n_out")
    return (n_in + int(_bool(bias, "bias"))) * n_out


def dense_madds(n_in: int, n_out: int, positions: int = 1) -> int:
    """Multiply-adds of a dense layer: ``n_in*n_out`` per position (one position for a vector input)."""
    return _count_arg(n_in, "n_in") * _count_arg(n_out, "n_out") * _count_arg(positions, "positions")


def bn_params(k: int, center: bool = True, scale: bool = True) -> ParamCount:
    """Batch-norm parameters for ``k`` channels.

    Trainable: ``gamma`` (when ``scale``) and ``beta`` (when ``center``), ``k`` each,
    so ``2k`` by default. Non-trainable: the moving mean and moving variance, ``2k``,
    which Keras counts as parameters too (its summary shows ``4k`` in all).
    """
    k = _count_arg(k, "k")
    trainable = (int(_bool(center, "center")) + int(_bool(scale, "scale"))) * k
    return ParamCount(trainable, 2 * k)


def depthwise_params(f, c_in: int, depth_multiplier: int = 1, bias: bool = True) -> int:
    """Parameters of a depthwise convolution: ``(F_h*F_w + 1)*C_in*M``.

    Each of the ``C_in`` channels gets its own ``M = depth_multiplier`` filters of
    size ``F_h x F_w`` (one channel deep), each with a bias.
    """
    kernel = _dims(f, "f")
    c_in = _count_arg(c_in, "c_in")
    m = _count_arg(depth_multiplier, "depth_multiplier")
    return (math.prod(kernel) + int(_bool(bias, "bias"))) * c_in * m


def depthwise_madds(f, c_in: int, out_size, depth_multiplier: int = 1) -> int:
    """Multiply-adds of a depthwise convolution: ``F_h*F_w*C_in*M * H_out*W_out``."""
    kernel = _dims(f, "f")
    out = _dims(out_size, "out_size", default_rank=len(kernel))
    return math.prod(kernel) * _count_arg(c_in, "c_in") * _count_arg(depth_multiplier, "depth_multiplier") * math.prod(out)


def separable_params(f, c_in: int, k: int, depth_multiplier: int = 1, bias: bool = True) -> int:
    """Parameters of a separable convolution: ``F_h*F_w*C_in*M + (C_in*M + 1)*K``.

    A depthwise step (``M`` filters per input channel, no bias) followed by a 1x1
    pointwise convolution from ``C_in*M`` to ``K`` channels (with bias).
    """
    kernel = _dims(f, "f")
    c_in = _count_arg(c_in, "c_in")
    k = _count_arg(k, "k")
    m = _count_arg(depth_multiplier, "depth_multiplier")
    return math.prod(kernel) * c_in * m + (c_in * m + int(_bool(bias, "bias"))) * k


def separable_madds(f, c_in: int, k: int, out_size, depth_multiplier: int = 1) -> int:
    """Multiply-adds of a separable convolution: ``(F_h*F_w*C_in*M + C_in*M*K) * H_out*W_out``."""
    kernel = _dims(f, "f")
    c_in = _count_arg(c_in, "c_in")
    k = _count_arg(k, "k")
    m = _count_arg(depth_multiplier, "depth_multiplier")
    out = _dims(out_size, "out_size", default_rank=len(kernel))
    return (math.prod(kernel) * c_in * m + c_in * m * k) * math.prod(out)


# --------------------------------------------------------------------------- rows and results


@dataclass(frozen=True)
class LayerRow:
    """One layer of :func:`explain`: its counts, the filled-in formula and its multiply-adds."""

    name: str
    layer_type: str
    output_shape: object  # a tuple like (None, 32, 32, 16), or a list of them
    trainable: int
    non_trainable: int
    formula: str
    multiply_adds: int | None
    madds_formula: str = ""

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def as_dict(self) -> dict:
        return asdict(self)


def _fmt(n) -> str:
    return "?" if n is None else f"{n:,}"


def _shape_text(shape) -> str:
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


class Explanation:
    """The rows of :func:`explain` with totals; prints as a table, shows as HTML in Jupyter.

    ``rows`` (list of :class:`LayerRow`), ``to_dicts()``, ``trainable``,
    ``non_trainable``, ``total``, ``multiply_adds`` (``None`` when a layer's is
    unknown), ``row(name)``; iterate it, index it by position or layer name.
    """

    COLUMNS = ("name", "layer_type", "output_shape", "trainable", "non_trainable", "formula", "multiply_adds")
    HEADERS = ("Layer", "Type", "Output shape", "Trainable", "Non-trainable", "Formula", "Multiply-adds")

    def __init__(self, rows, model_name: str = "model"):
        self.rows: list[LayerRow] = list(rows)
        self.model_name = model_name

    # totals
    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(r.non_trainable for r in self.rows)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def multiply_adds(self) -> int | None:
        values = [r.multiply_adds for r in self.rows]
        return None if any(v is None for v in values) else sum(values)

    # access
    def to_dicts(self) -> list[dict]:
        """The rows as a list of dicts (for pandas: ``pd.DataFrame(e.to_dicts())``)."""
        return [r.as_dict() for r in self.rows]

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer named {name!r}; layers: {[r.name for r in self.rows]}")

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        return self.row(key) if isinstance(key, str) else self.rows[key]

    # rendering
    def _cells(self, row: LayerRow) -> list[str]:
        return [row.name, row.layer_type, _shape_text(row.output_shape), _fmt(row.trainable),
                _fmt(row.non_trainable), row.formula, _fmt(row.multiply_adds)]

    def totals_line(self) -> str:
        madds = self.multiply_adds
        madds_text = "unknown (input size not fixed)" if madds is None else f"{madds:,}"
        return (f"Total: {self.total:,} parameters = {self.trainable:,} trainable + "
                f"{self.non_trainable:,} non-trainable; multiply-adds per input: {madds_text}")

    def table(self) -> str:
        """A plain-text table, one line per layer, numbers right-aligned, then the totals."""
        body = [self._cells(r) for r in self.rows]
        widths = [max([len(h)] + [len(c[i]) for c in body]) for i, h in enumerate(self.HEADERS)]
        numeric = {3, 4, 6}

        def line(cells):
            return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(["-" * w for w in widths]))
        out = [f"Parameters of {self.model_name!r} ({len(self.rows)} layers)", line(self.HEADERS), rule]
        out += [line(c) for c in body]
        out += [rule, self.totals_line()]
        return "\n".join(out)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return self.table()

    def _repr_html_(self):
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.HEADERS)
        body = []
        for r in self.rows:
            cells = self._cells(r)
            tds = "".join(
                f'<td style="text-align:right">{esc(c)}</td>' if i in (3, 4, 6) else
                (f"<td><code>{esc(c)}</code></td>" if i == 5 else f"<td>{esc(c)}</td>")
                for i, c in enumerate(cells)
            )
            body.append(f"<tr>{tds}</tr>")
        foot = f'<tr><td colspan="7"><b>{esc(self.totals_line())}</b></td></tr>'
        return (f"<table><caption>Parameters of {esc(self.model_name)!s}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
                f"<tfoot>{foot}</tfoot></table>")


# --------------------------------------------------------------------------- per-layer explainers


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
    """Input and output shapes of the layer's first call (the one the weights were built for)."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes:
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has never been called, so its input shape "
            "is unknown: build the model with keras.Input(shape) first"
        )
    node = nodes[0]
    return [_shape_of(t) for t in node.input_tensors], [_shape_of(t) for t in node.output_tensors]


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

_EXPLAINERS: dict[type, Callable] | None = None


def _registry() -> dict[type, Callable]:
    """Exact Keras class -> explainer (subclasses are not matched: a custom subclass may differ)."""
    global _EXPLAINERS
    if _EXPLAINERS is None:
        from keras import layers

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
        _EXPLAINERS = {getattr(layers, name): fn for name, fn in table.items() if hasattr(layers, name)}
    return _EXPLAINERS


def supported_layer_types() -> list[str]:
    """Names of the Keras layer classes :func:`explain` has a formula for (plus nested models)."""
    return sorted({cls.__name__ for cls in _registry()} | {"Functional", "Sequential"})


def _is_nested_model(layer) -> bool:
    import keras
    from keras.src.models.functional import Functional

    return type(layer) is Functional or type(layer) is keras.Sequential


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
    explainer = _registry().get(type(layer))
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
    if not model.built or not model.layers or not getattr(model.layers[-1], "_inbound_nodes", None):
        raise ValueError(
            f"model {model.name!r} is not built: start it with keras.Input(shape=...) "
            "(or call model.build(input_shape)) before explaining it"
        )
    rows = _walk(model, "", not model.trainable, expand_nested, verify, {})
    return Explanation(rows, model_name=model.name)


def _is_model(obj) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, keras.Model)


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
