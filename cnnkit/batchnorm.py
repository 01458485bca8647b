"""Batch normalization: the forward pass of Keras' layer in numpy, and its moving statistics in Keras models (tutorial 2.2).

:func:`batch_norm` is the forward pass of ``keras.layers.BatchNormalization``
(axis=-1), in both modes; see its docstring for the formulas. For Keras models,
:func:`set_bn_momentum` changes the moving-average momentum before training and
:func:`reestimate_bn_statistics` recomputes the moving statistics after it.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, boolean, finite_array, positive_int, real
from cnnkit.channel_stats import as_samples


def _param(value, name: str, channels: int) -> np.ndarray:
    arr = finite_array(as_float_array(value, name).astype(np.float64), name)
    if arr.shape != (channels,):
        raise ValueError(
            f"{name} must have shape (C,) = ({channels},), one value per channel of x's last axis, got {arr.shape}"
        )
    return arr


def batch_norm(x, gamma, beta, moving_mean, moving_var, training, momentum: float = 0.99,
               epsilon: float = 1e-3):
    """Batch normalization over the last axis, as ``keras.layers.BatchNormalization()``.

    Shapes: ``x`` is (N, D) or (N, H, W, C); ``gamma``, ``beta``,
    ``moving_mean``, ``moving_var`` are (C,) (C = D for dense inputs). Returns
    ``(y, new_moving_mean, new_moving_var)``, ``y`` shaped like ``x``.

    Training (``training=True``), over the ``m`` values of each channel
    (m = N, or N*H*W for images):

    .. math::
        \\mu_B = \\frac{1}{m}\\sum_i x_i, \\qquad
        \\sigma_B^2 = \\frac{1}{m}\\sum_i (x_i - \\mu_B)^2 \\quad\\text{(biased)}

        y = \\gamma\\,\\frac{x - \\mu_B}{\\sqrt{\\sigma_B^2 + \\varepsilon}} + \\beta

        \\text{moving\\_mean} \\leftarrow \\text{momentum}\\cdot\\text{moving\\_mean} + (1-\\text{momentum})\\,\\mu_B

    and the same update for ``moving_var`` with sigma_B^2 (an exponential
    moving average over all training batches, not the last batch's values).

    Inference (``training=False``): ``y = gamma (x - moving_mean) /
    sqrt(moving_var + eps) + beta``; the moving statistics are returned unchanged.

    A batch of one dense sample in training mode has sigma_B^2 = 0 and gives
    ``y == beta`` whatever ``x`` is: a classic bug. Float32 input gives a
    float32 ``y``; the arithmetic is done in float64.
    """
    arr = as_float_array(x, "x", ndim=(2, 4), layout="(N, D) or (N, H, W, C)")
    training = boolean(training, "training")
    momentum = real(momentum, "momentum", low=0.0, high=1.0)
    epsilon = real(epsilon, "epsilon", low=0.0, low_open=True)
    if arr.shape[0] == 0:
        raise ValueError(f"x holds no samples (shape {arr.shape})")
    if arr.shape[-1] == 0:
        raise ValueError(f"x has no channels (shape {arr.shape})")
    finite_array(arr, "x", "batch statistics of non-finite values would poison the moving averages")
    channels = arr.shape[-1]
    gamma = _param(gamma, "gamma", channels)
    beta = _param(beta, "beta", channels)
    moving_mean = _param(moving_mean, "moving_mean", channels)
    moving_var = _param(moving_var, "moving_var", channels)
    if np.any(moving_var < 0):
        raise ValueError(f"moving_var must be non-negative, got min {moving_var.min()}")
    x64 = arr.astype(np.float64)
    if training:
        axes = tuple(range(arr.ndim - 1))
        mean = x64.mean(axis=axes)
        var = ((x64 - mean) ** 2).mean(axis=axes)
        new_mean = momentum * moving_mean + (1.0 - momentum) * mean
        new_var = momentum * moving_var + (1.0 - momentum) * var
    else:
        mean, var = moving_mean, moving_var
        new_mean, new_var = moving_mean.copy(), moving_var.copy()
    y = gamma * (x64 - mean) / np.sqrt(var + epsilon) + beta
    return y.astype(arr.dtype), new_mean, new_var


# --------------------------------------------------------------------------- Keras models with batch norm
#
# These three take a Keras model, and import Keras (and cnnkit.pipeline, which imports
# TensorFlow) inside the function: cnnkit.normalization re-exports them, and lesson 03's
# exercise imports cnnkit.normalization without TensorFlow (tests/test_course.py checks).


def batch_norm_layers(model) -> list:
    """Every ``keras.layers.BatchNormalization`` inside ``model`` (nested models included), in order."""
    import keras

    found = []

    def walk(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        for child in getattr(layer, "layers", []) or []:
            walk(child)

    walk(model)
    return found


def set_bn_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer; return how many were changed.

    Call it before ``compile``/``fit`` (``cnnkit.experiments.train`` compiles):
    a traced training step keeps the value it was traced with.
    """
    momentum = real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def reestimate_bn_statistics(model, x, batch_size: int = 256, preprocess="scale") -> int:
    """Recompute every BN layer's moving mean and variance from ``x`` with the current weights.

    Runs ``model(batch, training=True)`` over ``x`` (uint8 images, normalised
    per batch with ``preprocess`` as in ``cnnkit.pipeline.make_dataset``) with
    each BN layer's momentum set to ``k / (k + 1)`` at the k-th batch, so the
    moving statistics become the plain average of the batch statistics (the
    initial values and the lag of the training-time moving average are
    forgotten). Weights are not changed; momenta are restored afterwards.
    Dropout layers are active during these passes, as in training.
    Returns the number of batches used.
    """
    from cnnkit.pipeline import make_dataset

    batch_size = positive_int(batch_size, "batch_size")
    x = as_samples(x)
    layers = batch_norm_layers(model)
    if not layers:
        raise ValueError("the model has no BatchNormalization layer: nothing to re-estimate")
    saved = [layer.momentum for layer in layers]
    batches = 0
    try:
        labels = np.zeros(len(x), dtype=np.int64)
        for k, (images, _) in enumerate(make_dataset(x, labels, batch_size, preprocess=preprocess)):
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(images, training=True)
            batches += 1
    finally:
        for layer, m in zip(layers, saved):
            layer.momentum = m
    return batches
