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
optimizer paths; :func:`loss_slice` evaluates a Keras model's loss on the
plane spanned by two random, filter-normalised directions around its weights
(Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnnkit._validate import as_float_array, positive_int

KINDS = ("minimum", "maximum", "saddle", "degenerate")
_MARKERS = {"minimum": ("o", "tab:green"), "maximum": ("^", "tab:red"),
            "saddle": ("X", "tab:orange"), "degenerate": ("s", "tab:purple")}


# --------------------------------------------------------------------------- test functions


def _points(p) -> np.ndarray:
    arr = as_float_array(p, "p")
    if arr.ndim == 0 or arr.shape[-1] != 2:
        raise ValueError(f"p must have shape (..., 2) (points (x, y) on the last axis), got shape {arr.shape}")
    return arr.astype(np.float64)


@dataclass(frozen=True)
class Landscape:
    """A 2-D function with its gradient and Hessian, vectorised over points of shape (..., 2).

    ``bounds`` is the plotting window ``((x_min, x_max), (y_min, y_max))``;
    ``minimum`` the global minimiser (or None); ``log_levels`` asks contour
    plots for log-spaced levels (for functions whose range spans decades);
    ``axis_names`` label the plots' axes (the two weights).
    """

    name: str
    formula: str
    _value: Callable = field(repr=False)
    _gradient: Callable = field(repr=False)
    _hessian: Callable = field(repr=False)
    bounds: tuple = ((-2.0, 2.0), (-2.0, 2.0))
    minimum: tuple | None = None
    log_levels: bool = False
    axis_names: tuple = ("x", "y")

    def value(self, p) -> np.ndarray:
        """f(p): shape (...) for p of shape (..., 2)."""
        p = _points(p)
        return self._value(p[..., 0], p[..., 1])

    def gradient(self, p) -> np.ndarray:
        """[df/dx, df/dy]: shape (..., 2)."""
        p = _points(p)
        gx, gy = self._gradient(p[..., 0], p[..., 1])
        return np.stack(np.broadcast_arrays(gx, gy), axis=-1)

    def hessian(self, p) -> np.ndarray:
        """[[f_xx, f_xy], [f_xy, f_yy]]: shape (..., 2, 2)."""
        p = _points(p)
        hxx, hxy, hyy = np.broadcast_arrays(*self._hessian(p[..., 0], p[..., 1]))
        return np.stack([np.stack([hxx, hxy], -1), np.stack([hxy, hyy], -1)], -2)

    __call__ = value

    def expression(self, x, y):
        """The formula applied to x and y as given (numpy arrays, or TensorFlow tensors for autodiff)."""
        return self._value(x, y)

    def grid(self, n: int = 200, bounds=None):
        """``(X, Y, Z)`` on an n x n grid over ``bounds`` (default: the function's window); each (n, n)."""
        n = positive_int(n, "n")
        (x0, x1), (y0, y1) = _bounds(bounds if bounds is not None else self.bounds)
        X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        return X, Y, self.value(np.stack([X, Y], axis=-1))


def _bounds(bounds):
    try:
        (x0, x1), (y0, y1) = bounds
        x0, x1, y0, y1 = (float(v) for v in (x0, x1, y0, y1))
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be ((x_min, x_max), (y_min, y_max)), got {bounds!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"bounds must have min < max on both axes, got {bounds!r}")
    return (x0, x1), (y0, y1)


def _positive(value, name):
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def bowl() -> Landscape:
    """Convex bowl f = (x^2 + y^2)/2; gradient (x, y); Hessian I; minimum at 0."""
    return Landscape(
        "bowl", r"$(x^2 + y^2)/2$",
        lambda x, y: 0.5 * (x ** 2 + y ** 2),
        lambda x, y: (x, y),
        lambda x, y: (np.ones_like(x), np.zeros_like(x), np.ones_like(x)),
        bounds=((-2.0, 2.0), (-2.0, 2.0)), minimum=(0.0, 0.0))


def ravine(condition: float = 20.0) -> Landscape:
    """Ill-conditioned quadratic f = (x^2 + k y^2)/2 with k = ``condition``.

    Hessian diag(1, k): steep across the ravine (y), shallow along it (x).
    Gradient descent converges only for lr < 2/k and then needs about
    1/lr steps along x: the ratio k of the curvatures (the condition number)
    is what makes it slow.
    """
    k = _positive(condition, "condition")
    return Landscape(
        f"ravine (k={k:g})", rf"$(x^2 + {k:g}\,y^2)/2$",
        lambda x, y: 0.5 * (x ** 2 + k * y ** 2),
        lambda x, y: (x, k * y),
        lambda x, y: (np.ones_like(x), np.zeros_like(x), np.full_like(x, k)),
        bounds=((-5.0, 5.0), (-1.5, 1.5)), minimum=(0.0, 0.0))


def saddle() -> Landscape:
    """f = x^2 - y^2: a minimum along x, a maximum along y; saddle point at 0 (Hessian diag(2, -2))."""
    return Landscape(
        "saddle", r"$x^2 - y^2$",
        lambda x, y: x ** 2 - y ** 2,
        lambda x, y: (2 * x, -2 * y),
        lambda x, y: (np.full_like(x, 2.0), np.zeros_like(x), np.full_like(x, -2.0)),
        bounds=((-2.0, 2.0), (-2.0, 2.0)), minimum=None)


def wells(a: float = 0.3, b: float = 0.2) -> Landscape:
    """Four tilted wells f = (x^2 - 1)^2 + (y^2 - 1)^2 + a x + b y.

    Each coordinate has two minima near +-1 (the tilt makes the one at -1
    deeper) and a maximum near 0, so the plane has 4 local minima (one of them
    global), 4 saddle points and 1 maximum. Hessian diag(12x^2 - 4, 12y^2 - 4).
    """
    a, b = float(a), float(b)
    fn = Landscape(
        "wells", rf"$(x^2-1)^2 + (y^2-1)^2 + {a:g}x + {b:g}y$",
        lambda x, y: (x ** 2 - 1) ** 2 + (y ** 2 - 1) ** 2 + a * x + b * y,
        lambda x, y: (4 * x * (x ** 2 - 1) + a, 4 * y * (y ** 2 - 1) + b),
        lambda x, y: (12 * x ** 2 - 4, np.zeros_like(x), 12 * y ** 2 - 4),
        bounds=((-1.8, 1.8), (-1.8, 1.8)))
    # global minimum: the deepest root of 4t^3 - 4t + c on each axis
    xs = [r.real for r in np.roots([4, 0, -4, a]) if abs(r.imag) < 1e-12]
    ys = [r.real for r in np.roots([4, 0, -4, b]) if abs(r.imag) < 1e-12]
    best = min(((x, y) for x in xs for y in ys), key=lambda q: float(fn.value(q)))
    return dataclasses.replace(fn, minimum=(float(best[0]), float(best[1])))


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    """Rosenbrock's banana f = (a - x)^2 + b (y - x^2)^2; minimum 0 at (a, a^2) at the end of a curved valley."""
    a, b = float(a), _positive(b, "b")
    return Landscape(
        "Rosenbrock", rf"$({a:g} - x)^2 + {b:g}\,(y - x^2)^2$",
        lambda x, y: (a - x) ** 2 + b * (y - x ** 2) ** 2,
        lambda x, y: (-2 * (a - x) - 4 * b * x * (y - x ** 2), 2 * b * (y - x ** 2)),
        lambda x, y: (2 - 4 * b * (y - x ** 2) + 8 * b * x ** 2, -4 * b * x, np.full_like(x, 2 * b)),
        bounds=((-2.0, 2.0), (-1.0, 3.0)), minimum=(a, a * a), log_levels=True)


def monkey_saddle() -> Landscape:
    """f = x^3 - 3 x y^2: gradient and Hessian both vanish at 0 (a degenerate stationary point)."""
    return Landscape(
        "monkey saddle", r"$x^3 - 3xy^2$",
        lambda x, y: x ** 3 - 3 * x * y ** 2,
        lambda x, y: (3 * x ** 2 - 3 * y ** 2, -6 * x * y),
        lambda x, y: (6 * x, -6 * y, -6 * x),
        bounds=((-1.5, 1.5), (-1.5, 1.5)))


LANDSCAPES = {"bowl": bowl, "ravine": ravine, "saddle": saddle, "wells": wells,
              "rosenbrock": rosenbrock, "monkey_saddle": monkey_saddle}


# --------------------------------------------------------------------------- derivatives by finite differences


def numerical_gradient(f: Callable, p, h: float = 1e-6) -> np.ndarray:
    """Central differences (f(p + h e_i) - f(p - h e_i)) / 2h for one point p of shape (d,); error O(h^2)."""
    p = as_float_array(p, "p", ndim=1).astype(np.float64)
    grad = np.empty_like(p)
    for i in range(p.size):
        e = np.zeros_like(p)
        e[i] = h
        grad[i] = (float(f(p + e)) - float(f(p - e))) / (2 * h)
    return grad


def numerical_hessian(grad: Callable, p, h: float = 1e-5) -> np.ndarray:
    """Hessian (d, d) at p by central differences of the gradient, symmetrised."""
    p = as_float_array(p, "p", ndim=1).astype(np.float64)
    cols = []
    for i in range(p.size):
        e = np.zeros_like(p)
        e[i] = h
        cols.append((np.asarray(grad(p + e)) - np.asarray(grad(p - e))) / (2 * h))
    H = np.stack(cols, axis=1)
    return 0.5 * (H + H.T)


# --------------------------------------------------------------------------- stationary points


def classify(hessian, tol: float = 1e-8) -> str:
    """Name a stationary point from the eigenvalues of its Hessian (d, d).

    * all eigenvalues > 0: ``"minimum"`` (curves up in every direction);
    * all < 0: ``"maximum"``;
    * some > 0 and some < 0: ``"saddle"`` (up along some directions, down along others);
    * otherwise (an eigenvalue is 0, none of the opposite sign): ``"degenerate"``,
      where the second-derivative test cannot decide.

    "Zero" means ``|lambda| <= tol * max(1, max |lambda|)``. Look at the
    eigenvalues, not the diagonal: [[1, 2], [2, 1]] has a positive diagonal but
    eigenvalues 3 and -1 (a saddle).
    """
    H = as_float_array(hessian, "hessian", ndim=2, layout="a square (d, d) matrix").astype(np.float64)
    if H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"hessian must be a square (d, d) matrix, got shape {H.shape}")
    if not np.all(np.isfinite(H)):
        raise ValueError("hessian contains NaN or infinity")
    scale = max(1.0, float(np.abs(H).max()))
    if not np.allclose(H, H.T, rtol=0, atol=1e-6 * scale):
        raise ValueError(f"hessian must be symmetric (f_xy = f_yx), got {H.tolist()}")
    lam = np.linalg.eigvalsh(0.5 * (H + H.T))
    zero = tol * max(1.0, float(np.abs(lam).max()))
    pos, neg = bool(np.any(lam > zero)), bool(np.any(lam < -zero))
    if pos and neg:
        return "saddle"
    if np.all(lam > zero):
        return "minimum"
    if np.all(lam < -zero):
        return "maximum"
    return "degenerate"


