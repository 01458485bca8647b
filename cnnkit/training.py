"""The capstone recipe: a good CIFAR-10 classifier that trains on a laptop CPU in minutes.

Everything the capstone lesson and ``python -m cnnkit.train`` use, in the order a run
uses it:

1. **Recipes** -- :class:`Recipe`, frozen dataclasses with every choice of a run
   (widths, epochs, batch size, optimiser, schedule, label smoothing, weight decay,
   augmentation, test-time augmentation; :mod:`cnnkit.recipes`). :data:`RECIPES` holds ``"quick"``, ``"good"`` and ``"best"``.
2. **Data** -- :func:`prepare_data` splits a validation set off the *training* set
   (``cnnkit.data.train_val_split``) and computes the per-channel mean and standard
   deviation on the training split only (:func:`channel_statistics`, in :mod:`cnnkit.training_data`). Images stay
   ``uint8`` in memory (50,000 CIFAR images: 150 MB instead of 600 MB as float32).
3. **Pipeline** -- :func:`make_pipeline`: a ``tf.data`` pipeline that draws shuffled
   indices, gathers a ``uint8`` batch, augments it (random flips :func:`random_flip`, random
   translations :func:`random_translate`), and only then casts it to float32 and
   standardises it, ``z = (x - mean_train) / std_train``.
4. **Model** -- :func:`build_model`: a fixed patch-whitening first layer
   (:func:`patch_whitening_kernel`, as in Keller Jordan's airbench), then stages of
   ``Conv3x3 -> MaxPool2 -> BatchNorm -> ReLU`` each optionally followed by a
   :func:`resnet9_block` (David Page's ResNet-9 layout; :mod:`cnnkit.resnet9`), global max pooling, dropout
   and a dense layer giving logits.
5. **Training** -- :class:`WarmupDecay` (:mod:`cnnkit.schedules`; linear warm-up, then linear or cosine decay of
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

import os
import time
from dataclasses import dataclass, field

import numpy as np

from cnnkit._validate import boolean, integer, non_negative_int, positive_int
from cnnkit.env import import_tensorflow, keras_backend
from cnnkit.experiments import compile_for_training, fit
from cnnkit.pipeline import batches, random_flip, random_translate
from cnnkit.recipes import RECIPES, Recipe, get_recipe
from cnnkit.resnet9 import ScaledShift, ShutGate, build_model, partial_identity, patch_whitening_kernel, resnet9_block
from cnnkit.schedules import WarmupDecay, recipe_schedule
from cnnkit.training_data import (
    PreparedData, _check_images, _check_labels, _check_statistics, channel_statistics, prepare_data,
)

tf = import_tensorflow()  # quiet: TensorFlow's C++ start-up banner hidden
import keras  # noqa: E402

__all__ = [
    "Recipe", "RECIPES", "get_recipe", "PreparedData", "prepare_data", "channel_statistics",
    "random_flip", "random_translate", "make_pipeline", "patch_whitening_kernel",
    "resnet9_block", "build_model", "partial_identity", "WarmupDecay", "make_optimizer", "compile_model",
    "fit_recipe", "recipe_model", "FitResult", "predict_proba", "per_class_accuracy", "confusion_counts",
    "most_confident_mistakes", "evaluate", "Evaluation", "load_model", "recipe_schedule",
]


# --------------------------------------------------------------------------- pipeline


def make_pipeline(x, y, *, mean, std, batch_size: int = 256, num_classes: int = 10, training: bool = False,
                  flip: bool = False, translate: int = 0, seed: int = 0, one_hot: bool = True,
                  repeat: bool = False, alternate_flip: bool = False, crop: int = 0, crop_batches: int = 0):
    """A ``tf.data.Dataset`` of ``(z, labels)`` batches built from uint8 images (:func:`cnnkit.pipeline.batches`).

    ``x``: uint8 (N, H, W, C), kept as it is (never converted to float as a whole).
    Per batch: indices (shuffled anew every epoch when ``training``) -> gather the uint8
    images from ``x`` itself -> augment (``flip``, ``translate`` pixels; training only) -> cast to float32 ->
    ``z = (x - mean) / std`` with the *training split's* per-channel ``mean`` and ``std``
    (shape (C,)). Labels: one-hot float32 (B, num_classes) when ``one_hot``, else int32 (B,).
    Training batches drop the last incomplete batch (every step sees ``batch_size`` images).
    ``repeat``: an endless stream, epoch after epoch, each reshuffled and augmented anew; give
    ``model.fit`` its ``steps_per_epoch``. One iterator then serves the whole run (starting
    a fresh one every epoch stalled training on CPU for over ten seconds at some epochs).
    ``alternate_flip`` (training with ``flip`` and ``repeat``): each image mirrored in every other
    epoch (:func:`cnnkit.pipeline.alternating_flip`).
    ``crop`` c with ``crop_batches`` n (training only): the first n batches are random c x c
    crops of the flipped images instead of shifted full images (:func:`cnnkit.pipeline.random_crop`).
    """
    x = _check_images(x)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {y.shape}")
    batch_size = positive_int(batch_size, "batch_size")
    num_classes = positive_int(num_classes, "num_classes")
    mean, std = _check_statistics(mean, std, x.shape[-1])
    y = _check_labels(y, num_classes)
    training, flip, one_hot, repeat, alternate_flip = (boolean(v, n) for v, n in (
        (training, "training"), (flip, "flip"), (one_hot, "one_hot"), (repeat, "repeat"),
        (alternate_flip, "alternate_flip")))
    translate = integer(translate, "translate (pixels)", minimum=0, maximum=min(x.shape[1:3]) - 1)
    crop = integer(crop, "crop (pixels)", minimum=0, maximum=min(x.shape[1:3]) - 1)
    crop_batches = non_negative_int(crop_batches, "crop_batches")
    seed = non_negative_int(seed, "seed")
    mean_t, std_t = tf.constant(mean), tf.constant(std)
    return batches(x, y, batch_size=int(batch_size), preprocess=lambda b: (b - mean_t) / std_t,
                   shuffle=training, seed=int(seed), flip=training and flip,
                   translate=int(translate) if training else 0,
                   drop_remainder=training and x.shape[0] >= batch_size, repeat=repeat,
                   one_hot=int(num_classes) if one_hot else None, alternate=training and alternate_flip,
                   crop=int(crop) if training else 0, crop_batches=int(crop_batches) if training else 0)


# --------------------------------------------------------------------------- optimiser


def make_optimizer(recipe, steps_per_epoch: int, epochs: int | None = None, replicas: int = 1):
    """SGD with Nesterov momentum, or AdamW, on the recipe's schedule with (decoupled) weight decay.

    ``replicas``: devices training in step; the peak rate is scaled to the global batch
    (:func:`recipe_schedule`).
    """
    recipe = get_recipe(recipe)
    schedule = recipe_schedule(recipe, steps_per_epoch, epochs, replicas)
    ema = {"use_ema": recipe.ema_momentum > 0, "ema_momentum": recipe.ema_momentum or 0.99}
    if recipe.optimizer == "nesterov":
        return keras.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=True,
                                    weight_decay=recipe.weight_decay or None, **ema)
    return keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay, **ema)


def compile_model(model, recipe, steps_per_epoch: int, epochs: int | None = None, replicas: int = 1):
    """Compile with the recipe's optimiser and cross-entropy on logits with label smoothing.

    With smoothing ``s`` and K classes the target of the true class is ``1 - s + s/K``
    and of every other class ``s/K``. Under a ``tf.distribute`` strategy, call it inside
    ``strategy.scope()`` (as :func:`fit_recipe` does) with the strategy's ``replicas``.
    """
    recipe = get_recipe(recipe)
    optimizer = make_optimizer(recipe, steps_per_epoch, epochs, replicas)
    if not recipe.bn_weight_decay:
        optimizer.exclude_from_weight_decay(var_list=[
            v for layer in model.layers if isinstance(layer, (keras.layers.BatchNormalization, ScaledShift))
            for v in layer.trainable_weights])
    compile_for_training(
        model,
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        # XLA made these models 2-4x slower on CPU under TensorFlow (measured); JAX runs only compiled steps
        jit_compile=keras_backend() != "tensorflow",
    )
    return model


# --------------------------------------------------------------------------- training


def recipe_model(recipe, data: PreparedData, steps_per_epoch: int, epochs: int, *, replicas: int = 1,
                 precision: str = "float32"):
    """The recipe's compiled model (:func:`fit_recipe` builds it; a ``tf.distribute`` strategy's scope around it).

    Seeded; whitening kernel from the training split; input (None, None, C) with crops, else (H, W, C)."""
    keras.utils.set_random_seed(recipe.seed)
    kernel = (patch_whitening_kernel(data.x_train, data.mean, data.std, recipe.whiten_patch, seed=recipe.seed)
              if recipe.whiten_patch else None)
    shape = (None, None, data.x_train.shape[-1]) if recipe.crop else data.x_train.shape[1:]  # crops, then full
    model = build_model(recipe, whitening_kernel=kernel, input_shape=shape, num_classes=data.num_classes,
                        seed=recipe.seed, precision=precision)
    return compile_model(model, recipe, steps_per_epoch, epochs, replicas)


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
    precision: str = "float32"
    replicas: int = 1
    strategy: str = "default"
    global_batch: int = 0


def fit_recipe(recipe, data: PreparedData, *, epochs: int | None = None, callbacks=(), verbose: int = 0,
               checkpoint_path: str | os.PathLike | None = None, strategy=None) -> FitResult:
    """Train the recipe's model on ``data`` and return it with the best validation weights restored.

    The timed part covers everything that depends on the training data: the whitening
    kernel, building and compiling the model, and ``model.fit``. ``epochs`` overrides the
    recipe's epoch count (the schedule is stretched to it, and the recipe's share of epochs on
    crops with it, the last epoch always on full-size images). With a ``patience`` > 0, early
    stopping watches the validation accuracy and the best epoch's weights come back; when
    ``checkpoint_path`` is given, the best model is also saved there as ``.keras`` each time
    the validation accuracy improves. With ``patience=0`` every epoch of the schedule runs,
    the last weights (or, with ``ema_momentum``, their moving average) come back, and the
    checkpoint is written after every epoch. Data prepared with ``val_fraction=0`` (no
    validation image) trains on every image, needs ``patience=0`` and leaves the
    history without ``val_*`` entries.

    Devices: the model is built and trained under ``strategy`` (default
    :func:`cnnkit.devices.make_strategy`: one device, all GPUs mirrored, or several
    machines under ``TF_CONFIG``). With k replicas each takes the recipe's batch B, so
    one step sees the global batch ``k * B`` and an epoch has ``N // (k * B)`` steps; the
    peak learning rate follows the linear rule for SGD (``k * lr``) and the square-root
    rule for AdamW (``sqrt(k) * lr``), see :func:`cnnkit.devices.scaled_learning_rate`.
    Precision: the recipe's, resolved by :func:`cnnkit.devices.resolve_precision`.
    """
    from cnnkit.devices import make_strategy, replica_count, resolve_precision, strategy_name

    recipe = get_recipe(recipe)
    epochs = positive_int(epochs if epochs is not None else recipe.epochs, "epochs")
    if tf is None:
        raise RuntimeError("fit_recipe needs TensorFlow (its tf.data pipeline, tf.distribute), not installed here "
                           f"(KERAS_BACKEND={keras_backend()!r}): install it, or train as benchmarks/capstone_jax.py does")
    strategy = make_strategy() if strategy is None else strategy
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}")
    replicas = replica_count(strategy)
    precision = resolve_precision(recipe.precision)
    start, cpu_start = time.perf_counter(), time.process_time()
    batch = min(recipe.batch_size * replicas, data.x_train.shape[0])
    # crop epochs stretched with the schedule, always leaving the last epoch on full-size images
    crop_epochs = min(round(recipe.crop_epochs * epochs / recipe.epochs), epochs - 1)
    steps = data.x_train.shape[0] // batch
    with strategy.scope():
        model = recipe_model(recipe, data, steps, epochs, replicas=replicas, precision=precision)
    train = make_pipeline(data.x_train, data.y_train, mean=data.mean, std=data.std, batch_size=batch,
                          num_classes=data.num_classes, training=True, flip=recipe.flip,
                          translate=recipe.translate, seed=recipe.seed, repeat=True,
                          alternate_flip=recipe.alternate_flip, crop=recipe.crop if crop_epochs else 0,
                          crop_batches=crop_epochs * steps)
    val = None
    if data.x_val.shape[0]:
        val = make_pipeline(data.x_val, data.y_val, mean=data.mean, std=data.std, batch_size=1000,
                            num_classes=data.num_classes)
    elif recipe.patience:
        raise ValueError(f"patience={recipe.patience} needs a validation split to stop on, but data.x_val holds no "
                         "image (prepared with val_fraction=0): use a recipe with patience=0")
    if replicas > 1:  # the pipelines draw indices, not files: each worker takes its share of the batches
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train = train.with_options(options)
        val = None if val is None else val.with_options(options)
    extra = []
    if recipe.patience:
        extra.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=recipe.patience,
                                                   restore_best_weights=True))
    if recipe.whiten_bias_epochs:
        extra.append(ShutGate(model.get_layer("whiten_bias"), recipe.whiten_bias_epochs))
    if recipe.lookahead:
        from cnnkit.lookahead import Lookahead

        extra.append(Lookahead(steps * epochs))
    if checkpoint_path is not None:
        extra.append(keras.callbacks.ModelCheckpoint(os.fspath(checkpoint_path), monitor="val_accuracy",
                                                     mode="max", save_best_only=bool(recipe.patience)))
    history = fit(model, train, val, epochs=epochs, steps_per_epoch=steps, verbose=verbose,
                  callbacks=[*extra, *callbacks])
    for key in ("seconds", "cpu_seconds", "learning_rate"):  # timed from the start above; the schedule below
        history.pop(key, None)
    schedule = recipe_schedule(recipe, steps, epochs, replicas)
    history["lr"] = [float(schedule.values([e * steps])[0]) for e in range(len(history["loss"]))]
    val_acc = history.get("val_accuracy", [0.0])
    best_epoch = int(np.argmax(val_acc)) + 1 if recipe.patience else len(history["loss"])  # the weights returned
    return FitResult(model, history, best_epoch, time.perf_counter() - start, time.process_time() - cpu_start,
                     len(history["loss"]), steps, schedule, precision=precision, replicas=replicas,
                     strategy=strategy_name(strategy), global_batch=batch)


# --------------------------------------------------------------------------- evaluation


def load_model(path):
    """Load a model saved by :func:`fit_recipe` or ``python -m cnnkit.train`` (registers :class:`WarmupDecay` first)."""
    return keras.saving.load_model(os.fspath(path))


def _softmax(logits) -> np.ndarray:
    """Softmax over the last axis of a batch of logits (B, K), as numpy, on any Keras backend."""
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))


def _probabilities(model, x, mean, std, batch_size: int, translate: int = 0):
    """(plain, augmented) class probabilities, each (N, K), computed batch by batch.

    augmented = ``(p(z) + p(flip z)) / 2`` and, with ``translate`` t > 0, averaged half and
    half with the mean over the four views ``shift(z)``, ``flip(shift(z))`` for the shifts
    by t pixels up-left and down-right (the border reflected into the gap).
    """
    x = _check_images(x)
    batch_size = positive_int(batch_size, "batch_size")
    mean, std = _check_statistics(mean, std, x.shape[-1])
    translate = integer(translate, "translate (pixels)", minimum=0, maximum=min(x.shape[1:3]) - 1)
    h, w = x.shape[1:3]

    def soft(z):
        return _softmax(model(z, training=False))

    def pair(z):  # mean probability of a view and its mirror image
        return 0.5 * (soft(z) + soft(z[:, :, ::-1]))

    plain, augmented = [], []
    for start in range(0, x.shape[0], batch_size):
        z = (x[start:start + batch_size].astype(np.float32) - mean) / std
        p = soft(z)
        both = 0.5 * (p + soft(z[:, :, ::-1]))
        if translate:
            t = translate
            padded = np.pad(z, ((0, 0), (t, t), (t, t), (0, 0)), mode="reflect")
            shifted = 0.5 * (pair(padded[:, :h, :w]) + pair(padded[:, 2 * t:2 * t + h, 2 * t:2 * t + w]))
            both = 0.5 * (both + shifted)
        plain.append(p)
        augmented.append(both)
    return np.concatenate(plain).astype(np.float64), np.concatenate(augmented).astype(np.float64)


def predict_proba(model, x, mean, std, *, tta: bool = False, tta_translate: int = 0,
                  batch_size: int = 250) -> np.ndarray:
    """Class probabilities (N, K) of uint8 images x (N, H, W, C): ``softmax(model(z))``, ``z = (x - mean)/std``.

    With ``tta`` (test-time augmentation) the probabilities of each image and of its
    left-right mirror image are averaged: ``(p(z) + p(flip(z))) / 2``; with ``tta_translate``
    t > 0 as well, that average counts half and the four views shifted by t pixels
    (up-left and down-right, each also mirrored) the other half.
    """
    if boolean(tta, "tta"):
        return _probabilities(model, x, mean, std, batch_size, tta_translate)[1]
    if tta_translate:
        raise ValueError(f"tta_translate={tta_translate!r} needs tta=True")
    x = _check_images(x)
    batch_size = positive_int(batch_size, "batch_size")
    mean, std = _check_statistics(mean, std, x.shape[-1])
    out = [_softmax(model((x[s:s + batch_size].astype(np.float32) - mean) / std, training=False))
           for s in range(0, x.shape[0], batch_size)]
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


def evaluate(model, data: PreparedData, *, tta: bool = True, tta_translate: int = 0) -> Evaluation:
    """Evaluate on the test split; the reported probabilities are the TTA ones when ``tta`` (see :func:`predict_proba`)."""
    if tta:
        plain, probs = _probabilities(model, data.x_test, data.mean, data.std, 250, tta_translate)
    else:
        plain = probs = predict_proba(model, data.x_test, data.mean, data.std)
    acc = float(np.mean(plain.argmax(1) == data.y_test))
    pred = probs.argmax(1)
    return Evaluation(acc, float(np.mean(pred == data.y_test)) if tta else acc,
                      per_class_accuracy(data.y_test, pred, data.num_classes),
                      confusion_counts(data.y_test, pred, data.num_classes), probs, pred)
