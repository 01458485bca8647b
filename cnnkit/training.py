"""The capstone recipe: a good CIFAR-10 classifier that trains on a laptop CPU in minutes.

Everything the capstone lesson and ``python -m cnnkit.train`` use, in the order a run
uses it:

1. **Recipes** -- :class:`Recipe`, frozen dataclasses with every choice of a run
   (widths, epochs, batch size, optimiser, schedule, label smoothing, weight decay,
   augmentation, test-time augmentation). :data:`RECIPES` holds ``"quick"`` and ``"good"``.
2. **Data** -- :func:`prepare_data` splits a validation set off the *training* set
   (``cnnkit.data.train_val_split``) and computes the per-channel mean and standard
   deviation on the training split only (:func:`channel_statistics`). Images stay
   ``uint8`` in memory (50,000 CIFAR images: 150 MB instead of 600 MB as float32).
3. **Pipeline** -- :func:`make_pipeline`: a ``tf.data`` pipeline that draws shuffled
   indices, gathers a ``uint8`` batch, augments it (random flips :func:`random_flip`, random
   translations :func:`random_translate`), and only then casts it to float32 and
   standardises it, ``z = (x - mean_train) / std_train``.
4. **Model** -- :func:`build_model`: a fixed patch-whitening first layer
   (:func:`patch_whitening_kernel`, as in Keller Jordan's airbench), then stages of
   ``Conv3x3 -> MaxPool2 -> BatchNorm -> ReLU`` each optionally followed by a
   :func:`residual_block` (David Page's ResNet-9 layout), global max pooling, dropout
   and a dense layer giving logits.
5. **Training** -- :class:`WarmupDecay` (linear warm-up, then linear or cosine decay of
   the learning rate), SGD with Nesterov momentum or AdamW with weight decay,
   cross-entropy with label smoothing, the best-validation weights kept and early
   stopping (:func:`fit_recipe`).
6. **Evaluation** -- :func:`predict_proba` (optionally averaged with the left-right
   mirrored images: flip test-time augmentation), :func:`per_class_accuracy`,
   :func:`confusion_counts`, :func:`most_confident_mistakes`.

Shapes: images (N, H, W, C) channels-last ``uint8``; labels (N,) ``int64``; logits and
probabilities (N, K) for K classes.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from cnnkit._validate import boolean, integer, non_negative_int, one_of, positive_int, probability, real

__all__ = [
    "Recipe", "RECIPES", "get_recipe", "PreparedData", "prepare_data", "channel_statistics",
    "random_flip", "random_translate", "make_pipeline", "patch_whitening_kernel",
    "residual_block", "build_model", "WarmupDecay", "make_optimizer", "compile_model",
    "fit_recipe", "FitResult", "predict_proba", "per_class_accuracy", "confusion_counts",
    "most_confident_mistakes", "evaluate", "Evaluation", "load_model", "recipe_schedule",
]

OPTIMIZERS = ("nesterov", "adamw")
DECAYS = ("linear", "cosine")


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """Every choice of one training run; frozen, so a recipe cannot drift once chosen.

    Model: ``widths[i]`` channels in stage i, ``residual[i]`` whether stage i ends
    with a residual block; ``whiten_patch`` is the patch size of the fixed whitening
    layer (0: an ordinary trainable 3x3 convolution of ``stem_width`` channels instead).
    Schedule: the learning rate rises linearly from 0 to ``learning_rate`` over
    ``warmup_epochs`` and decays (``decay``: "linear" or "cosine") to
    ``final_lr_fraction * learning_rate`` at the last step.
    """

    name: str
    widths: tuple[int, ...]
    residual: tuple[bool, ...]
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "nesterov"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    decay: str = "linear"
    final_lr_fraction: float = 0.0
    label_smoothing: float = 0.2
    dropout: float = 0.0
    whiten_patch: int = 2
    whiten_stride: int = 1
    stem_width: int = 24
    bn_momentum: float = 0.9
    logit_scale: float = 0.125
    flip: bool = True
    translate: int = 2
    tta: bool = True
    val_fraction: float = 0.1
    patience: int = 4
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not self.widths:
            raise ValueError("widths must name at least one stage, got an empty tuple")
        for w in self.widths:
            positive_int(w, "widths[i]")
        if len(self.residual) != len(self.widths):
            raise ValueError(f"residual must have one flag per stage ({len(self.widths)}), got {self.residual!r}")
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        positive_int(self.stem_width, "stem_width")
        positive_int(self.patience, "patience")
        for value, name in ((self.learning_rate, "learning_rate"), (self.logit_scale, "logit_scale")):
            real(value, name, low=0.0, low_open=True)
        one_of(self.optimizer, "optimizer", OPTIMIZERS)
        one_of(self.decay, "decay", DECAYS)
        for value, name in ((self.momentum, "momentum"), (self.label_smoothing, "label_smoothing"),
                            (self.dropout, "dropout"), (self.bn_momentum, "bn_momentum"),
                            (self.final_lr_fraction, "final_lr_fraction")):
            probability(value, name)
        probability(self.val_fraction, "val_fraction")
        if self.val_fraction == 0:
            raise ValueError("val_fraction must be > 0: the best checkpoint and early stopping need a validation split")
        real(self.weight_decay, "weight_decay", low=0.0)
        real(self.warmup_epochs, "warmup_epochs", low=0.0, high=self.epochs, high_open=True)
        if self.whiten_patch not in (0, 2, 3):
            raise ValueError(f"whiten_patch must be 0 (no whitening), 2 or 3, got {self.whiten_patch!r}")
        if self.whiten_stride not in (1, 2):
            raise ValueError(f"whiten_stride must be 1 or 2, got {self.whiten_stride!r}")
        integer(self.translate, "translate (pixels)", minimum=0, maximum=8)
        boolean(self.flip, "flip")
        boolean(self.tta, "tta")
        non_negative_int(self.seed, "seed")

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again), e.g. ``recipe.replace(epochs=3)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The recipe as plain JSON-ready values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


RECIPES: dict[str, Recipe] = {
    # 18.3 M multiply-adds per image, 5 epochs: over 80 % test accuracy in less time than the
    # TensorFlow tutorial's CNN (10 epochs at batch 32) takes; measured in benchmarks/capstone.py
    "quick": Recipe(name="quick", widths=(32, 64, 128), residual=(False, True, False), epochs=5,
                    batch_size=256, learning_rate=0.8, weight_decay=2.5e-3, warmup_epochs=1.0,
                    label_smoothing=0.2, dropout=0.0, translate=2),
    # 69.7 M multiply-adds per image, 8 epochs: about the time of five tutorial trainings
    "good": Recipe(name="good", widths=(64, 128, 256), residual=(False, True, True), epochs=8,
                   batch_size=256, learning_rate=0.8, weight_decay=2.5e-3, warmup_epochs=1.5,
                   label_smoothing=0.2, dropout=0.0, translate=2),
}


def get_recipe(name_or_recipe) -> Recipe:
    """Return ``RECIPES[name]`` (or the recipe itself); an unknown name lists the known ones."""
    if isinstance(name_or_recipe, Recipe):
        return name_or_recipe
    if name_or_recipe not in RECIPES:
        raise ValueError(f"unknown recipe {name_or_recipe!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name_or_recipe]


# --------------------------------------------------------------------------- data


def _check_images(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C), got shape {x.shape}")
    if x.dtype != np.uint8:
        raise TypeError(f"{name} must hold uint8 pixels 0..255 (kept small in memory), got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    return x


def _check_statistics(mean, std, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``std`` as float32 arrays of shape (channels,), std > 0 and both finite."""
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"mean and std must have shape ({channels},) (one value per channel), "
                         f"got {mean.shape} and {std.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"mean must be finite and std finite and positive, got mean {mean} and std {std}")
    return mean, std


