"""Building blocks shared by the classic CNN builders: argument checks, PyTorch-sized layers, seeding.

PyTorch pads symmetrically and may round pooled sizes up; :func:`conv_unit`,
:func:`torch_max_pool` and :func:`adaptive_avg_pool` reproduce its feature-map
sizes in Keras (explicit ``ZeroPadding2D`` then a ``"valid"`` layer), and
:func:`torch_output_size` computes them.
"""
from __future__ import annotations

import math

from cnnkit._validate import positive_int
from cnnkit.env import import_tensorflow

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402

IMAGENET_SHAPE = (224, 224, 3)
CIFAR_SHAPE = (32, 32, 3)
GOOGLENET_VARIANTS = ("paper", "torchvision")

# PyTorch's BatchNorm2d defaults (momentum 0.1 on the new value = Keras momentum 0.9 on the old)
TORCH_BN = {"epsilon": 1e-5, "momentum": 0.9}
GOOGLENET_TORCH_BN = {"epsilon": 1e-3, "momentum": 0.9}

# GoogLeNet's nine inception blocks: (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
GOOGLENET_BLOCKS = (
    ("inception3a", 64, 96, 128, 16, 32, 32),
    ("inception3b", 128, 128, 192, 32, 96, 64),
    ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128),
    ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
)

WEIGHT_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense")


# --------------------------------------------------------------------------- argument checks


def check_input_shape(input_shape, model: str = "model") -> tuple[int, int, int]:
    """Return ``input_shape`` as a tuple ``(height, width, channels)`` of positive ints, or raise."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"{model}: input_shape must be a tuple (height, width, channels), got {input_shape!r}")
    if len(input_shape) != 3:
        raise ValueError(
            f"{model}: input_shape must have 3 entries (height, width, channels; channels last), "
            f"got {tuple(input_shape)!r} with {len(input_shape)}"
        )
    return tuple(positive_int(v, f"{model}: input_shape[{i}]") for i, v in enumerate(input_shape))


def _check_classes(classes, model: str) -> int:
    return positive_int(classes, f"{model}: classes")


def torch_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0, ceil_mode: bool = False) -> int:
    """Output side of a PyTorch convolution or pooling: ``floor((W - F + 2P)/S) + 1`` (``ceil`` with ceil_mode).

    With ``ceil_mode`` a last window that would start in the right-hand padding is
    dropped, as PyTorch does. Returns 0 or less when the kernel does not fit.
    """
    span = size + 2 * pad - kernel
    if span < 0:
        return 0
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _trace(side: int, ops) -> tuple[int, str | None]:
    """Follow ``side`` through ``ops = [(name, kernel, stride, pad, ceil_mode), ...]``.

    Returns ``(final side, None)`` or ``(side before the failing op, its name)``.
    """
    for name, kernel, stride, pad, ceil_mode in ops:
        new = torch_output_size(side, kernel, stride, pad, ceil_mode)
        if new < 1:
            return side, name
        side = new
    return side, None


def _check_spatial(model: str, input_shape, ops) -> None:
    """Raise ValueError naming the first layer whose window no longer fits, and the smallest side that works."""
    for axis, side in (("height", input_shape[0]), ("width", input_shape[1])):
        reached, failing = _trace(side, ops)
        if failing is None:
            continue
        smallest = next(s for s in range(side + 1, 4096) if _trace(s, ops)[1] is None)
        kernel = next(op[1] for op in ops if op[0] == failing)
        raise ValueError(
            f"{model}: input_shape {tuple(input_shape)} is too small: its {axis} shrinks to {reached} before "
            f"layer {failing!r}, which needs at least {kernel}; use a {axis} of at least {smallest}"
        )


# --------------------------------------------------------------------------- small layer groups


def _seed(seed) -> None:
    if seed is not None:
        keras.utils.set_random_seed(int(seed))


def conv_unit(x, filters: int, kernel: int, *, stride: int = 1, pad: int | None = None, name: str,
              bias: bool = True, batch_norm: dict | None = None, relu: bool = True,
              kernel_initializer="glorot_uniform"):
    """Conv2D (PyTorch padding ``pad``, default ``(kernel-1)//2``) -> [BatchNorm] -> [ReLU].

    Shapes: (B, H, W, C_in) -> (B, H', W', filters) with
    ``H' = floor((H + 2*pad - kernel)/stride) + 1``. Layers are named ``name``,
    ``name_bn``, ``name_relu`` (and ``name_pad`` when explicit padding is needed).
    ``batch_norm`` holds BatchNormalization arguments, or None for no BN.
    """
    layers = keras.layers
    pad = (kernel - 1) // 2 if pad is None else pad
    if pad == 0:
        padding = "valid"
    elif stride == 1 and kernel % 2 == 1 and pad == (kernel - 1) // 2:
        padding = "same"  # symmetric at stride 1: identical to PyTorch
    else:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=bias,
                      kernel_initializer=kernel_initializer, name=name)(x)
    if batch_norm is not None:
        x = layers.BatchNormalization(name=f"{name}_bn", **batch_norm)(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def torch_max_pool(x, pool: int, stride: int, *, pad: int = 0, ceil_mode: bool = False, name: str):
    """MaxPooling2D with PyTorch's output size: explicit zero padding (plus the extra ``ceil_mode`` row/column).

    Only for inputs >= 0 (after a ReLU), where zero padding acts like PyTorch's -inf padding.
    """
    layers = keras.layers
    extra = []
    for side in x.shape[1:3]:
        out = torch_output_size(side, pool, stride, pad, ceil_mode)
        extra.append(max(0, (out - 1) * stride + pool - (side + 2 * pad)))
    if pad or any(extra):
        x = layers.ZeroPadding2D(((pad, pad + extra[0]), (pad, pad + extra[1])), name=f"{name}_pad")(x)
    return layers.MaxPooling2D(pool, strides=stride, padding="valid", name=name)(x)


def adaptive_avg_pool(x, output_size: int, *, name: str):
    """Average-pool a (B, H, W, C) map to (B, output_size, output_size, C).

    Uses ``stride = H // output_size`` and ``pool = H - (output_size - 1)*stride``:
    the identity when H == output_size, and exactly PyTorch's AdaptiveAvgPool2d
    when H is a multiple of ``output_size``; for other sizes the windows are a
    close, regular approximation of PyTorch's irregular ones.
    """
    pools, strides = [], []
    for side in x.shape[1:3]:
        if side < output_size:
            raise ValueError(f"{name}: the feature map side {side} is smaller than the pooled size {output_size}")
        stride = side // output_size
        strides.append(stride)
        pools.append(side - (output_size - 1) * stride)
    return keras.layers.AveragePooling2D(tuple(pools), strides=tuple(strides), name=name)(x)
