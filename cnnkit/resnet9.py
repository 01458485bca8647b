"""The capstone's network: a fixed patch-whitening layer, then ResNet-9-style stages, then logits.

:func:`resnet9_block` is David Page's ResNet-9 residual block (two 3x3 convolutions,
each followed by batch norm and ReLU, added to the input); it differs from the
torchvision BasicBlock of :func:`cnnkit.architectures.residual_block`, whose
ReLU comes after the addition.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import positive_int
from cnnkit.env import import_tensorflow
from cnnkit.recipes import get_recipe
from cnnkit.training_data import _check_images

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402
from keras import layers  # noqa: E402

__all__ = ["patch_whitening_kernel", "resnet9_block", "build_model"]


def patch_whitening_kernel(x, mean, std, patch: int = 2, *, eps: float = 5e-4, max_images: int = 5000,
                           seed: int = 0) -> np.ndarray:
    """Convolution kernel (patch, patch, C, 2*D) that whitens the patches of standardised training images.

    With ``D = patch*patch*C`` and ``Sigma`` the (D, D) covariance of all ``patch x patch``
    patches of ``(x - mean)/std`` (at most ``max_images`` training images, chosen with
    ``seed``), ``Sigma = V diag(lambda) V^T``; filter ``i`` is ``v_i / sqrt(lambda_i + eps)``,
    and its negative is appended (so that a ReLU after it loses nothing). A
    convolution with this kernel gives outputs with unit variance and no correlation
    between channels on the training data: the first layer starts "already trained".
    """
    x = _check_images(x)
    patch = positive_int(patch, "patch")
    if patch > min(x.shape[1:3]):
        raise ValueError(f"patch={patch} is larger than the images {x.shape[1:3]}")
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_images:
        x = x[np.sort(rng.choice(x.shape[0], max_images, replace=False))]
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    c = x.shape[-1]
    d = patch * patch * c
    cov = np.zeros((d, d))
    total = np.zeros(d)
    count = 0
    for start in range(0, x.shape[0], 500):
        z = (x[start:start + 500].astype(np.float64) - mean) / std
        windows = np.lib.stride_tricks.sliding_window_view(z, (patch, patch), axis=(1, 2))  # N,H',W',C,p,p
        flat = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, d)  # (dy, dx, c) order = Conv2D kernel order
        cov += flat.T @ flat
        total += flat.sum(axis=0)
        count += flat.shape[0]
    mu = total / count
    cov = cov / count - np.outer(mu, mu)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    filters = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + eps)  # columns are filters
    filters = filters[:, ::-1]  # strongest direction first
    kernel = np.concatenate([filters, -filters], axis=1).reshape(patch, patch, c, 2 * d)
    return kernel.astype(np.float32)


def _conv(filters: int, name: str, kernel_size: int = 3, dtype=None):
    return layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal",
                         name=name, dtype=dtype)


def resnet9_block(x, filters: int, *, name: str = "res", bn_momentum: float = 0.9, dtype=None):
    """``out = x + F(x)`` with ``F = ReLU(BN(Conv3x3(ReLU(BN(Conv3x3(x))))))`` (Page's ResNet-9 block).

    Shapes: x (B, H, W, filters) -> out (B, H, W, filters); both convolutions keep the
    size ("same" padding) and have no bias (batch norm's beta replaces it). With zero
    kernels F(x) = 0 and the block is the identity: the skip connection lets a deep
    network start as a shallow one. ``dtype``: the layers' Keras dtype policy (None: the global one).
    """
    if x.shape[-1] != filters:
        raise ValueError(f"a residual block needs as many input channels as filters to add them: "
                         f"input has {x.shape[-1]}, filters={filters}")
    y = x
    for i in (1, 2):
        y = _conv(filters, f"{name}_conv{i}", dtype=dtype)(y)
        y = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}", dtype=dtype)(y)
        y = layers.ReLU(name=f"{name}_relu{i}", dtype=dtype)(y)
    return layers.Add(name=f"{name}_add", dtype=dtype)([x, y])


def build_model(recipe="quick", *, whitening_kernel=None, input_shape=(32, 32, 3), num_classes: int = 10,
                seed: int = 0, precision: str | None = None):
    """The recipe's network; input (B, H, W, C) standardised images, output (B, num_classes) logits.

    Layout: [whitening Conv(patch x patch, frozen) -> ReLU] or [Conv3x3 -> BN -> ReLU];
    per stage i: Conv3x3(widths[i]) -> MaxPool2 -> BN -> ReLU [-> residual block];
    then global max pooling -> [Dropout] -> Dense(num_classes, no bias) -> x logit_scale.
    ``whitening_kernel`` comes from :func:`patch_whitening_kernel` on the training split;
    without it the frozen layer keeps a random He initialisation (for shape checks only).

    ``precision``: ``"auto"``, ``"float32"`` or ``"bfloat16"`` (default: the recipe's), resolved
    by :func:`cnnkit.devices.resolve_precision`. With bfloat16 every layer between the
    first and the last runs under the ``mixed_bfloat16`` policy (float32 weights,
    bfloat16 products); the input, the whitening convolution (whose eigen-filters have
    a dynamic range bfloat16 would round away), the classifier and the logits stay
    float32, so the loss and the softmax see float32 logits.
    """
    from cnnkit.devices import keras_policy, resolve_precision

    recipe = get_recipe(recipe)
    body = keras_policy(resolve_precision(recipe.precision if precision is None else precision))
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="image", dtype="float32")
    if recipe.whiten_patch:
        channels = 2 * recipe.whiten_patch**2 * input_shape[-1]
        whiten = layers.Conv2D(channels, recipe.whiten_patch, strides=recipe.whiten_stride, padding="valid",
                               use_bias=False, name="whiten", dtype="float32")
        x = whiten(inputs)
        if whitening_kernel is not None:
            kernel = np.asarray(whitening_kernel, np.float32)
            if kernel.shape != tuple(whiten.kernel.shape):
                raise ValueError(f"whitening_kernel must have shape {tuple(whiten.kernel.shape)}, got {kernel.shape}")
            whiten.set_weights([kernel])
        whiten.trainable = False
        x = layers.ReLU(name="whiten_relu", dtype=body)(x)
    else:
        x = _conv(recipe.stem_width, "stem_conv", dtype=body)(inputs)
        x = layers.BatchNormalization(momentum=recipe.bn_momentum, name="stem_bn", dtype=body)(x)
        x = layers.ReLU(name="stem_relu", dtype=body)(x)
    for i, (width, res) in enumerate(zip(recipe.widths, recipe.residual), start=1):
        x = _conv(width, f"stage{i}_conv", dtype=body)(x)
        x = layers.MaxPooling2D(2, name=f"stage{i}_pool", dtype=body)(x)
        x = layers.BatchNormalization(momentum=recipe.bn_momentum, name=f"stage{i}_bn", dtype=body)(x)
        x = layers.ReLU(name=f"stage{i}_relu", dtype=body)(x)
        if res:
            x = resnet9_block(x, width, name=f"stage{i}_res", bn_momentum=recipe.bn_momentum, dtype=body)
    x = layers.GlobalMaxPooling2D(name="global_max", dtype=body)(x)
    if recipe.dropout:
        x = layers.Dropout(recipe.dropout, seed=seed, name="dropout", dtype=body)(x)
    x = layers.Dense(num_classes, use_bias=False, name="classifier", dtype="float32")(x)
    outputs = layers.Rescaling(recipe.logit_scale, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"cnnkit_{recipe.name}")
