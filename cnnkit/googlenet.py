"""GoogLeNet (Inception v1) in Keras: the 2014 paper's network and torchvision's batch-norm variant."""
from __future__ import annotations

from cnnkit._validate import boolean, positive_int, positive_int_sequence, probability
from cnnkit.arch_blocks import (
    GOOGLENET_BLOCKS, GOOGLENET_TORCH_BN, GOOGLENET_VARIANTS, IMAGENET_SHAPE, _check_classes, _check_spatial,
    CIFAR_SHAPE, _seed, check_input_shape, conv_unit, torch_max_pool,
)
from cnnkit.env import import_tensorflow

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402

__all__ = ["GOOGLENET_CIFAR_STAGES", "googlenet", "googlenet_cifar", "inception_block", "naive_inception_block"]

# googlenet_cifar's default blocks, (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) per block, one tuple per
# stage: inception 3a, 3b and 4a with every width divided by four (4a's 208 -> 52), and a fourth block like 4a
GOOGLENET_CIFAR_STAGES = (((16, 24, 32, 4, 8, 8), (32, 32, 48, 8, 24, 16)),
                          ((48, 24, 52, 4, 12, 16), (40, 28, 56, 6, 16, 16)))


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
    layers = keras.layers
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
    layers = keras.layers
    b1 = conv_unit(x, positive_int(c1, f"{name}: c1"), 1, name=f"{name}_b1_1x1")
    b2 = conv_unit(x, positive_int(c3, f"{name}: c3"), 3, name=f"{name}_b2_3x3")
    b3 = conv_unit(x, positive_int(c5, f"{name}: c5"), 5, name=f"{name}_b3_5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([b1, b2, b3, b4])


def _aux_head(x, classes, variant, name):
    """Auxiliary classifier: 5x5/3 average pool -> 1x1 conv (128) -> fc 1024 + ReLU -> dropout 0.7 -> softmax."""
    layers = keras.layers
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
    layers = keras.layers
    variant = _check_variant(variant)
    aux_logits = boolean(aux_logits, "aux_logits")
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


def _check_stages(stages, model: str):
    """``stages`` as a tuple of stages, each a non-empty tuple of blocks of six positive widths, or raise."""
    if isinstance(stages, (str, bytes)) or not hasattr(stages, "__len__") or len(stages) == 0:
        raise ValueError(f"{model}: stages must be a non-empty sequence of stages, got {stages!r}")
    checked = []
    for i, stage in enumerate(stages):
        if isinstance(stage, (str, bytes)) or not hasattr(stage, "__len__") or len(stage) == 0:
            raise ValueError(f"{model}: stages[{i}] must be a non-empty sequence of blocks, got {stage!r}")
        blocks = []
        for j, widths in enumerate(stage):
            widths = positive_int_sequence(widths, f"{model}: stages[{i}][{j}]")
            if len(widths) != 6:
                raise ValueError(f"{model}: stages[{i}][{j}] must give 6 widths (c1, c3_reduce, c3, c5_reduce, c5, "
                                 f"pool_proj), got {len(widths)}: {widths}")
            blocks.append(widths)
        checked.append(tuple(blocks))
    return tuple(checked)


def googlenet_cifar(input_shape=CIFAR_SHAPE, classes: int = 10, *, stem: int = 32, stages=GOOGLENET_CIFAR_STAGES,
                    variant: str = "paper", dropout: float = 0.2, seed: int | None = 0,
                    name: str = "googlenet_cifar"):
    """A GoogLeNet-style network for 32x32 images: a stem, stages of inception blocks, global average pooling.

    3x3 conv (``stem`` channels) -> max pool 3/2 -> stage 1 inception blocks -> max pool 3/2 -> stage 2
    blocks -> ... -> global average pooling -> dropout -> softmax classifier. Every pool is 3x3 with stride 2
    ('same', so it halves the side); with the default two stages: 32 -> 16 (stage 1) -> 8 (stage 2), and the
    classifier sees one number per channel of the last block, ``c1 + c3 + c5 + pool_proj`` of it.
    Blocks are :func:`inception_block`, named ``inception{stage}{a, b, ...}``; ``stages`` gives each
    block's six widths (default :data:`GOOGLENET_CIFAR_STAGES`, inception 3a, 3b and 4a at a quarter of
    their widths). ``variant="paper"`` (the default) has biased convolutions, no batch norm and 5x5
    kernels in the third branch, as in 2014; ``"torchvision"`` puts batch norm after every convolution
    (about twice the training time on a CPU) and uses 3x3 kernels there. Depth in weight layers:
    ``2 + 2 * blocks``.
    """
    layers = keras.layers
    variant = _check_variant(variant)
    input_shape = check_input_shape(input_shape, name)
    classes = _check_classes(classes, name)
    stem = positive_int(stem, f"{name}: stem")
    stages = _check_stages(stages, name)
    dropout = probability(dropout, f"{name}: dropout")
    _seed(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, stem, 3, name="stem", **_googlenet_unit(variant))
    for i, stage in enumerate(stages, start=1):
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
        for j, widths in enumerate(stage):
            x = inception_block(x, *widths, name=f"inception{i}{chr(ord('a') + j)}", variant=variant)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)
