"""Small, seeded training experiments shared by the lessons.

``small_cnn`` builds the lessons' workhorse network, ``sample_model`` the tutorial's
section 2.4 model with switchable batch norm and dropout; ``train`` fits it with a
fixed seed and budget and returns a plain history dict; ``compare`` runs the
same experiment for several model builders so that curves can be put side by
side (``cnnkit.plotting.training_curves``); ``compare_seeds`` repeats it for
several seeds and ``spread`` summarises the runs (mean and range), so that a
claim rests on more than one draw of the initial weights and batch order.
``scale_initial_weights`` multiplies a fresh model's kernels by one factor, for
experiments on the scale of the initialisation.
``time_train_step`` measures how long one training step takes per example for
several batch sizes (:class:`StepTimes`). ``named_optimizer`` makes the Keras optimiser
that a name such as ``"momentum"`` stands for in ``train``; ``fit`` is the one fit loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnnkit._validate import (
    boolean,
    non_negative_int,
    numeric_array,
    positive_int,
    positive_int_sequence,
    probability,
    real,
)
from cnnkit.env import import_tensorflow, traced_gradients_released
from cnnkit.pipeline import make_dataset

tf = import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402
from keras import layers  # noqa: E402


def small_cnn(input_shape=(32, 32, 3), classes: int = 10, *, widths=(32, 64, 128),
              batch_norm: bool = False, dropout: float = 0.0, seed: int = 0, name: str = "small_cnn",
              kernel_initializer="glorot_uniform", bn_momentum: float = 0.99, convs_per_block: int = 1,
              head: str = "gap"):
    """A VGG-style CNN: per width, (Conv3x3 -> [BN] -> ReLU) x n -> MaxPool2x2 -> [Dropout]; then GAP -> Dense.

    Shapes: input ``input_shape`` (H, W, C); output (classes,) softmax
    probabilities. With ``batch_norm`` the convolutions have no bias (BN's beta
    replaces it). ``dropout`` is the rate after each block and before the head.
    ``kernel_initializer`` (a Keras initializer or its name, e.g. ``"he_normal"``)
    draws the kernels of every convolution and of the dense head. ``bn_momentum``
    is the batch-norm layers' momentum for their moving statistics (Keras' default
    0.99 averages over about the last 100 steps; 0.9 over about 10, for short runs).
    ``convs_per_block`` (n above, default 1) stacks that many convolutions of the
    block's width before its pooling: a deeper network on the same image size.
    Convolutions, batch norms and ReLUs are numbered through the whole network
    (``conv1`` ... ``conv{len(widths) * n}``), poolings and dropouts per block.
    ``head``: ``"gap"`` averages each channel of the last block's (h, w, C) maps (C
    features, ``(C + 1) * classes`` head weights); ``"flatten"`` keeps every position
    (h * w * C features, ``(h*w*C + 1) * classes`` weights), a head with enough
    weights to memorise a small training set.
    """
    if len(tuple(widths)) == 0:
        raise ValueError("widths must name at least one block, got an empty sequence")
    widths = [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]
    classes = positive_int(classes, "classes")
    batch_norm = boolean(batch_norm, "batch_norm")
    dropout = probability(dropout, "dropout")
    bn_momentum = probability(bn_momentum, "bn_momentum")
    convs_per_block = positive_int(convs_per_block, "convs_per_block")
    if head not in ("gap", "flatten"):
        raise ValueError(f"head must be 'gap' (global average pooling) or 'flatten', got {head!r}")
    keras.utils.set_random_seed(non_negative_int(seed, "seed"))
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, width in enumerate(widths, start=1):
        for j in range((i - 1) * convs_per_block + 1, i * convs_per_block + 1):
            x = layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm,
                              kernel_initializer=kernel_initializer, name=f"conv{j}")(x)
            if batch_norm:
                x = layers.BatchNormalization(momentum=bn_momentum, name=f"bn{j}")(x)
            x = layers.ReLU(name=f"relu{j}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"drop{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x) if head == "gap" else layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer=kernel_initializer, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def sample_model(batch_norm: bool = True, dropout: float = 0.5, *, bn_momentum: float = 0.99, activation="relu",
                 conv_filters: int = 16, dense_units: int = 128, seed: int = 0):
    """The tutorial's section 2.4 model, fixed for Keras 3, with each of its extras switchable.

    32x32x3 -> Conv2D(conv_filters, 3x3, same) -> [BN] -> [Dropout] -> act -> MaxPool2x2 -> Flatten
    -> Dense(dense_units) -> [BN] -> [Dropout] -> act -> Dense(10, softmax). ``batch_norm`` and
    ``dropout`` (the rate; 0 for none) switch those layers in both blocks; ``activation`` (a
    Keras name, ``"relu"`` by default) replaces ReLU. With the defaults it is the slide's model.
    """
    batch_norm = boolean(batch_norm, "batch_norm")
    dropout = probability(dropout, "dropout")
    bn_momentum = probability(bn_momentum, "bn_momentum")
    keras.utils.set_random_seed(non_negative_int(seed, "seed"))

    def block(weights_layer):
        extras = [layers.BatchNormalization(momentum=bn_momentum)] if batch_norm else []
        extras += [layers.Dropout(dropout)] if dropout else []
        return [weights_layer, *extras, layers.ReLU() if activation == "relu" else layers.Activation(activation)]

    return keras.Sequential([
        keras.Input(shape=(32, 32, 3)),
        *block(layers.Conv2D(positive_int(conv_filters, "conv_filters"), (3, 3), padding="same")),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        *block(layers.Dense(positive_int(dense_units, "dense_units"))),
        layers.Dense(10, activation="softmax"),
    ], name="sample_model")


def scale_initial_weights(model, factor: float):
    """Multiply the kernel of every convolution and dense layer of ``model`` by ``factor``, in place; return ``model``.

    Biases, batch-norm parameters and everything else stay as they are. For a
    convolution followed by batch norm the factor cancels in training mode:
    BN(a * W x) = BN(W x) for a > 0, since the batch mean and the standard
    deviation both scale by a (exactly so up to the epsilon added to the
    variance). Without batch norm, a factor a on each of L stacked ReLU layers
    scales the logits by about a^L.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    factor = real(factor, "factor", low=0.0, low_open=True)
    scaled = [lyr for lyr in _all_layers(model) if isinstance(lyr, (layers.Conv2D, layers.Dense))]
    if not scaled:
        raise ValueError(f"model {getattr(model, 'name', model)!r} has no Conv2D or Dense layer whose kernel could be scaled")
    for lyr in scaled:
        lyr.kernel.assign(lyr.kernel * factor)
    return model


