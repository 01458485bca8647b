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

__all__ = ["patch_whitening_kernel", "ScaledShift", "GatedShift", "ShutGate", "GhostBatchNormalization", "batch_norm",
           "resnet9_block", "build_model", "partial_identity"]


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


@keras.saving.register_keras_serializable(package="cnnkit")
class ScaledShift(layers.Layer):
    """``y = x + c * b`` per channel: a trainable shift b (C,), starting at 0, stored divided by ``c``.

    Gradient descent on b moves the shift ``c * b`` c^2 times as fast as it would move a
    shift stored as it is (the gradient is c times larger, and so is the effect of a
    step on b): a per-layer learning rate for SGD without a second optimiser. Shapes:
    x (..., C) -> y (..., C).
    """

    def __init__(self, multiplier: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.multiplier = float(multiplier)

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="shift")

    def call(self, x):
        return x + keras.ops.cast(self.multiplier * self.shift, x.dtype)

    def get_config(self):
        return {**super().get_config(), "multiplier": self.multiplier}


@keras.saving.register_keras_serializable(package="cnnkit")
class GatedShift(layers.Layer):
    """``y = x + g * b + (1 - g) * k`` per channel: a trainable shift b (C,) that counts while its gate is open.

    The gate g (a non-trainable scalar, 1 open, 0 shut) and the kept shift k (C,), also
    non-trainable, decide what is added. :class:`ShutGate` copies b into k and shuts the gate,
    from a callback and without recompiling: from then on the layer adds k, whatever the
    optimiser's momentum or weight decay still does to b. Shapes: x (..., C) -> y (..., C).
    """

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="shift")
        self.kept = self.add_weight(shape=(input_shape[-1],), initializer="zeros", trainable=False, name="kept")
        self.gate = self.add_weight(shape=(), initializer="ones", trainable=False, name="gate")

    def call(self, x):
        gate = keras.ops.cast(self.gate, self.shift.dtype)
        return x + keras.ops.cast(gate * self.shift + (1.0 - gate) * self.kept, x.dtype)

    def shut(self):
        """Keep the shift as it is now, for good."""
        self.kept.assign(self.shift)
        self.gate.assign(0.0)


class ShutGate(keras.callbacks.Callback):
    """Shut a :class:`GatedShift`'s gate at the start of epoch ``after`` (0-based), freezing its shift.

    With ``after=3`` the shift learns during epochs 0, 1 and 2 and keeps its value from then on.
    """

    def __init__(self, layer: GatedShift, after: int):
        super().__init__()
        if not isinstance(layer, GatedShift):
            raise TypeError(f"ShutGate needs a GatedShift layer, got {type(layer).__name__}")
        self.layer = layer
        self.after = positive_int(after, "after (epochs)")

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.after and float(self.layer.gate.numpy()) == 1.0:
            self.layer.shut()


