"""The loss of a trained Keras classifier along a line or over a plane through its weights.

The weights w* are moved to w* + alpha d1 (+ beta d2) and the mean
cross-entropy and error rate are recorded at each point; the model's weights
are restored afterwards, even on error. :func:`loss_slice` and :func:`loss_line`
use random, filter-normalised directions (:mod:`cnnkit.weight_directions`);
:func:`loss_on_plane` takes any two directions, e.g. the principal plane of the
weights visited during training (:mod:`cnnkit.trajectory`); :func:`loss_between`
walks the straight line from the weights to another set of weights (a copy
with two units swapped, :mod:`cnnkit.unit_symmetry`). Figures:
:func:`cnnkit.landscape_plots.plot_loss_slice` and
:func:`cnnkit.landscape_plots.plot_trajectory_plane`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import as_float_array, finite_array, positive_int, real
from cnnkit.env import import_tensorflow
from cnnkit.weight_directions import filter_normalized_directions

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras

__all__ = ["LossSlice", "float_weights", "loss_between", "loss_line", "loss_on_plane", "loss_slice"]


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
    directions = filter_normalized_directions(center, seed=seed, count=2)
    coords = np.linspace(-span, span, steps)
    return _plane(evaluate, variables, center, directions, coords, coords.copy(), start)


def loss_on_plane(model, x, y, directions, alpha, beta, *, batch_size: int = 512, from_logits: bool = False,
                  preprocess=None) -> LossSlice:
    """The loss over the plane w* + alpha d1 + beta d2 for two given directions and given coordinates.

    ``directions`` is a pair ``(d1, d2)``, each a list of arrays shaped like
    ``model.trainable_variables`` (e.g. the principal directions of a training
    trajectory, :func:`cnnkit.trajectory.trajectory_pca`); ``alpha`` (A,) and
    ``beta`` (B,) are the coordinates of the grid, in the directions' own units.
    w* are the model's current trainable weights; non-trainable variables (batch
    norm's moving mean and variance) keep their current values at every point.
    Returns a :class:`LossSlice` with ``loss[i, j]`` and ``error[i, j]`` at
    (alpha[i], beta[j]); the weights are restored afterwards, even on error.
    Cost: A * B forward passes over the N images.
    """
    x, y = _data_args(x, y, preprocess)
    alpha = finite_array(as_float_array(alpha, "alpha", ndim=1), "alpha").astype(np.float64)
    beta = finite_array(as_float_array(beta, "beta", ndim=1), "beta").astype(np.float64)
    for name, c in (("alpha", alpha), ("beta", beta)):
        if c.size == 0:
            raise ValueError(f"{name} must hold at least one coordinate, got an empty array")
    start = time.perf_counter()
    evaluate, variables, center = _evaluator(model, x, y, batch_size, from_logits)
    directions = _check_directions(directions, center)
    return _plane(evaluate, variables, center, directions, alpha, beta, start)


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
    directions = filter_normalized_directions(center, seed=seed, count=1)
    coords = np.linspace(-span, span, steps)
    loss, error = _losses_at(evaluate, variables, center, directions, coords[:, None])
    return coords, loss, error


def loss_between(model, other, x, y, steps: int = 21, *, batch_size: int = 512, from_logits: bool = False,
                 preprocess=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss on the straight line from the model's weights to ``other``'s: ``(t (steps,), loss (steps,), error (steps,))``.

    With w_a the weights of ``model`` and w_b those of ``other`` (a Keras model
    of the same architecture, or a list of arrays shaped like
    ``model.get_weights()``), the weights are set to
    w(t) = (1 - t) w_a + t w_b = w_a + t (w_b - w_a) for t in
    ``linspace(0, 1, steps)`` and the mean cross-entropy and error rate on
    ``(x, y)`` are recorded, so ``loss[0]`` is the model's loss and
    ``loss[-1]`` that of ``other``. Every floating-point weight moves, batch
    norm's moving mean and variance included (a mix of two variances stays
    positive). A convex loss lies on or below the chord,
    loss(t) <= (1 - t) loss[0] + t loss[-1]; a point above it proves the loss
    is not convex. ``model``'s weights are restored afterwards, even on error;
    ``other`` is not touched. Cost: ``steps`` forward passes over the N images.
    """
    steps = positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (both ends of the line), got {steps}")
    x, y = _data_args(x, y, preprocess)
    evaluate, _, _ = _evaluator(model, x, y, batch_size, from_logits)
    variables = float_weights(model)
    center = [np.array(v.numpy()) for v in variables]
    if isinstance(other, keras.Model):
        other = [v.numpy() for v in float_weights(other)]
    target = _check_weight_list(other, center, "other", "weight")
    direction = [b - a.astype(np.float64) for a, b in zip(center, target)]
    t = np.linspace(0.0, 1.0, steps)
    loss, error = _losses_at(evaluate, variables, center, [direction], t[:, None])
    return t, loss, error


