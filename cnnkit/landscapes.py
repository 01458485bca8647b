"""Loss surfaces: 2-D test functions, stationary points, optimizer paths, and a slice of a real network's loss.

Test functions are :class:`Landscape` objects. Their ``value``, ``gradient`` and
``hessian`` take points ``p`` of shape ``(..., 2)`` (one point, a path, or a
whole plotting grid) and return shapes ``(...)``, ``(..., 2)`` and
``(..., 2, 2)``:

=======================  ========================================  ==================================
function                 formula                                   stationary points
=======================  ========================================  ==================================
:func:`bowl`             (x^2 + y^2) / 2                           minimum at 0
:func:`ravine`           (x^2 + k y^2) / 2, condition number k     minimum at 0
:func:`saddle`           x^2 - y^2                                 saddle at 0
:func:`wells`            (x^2-1)^2 + (y^2-1)^2 + a x + b y         4 minima, 4 saddles, 1 maximum
:func:`rosenbrock`       (a - x)^2 + b (y - x^2)^2                 minimum at (a, a^2)
:func:`monkey_saddle`    x^3 - 3 x y^2                             degenerate point at 0 (Hessian 0)
=======================  ========================================  ==================================

:func:`classify` names a stationary point from the eigenvalues of its Hessian;
:func:`stationary_points` finds them with Newton's method from a grid of
starts. :func:`contour_plot` and :func:`surface_plot` draw a function with
optimizer paths. The loss of a real Keras model on the plane spanned by two
random, filter-normalised directions around its weights (Li et al.,
"Visualizing the Loss Landscape of Neural Nets", 2018) lives in
:mod:`cnnkit.loss_slices`, which imports Keras.

This module measures optimizer paths (:func:`values_along`,
:func:`first_step_below`, :func:`settle_step`) and gathers the lesson's names
from the modules that hold them:

* :mod:`cnnkit.landscape_functions` -- the test functions;
* :mod:`cnnkit.stationary` -- derivatives by finite differences, :func:`classify`, :func:`stationary_points`;
* :mod:`cnnkit.landscape_plots` -- contour, surface, loss-slice and trajectory-plane figures (matplotlib on first use);
* :mod:`cnnkit.weight_directions` -- filter-normalised directions (numpy);
and ``import cnnkit.landscapes`` loads neither TensorFlow nor matplotlib: a lesson that slices a
network's loss imports :mod:`cnnkit.loss_slices` (:func:`~cnnkit.loss_slices.loss_slice`,
:func:`~cnnkit.loss_slices.loss_line`, :class:`~cnnkit.loss_slices.LossSlice`) itself.
"""
from __future__ import annotations


import numpy as np

from cnnkit.landscape_functions import (  # noqa: F401  (the lesson's names)
    LANDSCAPES,
    Landscape,
    as_points,
    bowl,
    monkey_saddle,
    ravine,
    rosenbrock,
    saddle,
    wells,
)
from cnnkit.landscape_plots import contour_plot, plot_loss_slice, plot_trajectory_plane, surface_plot  # noqa: F401
from cnnkit.stationary import (  # noqa: F401
    KINDS,
    StationaryPoint,
    classify,
    numerical_gradient,
    numerical_hessian,
    stationary_points,
)
from cnnkit.weight_directions import filter_normalized_directions  # noqa: F401

# --------------------------------------------------------------------------- paths


def values_along(fn: Landscape, path) -> np.ndarray:
    """f at every point of a path (steps + 1, 2) -> (steps + 1,); non-finite points give NaN."""
    path = as_points(path)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = fn.value(path)
    return np.where(np.isfinite(vals), vals, np.nan)


def first_step_below(values, threshold: float):
    """Index of the first value <= threshold (an int), or None when the path never gets there."""
    values = np.asarray(values, dtype=np.float64)
    hits = np.flatnonzero(np.nan_to_num(values, nan=np.inf) <= threshold)
    return int(hits[0]) if hits.size else None


def settle_step(values, threshold: float):
    """First index from which every later value stays <= threshold (an int), or None if the last one is above.

    Unlike :func:`first_step_below`, a path that dips below the threshold and
    bounces out again has not settled.
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=np.inf)
    above = np.flatnonzero(values > threshold)
    if above.size == 0:
        return 0
    last = int(above[-1])
    return None if last == values.size - 1 else last + 1

