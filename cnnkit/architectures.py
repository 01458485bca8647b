"""Classic ImageNet CNNs (AlexNet, GoogLeNet, ResNet) and CIFAR-sized residual/plain twins, in Keras.

Every builder returns a functional ``keras.Model`` whose layers carry readable
names (``conv1``, ``inception4a_b2_3x3``, ``stage3_block2_add``...), takes the
image shape ``(height, width, channels)`` (channels last) and the number of
classes, and ends in a softmax. At the ImageNet size (224, 224, 3) with 1000
classes the trainable-parameter counts equal torchvision's (PyTorch counts
batch-norm gamma and beta as parameters and the running statistics as buffers,
which is Keras' trainable / non-trainable split):

* ``alexnet()``: 61,100,840, torchvision's single tower, 6x6 pooled features;
* ``googlenet()``: 6,998,552, the 2014 paper: 5x5 branches, biased convs, no batch norm;
* ``googlenet(variant="torchvision")``: 6,624,904, 3x3 in the "5x5" branch, batch norm
  (eps 1e-3), no conv bias (``aux_logits=True`` adds 6,379,984 in two auxiliary heads);
* ``resnet18()``: 11,689,512, basic blocks [2, 2, 2, 2];
* ``resnet34()``: 21,797,672, basic blocks [3, 4, 6, 3];
* ``resnet50()``: 25,557,032, bottleneck blocks [3, 4, 6, 3], stride on the 3x3 conv.

PyTorch pads symmetrically (``padding=p``) and its GoogLeNet pools round up
(``ceil_mode=True``); Keras' ``"same"`` puts the odd pixel of padding at the
bottom/right instead. Where the two differ (strided layers) the builders use an
explicit ``ZeroPadding2D`` followed by a ``"valid"`` convolution or pooling, so
every feature map has torchvision's size and alignment: 6x6 before AlexNet's
classifier, 7x7 before GoogLeNet's and ResNet's average pooling at 224x224.
Max pooling over zero padding equals PyTorch's -inf padding here because every
such pool follows a ReLU (its inputs are >= 0). Parameter-free details of the
originals that Keras has no layer for (AlexNet's and GoogLeNet's local response
normalisation) are left out; they change no count.

For training in the lessons, :func:`resnet_cifar` and :func:`plain_cnn` build
the CIFAR-10 networks of He et al. (2016, section 4.2): a 3x3 stem, three stages
of basic blocks, global average pooling and one dense layer; the plain twin has
the same layers except the shortcuts (and their 1x1 projections).
"""
from __future__ import annotations

import math

import numpy as np

from cnnkit._validate import positive_int

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


def _check_int_sequence(values, name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values!r}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(values))


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


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


def _keras():
    from cnnkit.env import import_tensorflow

    import_tensorflow()  # quiet C++ start-up logs
    import keras

    return keras


def _seed(seed) -> None:
    if seed is not None:
        _keras().utils.set_random_seed(int(seed))


def conv_unit(x, filters: int, kernel: int, *, stride: int = 1, pad: int | None = None, name: str,
              bias: bool = True, batch_norm: dict | None = None, relu: bool = True,
              kernel_initializer="glorot_uniform"):
    """Conv2D (PyTorch padding ``pad``, default ``(kernel-1)//2``) -> [BatchNorm] -> [ReLU].

    Shapes: (B, H, W, C_in) -> (B, H', W', filters) with
    ``H' = floor((H + 2*pad - kernel)/stride) + 1``. Layers are named ``name``,
    ``name_bn``, ``name_relu`` (and ``name_pad`` when explicit padding is needed).
    ``batch_norm`` holds BatchNormalization arguments, or None for no BN.
    """
    layers = _keras().layers
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
    layers = _keras().layers
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
    return _keras().layers.AveragePooling2D(tuple(pools), strides=tuple(strides), name=name)(x)


# --------------------------------------------------------------------------- AlexNet


def _alexnet_ops():
    return [("conv1", 11, 4, 2, False), ("pool1", 3, 2, 0, False), ("conv2", 5, 1, 2, False),
            ("pool2", 3, 2, 0, False), ("conv3", 3, 1, 1, False), ("conv4", 3, 1, 1, False),
            ("conv5", 3, 1, 1, False), ("pool5", 3, 2, 0, False), ("adaptive_avgpool", 6, 1, 0, False)]


