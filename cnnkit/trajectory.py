"""The weights a network visits while it trains, and the plane of their first two principal components.

:class:`WeightTrajectory` is a Keras callback that records the flattened
trainable weights before the first step, every ``every`` steps, and after the
last one. :func:`trajectory_pca` finds the two directions in weight space along
which those checkpoints spread the most around the final weights, with the
share of the spread each explains; :func:`plane_grid` lays a grid over the
projected path. The loss over that plane is
:func:`cnnkit.loss_slices.loss_on_plane`, its figure
:func:`cnnkit.landscape_plots.plot_trajectory_plane`.

Only trainable variables are recorded and moved: batch norm's moving mean and
variance are not weights that gradient descent changes, so they stay at their
final values at every point of the plane (the loss there is the loss the final
network would have with those weights, in inference mode).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit._validate import as_float_array, check_array_bytes, finite_array, positive_int, real
from cnnkit.env import import_tensorflow

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402

__all__ = ["TrajectoryPCA", "WeightTrajectory", "flatten_weights", "plane_grid", "trajectory_pca"]


def flatten_weights(weights) -> np.ndarray:
    """One vector (P,) of all the arrays in ``weights``, in order (P = the total number of weights)."""
    return np.concatenate([np.ravel(np.asarray(w)) for w in weights])


class WeightTrajectory(keras.callbacks.Callback):
    """Record the model's trainable weights, flattened, while ``fit`` runs.

    A checkpoint is taken at the start of training (the initial weights
    w_0), after every ``every``-th optimiser step, and at the end of training
    (the final weights), unless that step was just recorded. ``points`` is the
    list of float32 vectors (P,), ``steps`` the optimiser step of each, and
    :meth:`array` stacks them into (n, P). Memory: 4 P bytes per checkpoint
    (0.4 MB for 100,000 weights).
    """

    def __init__(self, every: int = 1):
        super().__init__()
        self.every = positive_int(every, "every")
        self.points: list[np.ndarray] = []
        self.steps: list[int] = []
        self._step = 0

    def _record(self):
        if self.steps and self.steps[-1] == self._step:
            return
        self.points.append(flatten_weights(v.numpy() for v in self.model.trainable_variables).astype(np.float32))
        self.steps.append(self._step)

    def on_train_begin(self, logs=None):
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every == 0:
            self._record()

    def on_train_end(self, logs=None):
        self._record()

    def array(self) -> np.ndarray:
        """The checkpoints as one array (n, P), in the order they were taken."""
        if not self.points:
            raise ValueError("no weights recorded yet: pass this callback to fit (callbacks=[...]) first")
        return np.stack(self.points)


@dataclass(frozen=True)
class TrajectoryPCA:
    """The principal plane of a trajectory around its final weights.

    ``directions``: two lists of arrays shaped like the weights (unit vectors in
    weight space, orthogonal to each other); ``coords`` (n, 2): each checkpoint's
    coordinates in that plane, in units of weight-space distance; ``ratios``
    (2,): the share of the trajectory's spread about the final weights that each
    direction explains; ``singular_values`` (min(n, P),): all of them, largest first.
    """

    directions: list
    coords: np.ndarray
    ratios: np.ndarray
    singular_values: np.ndarray

    @property
    def explained(self) -> float:
        """The share of the spread the plane explains, ratios[0] + ratios[1] (between 0 and 1)."""
        return float(self.ratios.sum())


def trajectory_pca(points, final) -> TrajectoryPCA:
    """Top-2 principal directions of the checkpoints ``points`` around the final weights ``final``.

    ``points``: (n, P) flattened checkpoints w_i (e.g. :meth:`WeightTrajectory.array`);
    ``final``: the final weights w_f, a list of arrays (the layout of the
    returned directions; a single array counts as one tensor) holding P numbers.
    With the rows m_i = w_i - w_f of M (n, P) and its singular value
    decomposition M = U S V^T (singular values s_1 >= s_2 >= ...):

    * the directions are the first two rows of V^T, reshaped like ``final``;
    * the coordinates are the projections M V[:, :2] (n, 2), so w_f sits at (0, 0);
    * ratio_k = s_k^2 / sum_j s_j^2, the share of sum_i ||w_i - w_f||^2 that
      direction k explains.

    The spread is measured about w_f, not about the mean of the points, so that
    the plane passes through the final weights. The decomposition is computed
    from the small n x n matrix M M^T = U S^2 U^T (then V^T = S^-1 U^T M):
    n^2 P operations, a fraction of a second for 50 checkpoints of 100,000
    weights, where a direct SVD of the wide M takes seconds. When the points lie
    on a line (s_2 = 0), the second direction is any unit vector orthogonal to the
    first, and ratio_2 = 0. Each direction's sign is chosen
    so that the first checkpoint has a coordinate <= 0 on it: training runs
    towards +. Raises ValueError when the points do not match ``final`` in size,
    hold NaN, or all equal ``final`` (no spread to analyse).
    """
    final_list = [np.asarray(final)] if isinstance(final, np.ndarray) else list(final)
    if not final_list:
        raise ValueError("final must hold at least one weight array, got an empty list")
    final_list = [finite_array(as_float_array(w, f"final[{i}]"), f"final[{i}]") for i, w in enumerate(final_list)]
    w_final = flatten_weights(final_list).astype(np.float64)
    points = as_float_array(points, "points", ndim=2, layout="checkpoints n, weights P")
    finite_array(points, "points")
    if points.shape[1] != w_final.size:
        raise ValueError(f"points must have one column per weight: final holds {w_final.size} numbers, "
                         f"points has shape {points.shape}")
    if points.shape[0] < 2:
        raise ValueError(f"points must hold at least 2 checkpoints, got {points.shape[0]}")
    check_array_bytes(points.shape, np.float64, "the checkpoints minus the final weights")
    m = points.astype(np.float64) - w_final
    if not np.any(m):
        raise ValueError("every checkpoint equals final: the weights never moved, so there is no plane to find")
    if w_final.size < 2:
        raise ValueError(f"final must hold at least 2 weights to span a plane, got {w_final.size}")
    s, basis = _top_two_right_singular_vectors(m)
    coords = m @ basis.T
    flip = np.where(coords[0] > 0, -1.0, 1.0)
    basis *= flip[:, None]
    coords *= flip
    ratios = s[:2] ** 2 / np.sum(m * m)
    sizes = np.cumsum([w.size for w in final_list])[:-1]
    directions = [[part.reshape(w.shape) for part, w in zip(np.split(b, sizes), final_list)] for b in basis]
    return TrajectoryPCA(directions=directions, coords=coords, ratios=ratios, singular_values=s)


def _top_two_right_singular_vectors(m):
    """Singular values s (min(n, P),) of m (n, P), largest first, and its first two right singular vectors (2, P)."""
    eigenvalues, u = np.linalg.eigh(m @ m.T)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, u = np.maximum(eigenvalues[order], 0.0), u[:, order]
    s = np.sqrt(eigenvalues)[:min(m.shape)]
    first = u[:, 0] @ m
    first /= np.linalg.norm(first)
    if s[1] > 1e-7 * s[0]:
        second = u[:, 1] @ m
    else:  # rank 1: any unit vector orthogonal to the first will do; start from the axis it leans on least
        s[1:] = 0.0
        second = np.zeros(m.shape[1])
        second[np.argmin(np.abs(first))] = 1.0
    second = second - (second @ first) * first  # Gram-Schmidt: exactly orthogonal to the first
    second /= np.linalg.norm(second)
    return s, np.stack([first, second])


def plane_grid(coords, steps: int, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (steps,) and (steps,) of a grid that covers the points ``coords`` (n, 2) with room around them.

    Each axis runs from the smallest to the largest coordinate (the origin
    included), widened on both sides by ``margin`` times that range.
    """
    coords = finite_array(as_float_array(coords, "coords", ndim=2, layout="points n, 2"), "coords")
    if coords.shape[1] != 2 or coords.shape[0] == 0:
        raise ValueError(f"coords must have shape (n, 2) with n >= 1, got {coords.shape}")
    steps = positive_int(steps, "steps")
    margin = real(margin, "margin", low=0)
    axes = []
    for k in range(2):
        lo, hi = min(coords[:, k].min(), 0.0), max(coords[:, k].max(), 0.0)
        pad = margin * (hi - lo) if hi > lo else 1.0
        axes.append(np.linspace(lo - pad, hi + pad, steps))
    return axes[0], axes[1]
