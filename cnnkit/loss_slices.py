"""The loss of a trained Keras classifier along a line or over a plane through its weights.

The weights w* are moved to w* + alpha d1 (+ beta d2) along random,
filter-normalised directions (:mod:`cnnkit.weight_directions`) and the mean
cross-entropy and error rate are recorded at each point; the model's weights
are restored afterwards, even on error. Figures: :func:`cnnkit.landscape_plots.plot_loss_slice`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import positive_int, real
from cnnkit.env import import_tensorflow
from cnnkit.weight_directions import filter_normalized_directions

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras

__all__ = ["LossSlice", "loss_line", "loss_slice"]


@dataclass(frozen=True)
class LossSlice:
    """Loss and error rate on the plane w* + alpha d1 + beta d2; ``loss[i, j]`` is at (alpha[i], beta[j])."""

    alpha: np.ndarray
    beta: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    center_loss: float
    seconds: float


def loss_slice(model, x, y, steps: int = 21, span: float = 1.0, seed: int = 0, *, batch_size: int = 512,
               from_logits: bool = False, preprocess=None) -> LossSlice:
    """Evaluate a Keras classifier's loss on a steps x steps grid around its current weights.

    The weights w* of ``model.trainable_variables`` are moved to
    w* + alpha d1 + beta d2 for alpha, beta in ``linspace(-span, span, steps)``,
    with d1, d2 from :func:`filter_normalized_directions` (``seed``), and the
    mean sparse categorical cross-entropy on ``(x, y)`` is recorded (plus the
    error rate 1 - accuracy). The model's weights are restored afterwards, even
    on error. ``x``: images (N, H, W, C) as the model expects them after
    ``preprocess`` (a function applied once to ``x``; e.g. ``lambda x: x / 255``);
    ``y``: int labels (N,). Cost: steps^2 forward passes over N images.
    """
    steps, span, x, y = _slice_args(steps, span, x, y, preprocess)
    start = time.perf_counter()
    evaluate, variables, center = _evaluator(model, x, y, batch_size, from_logits)
    d1, d2 = filter_normalized_directions(center, seed=seed, count=2)
    coords = np.linspace(-span, span, steps)
    loss = np.empty((steps, steps))
    error = np.empty((steps, steps))
    try:
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                for v, w0, u, t in zip(variables, center, d1, d2):
                    v.assign((w0 + a * u + b * t).astype(w0.dtype))
                loss[i, j], error[i, j] = evaluate()
    finally:
        for v, w0 in zip(variables, center):
            v.assign(w0)
    center_loss = evaluate()[0]
    return LossSlice(alpha=coords, beta=coords.copy(), loss=loss, error=error, center_loss=center_loss,
                     seconds=time.perf_counter() - start)


def loss_line(model, x, y, steps: int = 21, span: float = 1.0, seed: int = 0, *, batch_size: int = 512,
              from_logits: bool = False, preprocess=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss along one filter-normalised direction: ``(alpha (steps,), loss (steps,), error (steps,))``.

    The direction is the first one :func:`loss_slice` uses with the same
    ``seed`` (it depends only on the weights' shapes and norms), so the same
    line can be evaluated on the training and on the test images and the two
    curves compared. The weights are restored afterwards.
    """
    steps, span, x, y = _slice_args(steps, span, x, y, preprocess)
    evaluate, variables, center = _evaluator(model, x, y, batch_size, from_logits)
    (d1,) = filter_normalized_directions(center, seed=seed, count=1)
    coords = np.linspace(-span, span, steps)
    loss = np.empty(steps)
    error = np.empty(steps)
    try:
        for i, a in enumerate(coords):
            for v, w0, u in zip(variables, center, d1):
                v.assign((w0 + a * u).astype(w0.dtype))
            loss[i], error[i] = evaluate()
    finally:
        for v, w0 in zip(variables, center):
            v.assign(w0)
    return coords, loss, error


def _slice_args(steps, span, x, y, preprocess):
    steps = positive_int(steps, "steps")
    span = real(span, "span", low=0, low_open=True)
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of inputs (N, ...), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {y.shape}")
    x = preprocess(x.astype(np.float32)) if preprocess is not None else x.astype(np.float32)
    return steps, span, np.asarray(x, dtype=np.float32), y


def _evaluator(model, x, y, batch_size, from_logits):
    """A function returning (mean cross-entropy, error rate) of ``model`` on (x, y) at its current weights."""
    batch_size = positive_int(batch_size, "batch_size")
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError("the model has no trainable weights: build it (call it once) before slicing its loss")
    center = [np.array(v.numpy()) for v in variables]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction="sum")

    def evaluate():
        total, wrong = 0.0, 0
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size], training=False)
            total += float(loss_fn(y[i:i + batch_size], out))
            wrong += int(np.sum(np.argmax(np.asarray(out), axis=-1) != y[i:i + batch_size]))
        return total / len(x), wrong / len(x)

    return evaluate, variables, center
