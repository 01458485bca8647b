"""Parameter counts and multiply-adds of one layer, from its formula (plain Python, no Keras).

A convolution with ``F_h x F_w`` kernels, ``C_in`` input channels, ``K`` filters
and ``g`` groups has ``(F_h*F_w*C_in/g + 1)*K`` parameters (no ``+1`` without
bias) and ``F_h*F_w*(C_in/g)*K`` multiply-adds per output position; a dense
layer ``(n_in + 1)*n_out`` and ``n_in*n_out``. :mod:`cnnkit.params` describes
the conventions and re-exports every name.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from cnnkit._validate import boolean, positive_int

__all__ = [
    "UnsupportedLayerError", "ParamCount", "conv_params", "conv_madds", "dense_params", "dense_madds",
    "bn_params", "depthwise_params", "depthwise_madds", "separable_params", "separable_madds",
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


def _dims(value, name: str, default_rank: int = 2) -> tuple[int, ...]:
    """An int (repeated ``default_rank`` times) or a sequence of positive ints."""
    if isinstance(value, (tuple, list)):
        if len(value) == 0:
            raise ValueError(f"{name} must not be empty")
        return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(value))
    return (positive_int(value, name),) * default_rank


def _groups(c_in: int, k: int, groups) -> int:
    groups = positive_int(groups, "groups")
    if c_in % groups or k % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels (c_in={c_in}) and the filters (k={k})"
        )
    return groups


# --------------------------------------------------------------------------- pure formulas


def conv_params(f, c_in: int, k: int, bias: bool = True, groups: int = 1) -> int:
    """Parameters of a convolution: ``(F_h*F_w*C_in/groups + 1)*K``, no ``+1`` without bias.

    ``f`` is the kernel size: an int for a square ``f x f`` kernel, or a tuple
    (``(3,)`` for Conv1D, ``(3, 3, 3)`` for Conv3D). ``c_in`` input channels,
    ``k`` filters (output channels). Each filter spans ``C_in/groups`` channels.
    """
    kernel = _dims(f, "f")
    c_in = positive_int(c_in, "c_in")
    k = positive_int(k, "k")
    groups = _groups(c_in, k, groups)
    return (math.prod(kernel) * (c_in // groups) + int(boolean(bias, "bias"))) * k


def conv_madds(f, c_in: int, k: int, out_size, groups: int = 1) -> int:
    """Multiply-adds of a convolution for one input: ``F_h*F_w*(C_in/groups)*K * H_out*W_out``.

    Each of the ``K`` output values at each of the ``H_out*W_out`` positions is a
    dot product of length ``F_h*F_w*C_in/groups``. ``out_size`` is the output's
    spatial size: an int for ``H_out = W_out``, or a tuple such as ``(H_out, W_out)``.
    """
    kernel = _dims(f, "f")
    c_in = positive_int(c_in, "c_in")
    k = positive_int(k, "k")
    groups = _groups(c_in, k, groups)
    out = _dims(out_size, "out_size", default_rank=len(kernel))
    return math.prod(kernel) * (c_in // groups) * k * math.prod(out)


def dense_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a dense layer: ``(n_in + 1)*n_out`` (``n_in*n_out`` without bias)."""
    n_in = positive_int(n_in, "n_in")
    n_out = positive_int(n_out, "n_out")
    return (n_in + int(boolean(bias, "bias"))) * n_out


def dense_madds(n_in: int, n_out: int, positions: int = 1) -> int:
    """Multiply-adds of a dense layer: ``n_in*n_out`` per position (one position for a vector input)."""
    return positive_int(n_in, "n_in") * positive_int(n_out, "n_out") * positive_int(positions, "positions")


def bn_params(k: int, center: bool = True, scale: bool = True) -> ParamCount:
    """Batch-norm parameters for ``k`` channels.

    Trainable: ``gamma`` (when ``scale``) and ``beta`` (when ``center``), ``k`` each,
    so ``2k`` by default. Non-trainable: the moving mean and moving variance, ``2k``,
    which Keras counts as parameters too (its summary shows ``4k`` in all).
    """
    k = positive_int(k, "k")
    trainable = (int(boolean(center, "center")) + int(boolean(scale, "scale"))) * k
    return ParamCount(trainable, 2 * k)


def depthwise_params(f, c_in: int, depth_multiplier: int = 1, bias: bool = True) -> int:
    """Parameters of a depthwise convolution: ``(F_h*F_w + 1)*C_in*M``.

    Each of the ``C_in`` channels gets its own ``M = depth_multiplier`` filters of
    size ``F_h x F_w`` (one channel deep), each with a bias.
    """
    kernel = _dims(f, "f")
    c_in = positive_int(c_in, "c_in")
    m = positive_int(depth_multiplier, "depth_multiplier")
    return (math.prod(kernel) + int(boolean(bias, "bias"))) * c_in * m


def depthwise_madds(f, c_in: int, out_size, depth_multiplier: int = 1) -> int:
    """Multiply-adds of a depthwise convolution: ``F_h*F_w*C_in*M * H_out*W_out``."""
    kernel = _dims(f, "f")
    out = _dims(out_size, "out_size", default_rank=len(kernel))
    return math.prod(kernel) * positive_int(c_in, "c_in") * positive_int(depth_multiplier, "depth_multiplier") * math.prod(out)


def separable_params(f, c_in: int, k: int, depth_multiplier: int = 1, bias: bool = True) -> int:
    """Parameters of a separable convolution: ``F_h*F_w*C_in*M + (C_in*M + 1)*K``.

    A depthwise step (``M`` filters per input channel, no bias) followed by a 1x1
    pointwise convolution from ``C_in*M`` to ``K`` channels (with bias).
    """
    kernel = _dims(f, "f")
    c_in = positive_int(c_in, "c_in")
    k = positive_int(k, "k")
    m = positive_int(depth_multiplier, "depth_multiplier")
    return math.prod(kernel) * c_in * m + (c_in * m + int(boolean(bias, "bias"))) * k


def separable_madds(f, c_in: int, k: int, out_size, depth_multiplier: int = 1) -> int:
    """Multiply-adds of a separable convolution: ``(F_h*F_w*C_in*M + C_in*M*K) * H_out*W_out``."""
    kernel = _dims(f, "f")
    c_in = positive_int(c_in, "c_in")
    k = positive_int(k, "k")
    m = positive_int(depth_multiplier, "depth_multiplier")
    out = _dims(out_size, "out_size", default_rank=len(kernel))
    return (math.prod(kernel) * c_in * m + c_in * m * k) * math.prod(out)