def alexnet(input_shape=IMAGENET_SHAPE, classes: int = 1000, *, dropout: float = 0.5, seed: int | None = 0,
            name: str = "alexnet"):
    """AlexNet in torchvision's single-tower layout (61,100,840 parameters at 224x224x3, 1000 classes).

    conv1 11x11/4 pad 2 (64) -> pool 3/2 -> conv2 5x5 pad 2 (192) -> pool 3/2 ->
    conv3 3x3 (384) -> conv4 3x3 (256) -> conv5 3x3 (256) -> pool 3/2 -> 6x6 average
    pooling -> flatten (9216) -> dropout -> fc6 4096 -> dropout -> fc7 4096 -> classifier.
    Shapes at 224: 55 -> 27 -> 27 -> 13 -> 13 -> 6. Every convolution and the two
    hidden dense layers are followed by a ReLU.
    """
    keras = _keras()
    layers = keras.layers
    input_shape = check_input_shape(input_shape, "alexnet")
    classes = _check_classes(classes, "alexnet")
    _check_spatial("alexnet", input_shape, _alexnet_ops())
    _seed(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, 64, 11, stride=4, pad=2, name="conv1")
    x = torch_max_pool(x, 3, 2, name="pool1")
    x = conv_unit(x, 192, 5, name="conv2")
    x = torch_max_pool(x, 3, 2, name="pool2")
    x = conv_unit(x, 384, 3, name="conv3")
    x = conv_unit(x, 256, 3, name="conv4")
    x = conv_unit(x, 256, 3, name="conv5")
    x = torch_max_pool(x, 3, 2, name="pool5")
    x = adaptive_avg_pool(x, 6, name="adaptive_avgpool")
    x = layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
        x = layers.Dense(4096, name=fc)(x)
        x = layers.ReLU(name=f"{fc}_relu")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------- GoogLeNet


def _check_variant(variant) -> str:
    if variant not in GOOGLENET_VARIANTS:
        raise ValueError(f"unknown GoogLeNet variant {variant!r}; expected one of {', '.join(map(repr, GOOGLENET_VARIANTS))}")
    return variant


def _googlenet_unit(variant):
    """Keyword arguments of :func:`conv_unit` for a GoogLeNet convolution of ``variant``."""
    if variant == "paper":
        return {"bias": True, "batch_norm": None}
    return {"bias": False, "batch_norm": GOOGLENET_TORCH_BN}


def inception_block(x, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int, *,
                    name: str = "inception", variant: str = "paper"):
    """Four parallel branches concatenated along channels; the output has ``c1 + c3 + c5 + pool_proj`` channels.

    Branches (all stride 1, 'same' size, each convolution followed by ReLU):
    1x1 (c1) | 1x1 (c3_reduce) -> 3x3 (c3) | 1x1 (c5_reduce) -> 5x5 (c5) |
    3x3 max pool -> 1x1 (pool_proj). The 1x1 reductions shrink the channels the
    expensive 3x3 and 5x5 kernels see. ``variant="torchvision"`` uses batch norm
    and no conv bias, and a 3x3 kernel in the third branch (as torchvision does).
    Layers: ``{name}_b1_1x1``, ``{name}_b2_1x1``, ``{name}_b2_3x3``, ``{name}_b3_1x1``,
    ``{name}_b3_5x5`` (``_3x3`` in the torchvision variant), ``{name}_b4_pool``,
    ``{name}_b4_1x1``, ``{name}_concat``.
    """
    layers = _keras().layers
    variant = _check_variant(variant)
    for label, value in (("c1", c1), ("c3_reduce", c3_reduce), ("c3", c3), ("c5_reduce", c5_reduce),
                         ("c5", c5), ("pool_proj", pool_proj)):
        positive_int(value, f"{name}: {label}")
    unit = _googlenet_unit(variant)
    k3 = 5 if variant == "paper" else 3
    b1 = conv_unit(x, c1, 1, name=f"{name}_b1_1x1", **unit)
    b2 = conv_unit(x, c3_reduce, 1, name=f"{name}_b2_1x1", **unit)
    b2 = conv_unit(b2, c3, 3, name=f"{name}_b2_3x3", **unit)
    b3 = conv_unit(x, c5_reduce, 1, name=f"{name}_b3_1x1", **unit)
    b3 = conv_unit(b3, c5, k3, name=f"{name}_b3_{k3}x{k3}", **unit)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    b4 = conv_unit(b4, pool_proj, 1, name=f"{name}_b4_1x1", **unit)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([b1, b2, b3, b4])