@dataclass(frozen=True)
class StationaryPoint:
    """A point where the gradient vanishes, with its value, Hessian eigenvalues and kind."""

    point: tuple
    value: float
    eigenvalues: tuple
    kind: str


def stationary_points(fn: Landscape, bounds=None, n: int = 15, tol: float = 1e-10,
                      max_iter: int = 100) -> list[StationaryPoint]:
    """Find the stationary points of ``fn`` inside ``bounds`` with Newton's method from an n x n grid of starts.

    Newton's step p <- p - H(p)^{-1} grad f(p) jumps to the stationary point of
    the local quadratic model, whatever its kind, so starting from many places
    finds minima, maxima and saddles alike. Converged points (|grad| <= tol)
    inside the window are deduplicated (within 1e-6 of the window size) and
    returned sorted by value.
    """
    n = positive_int(n, "n")
    (x0, x1), (y0, y1) = _bounds(bounds if bounds is not None else fn.bounds)
    size = max(x1 - x0, y1 - y0)
    X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    P = np.stack([X.ravel(), Y.ravel()], axis=1)
    active = np.ones(len(P), dtype=bool)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(max_iter):
            if not active.any():
                break
            g = fn.gradient(P[active])
            H = fn.hessian(P[active])
            det = H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] * H[:, 1, 0]
            ok = np.abs(det) > 1e-300
            # Newton step delta = H^{-1} g, with the 2 x 2 inverse written out (vectorised over starts)
            dx = (H[:, 1, 1] * g[:, 0] - H[:, 0, 1] * g[:, 1]) / np.where(ok, det, 1.0)
            dy = (H[:, 0, 0] * g[:, 1] - H[:, 1, 0] * g[:, 0]) / np.where(ok, det, 1.0)
            delta = np.where(ok[:, None], np.stack([dx, dy], axis=1), 0.0)
            idx = np.flatnonzero(active)
            P[idx] -= delta
            # keep going past |grad| <= tol: at a degenerate point Newton only halves the distance per step
            done = (~ok | ~np.any(g, axis=1)
                    | ~np.all(np.isfinite(P[idx]), axis=1) | (np.abs(P[idx]).max(axis=1) > 1e6 * size)
                    | (np.linalg.norm(delta, axis=1) <= 1e-14 * size))
            active[idx[done]] = False
        grad_norm = np.linalg.norm(fn.gradient(P), axis=1)
    keep = (np.all(np.isfinite(P), axis=1) & (grad_norm <= tol)
            & (P[:, 0] >= x0 - 1e-9) & (P[:, 0] <= x1 + 1e-9) & (P[:, 1] >= y0 - 1e-9) & (P[:, 1] <= y1 + 1e-9))
    found: list[np.ndarray] = []
    for p in P[keep]:
        if all(np.linalg.norm(p - q) > 1e-6 * size for q in found):
            found.append(p)
    points = []
    for p in found:
        H = fn.hessian(p)
        points.append(StationaryPoint(
            point=(float(p[0]), float(p[1])), value=float(fn.value(p)),
            eigenvalues=tuple(float(v) for v in np.linalg.eigvalsh(H)), kind=classify(H)))
    return sorted(points, key=lambda s: (s.value, s.point))


