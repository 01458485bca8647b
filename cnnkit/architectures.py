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
:func:`alexnet_cifar` and :func:`cnnkit.googlenet.googlenet_cifar` keep the
defining ideas of the other two families at 32x32 (a large strided first filter
and dense layers with dropout; inception blocks and global average pooling), so
the three can be trained side by side on CIFAR-10.

GoogLeNet is built in :mod:`cnnkit.googlenet`, the shared blocks live in
:mod:`cnnkit.arch_blocks` and the measures (:func:`depth`, :func:`params_by_type`,
:func:`blueprint`) in :mod:`cnnkit.arch_measure`; lesson 07 reaches them all here.
"""
from __future__ import annotations

from cnnkit._validate import boolean, positive_int, positive_int_sequence, probability
from cnnkit.arch_blocks import (  # noqa: F401  (re-exported for lesson 07 and its checks)
    CIFAR_SHAPE, GOOGLENET_BLOCKS, GOOGLENET_TORCH_BN, GOOGLENET_VARIANTS, IMAGENET_SHAPE, TORCH_BN, WEIGHT_LAYERS,
    _check_classes, _check_spatial, _seed, adaptive_avg_pool, check_input_shape, conv_unit, torch_max_pool,
    torch_output_size,
)
from cnnkit.arch_measure import blueprint, depth, params_by_type, trainable_params  # noqa: F401
from cnnkit.env import import_tensorflow
from cnnkit.googlenet import (  # noqa: F401
    GOOGLENET_CIFAR_STAGES, googlenet, googlenet_cifar, inception_block, naive_inception_block,
)

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402


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


def alexnet_cifar(input_shape=CIFAR_SHAPE, classes: int = 10, *, widths=(32, 64, 96, 96, 64), dense: int = 256,
                  first_kernel: int = 5, dropout: float = 0.5, seed: int | None = 0, name: str = "alexnet_cifar"):
    """An AlexNet-style network for 32x32 images: a large strided first filter, max pooling, dense layers with dropout.

    conv1 ``first_kernel`` x ``first_kernel`` stride 2 (widths[0]) -> max pool 3/2 -> conv2 5x5 (widths[1]) ->
    max pool 3/2 -> conv3, conv4, conv5 3x3 (widths[2:]) -> max pool 3/2 -> flatten -> dropout -> fc6
    (``dense``) -> dropout -> fc7 (``dense``) -> softmax classifier. Every convolution has a bias and a ReLU,
    no batch norm (as in 2012). Pools are overlapping 3x3 windows with stride 2 ('same', so each halves the
    side). Shapes at 32x32: 16 (conv1) -> 8 -> 8 -> 4 -> 4 -> 2, so fc6 sees ``2*2*widths[4]`` numbers.
    Parameters: ``(F*F*C_in + 1)*K`` per convolution, ``(n_in + 1)*n_out`` per dense layer; with the
    defaults 381,642 at 32x32x3 and 10 classes.
    """
    layers = keras.layers
    input_shape = check_input_shape(input_shape, name)
    classes = _check_classes(classes, name)
    widths = positive_int_sequence(widths, f"{name}: widths")
    if len(widths) != 5:
        raise ValueError(f"{name}: widths must give the filters of the 5 convolutions, got {len(widths)}: {widths}")
    dense = positive_int(dense, f"{name}: dense")
    first_kernel = positive_int(first_kernel, f"{name}: first_kernel")
    dropout = probability(dropout, f"{name}: dropout")
    _check_spatial(name, input_shape, [("conv1", first_kernel, 2, (first_kernel - 1) // 2, False)])
    _seed(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, widths[0], first_kernel, stride=2, name="conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv_unit(x, widths[1], 5, name="conv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    for i, width in enumerate(widths[2:], start=3):
        x = conv_unit(x, width, 3, name=f"conv{i}")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
        x = layers.Dense(dense, name=fc)(x)
        x = layers.ReLU(name=f"{fc}_relu")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


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
    layers = keras.layers
    filters = positive_int(filters, f"{name}: filters")
    stride = positive_int(stride, f"{name}: stride")
    shortcut = boolean(shortcut, "shortcut")
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
    layers = keras.layers
    blocks = positive_int_sequence(blocks, "blocks")
    widths = positive_int_sequence(widths, "widths")
    if len(blocks) != len(widths):
        raise ValueError(f"blocks and widths must have one entry per stage, got {len(blocks)} blocks {blocks} "
                         f"and {len(widths)} widths {widths}")
    shortcuts = boolean(shortcuts, "shortcuts")
    n_weight_layers = 2 * sum(blocks) + 2
    name = name or f"{'resnet' if shortcuts else 'plain'}{n_weight_layers}"
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