def naive_inception_block(x, c1: int, c3: int, c5: int, *, name: str = "naive_inception"):
    """The paper's "naive" module: 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool, all on the input.

    No 1x1 reductions: the 3x3 and 5x5 kernels see all C_in channels, and the pool
    branch passes the C_in input channels through, so the output has
    ``c1 + c3 + c5 + C_in`` channels. Convolutions have bias and ReLU.
    """
    layers = _keras().layers
    b1 = conv_unit(x, positive_int(c1, f"{name}: c1"), 1, name=f"{name}_b1_1x1")
    b2 = conv_unit(x, positive_int(c3, f"{name}: c3"), 3, name=f"{name}_b2_3x3")
    b3 = conv_unit(x, positive_int(c5, f"{name}: c5"), 5, name=f"{name}_b3_5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([b1, b2, b3, b4])


def _aux_head(x, classes, variant, name):
    """Auxiliary classifier: 5x5/3 average pool -> 1x1 conv (128) -> fc 1024 + ReLU -> dropout 0.7 -> softmax."""
    layers = _keras().layers
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_avgpool")(x)
    x = conv_unit(x, 128, 1, name=f"{name}_conv", **_googlenet_unit(variant))
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, name=f"{name}_fc")(x)
    x = layers.ReLU(name=f"{name}_fc_relu")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(classes, activation="softmax", name=f"{name}_classifier")(x)


def _googlenet_ops(variant, aux_logits):
    ops = [("conv1", 7, 2, 3, False), ("pool1", 3, 2, 0, True), ("conv3", 3, 1, 1, False),
           ("pool2", 3, 2, 0, True), ("pool3", 3, 2, 0, True)]
    if aux_logits:  # the aux heads' 5x5 pooling sits on the 4a/4d map, before pool4
        ops.append(("aux1_avgpool", 5, 1, 0, False))
        return ops
    return ops + [("pool4", 3 if variant == "paper" else 2, 2, 0, True)]


def googlenet(input_shape=IMAGENET_SHAPE, classes: int = 1000, *, variant: str = "paper",
              aux_logits: bool = False, dropout: float | None = None, seed: int | None = 0,
              name: str | None = None):
    """GoogLeNet (Inception v1): 22 weight layers deep, nine inception blocks, global average pooling.

    conv1 7x7/2 (64) -> pool 3/2 -> conv2 1x1 (64) -> conv3 3x3 (192) -> pool 3/2 ->
    3a, 3b -> pool 3/2 -> 4a..4e -> pool -> 5a, 5b -> global average pool ->
    dropout -> classifier. Pools round up (PyTorch ``ceil_mode``): 112 -> 56 -> 28
    -> 14 -> 7 at 224x224.

    ``variant="paper"`` (6,998,552 parameters): biased convolutions, no batch norm,
    5x5 kernels in the third branch, pool4 3x3/2, dropout 0.4.
    ``variant="torchvision"`` (6,624,904): each conv without bias followed by batch
    norm (eps 1e-3), 3x3 kernels in the third branch, pool4 2x2/2, dropout 0.2.
    ``aux_logits=True`` adds the two auxiliary classifiers (after 4a and 4d) and the
    model returns three outputs ``[classifier, aux1_classifier, aux2_classifier]``.
    """
    keras = _keras()
    layers = keras.layers
    variant = _check_variant(variant)
    aux_logits = _check_bool(aux_logits, "aux_logits")
    input_shape = check_input_shape(input_shape, "googlenet")
    classes = _check_classes(classes, "googlenet")
    _check_spatial("googlenet", input_shape, _googlenet_ops(variant, aux_logits))
    dropout = (0.4 if variant == "paper" else 0.2) if dropout is None else dropout
    _seed(seed)
    unit = _googlenet_unit(variant)
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, 64, 7, stride=2, pad=3, name="conv1", **unit)
    x = torch_max_pool(x, 3, 2, ceil_mode=True, name="pool1")
    x = conv_unit(x, 64, 1, name="conv2", **unit)
    x = conv_unit(x, 192, 3, name="conv3", **unit)
    x = torch_max_pool(x, 3, 2, ceil_mode=True, name="pool2")
    aux = []
    for block_name, *widths in GOOGLENET_BLOCKS:
        if block_name == "inception4a":
            x = torch_max_pool(x, 3, 2, ceil_mode=True, name="pool3")
        elif block_name == "inception5a":
            x = torch_max_pool(x, 3 if variant == "paper" else 2, 2, ceil_mode=True, name="pool4")
        elif block_name == "inception4e" and aux_logits:
            aux.append(_aux_head(x, classes, variant, "aux2"))
        x = inception_block(x, *widths, name=block_name, variant=variant)
        if block_name == "inception4a" and aux_logits:
            aux.append(_aux_head(x, classes, variant, "aux1"))
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    name = name or ("googlenet" if variant == "paper" else "googlenet_torchvision")
    return keras.Model(inputs, [outputs, *aux] if aux_logits else outputs, name=name)


# --------------------------------------------------------------------------- ResNet