# --------------------------------------------------------------------------- paths


def values_along(fn: Landscape, path) -> np.ndarray:
    """f at every point of a path (steps + 1, 2) -> (steps + 1,); non-finite points give NaN."""
    path = _points(path)
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


# --------------------------------------------------------------------------- plots


def _levels(Z, levels: int, log: bool):
    if log:
        zmin = float(np.nanmin(Z))
        span = float(np.nanmax(Z)) - zmin
        return zmin + np.geomspace(span * 1e-4, span, levels)
    return np.linspace(float(np.nanmin(Z)), float(np.nanmax(Z)), levels)


def _draw_paths(ax, paths, fn=None, three_d=False):
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]  # same colours as the convergence curves
    for j, (label, path) in enumerate(paths.items()):
        path = _points(path)
        if path.ndim != 2:
            raise ValueError(f"path {label!r} must have shape (steps + 1, 2), got {path.shape}")
        path = path[np.all(np.isfinite(path), axis=1)]
        color = colors[j % len(colors)]
        if three_d:
            z = fn.value(path)
            ax.plot(path[:, 0], path[:, 1], z, "-", color=color, lw=1.5, label=label, zorder=10)
            ax.scatter(path[-1:, 0], path[-1:, 1], z[-1:], color=color, marker="*", s=60, zorder=11)
        else:
            ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.4, marker=".", ms=3, label=label)
            ax.plot(path[0, 0], path[0, 1], "o", color=color, mfc="white", ms=6)
            ax.plot(path[-1, 0], path[-1, 1], "*", color=color, ms=11, mec="black", mew=0.5)


