"""Stationary points of a function of two weights: finite-difference derivatives, Hessian test, Newton search.

:func:`classify` names a stationary point from the eigenvalues of its Hessian
(minimum, maximum, saddle, or degenerate where the second-derivative test
cannot decide); :func:`stationary_points` finds all of a :class:`Landscape`'s
stationary points inside a window with Newton's method from a grid of starts;
:func:`numerical_gradient` and :func:`numerical_hessian` check hand-written
derivatives by central differences.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import as_float_array, positive_int
from cnnkit.landscape_functions import Landscape, as_bounds

__all__ = ["KINDS", "StationaryPoint", "classify", "numerical_gradient", "numerical_hessian", "stationary_points"]

KINDS = ("minimum", "maximum", "saddle", "degenerate")


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
    (x0, x1), (y0, y1) = as_bounds(bounds if bounds is not None else fn.bounds)
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