def residual_block(x, filters: int, *, stride: int = 1, bottleneck: bool = False, shortcut: bool = True,
                   name: str = "block", batch_norm: dict | None = None, kernel_initializer="he_normal"):
    """A residual block ``y = ReLU(F(x) + shortcut(x))``; with ``shortcut=False`` the plain ``y = ReLU(F(x))``.

    Basic (ResNet-18/34): F = 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, ``filters`` channels out.
    Bottleneck (ResNet-50): F = 1x1 (filters) -> BN -> ReLU -> 3x3 (filters, stride) -> BN -> ReLU ->
    1x1 (4*filters) -> BN, so ``4*filters`` channels out.
    The shortcut is the identity when F keeps the shape; when ``stride != 1`` or the
    channel count changes it is a projection, a 1x1 conv with the same stride
    followed by BN (torchvision's ``downsample``). Convolutions have no bias (BN's
    beta plays its part). Shapes: (B, H, W, C) -> (B, ceil(H/stride), ceil(W/stride), C_out).
    """
    layers = _keras().layers
    filters = positive_int(filters, f"{name}: filters")
    stride = positive_int(stride, f"{name}: stride")
    shortcut = _check_bool(shortcut, "shortcut")
    bn = TORCH_BN if batch_norm is None else batch_norm
    unit = {"bias": False, "batch_norm": bn, "kernel_initializer": kernel_initializer}
    if bottleneck:
        out_channels = 4 * filters
        y = conv_unit(x, filters, 1, name=f"{name}_conv1", **unit)
        y = conv_unit(y, filters, 3, stride=stride, name=f"{name}_conv2", **unit)
        y = conv_unit(y, out_channels, 1, name=f"{name}_conv3", relu=False, **unit)
    else:
        out_channels = filters
        y = conv_unit(x, filters, 3, stride=stride, name=f"{name}_conv1", **unit)
        y = conv_unit(y, filters, 3, name=f"{name}_conv2", relu=False, **unit)
    if shortcut:
        s = x
        if stride != 1 or x.shape[-1] != out_channels:
            s = conv_unit(x, out_channels, 1, stride=stride, pad=0, name=f"{name}_proj", relu=False, **unit)
        y = layers.Add(name=f"{name}_add")([y, s])
    return layers.ReLU(name=f"{name}_out")(y)