def contour_plot(fn: Landscape, paths: dict | None = None, points=None, *, bounds=None, n: int = 200,
                 levels: int = 30, log_levels: bool | None = None, ax=None, title: str | None = None,
                 legend: bool = True):
    """Contour lines of ``fn`` with optimizer paths and stationary points; returns the Figure.

    ``paths`` maps a label to a path (steps + 1, 2) (e.g. from
    :func:`cnnkit.optim.minimize`): drawn as a line from an open circle (start)
    to a star (end). ``points`` is a list of :class:`StationaryPoint`, marked by
    kind. Equally spaced levels keep the rule "close lines = steep slope";
    ``log_levels`` (default: the function's own choice) spaces them
    geometrically above the minimum, for functions whose values span decades.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5))
    else:
        fig = ax.figure
    bounds = _bounds(bounds if bounds is not None else fn.bounds)
    X, Y, Z = fn.grid(n, bounds)
    log = fn.log_levels if log_levels is None else bool(log_levels)
    cs = ax.contour(X, Y, Z, levels=_levels(Z, positive_int(levels, "levels"), log), cmap="viridis",
                    linewidths=0.8)
    if not log:
        fig.colorbar(cs, ax=ax, label="f(x, y)", shrink=0.85)
    if paths:
        _draw_paths(ax, paths)
    if points:
        shown = set()
        for s in points:
            marker, color = _MARKERS[s.kind]
            ax.plot(*s.point, marker=marker, color=color, ms=10, mec="black", ls="none",
                    label=s.kind if s.kind not in shown else None, zorder=12)
            shown.add(s.kind)
    if fn.minimum is not None and not points:
        ax.plot(*fn.minimum, "+", color="black", ms=12, mew=2, label="minimum")
    ax.set_xlim(bounds[0])
    ax.set_ylim(bounds[1])
    ax.set_xlabel(fn.axis_names[0])
    ax.set_ylabel(fn.axis_names[1])
    ax.set_title(title if title is not None else f"{fn.name}: {fn.formula}")
    if legend and (paths or points or fn.minimum is not None):
        ax.legend(fontsize=8, loc="best")
    return fig


def surface_plot(fn: Landscape, paths: dict | None = None, *, bounds=None, n: int = 80, ax=None,
                 title: str | None = None, elev: float = 35, azim: float = -60, zclip: float | None = None):
    """3-D surface of ``fn`` (optionally with paths drawn on it); returns the Figure.

    ``zclip`` caps the plotted height, so that a steep rim does not flatten the
    interesting part (Rosenbrock).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig = plt.figure(figsize=(6.5, 5))
        ax = fig.add_subplot(projection="3d")
    else:
        fig = ax.figure
    X, Y, Z = fn.grid(n, bounds if bounds is not None else fn.bounds)
    if zclip is not None:
        Z = np.minimum(Z, zclip)
    ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.75, linewidth=0, antialiased=True)
    if paths:
        _draw_paths(ax, paths, fn, three_d=True)
        ax.legend(fontsize=8)
    ax.view_init(elev=elev, azim=azim)
    ax.set_xlabel(fn.axis_names[0])
    ax.set_ylabel(fn.axis_names[1])
    ax.set_zlabel("f")
    ax.set_title(title if title is not None else f"{fn.name}: {fn.formula}")
    return fig