def float_weights(model):
    """The floating-point variables of ``model.weights`` (trainable or not), in that order."""
    return [v for v in model.weights if np.issubdtype(np.dtype(v.dtype), np.floating)]


def _plane(evaluate, variables, center, directions, alpha, beta, start) -> LossSlice:
    grid = np.stack(np.meshgrid(alpha, beta, indexing="ij"), axis=-1).reshape(-1, 2)
    loss, error = _losses_at(evaluate, variables, center, directions, grid)
    center_loss = evaluate()[0]
    shape = (len(alpha), len(beta))
    return LossSlice(alpha=alpha, beta=beta, loss=loss.reshape(shape), error=error.reshape(shape),
                     center_loss=center_loss, seconds=time.perf_counter() - start)


def _losses_at(evaluate, variables, center, directions, coefficients):
    """(loss (M,), error (M,)) at w* + sum_k c[m, k] d_k for each row c[m] of ``coefficients`` (M, K).

    The one place that moves a model's weights: they are put back to ``center``
    afterwards, also when an evaluation fails.
    """
    loss = np.empty(len(coefficients))
    error = np.empty(len(coefficients))
    try:
        for m, c in enumerate(coefficients):
            for i, (v, w0) in enumerate(zip(variables, center)):
                moved = w0.astype(np.float64)
                for ck, d in zip(c, directions):
                    moved = moved + ck * d[i]
                v.assign(moved.astype(w0.dtype))
            loss[m], error[m] = evaluate()
    finally:
        for v, w0 in zip(variables, center):
            v.assign(w0)
    return loss, error


def _check_directions(directions, center):
    """Return ``directions`` as 2 lists of float64 arrays shaped like ``center``; raise naming what does not fit."""
    if not isinstance(directions, (list, tuple)) or len(directions) != 2:
        raise ValueError(f"directions must be a pair (d1, d2) of weight lists, got "
                         f"{type(directions).__name__} of length {len(directions) if hasattr(directions, '__len__') else '?'}")
    return [_check_weight_list(d, center, f"directions[{k}]") for k, d in enumerate(directions)]


def _check_weight_list(d, center, name, kind="trainable weight"):
    """Return ``d`` as a list of float64 arrays shaped like ``center``; raise naming what does not fit."""
    if not isinstance(d, (list, tuple)) or len(d) != len(center):
        raise ValueError(f"{name} must be a list of {len(center)} arrays, one per {kind} of the model, "
                         f"got {type(d).__name__} of length {len(d) if hasattr(d, '__len__') else '?'}")
    arrays = []
    for i, (a, w) in enumerate(zip(d, center)):
        a = finite_array(as_float_array(a, f"{name}[{i}]"), f"{name}[{i}]")
        if a.shape != w.shape:
            raise ValueError(f"{name}[{i}] must have the shape of {kind} {i}, {w.shape}, got {a.shape}")
        arrays.append(a.astype(np.float64))
    return arrays


def _slice_args(steps, span, x, y, preprocess):
    steps = positive_int(steps, "steps")
    span = real(span, "span", low=0, low_open=True)
    return (steps, span, *_data_args(x, y, preprocess))


def _data_args(x, y, preprocess):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of inputs (N, ...), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {y.shape}")
    x = preprocess(x.astype(np.float32)) if preprocess is not None else x.astype(np.float32)
    return np.asarray(x, dtype=np.float32), y


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