@keras.saving.register_keras_serializable(package="cnnkit")
class GhostBatchNormalization(layers.BatchNormalization):
    """Batch norm whose training statistics come from groups of ``group_size`` images ("ghost" batches).

    In training a batch x (B, H, W, C), B a multiple of g = ``group_size``, is split into
    B/g groups; group k is normalised with its own mean and variance over (g, H, W),
    ``y = gamma * (x - mu_k) / sqrt(var_k + eps) + beta``. The moving statistics follow
    the average of the groups' statistics. At inference it is ordinary batch norm with
    the moving statistics. Smaller groups make the statistics noisier, a regulariser
    (Hoffer et al. 2017; David Page's ResNet-9 used groups of 32).
    """

    def __init__(self, group_size: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.group_size = positive_int(group_size, "group_size")

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        x = keras.ops.cast(inputs, "float32")
        shape = keras.ops.shape(x)
        grouped = keras.ops.reshape(x, (-1, self.group_size, *x.shape[1:]))
        axes = tuple(range(1, len(grouped.shape) - 1))
        mean, variance = keras.ops.moments(grouped, axes=axes, keepdims=True)
        y = (grouped - mean) * keras.ops.rsqrt(variance + self.epsilon)
        if self.scale:
            y = y * keras.ops.cast(self.gamma, "float32")
        if self.center:
            y = y + keras.ops.cast(self.beta, "float32")
        m = self.momentum
        flat = (-1,)
        self.moving_mean.assign(self.moving_mean * m + keras.ops.reshape(keras.ops.mean(mean, axis=0), flat) * (1 - m))
        self.moving_variance.assign(self.moving_variance * m
                                    + keras.ops.reshape(keras.ops.mean(variance, axis=0), flat) * (1 - m))
        return keras.ops.cast(keras.ops.reshape(y, shape), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


def batch_norm(x, name: str, *, momentum: float = 0.9, scale: bool = True, shift_multiplier: float = 1.0,
               group_size: int = 0, dtype=None):
    """Batch normalisation of x (B, H, W, C); ``scale=False`` keeps gamma at 1.

    With ``shift_multiplier`` c != 1 the shift beta is a :class:`ScaledShift` after a
    batch norm without one, so SGD moves it at c^2 times the learning rate. With
    ``group_size`` g > 0 the training statistics come from groups of g images
    (:class:`GhostBatchNormalization`); 0 uses the whole batch.
    """
    center = shift_multiplier == 1.0
    options = dict(momentum=momentum, scale=scale, center=center, name=name, dtype=dtype)
    norm = GhostBatchNormalization(group_size, **options) if group_size else layers.BatchNormalization(**options)
    x = norm(x)
    if not center:
        x = ScaledShift(shift_multiplier, name=f"{name}_shift", dtype=dtype)(x)
    return x


def resnet9_block(x, filters: int, *, name: str = "res", bn_momentum: float = 0.9, dtype=None, norm=None):
    """``out = x + F(x)`` with ``F = ReLU(BN(Conv3x3(ReLU(BN(Conv3x3(x))))))`` (Page's ResNet-9 block).

    Shapes: x (B, H, W, filters) -> out (B, H, W, filters); both convolutions keep the
    size ("same" padding) and have no bias (batch norm's beta replaces it). With zero
    kernels F(x) = 0 and the block is the identity: the skip connection lets a deep
    network start as a shallow one. ``dtype``: the layers' Keras dtype policy (None: the
    global one). ``norm(tensor, name)``: the normalisation (default :func:`batch_norm`
    with ``bn_momentum``).
    """
    if x.shape[-1] != filters:
        raise ValueError(f"a residual block needs as many input channels as filters to add them: "
                         f"input has {x.shape[-1]}, filters={filters}")
    norm = norm or (lambda t, n: batch_norm(t, n, momentum=bn_momentum, dtype=dtype))
    y = x
    for i in (1, 2):
        y = _conv(filters, f"{name}_conv{i}", dtype=dtype)(y)
        y = norm(y, f"{name}_bn{i}")
        y = layers.ReLU(name=f"{name}_relu{i}", dtype=dtype)(y)
    return layers.Add(name=f"{name}_add", dtype=dtype)([x, y])


def build_model(recipe="quick", *, whitening_kernel=None, input_shape=(32, 32, 3), num_classes: int = 10,
                seed: int = 0, precision: str | None = None):
    """The recipe's network; input (B, H, W, C) standardised images, output (B, num_classes) logits.

    Layout: [whitening Conv(patch x patch, frozen) [-> GatedShift, trained for the first
    ``whiten_bias_epochs``] -> ReLU] or [Conv3x3 -> BN -> ReLU];
    per stage i: Conv3x3(widths[i]) -> MaxPool2 -> BN -> ReLU [-> Conv3x3 -> BN -> ReLU when
    ``convs_per_stage`` is 2, airbench's block] [-> residual block];
    then global max pooling -> [Dropout] -> Dense(num_classes, no bias) -> x logit_scale.
    ``whitening_kernel`` comes from :func:`patch_whitening_kernel` on the training split;
    without it the frozen layer keeps a random He initialisation (for shape checks only).
    ``bn_shift_lr`` r != 1 gives batch norm's shifts r times the learning rate
    (:class:`ScaledShift` with c = sqrt(r) under SGD, c = r under AdamW, whose steps do
    not grow with the gradient). With ``identity_init`` every trainable 3x3 convolution starts from
    :func:`partial_identity` of its He-normal kernel.

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
    multiplier = recipe.bn_shift_lr ** 0.5 if recipe.optimizer == "nesterov" else recipe.bn_shift_lr

    def norm(t, name):
        return batch_norm(t, name, momentum=recipe.bn_momentum, scale=recipe.bn_scale, shift_multiplier=multiplier,
                          group_size=recipe.bn_group, dtype=body)

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
        if recipe.whiten_bias_epochs:
            x = GatedShift(name="whiten_bias", dtype="float32")(x)
        x = layers.ReLU(name="whiten_relu", dtype=body)(x)
    else:
        x = _conv(recipe.stem_width, "stem_conv", dtype=body)(inputs)
        x = norm(x, "stem_bn")
        x = layers.ReLU(name="stem_relu", dtype=body)(x)
    for i, (width, res) in enumerate(zip(recipe.widths, recipe.residual), start=1):
        x = _conv(width, f"stage{i}_conv", dtype=body)(x)
        x = layers.MaxPooling2D(2, name=f"stage{i}_pool", dtype=body)(x)
        x = norm(x, f"stage{i}_bn")
        x = layers.ReLU(name=f"stage{i}_relu", dtype=body)(x)
        if recipe.convs_per_stage == 2:
            x = _conv(width, f"stage{i}_conv2", dtype=body)(x)
            x = norm(x, f"stage{i}_bn2")
            x = layers.ReLU(name=f"stage{i}_relu2", dtype=body)(x)
        if res:
            x = resnet9_block(x, width, name=f"stage{i}_res", dtype=body, norm=norm)
    x = layers.GlobalMaxPooling2D(name="global_max", dtype=body)(x)
    if recipe.dropout:
        x = layers.Dropout(recipe.dropout, seed=seed, name="dropout", dtype=body)(x)
    x = layers.Dense(num_classes, use_bias=False, name="classifier", dtype="float32")(x)
    outputs = layers.Rescaling(recipe.logit_scale, name="logits", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=f"cnnkit_{recipe.name}")
    if recipe.identity_init:
        for layer in model.layers:
            if isinstance(layer, layers.Conv2D) and layer.trainable and layer.kernel.shape[0] == 3:
                layer.kernel.assign(partial_identity(np.asarray(layer.kernel)))
    return model


def partial_identity(kernel) -> np.ndarray:
    """A (k, k, C_in, C_out) kernel whose first ``min(C_in, C_out)`` filters pass their channel through.

    Filter j < min(C_in, C_out) becomes the identity on channel j: 1 at the centre tap
    ``[k//2, k//2, j, j]``, 0 elsewhere; the other filters keep their values. A
    convolution so initialised starts by copying part of its input forward, which
    helps a stack of plain convolutions train from the first steps (airbench).
    """
    kernel = np.array(kernel, dtype=np.float32)
    if kernel.ndim != 4 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"kernel must have shape (k, k, C_in, C_out) with an odd k, got {kernel.shape}")
    k, c = kernel.shape[0], min(kernel.shape[2:])
    kernel[:, :, :, :c] = 0.0
    kernel[k // 2, k // 2, np.arange(c), np.arange(c)] = 1.0
    return kernel