def _all_layers(model):
    """The layers of ``model`` and of the models nested in it, depth first."""
    for lyr in getattr(model, "layers", ()):
        yield lyr
        if isinstance(lyr, keras.Model):
            yield from _all_layers(lyr)


def named_optimizer(optimizer, learning_rate: float):
    """A fresh Keras optimiser by name at ``learning_rate``: adam, sgd, momentum (SGD, 0.9),
    nesterov (SGD, 0.9, Nesterov) or rmsprop, each with Keras' other defaults; a Keras
    optimiser passed in is returned as it is. An unknown name is refused, listing the known ones."""
    if not isinstance(optimizer, str):
        return optimizer
    makers = {
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "sgd": lambda: keras.optimizers.SGD(learning_rate),
        "momentum": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "nesterov": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }
    if not isinstance(optimizer, str) or optimizer.lower() not in makers:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(makers)} or a Keras optimizer")
    return makers[optimizer.lower()]()


def compile_for_training(model, **compile_kwargs):
    """``model.compile(**compile_kwargs)``, then create the optimiser's variables at once, eagerly.

    Left to ``fit``, Keras creates the optimiser's slot variables (Adam's two moments,
    SGD's momentum) inside the first traced training step, and the initialisation graphs
    TensorFlow builds for them there stay alive after the model is deleted and
    ``keras.backend.clear_session()`` has run. Created here, eagerly, the same
    zero-initialised variables leave nothing behind and the training is unchanged
    (both checked in ``tests/test_experiments.py``). Under a ``tf.distribute`` strategy
    call it inside ``strategy.scope()``. Returns ``model``.
    """
    model.compile(**compile_kwargs)
    model.optimizer.build(model.trainable_variables)
    return model