def _check_labels(y, num_classes: int, name: str = "labels") -> np.ndarray:
    """``y`` as an int64 array of class indices 0..num_classes-1 (N,)."""
    y = np.asarray(y)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1}, found {y.min()}..{y.max()}")
    return y


def channel_statistics(x, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (N, H, W, C).

    ``mean_c = sum x[..., c] / M`` and ``std_c = sqrt(sum x[..., c]^2 / M - mean_c^2)``
    with ``M = N*H*W``; accumulated in float64 chunk by chunk, so no float copy of the
    whole array is made. Returns two float32 arrays of shape (C,).
    """
    x = _check_images(x)
    chunk = positive_int(chunk, "chunk")
    total = np.zeros(x.shape[-1])
    squares = np.zeros(x.shape[-1])
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk].reshape(-1, x.shape[-1]).astype(np.float64)
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    count = x.shape[0] * x.shape[1] * x.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


@dataclass(frozen=True, repr=False)
class PreparedData:
    """Train / validation / test splits (uint8 images, int64 labels) and the training split's statistics."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple[str, ...]
    dataset: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        return (f"{self.dataset}: train {self.x_train.shape[0]} | val {self.x_val.shape[0]} | "
                f"test {self.x_test.shape[0]} images {self.x_train.shape[1:]} {self.x_train.dtype} | "
                f"train mean {[round(float(v), 2) for v in self.mean]} std {[round(float(v), 2) for v in self.std]}")

    def __repr__(self) -> str:
        return f"<PreparedData {self.describe()}>"


def prepare_data(dataset, *, val_fraction: float = 0.1, seed: int = 0, train_size: int | None = None,
                 test_size: int | None = None) -> PreparedData:
    """Split ``dataset`` (a ``cnnkit.data.Dataset``) into train/val/test and fit the statistics on train only.

    ``val_fraction`` of every class of the training set becomes the validation split
    (stratified, from ``seed``); the test set is left alone. ``train_size`` and
    ``test_size`` keep stratified subsets (fast runs). The mean and standard deviation
    are computed on the training split, after the split, so neither the validation
    nor the test images leak into them.
    """
    from cnnkit.data import stratified_subset, train_val_split

    x, y = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    x_test, y_test = np.asarray(dataset.x_test), np.asarray(dataset.y_test)
    _check_images(x, "dataset.x_train")
    _check_images(x_test, "dataset.x_test")
    if train_size is not None:
        x, y = stratified_subset(x, y, positive_int(train_size, "train_size"), seed=seed)
    if test_size is not None:
        x_test, y_test = stratified_subset(x_test, y_test, positive_int(test_size, "test_size"), seed=seed)
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x, y, val_fraction=val_fraction, seed=seed)
    mean, std = channel_statistics(x_tr)
    return PreparedData(x_tr, y_tr.astype(np.int64), x_val, y_val.astype(np.int64), x_test,
                        y_test.astype(np.int64), mean, std, tuple(dataset.class_names),
                        getattr(dataset, "name", ""))