# --------------------------------------------------------------------------- a real network's loss


def filter_normalized_directions(weights, seed: int = 0, count: int = 2) -> list[list[np.ndarray]]:
    """``count`` random directions in weight space, each scaled filter by filter like the weights.

    For every weight array of rank >= 2 (Conv2D kernels (kh, kw, c_in, c_out),
    Dense kernels (n_in, n_out)) a Gaussian direction d is drawn and each
    filter (the slice ``[..., j]`` feeding output unit j) is rescaled so that
    ||d[..., j]|| = ||w[..., j]||. Biases and other rank-1 arrays get a zero
    direction (they stay at their trained values). Without this rescaling,
    layers with small weights would be moved relatively much further than
    layers with large ones and the slice would mislead.
    """
    rng = np.random.default_rng(seed)
    dirs = []
    for _ in range(positive_int(count, "count")):
        d_list = []
        for w in weights:
            w = np.asarray(w, dtype=np.float64)
            if w.ndim < 2:
                d_list.append(np.zeros_like(w))
                continue
            d = rng.standard_normal(w.shape)
            axes = tuple(range(w.ndim - 1))
            w_norm = np.sqrt(np.sum(w ** 2, axis=axes, keepdims=True))
            d_norm = np.sqrt(np.sum(d ** 2, axis=axes, keepdims=True))
            d_list.append(d * w_norm / np.maximum(d_norm, 1e-12))
        dirs.append(d_list)
    return dirs


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
    import time

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
    span = float(span)
    if not span > 0:
        raise ValueError(f"span must be > 0, got {span}")
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
    import keras

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


def plot_loss_slice(sl: LossSlice, title: str | None = None, zclip: float | None = None):
    """Three panels: loss contours, error-rate contours, and the loss as a 3-D surface; returns the Figure."""
    import matplotlib.pyplot as plt

    A, B = np.meshgrid(sl.alpha, sl.beta, indexing="ij")
    loss = sl.loss if zclip is None else np.minimum(sl.loss, zclip)
    fig = plt.figure(figsize=(15, 4.4))
    ax1 = fig.add_subplot(1, 3, 1)
    cs = ax1.contour(A, B, loss, levels=20, cmap="viridis")
    ax1.clabel(cs, fontsize=7, fmt="%.2f")
    ax1.plot(0, 0, "*", color="red", ms=12, label="trained weights")
    ax1.set_title("loss (cross-entropy)")
    ax1.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 3, 2)
    im = ax2.contourf(A, B, sl.error, levels=20, cmap="magma")
    fig.colorbar(im, ax=ax2, label="error rate")
    ax2.plot(0, 0, "*", color="cyan", ms=12)
    ax2.set_title("error rate (1 - accuracy)")
    for ax in (ax1, ax2):
        ax.set_xlabel(r"$\alpha$ (direction 1)")
        ax.set_ylabel(r"$\beta$ (direction 2)")
    ax3 = fig.add_subplot(1, 3, 3, projection="3d")
    ax3.plot_surface(A, B, loss, cmap="viridis", alpha=0.85, linewidth=0)
    ax3.set_xlabel(r"$\alpha$")
    ax3.set_ylabel(r"$\beta$")
    ax3.set_zlabel("loss")
    ax3.set_title("loss surface")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
