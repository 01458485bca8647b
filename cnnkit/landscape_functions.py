"""Two-dimensional test functions for the optimizer lessons: value, gradient and Hessian of each.

A :class:`Landscape` evaluates points ``p`` of shape ``(..., 2)`` (one point, a
path, or a whole plotting grid): ``value`` returns shape ``(...)``,
``gradient`` ``(..., 2)`` and ``hessian`` ``(..., 2, 2)``. The functions
(:func:`bowl`, :func:`ravine`, :func:`saddle`, :func:`wells`,
:func:`rosenbrock`, :func:`monkey_saddle`) are listed with their formulas and
stationary points in :mod:`cnnkit.landscapes`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cnnkit._validate import as_float_array, positive_int, real

__all__ = ["LANDSCAPES", "Landscape", "as_bounds", "as_points", "bowl", "monkey_saddle", "ravine", "rosenbrock", "saddle", "wells"]


def as_points(p) -> np.ndarray:
    """``p`` as a float64 array of points, shape ``(..., 2)`` with (x, y) on the last axis; raise otherwise."""
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
        p = as_points(p)
        return self._value(p[..., 0], p[..., 1])

    def gradient(self, p) -> np.ndarray:
        """[df/dx, df/dy]: shape (..., 2)."""
        p = as_points(p)
        gx, gy = self._gradient(p[..., 0], p[..., 1])
        return np.stack(np.broadcast_arrays(gx, gy), axis=-1)

    def hessian(self, p) -> np.ndarray:
        """[[f_xx, f_xy], [f_xy, f_yy]]: shape (..., 2, 2)."""
        p = as_points(p)
        hxx, hxy, hyy = np.broadcast_arrays(*self._hessian(p[..., 0], p[..., 1]))
        return np.stack([np.stack([hxx, hxy], -1), np.stack([hxy, hyy], -1)], -2)

    __call__ = value

    def expression(self, x, y):
        """The formula applied to x and y as given (numpy arrays, or TensorFlow tensors for autodiff)."""
        return self._value(x, y)

    def grid(self, n: int = 200, bounds=None):
        """``(X, Y, Z)`` on an n x n grid over ``bounds`` (default: the function's window); each (n, n)."""
        n = positive_int(n, "n")
        (x0, x1), (y0, y1) = as_bounds(bounds if bounds is not None else self.bounds)
        X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        return X, Y, self.value(np.stack([X, Y], axis=-1))


def as_bounds(bounds):
    """``((x_min, x_max), (y_min, y_max))`` as floats with min < max on both axes; raise otherwise."""
    try:
        (x0, x1), (y0, y1) = bounds
        x0, x1, y0, y1 = (float(v) for v in (x0, x1, y0, y1))
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be ((x_min, x_max), (y_min, y_max)), got {bounds!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"bounds must have min < max on both axes, got {bounds!r}")
    return (x0, x1), (y0, y1)



def _positive(value, name: str) -> float:
    return real(value, name, low=0, low_open=True)


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
    a, b = real(a, "a"), real(b, "b")
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
    a, b = real(a, "a"), _positive(b, "b")
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
