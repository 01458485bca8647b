"""What overfitting looks like inside a trained model: the numbers lesson 04 and its benchmark read.

All three probes run the model in inference mode (dropout off, batch norm on its moving
statistics) on uint8 images ``x`` of shape (N, H, W, C), ``preprocess``-ed (a float32 batch in,
a batch out, e.g. ``StandardScaler.batch_fn()``) ``batch_size`` images at a time:

* :func:`accuracy`: the share of ``x`` whose arg-max prediction equals ``y``. On the model's own
  training images it measures how far the model has fitted them; minus the validation accuracy
  it is the generalisation gap.
* :func:`zero_fraction`: the share of exact zeros in one layer's output. After a ReLU it counts
  the units that are off, the sparsity of section 1.3.
* :func:`variance_shift`: for the last batch-norm layer, the median over its channels of
  ``moving_variance / Var[inputs at inference]``. Where dropout comes before it, the moving
  variance was collected on thinned and rescaled inputs (of larger variance) and the ratio
  is above 1: at inference every unit is squeezed by ``sqrt(ratio)``.

:func:`fit_numbers` takes all three at once, as the benchmark does at the lesson's last epoch.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import positive_int

__all__ = ["accuracy", "zero_fraction", "variance_shift", "dropout_before_batch_norm", "fit_numbers"]


def _images(x, name: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or not len(x):
        shape = getattr(x, "shape", None)
        dtype = getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{name} must be a non-empty uint8 array of images (N, H, W, C), got {dtype} of shape {shape}")
    return x


def _batches(model, x, preprocess, batch_size: int, training: bool = False):
    x = _images(x)
    batch_size = positive_int(batch_size, "batch_size")
    if not callable(preprocess):
        raise TypeError(f"preprocess must be a function from a float32 batch to a batch, got {preprocess!r}")
    for start in range(0, len(x), batch_size):
        yield start, np.asarray(model(preprocess(x[start:start + batch_size].astype(np.float32)), training=training))


def accuracy(model, x, y, *, preprocess, training: bool = False, batch_size: int = 250) -> float:
    """Share of the images ``x`` (N, H, W, C) whose arg-max prediction is their label ``y`` (N,).

    ``training=True`` runs the model in training mode (dropout on, batch norm on each batch's own
    statistics) without changing any weight.
    """
    y = np.asarray(y)
    if y.shape != (len(_images(x)),):
        raise ValueError(f"y must hold one label per image, shape ({len(x)},), got shape {y.shape}")
    hits = sum(int((np.argmax(probs, axis=1) == y[start:start + len(probs)]).sum())
               for start, probs in _batches(model, x, preprocess, batch_size, training))
    return hits / len(y)


def _layer(model, layer):
    try:
        return model.layers[layer] if isinstance(layer, int) else model.get_layer(layer)
    except (IndexError, ValueError):
        names = [lyr.name for lyr in model.layers]
        raise ValueError(f"layer must be an index into the model's {len(names)} layers or one of their names "
                         f"{names}, got {layer!r}") from None


def zero_fraction(model, x, *, preprocess, layer=-2, batch_size: int = 250) -> float:
    """Share of exact zeros in the output of ``layer`` (an index or a name; default: the one before the
    classifier) over the images ``x``, in inference mode."""
    import keras

    probe = keras.Model(model.inputs[0], _layer(model, layer).output)
    total = zeros = 0
    for _, out in _batches(probe, x, preprocess, batch_size):
        zeros += int(np.sum(out == 0))
        total += out.size
    return zeros / total


def _batch_norms(model):
    import keras

    return [i for i, lyr in enumerate(model.layers) if isinstance(lyr, keras.layers.BatchNormalization)]


def dropout_before_batch_norm(model) -> bool:
    """True when a ``Dropout`` layer comes before the model's last ``BatchNormalization`` layer."""
    import keras

    norms = _batch_norms(model)
    return bool(norms) and any(isinstance(lyr, keras.layers.Dropout) for lyr in model.layers[:norms[-1]])


def variance_shift(model, x, *, preprocess) -> float:
    """Median over channels of the last batch-norm layer's moving variance over the variance its inputs
    have at inference on the images ``x`` (about 1 when training and inference see the same inputs)."""
    import keras

    norms = _batch_norms(model)
    if not norms:
        raise ValueError(f"model {model.name!r} has no BatchNormalization layer: there is no moving variance "
                         "to compare")
    norm = model.layers[norms[-1]]
    inputs = np.asarray(keras.Model(model.inputs[0], norm.input)(preprocess(_images(x).astype(np.float32)),
                                                                   training=False))
    channels = inputs.reshape(-1, inputs.shape[-1])
    return float(np.median(np.asarray(norm.moving_variance) / channels.var(axis=0)))


def fit_numbers(model, x, y, *, preprocess, shift_images: int = 1000) -> dict:
    """``{"train": accuracy, "zeros": zero_fraction}`` of ``model`` on its training images ``x, y``, plus
    ``"shift"`` (:func:`variance_shift` on the first ``shift_images`` of them) where dropout comes before
    its last batch norm."""
    numbers = {"train": accuracy(model, x, y, preprocess=preprocess),
               "zeros": zero_fraction(model, x, preprocess=preprocess)}
    if dropout_before_batch_norm(model):
        numbers["shift"] = variance_shift(model, x[:positive_int(shift_images, "shift_images")], preprocess=preprocess)
    return numbers