def train(model, train, val, *, epochs: int, batch_size: int = 128, optimizer="adam",
          learning_rate: float = 1e-3, preprocess="scale", augment: bool = False, seed: int = 0,
          verbose: int = 0, callbacks=None) -> dict:
    """Compile and fit ``model`` on ``train = (x, y)``, validating on ``val = (x, y)``.

    Images stay uint8 and are normalised per batch (``cnnkit.pipeline``). Loss:
    sparse categorical cross-entropy; metric: accuracy. Returns a dict with
    lists ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (one value per
    epoch) and ``seconds`` (wall time of the fit).
    """
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    learning_rate = real(learning_rate, "learning_rate", low=0.0, low_open=True)
    seed = non_negative_int(seed, "seed")
    keras.utils.set_random_seed(seed)
    compile_for_training(model, optimizer=named_optimizer(optimizer, learning_rate),
                         loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train_ds = make_dataset(*train, batch_size, shuffle=True, seed=seed, augment=augment, preprocess=preprocess)
    val_ds = make_dataset(*val, 512, preprocess=preprocess)
    history = fit(model, train_ds, val_ds, epochs=epochs, verbose=verbose, callbacks=callbacks)
    history.pop("cpu_seconds")
    return history


def fit(model, train_ds, val_ds, *, epochs: int, steps_per_epoch: int | None = None, callbacks=None,
        verbose: int = 0) -> dict:
    """``model.fit`` on a compiled model and two ``tf.data`` pipelines: the kit's one fit loop.

    :func:`train` (the lessons) and :func:`cnnkit.training.fit_recipe` (the capstone, the
    trainer and the benchmark) both end here. The pipelines shuffle and augment themselves
    (``cnnkit.pipeline``), so Keras' own shuffling is off; ``steps_per_epoch`` is needed
    when ``train_ds`` repeats. The custom gradients TensorFlow registers while tracing the
    step are dropped afterwards (:func:`cnnkit.env.traced_gradients_released`). Returns the
    history as plain floats, one list per metric, plus ``seconds`` (wall) and
    ``cpu_seconds`` (process CPU time) of the fit.
    """
    epochs = positive_int(epochs, "epochs")
    if steps_per_epoch is not None:
        steps_per_epoch = positive_int(steps_per_epoch, "steps_per_epoch")
    start, cpu_start = time.perf_counter(), time.process_time()
    with traced_gradients_released():
        result = model.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                           verbose=verbose, shuffle=False, callbacks=list(callbacks or []))
    history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
    history["seconds"] = time.perf_counter() - start
    history["cpu_seconds"] = time.process_time() - cpu_start
    return history


def compare(builders: dict[str, Callable], train_data, val_data, **train_kwargs) -> dict[str, dict]:
    """Train one fresh model per builder with identical data, seed and budget.

    ``builders`` maps a label to a zero-argument function returning a Keras
    model; ``train_kwargs`` go to :func:`train`, and a per-label override can be
    given as ``train_kwargs["per_model"][label] = {...}`` (e.g. another
    optimizer or preprocessing). Returns label -> history dict.
    """
    per_model = train_kwargs.pop("per_model", {})
    if not isinstance(builders, dict) or not builders:
        raise TypeError(f"builders must be a non-empty dict label -> model-building function, got {builders!r}")
    # a model is callable too, but training it in place would not give a fresh model per run
    not_callable = [label for label, build in builders.items()
                    if not callable(build) or isinstance(build, keras.layers.Layer)]
    if not_callable:
        raise TypeError(f"builders[{not_callable[0]!r}] must be a function returning a new model "
                        f"(e.g. lambda: small_cnn()), got {type(builders[not_callable[0]]).__name__}")
    unknown = set(per_model) - set(builders)
    if unknown:
        raise ValueError(f"per_model names unknown models {sorted(unknown)}; known: {sorted(builders)}")
    results = {}
    for label, build in builders.items():
        keras.backend.clear_session()
        kwargs = {**train_kwargs, **per_model.get(label, {})}
        keras.utils.set_random_seed(kwargs.get("seed", 0))
        results[label] = train(build(), train_data, val_data, **kwargs)
    return results


def final_gap(history: dict) -> float:
    """Train minus validation accuracy at the last epoch (positive: the model overfits)."""
    return float(history["accuracy"][-1] - history["val_accuracy"][-1])


def compare_seeds(builders: dict[str, Callable], train_data, val_data, seeds=(0, 1, 2),
                  **train_kwargs) -> dict[str, list[dict]]:
    """:func:`compare` once per seed: ``builders`` maps a label to a function ``seed -> new model``.

    Seed ``s`` sets the initial weights (``builders[label](s)``), the batch order and the
    augmentation of every run of that round. Returns label -> list of history dicts, one per
    seed, in the order of ``seeds``.
    """
    seeds = [non_negative_int(s, "seeds[...]") for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed, got an empty sequence")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be different from each other, got {seeds}")
    runs: dict[str, list[dict]] = {label: [] for label in builders}
    for seed in seeds:
        this_round = {label: (lambda build=build, seed=seed: build(seed)) for label, build in builders.items()}
        for label, history in compare(this_round, train_data, val_data, **{**train_kwargs, "seed": seed}).items():
            runs[label].append(history)
    return runs