def _resnet(blocks, bottleneck, input_shape, classes, seed, name):
    keras = _keras()
    layers = keras.layers
    input_shape = check_input_shape(input_shape, name)
    classes = _check_classes(classes, name)
    _seed(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, 64, 7, stride=2, pad=3, name="conv1", bias=False, batch_norm=TORCH_BN,
                  kernel_initializer="he_normal")
    x = torch_max_pool(x, 3, 2, pad=1, name="pool1")
    for stage, (n_blocks, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for block in range(1, n_blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = residual_block(x, width, stride=stride, bottleneck=bottleneck, name=f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet18(input_shape=IMAGENET_SHAPE, classes: int = 1000, *, seed: int | None = 0, name: str = "resnet18"):
    """ResNet-18: 7x7/2 stem, max pool, basic blocks [2, 2, 2, 2] of 64..512 channels (11,689,512 parameters).

    Stage ``i`` here is torchvision's ``layer{i}``; block ``j`` its ``[j-1]``.
    """
    return _resnet((2, 2, 2, 2), False, input_shape, classes, seed, name)


def resnet34(input_shape=IMAGENET_SHAPE, classes: int = 1000, *, seed: int | None = 0, name: str = "resnet34"):
    """ResNet-34: basic blocks [3, 4, 6, 3] (21,797,672 parameters at 224x224x3, 1000 classes)."""
    return _resnet((3, 4, 6, 3), False, input_shape, classes, seed, name)


def resnet50(input_shape=IMAGENET_SHAPE, classes: int = 1000, *, seed: int | None = 0, name: str = "resnet50"):
    """ResNet-50 (torchvision's v1.5: stride on the 3x3): bottleneck blocks [3, 4, 6, 3] (25,557,032 parameters)."""
    return _resnet((3, 4, 6, 3), True, input_shape, classes, seed, name)


def resnet_cifar(blocks=(3, 3, 3), widths=(16, 32, 64), input_shape=CIFAR_SHAPE, classes: int = 10, *,
                 shortcuts: bool = True, seed: int | None = 0, name: str | None = None):
    """A CIFAR-sized ResNet (He et al. 2016, section 4.2): depth ``2*sum(blocks) + 2`` weight layers.

    3x3 conv (widths[0]) -> BN -> ReLU -> stage i: ``blocks[i]`` basic blocks of
    ``widths[i]`` channels, the first one with stride 2 for i > 0 -> global average
    pooling -> softmax dense. ``blocks=(3, 3, 3)`` is ResNet-20 (32 -> 16 -> 8 pixels).
    With ``shortcuts=False`` it is the plain twin (see :func:`plain_cnn`). Default
    name: ``resnet{depth}`` or ``plain{depth}``.
    """
    keras = _keras()
    layers = keras.layers
    blocks = _check_int_sequence(blocks, "blocks")
    widths = _check_int_sequence(widths, "widths")
    if len(blocks) != len(widths):
        raise ValueError(f"blocks and widths must have one entry per stage, got {len(blocks)} blocks {blocks} "
                         f"and {len(widths)} widths {widths}")
    shortcuts = _check_bool(shortcuts, "shortcuts")
    depth = 2 * sum(blocks) + 2
    name = name or f"{'resnet' if shortcuts else 'plain'}{depth}"
    input_shape = check_input_shape(input_shape, name)
    classes = _check_classes(classes, name)
    _seed(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, widths[0], 3, name="stem", bias=False, batch_norm=TORCH_BN, kernel_initializer="he_normal")
    for stage, (n_blocks, width) in enumerate(zip(blocks, widths), start=1):
        for block in range(1, n_blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = residual_block(x, width, stride=stride, shortcut=shortcuts, name=f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def plain_cnn(blocks=(3, 3, 3), widths=(16, 32, 64), input_shape=CIFAR_SHAPE, classes: int = 10, *,
              seed: int | None = 0, name: str | None = None):
    """The plain twin of :func:`resnet_cifar`: the same convolutions, BN and ReLUs, but no shortcuts.

    Every block computes ``ReLU(F(x))`` instead of ``ReLU(F(x) + x)``; without
    shortcuts there are no 1x1 projections either, so it has slightly fewer
    parameters (``16*32 + 2*32 + 32*64 + 2*64 = 2,752`` fewer with the default widths).
    """
    return resnet_cifar(blocks, widths, input_shape, classes, shortcuts=False, seed=seed, name=name)


# --------------------------------------------------------------------------- measuring a model


def blueprint(builder, *args, **kwargs):
    """Return ``builder(*args, **kwargs)`` with the values of its weights not yet allocated.

    The model is built inside ``keras.StatelessScope(initialize_variables=False)``:
    every layer, output shape and weight shape exists, so parameter counts,
    :func:`depth` and ``cnnkit.params.explain`` work at once, but Keras fills in
    each weight only when it is first used (a forward pass, ``get_weights``,
    training). Measuring AlexNet this way takes a fraction of a second and almost
    no memory instead of seconds and the 244 MB (plus the initialisers' scratch)
    of its float32 weights. The values drawn later are random but not those of an
    ordinary build with the same seed. ``keras.backend.clear_session()`` forgets
    the pending weights of blueprints no longer in use.
    """
    if not callable(builder):
        raise TypeError(f"builder must be a function returning a Keras model, got {type(builder).__name__}")
    keras = _keras()
    with keras.StatelessScope(initialize_variables=False):
        return builder(*args, **kwargs)



def trainable_params(model) -> int:
    """Number of trainable parameters (what torchvision calls parameters): Keras' count over ``trainable_weights``."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def params_by_type(model) -> dict[str, int]:
    """Trainable parameters per layer type, e.g. ``{"Conv2D": 2469696, "Dense": 58631144, ...}`` (zeros left out)."""
    totals: dict[str, int] = {}
    for layer in model.layers:
        n = trainable_params(layer)
        if n:
            totals[type(layer).__name__] = totals.get(type(layer).__name__, 0) + n
    return totals


def depth(model) -> int:
    """Depth in weight layers: the most convolution/dense layers on any path from input to output.

    This is how the papers count (AlexNet 8, GoogLeNet 22, ResNet-50 50): parallel
    branches and shortcut projections do not add to it; BN, pooling and activations
    do not count. Nested models count with their own depth.
    """
    memo: dict[int, int] = {}

    def own(op) -> int:
        if hasattr(op, "layers") and hasattr(op, "outputs"):  # a nested functional model
            return depth(op)
        return 1 if type(op).__name__ in WEIGHT_LAYERS else 0

    def longest(tensor) -> int:
        op, node_index, _ = tensor._keras_history
        key = (id(op), node_index)
        if key not in memo:
            node = op._inbound_nodes[node_index]
            parents = [longest(t) for t in node.input_tensors]
            memo[key] = own(op) + max(parents, default=0)
        return memo[key]

    return max(longest(t) for t in model.outputs)