# --------------------------------------------------------------------------- pipeline


def random_flip(images, seed):
    """Mirror each image of a batch (B, H, W, C) left-right with probability 1/2 (stateless ``seed``, shape (2,))."""
    import tensorflow as tf

    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def random_translate(images, pad: int, seed):
    """Shift each image of a batch (B, H, W, C) by up to ``pad`` pixels in each direction.

    Each image is reflection-padded by ``pad`` and an (H, W) window is cut at a random
    offset (dy, dx) in 0..2*pad, independently per image, with two batched gathers
    (no per-image Python loop). Works on any dtype, so the batch can stay uint8.
    """
    import tensorflow as tf

    if pad == 0:
        return images
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([shape[0], 2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(shape[1])[None, :]
    cols = offsets[:, 1:] + tf.range(shape[2])[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def make_pipeline(x, y, *, mean, std, batch_size: int = 256, num_classes: int = 10, training: bool = False,
                  flip: bool = False, translate: int = 0, seed: int = 0, one_hot: bool = True,
                  repeat: bool = False):
    """A ``tf.data.Dataset`` of ``(z, labels)`` batches built from uint8 images.

    ``x``: uint8 (N, H, W, C), kept as it is (never converted to float as a whole).
    Per batch: indices (shuffled anew every epoch when ``training``) -> gather the uint8
    images from ``x`` itself (numpy indexing, so the array is not copied into TensorFlow) -> augment (``flip``, ``translate`` pixels; training only) -> cast to float32 ->
    ``z = (x - mean) / std`` with the *training split's* per-channel ``mean`` and ``std``
    (shape (C,)). Labels: one-hot float32 (B, num_classes) when ``one_hot``, else int32 (B,).
    Training batches drop the last incomplete batch (every step sees ``batch_size`` images).
    ``repeat``: an endless stream, epoch after epoch, each reshuffled and augmented anew; give
    ``model.fit`` its ``steps_per_epoch``. One iterator then serves the whole run (starting
    a fresh one every epoch stalled training on CPU for over ten seconds at some epochs).
    """
    import tensorflow as tf

    x = _check_images(x)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {y.shape}")
    batch_size = positive_int(batch_size, "batch_size")
    num_classes = positive_int(num_classes, "num_classes")
    mean, std = _check_statistics(mean, std, x.shape[-1])
    y = _check_labels(y, num_classes)
    training, flip, one_hot, repeat = (boolean(v, n) for v, n in ((training, "training"), (flip, "flip"),
                                                                  (one_hot, "one_hot"), (repeat, "repeat")))
    translate = integer(translate, "translate (pixels)", minimum=0, maximum=min(x.shape[1:3]) - 1)
    seed = non_negative_int(seed, "seed")
    labels = tf.constant(y.astype(np.int32))
    mean_t, std_t = tf.constant(mean), tf.constant(std)
    n = x.shape[0]
    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=training and n >= batch_size)
    if repeat:
        indices = indices.repeat()
    augment = training and (flip or translate)
    if augment:
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        batches = tf.data.Dataset.zip((indices, randoms))
    else:
        batches = indices.map(lambda idx: (idx, tf.constant(0, tf.int64)))

    def gather(idx):  # numpy fancy indexing on the caller's array: no second copy of the images
        return x[idx]

    def load(idx, r):
        # a numpy callback, not tf.gather on a tensor: a tensor of the images captured by the
        # pipeline cost two extra copies of them (measured: +310 MB for 45,000 CIFAR images)
        batch = tf.numpy_function(gather, [idx], tf.uint8, stateful=False)  # uint8 (B, H, W, C)
        batch.set_shape((None, *x.shape[1:]))
        if augment:
            key = tf.stack([r, tf.constant(seed, tf.int64)])
            if flip:
                batch = random_flip(batch, key)
            if translate:
                batch = random_translate(batch, int(translate), key + 1)
        z = (tf.cast(batch, tf.float32) - mean_t) / std_t
        target = tf.gather(labels, idx)
        if one_hot:
            target = tf.one_hot(target, num_classes)
        return z, target

    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- model


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


def _conv(filters: int, name: str, kernel_size: int = 3):
    from keras import layers

    return layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal",
                         name=name)


def residual_block(x, filters: int, *, name: str = "res", bn_momentum: float = 0.9):
    """``out = x + F(x)`` with ``F = ReLU(BN(Conv3x3(ReLU(BN(Conv3x3(x))))))`` (Page's ResNet-9 block).

    Shapes: x (B, H, W, filters) -> out (B, H, W, filters); both convolutions keep the
    size ("same" padding) and have no bias (batch norm's beta replaces it). With zero
    kernels F(x) = 0 and the block is the identity: the skip connection lets a deep
    network start as a shallow one.
    """
    from keras import layers

    if x.shape[-1] != filters:
        raise ValueError(f"a residual block needs as many input channels as filters to add them: "
                         f"input has {x.shape[-1]}, filters={filters}")
    y = x
    for i in (1, 2):
        y = _conv(filters, f"{name}_conv{i}")(y)
        y = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(y)
        y = layers.ReLU(name=f"{name}_relu{i}")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def build_model(recipe="quick", *, whitening_kernel=None, input_shape=(32, 32, 3), num_classes: int = 10,
                seed: int = 0):
    """The recipe's network; input (B, H, W, C) standardised images, output (B, num_classes) logits.

    Layout: [whitening Conv(patch x patch, frozen) -> ReLU] or [Conv3x3 -> BN -> ReLU];
    per stage i: Conv3x3(widths[i]) -> MaxPool2 -> BN -> ReLU [-> residual block];
    then global max pooling -> [Dropout] -> Dense(num_classes, no bias) -> x logit_scale.
    ``whitening_kernel`` comes from :func:`patch_whitening_kernel` on the training split;
    without it the frozen layer keeps a random He initialisation (for shape checks only).
    """
    import keras
    from keras import layers

    recipe = get_recipe(recipe)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if recipe.whiten_patch:
        channels = 2 * recipe.whiten_patch**2 * input_shape[-1]
        whiten = layers.Conv2D(channels, recipe.whiten_patch, strides=recipe.whiten_stride, padding="valid",
                               use_bias=False, name="whiten")
        x = whiten(inputs)
        if whitening_kernel is not None:
            kernel = np.asarray(whitening_kernel, np.float32)
            if kernel.shape != tuple(whiten.kernel.shape):
                raise ValueError(f"whitening_kernel must have shape {tuple(whiten.kernel.shape)}, got {kernel.shape}")
            whiten.set_weights([kernel])
        whiten.trainable = False
        x = layers.ReLU(name="whiten_relu")(x)
    else:
        x = _conv(recipe.stem_width, "stem_conv")(inputs)
        x = layers.BatchNormalization(momentum=recipe.bn_momentum, name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    for i, (width, res) in enumerate(zip(recipe.widths, recipe.residual), start=1):
        x = _conv(width, f"stage{i}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
        x = layers.BatchNormalization(momentum=recipe.bn_momentum, name=f"stage{i}_bn")(x)
        x = layers.ReLU(name=f"stage{i}_relu")(x)
        if res:
            x = residual_block(x, width, name=f"stage{i}_res", bn_momentum=recipe.bn_momentum)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    if recipe.dropout:
        x = layers.Dropout(recipe.dropout, seed=seed, name="dropout")(x)
    x = layers.Dense(num_classes, use_bias=False, name="classifier")(x)
    outputs = layers.Rescaling(recipe.logit_scale, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"cnnkit_{recipe.name}")


# --------------------------------------------------------------------------- schedule and optimiser


def _schedule_base():
    import keras

    return keras.optimizers.schedules.LearningRateSchedule


def _make_warmup_decay():
    import keras

    @keras.saving.register_keras_serializable(package="cnnkit")
    class WarmupDecay(_schedule_base()):
        """Learning rate: linear warm-up from 0 to ``peak``, then decay to ``final`` at ``total_steps``.

        For step ``t`` (the optimiser's iteration count, from 0), ``w = warmup_steps``,
        ``T = total_steps``:

        * ``t < w``:  ``lr = peak * t / w``
        * ``t >= w``: ``p = min((t - w) / (T - w), 1)`` and
          ``lr = final + (peak - final) * (1 - p)`` (``shape="linear"``) or
          ``lr = final + (peak - final) * (1 + cos(pi p)) / 2`` (``shape="cosine"``).

        Serialisable (``get_config``), so a model saved as ``.keras`` with its optimiser reloads.
        """

        def __init__(self, peak, total_steps, warmup_steps=0, final=0.0, shape="linear"):
            peak = real(peak, "peak (learning rate)", low=0.0, low_open=True)
            total_steps = positive_int(total_steps, "total_steps")
            warmup_steps = integer(warmup_steps, "warmup_steps", minimum=0, maximum=total_steps - 1)
            final = real(final, "final (learning rate)", low=0.0, high=peak)
            one_of(shape, "shape", DECAYS)
            self.peak = float(peak)
            self.total_steps = int(total_steps)
            self.warmup_steps = int(warmup_steps)
            self.final = float(final)
            self.shape = shape

        def __call__(self, step):
            from keras import ops

            t = ops.cast(step, "float32")
            warm = self.peak * t / max(self.warmup_steps, 1)
            p = ops.clip((t - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
            if self.shape == "linear":
                fraction = 1.0 - p
            else:
                fraction = 0.5 * (1.0 + ops.cos(math.pi * p))
            decayed = self.final + (self.peak - self.final) * fraction
            return ops.where(t < self.warmup_steps, warm, decayed)

        def values(self, steps) -> np.ndarray:
            """The learning rate at each of ``steps`` (numpy), for plots and checks."""
            return np.asarray(self(np.asarray(steps, np.float32)), np.float64)

        def get_config(self):
            return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                    "final": self.final, "shape": self.shape}

    return WarmupDecay


_CLASSES: dict[str, type] = {}


def __getattr__(name: str):
    # WarmupDecay subclasses a Keras class: created on first use, so importing cnnkit.training stays cheap
    if name == "WarmupDecay":
        if name not in _CLASSES:
            _CLASSES[name] = _make_warmup_decay()
        return _CLASSES[name]
    raise AttributeError(f"module 'cnnkit.training' has no attribute {name!r}")


def recipe_schedule(recipe, steps_per_epoch: int, epochs: int | None = None):
    """The :class:`WarmupDecay` of ``recipe`` for ``epochs`` (default: the recipe's) of ``steps_per_epoch`` steps."""
    recipe = get_recipe(recipe)
    epochs = positive_int(epochs if epochs is not None else recipe.epochs, "epochs")
    steps_per_epoch = positive_int(steps_per_epoch, "steps_per_epoch")
    total = epochs * steps_per_epoch
    warmup = min(int(round(recipe.warmup_epochs * steps_per_epoch)), total - 1)
    return __getattr__("WarmupDecay")(recipe.learning_rate, total, warmup,
                                      recipe.final_lr_fraction * recipe.learning_rate, recipe.decay)


def make_optimizer(recipe, steps_per_epoch: int, epochs: int | None = None):
    """SGD with Nesterov momentum, or AdamW, on the recipe's schedule with (decoupled) weight decay."""
    import keras

    recipe = get_recipe(recipe)
    schedule = recipe_schedule(recipe, steps_per_epoch, epochs)
    if recipe.optimizer == "nesterov":
        return keras.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=True,
                                    weight_decay=recipe.weight_decay or None)
    return keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay)


def compile_model(model, recipe, steps_per_epoch: int, epochs: int | None = None):
    """Compile with the recipe's optimiser and cross-entropy on logits with label smoothing.

    With smoothing ``s`` and K classes the target of the true class is ``1 - s + s/K``
    and of every other class ``s/K``.
    """
    import keras

    recipe = get_recipe(recipe)
    model.compile(
        optimizer=make_optimizer(recipe, steps_per_epoch, epochs),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA made these models 2-4x slower on CPU (measured)
    )
    return model


# --------------------------------------------------------------------------- training


@dataclass
class FitResult:
    """What :func:`fit_recipe` returns: the model (best validation weights), its history and timings."""

    model: object
    history: dict
    best_epoch: int
    seconds: float
    cpu_seconds: float
    epochs_run: int
    steps_per_epoch: int
    schedule: object = field(repr=False, default=None)


def fit_recipe(recipe, data: PreparedData, *, epochs: int | None = None, callbacks=(), verbose: int = 0,
               checkpoint_path: str | os.PathLike | None = None) -> FitResult:
    """Train the recipe's model on ``data`` and return it with the best validation weights restored.

    The timed part covers everything that depends on the training data: the whitening
    kernel, building and compiling the model, and ``model.fit``. ``epochs`` overrides the
    recipe's epoch count (the schedule is stretched to it). Early stopping watches the
    validation accuracy with the recipe's patience; when ``checkpoint_path`` is given, the
    best model is also saved there as ``.keras`` each time the validation accuracy improves.
    """
    import keras

    recipe = get_recipe(recipe)
    epochs = positive_int(epochs if epochs is not None else recipe.epochs, "epochs")
    start, cpu_start = time.perf_counter(), time.process_time()
    keras.utils.set_random_seed(recipe.seed)
    kernel = None
    if recipe.whiten_patch:
        kernel = patch_whitening_kernel(data.x_train, data.mean, data.std, recipe.whiten_patch, seed=recipe.seed)
    model = build_model(recipe, whitening_kernel=kernel, input_shape=data.x_train.shape[1:],
                        num_classes=data.num_classes, seed=recipe.seed)
    batch = min(recipe.batch_size, data.x_train.shape[0])
    steps = data.x_train.shape[0] // batch
    compile_model(model, recipe, steps, epochs)
    train = make_pipeline(data.x_train, data.y_train, mean=data.mean, std=data.std, batch_size=batch,
                          num_classes=data.num_classes, training=True, flip=recipe.flip,
                          translate=recipe.translate, seed=recipe.seed, repeat=True)
    val = make_pipeline(data.x_val, data.y_val, mean=data.mean, std=data.std, batch_size=1000,
                        num_classes=data.num_classes)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=recipe.patience,
                                            restore_best_weights=True)
    extra = [stopper]
    if checkpoint_path is not None:
        extra.append(keras.callbacks.ModelCheckpoint(os.fspath(checkpoint_path), monitor="val_accuracy",
                                                     mode="max", save_best_only=True))
    fit = model.fit(train, validation_data=val, epochs=epochs, steps_per_epoch=steps, verbose=verbose, shuffle=False,
                    callbacks=[*extra, *callbacks])
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    history.pop("learning_rate", None)
    schedule = recipe_schedule(recipe, steps, epochs)
    history["lr"] = [float(schedule.values([e * steps])[0]) for e in range(len(history["loss"]))]
    val_acc = history.get("val_accuracy", [0.0])
    best_epoch = int(np.argmax(val_acc)) + 1
    return FitResult(model, history, best_epoch, time.perf_counter() - start, time.process_time() - cpu_start,
                     len(history["loss"]), steps, schedule)


# --------------------------------------------------------------------------- evaluation


def load_model(path):
    """Load a model saved by :func:`fit_recipe` or ``python -m cnnkit.train`` (registers :class:`WarmupDecay` first)."""
    import keras

    __getattr__("WarmupDecay")
    return keras.saving.load_model(os.fspath(path))


def _probabilities(model, x, mean, std, batch_size: int):
    """(plain, mirrored) class probabilities, each (N, K), computed batch by batch."""
    import tensorflow as tf

    x = _check_images(x)
    batch_size = positive_int(batch_size, "batch_size")
    mean, std = _check_statistics(mean, std, x.shape[-1])
    plain, mirrored = [], []
    for start in range(0, x.shape[0], batch_size):
        z = (x[start:start + batch_size].astype(np.float32) - mean) / std
        plain.append(tf.nn.softmax(model(z, training=False), axis=-1).numpy())
        mirrored.append(tf.nn.softmax(model(z[:, :, ::-1], training=False), axis=-1).numpy())
    return np.concatenate(plain).astype(np.float64), np.concatenate(mirrored).astype(np.float64)


def predict_proba(model, x, mean, std, *, tta: bool = False, batch_size: int = 250) -> np.ndarray:
    """Class probabilities (N, K) of uint8 images x (N, H, W, C): ``softmax(model(z))``, ``z = (x - mean)/std``.

    With ``tta`` (flip test-time augmentation) the probabilities of each image and of
    its left-right mirror image are averaged: ``(p(z) + p(flip(z))) / 2``.
    """
    if boolean(tta, "tta"):
        plain, mirrored = _probabilities(model, x, mean, std, batch_size)
        return 0.5 * (plain + mirrored)
    import tensorflow as tf

    x = _check_images(x)
    batch_size = positive_int(batch_size, "batch_size")
    mean, std = _check_statistics(mean, std, x.shape[-1])
    out = [tf.nn.softmax(model((x[s:s + batch_size].astype(np.float32) - mean) / std, training=False),
                         axis=-1).numpy() for s in range(0, x.shape[0], batch_size)]
    return np.concatenate(out).astype(np.float64)


def per_class_accuracy(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Accuracy within each class: ``acc_k = #{i: y_i = k and yhat_i = k} / #{i: y_i = k}``, shape (K,).

    This is each class's recall; a class with no images gets NaN.
    """
    num_classes = positive_int(num_classes, "num_classes")
    y_true = _check_labels(y_true, num_classes, "y_true")
    y_pred = _check_labels(y_pred, num_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    total = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    right = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, right / np.maximum(total, 1), np.nan)[:num_classes]


def confusion_counts(y_true, y_pred, num_classes: int) -> np.ndarray:
    """C (K, K) with C[i, j] = number of images of class i predicted as class j."""
    from cnnkit.plotting import confusion_counts as counts

    return counts(y_true, y_pred, positive_int(num_classes, "num_classes"))


def most_confident_mistakes(probabilities, y_true, k: int = 16) -> np.ndarray:
    """Indices of the (at most) ``k`` wrong predictions made with the highest probability, most confident first."""
    k = positive_int(k, "k")
    probabilities = np.asarray(probabilities)
    y_true = np.asarray(y_true).ravel()
    if probabilities.ndim != 2 or probabilities.shape[0] != y_true.shape[0]:
        raise ValueError(f"probabilities must have shape (N, K) with N = len(y_true) = {y_true.shape[0]}, "
                         f"got {probabilities.shape}")
    pred = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    confidence = probabilities[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:k]]


@dataclass
class Evaluation:
    """Test-set results: accuracies (plain and flip-TTA), per-class accuracy, confusion counts, probabilities."""

    accuracy: float
    accuracy_tta: float
    per_class: np.ndarray
    confusion: np.ndarray
    probabilities: np.ndarray
    predictions: np.ndarray


def evaluate(model, data: PreparedData, *, tta: bool = True) -> Evaluation:
    """Evaluate on the test split; the reported probabilities are the TTA ones when ``tta``."""
    if tta:
        plain, mirrored = _probabilities(model, data.x_test, data.mean, data.std, 250)
        probs = 0.5 * (plain + mirrored)
    else:
        plain = probs = predict_proba(model, data.x_test, data.mean, data.std)
    acc = float(np.mean(plain.argmax(1) == data.y_test))
    pred = probs.argmax(1)
    return Evaluation(acc, float(np.mean(pred == data.y_test)) if tta else acc,
                      per_class_accuracy(data.y_test, pred, data.num_classes),
                      confusion_counts(data.y_test, pred, data.num_classes), probs, pred)