def spread(runs: dict[str, list[dict]], metric: str = "val_accuracy", epoch: int = -1) -> dict[str, dict]:
    """Mean, minimum and maximum of ``metric`` at ``epoch`` (default: the last) over each label's runs.

    Returns label -> ``{"mean", "min", "max", "values"}`` (``values``: one per run, in run order).
    """
    out = {}
    for label, histories in runs.items():
        if not histories or any(metric not in h for h in histories):
            raise KeyError(f"runs[{label!r}] has no {metric!r} in every history")
        values = [float(h[metric][epoch]) for h in histories]
        out[label] = {"mean": sum(values) / len(values), "min": min(values), "max": max(values), "values": values}
    return out


@dataclass(frozen=True)
class StepTimes:
    """Seconds of one training step per batch size, with a straight-line fit ``t(b) = overhead + b * per_example_cost``.

    ``batch_sizes`` and ``seconds`` have shape (k,) (the fastest of the repeats
    at each size); ``per_example = seconds / batch_sizes``. The fit minimises
    the squared *relative* error ``sum_b ((overhead + b c - t_b) / t_b)^2``, so
    small and large batches weigh alike: ``overhead`` is what a step costs
    whatever its size (launching the kernels, the optimiser's update of every
    weight, Python), ``per_example_cost`` what each example adds once the
    kernels run on whole batches.
    """

    batch_sizes: np.ndarray
    seconds: np.ndarray
    overhead: float
    per_example_cost: float

    @classmethod
    def fitted(cls, batch_sizes, seconds) -> StepTimes:
        """Step times ``seconds`` (k,) measured at ``batch_sizes`` (k,), with the straight line fitted to them."""
        sizes = positive_int_sequence(batch_sizes, "batch_sizes")
        t = numeric_array(seconds, "seconds").astype(np.float64)
        if t.shape != (len(sizes),) or not np.all(np.isfinite(t) & (t > 0)):
            raise ValueError(f"seconds must hold one positive time per batch size ({len(sizes)}), got {seconds!r}")
        b = np.array(sizes, dtype=np.float64)
        (overhead, cost), *_ = np.linalg.lstsq(np.stack([1 / t, b / t], axis=1), np.ones_like(t), rcond=None)
        return cls(np.array(sizes, dtype=np.int64), t, float(overhead), float(cost))

    @property
    def per_example(self) -> np.ndarray:
        """Seconds per example at each batch size, shape (k,)."""
        return self.seconds / self.batch_sizes

    @property
    def best_batch(self) -> int:
        """The batch size with the lowest time per example."""
        return int(self.batch_sizes[np.argmin(self.per_example)])

    def flat_from(self, within: float = 1.25) -> int:
        """The smallest batch size whose time per example is at most ``within`` times the best one."""
        within = real(within, "within", low=1.0)
        return int(self.batch_sizes[np.argmax(self.per_example <= within * self.per_example.min())])


def time_train_step(model, x, y, batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), *, repeats: int = 3,
                    learning_rate: float = 0.01) -> StepTimes:
    """Time one training step of ``model`` (forward, backward, SGD update) at each batch size.

    ``x`` holds at least ``max(batch_sizes)`` images (N, H, W, C) matching the
    model's input (uint8 is scaled by 1/255, anything else cast to float32),
    ``y`` their integer labels (N,). The step, written once as a
    ``tf.function`` whose batch dimension is left open (so it is traced once,
    not once per size), computes the sparse categorical cross-entropy, its
    gradient and an SGD update with ``learning_rate``; the model's weights
    change. At each size one untimed step comes first, then ``repeats`` timed
    ones (each waits for its result); the fastest counts, since on a shared
    machine other work can only slow a step down.
    """
    sizes = positive_int_sequence(batch_sizes, "batch_sizes")
    repeats = positive_int(repeats, "repeats")
    learning_rate = real(learning_rate, "learning_rate", low=0.0, low_open=True)
    x, y = numeric_array(x, "x"), numeric_array(y, "y")
    if x.ndim != 4 or y.shape != (len(x),):
        raise ValueError(f"x must be images (N, H, W, C) and y their N labels, got shapes {x.shape} and {y.shape}")
    if max(sizes) > len(x):
        raise ValueError(f"batch_sizes go up to {max(sizes)} but x holds only {len(x)} images")
    if x.shape[1:] != tuple(model.input_shape[1:]):
        raise ValueError(f"x has images of shape {x.shape[1:]}, the model expects {tuple(model.input_shape[1:])}")
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    spec = (tf.TensorSpec((None, *x.shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int64))

    @tf.function(input_signature=spec)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    seconds = []
    with traced_gradients_released():
        for b in sizes:
            images = x[:b].astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
            images, labels = tf.constant(images), tf.constant(y[:b].astype(np.int64))
            step(images, labels).numpy()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                step(images, labels).numpy()
                times.append(time.perf_counter() - start)
            seconds.append(min(times))
    return StepTimes.fitted(sizes, seconds)
