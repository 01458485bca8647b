"""Figures of loss surfaces: contour and 3-D plots with optimizer paths, and planes through a network's loss.

matplotlib is imported when a figure is drawn, not when this module is
imported, so the numpy-only lessons that import :mod:`cnnkit.landscapes` start
without it.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import positive_int
from cnnkit.landscape_functions import Landscape, as_bounds, as_points

__all__ = ["contour_plot", "plot_loss_slice", "plot_trajectory_plane", "surface_plot"]

_MARKERS = {"minimum": ("o", "tab:green"), "maximum": ("^", "tab:red"),
            "saddle": ("X", "tab:orange"), "degenerate": ("s", "tab:purple")}


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
        path = as_points(path)
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
    bounds = as_bounds(bounds if bounds is not None else fn.bounds)
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



def plot_loss_slice(sl, title: str | None = None, zclip: float | None = None):
    """Three panels: loss contours, error-rate contours, and the loss as a 3-D surface; returns the Figure.

    ``sl`` is a :class:`cnnkit.loss_slices.LossSlice` (``loss[i, j]`` at ``(alpha[i], beta[j])``).
    """
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


def plot_trajectory_plane(plane, pca, random_slice=None, *, title: str | None = None, zclip: float | None = None,
                          dpi: int = 100):
    """The loss over a training trajectory's principal plane, with the projected path; returns the Figure.

    ``plane`` is the :class:`cnnkit.loss_slices.LossSlice` of
    :func:`cnnkit.loss_slices.loss_on_plane` over the two directions of ``pca``
    (a :class:`cnnkit.trajectory.TrajectoryPCA`), whose ``coords`` (n, 2) are
    drawn from the initial weights (open circle) to the final ones (star, at the
    origin). With ``random_slice`` (a :func:`cnnkit.loss_slices.loss_slice`
    result on the same images) the random filter-normalised slice is drawn in a
    first panel. Both panels share one colour scale, from the lowest loss to
    ``zclip`` (default: the largest loss of either panel; higher values take the
    top colour), with levels spaced geometrically above the lowest loss and one
    colour per band between levels, so that the low valleys show their shape
    next to high rims. The legend sits
    below the panels, off the data.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm

    coords = as_points(pca.coords)
    if coords.ndim != 2:
        raise ValueError(f"pca.coords must have shape (n, 2), got {coords.shape}")
    slices = [s for s in (random_slice, plane) if s is not None]
    low = min(float(np.min(s.loss)) for s in slices)
    high = max(float(np.max(s.loss)) for s in slices) if zclip is None else float(zclip)
    if not high > low:
        raise ValueError(f"zclip must be above the lowest loss {low:.4g}, got {high:.4g}")
    # levels spaced geometrically above the lowest loss: fine near the minima, coarse on the high rims
    levels = low + np.concatenate([[0.0], np.geomspace((high - low) * 1e-3, high - low, 20)])
    # one colour per band between levels (not per loss value), so the narrow low bands get distinct colours
    norm = BoundaryNorm(levels, plt.get_cmap("viridis").N, extend="max")
    fig, axes = plt.subplots(1, len(slices), figsize=(6.2 * len(slices) + 1, 5.4), dpi=positive_int(dpi, "dpi"),
                             squeeze=False, layout="constrained")
    axes = axes[0]
    for ax, sl in zip(axes, slices):
        A, B = np.meshgrid(sl.alpha, sl.beta, indexing="ij")
        filled = ax.contourf(A, B, np.minimum(sl.loss, high), levels=levels, cmap="viridis", norm=norm, extend="max")
        ax.contour(A, B, np.minimum(sl.loss, high), levels=levels[::2], colors="white", linewidths=0.5, alpha=0.6)
    if random_slice is not None:
        axes[0].plot(0, 0, "*", color="red", ms=14, mec="black", mew=0.6)
        axes[0].set_xlabel(r"$\alpha$ (random filter-normalised direction 1)")
        axes[0].set_ylabel(r"$\beta$ (random filter-normalised direction 2)")
        axes[0].set_title("random plane through the trained weights")
    ax = axes[-1]
    ax.plot(coords[:, 0], coords[:, 1], "-", color="tab:orange", lw=1.6, marker="o", ms=3.5, mec="white", mew=0.5,
            label="training path (checkpoints, projected)")
    ax.plot(coords[0, 0], coords[0, 1], "o", color="tab:orange", mfc="white", mew=2, ms=9, label="initial weights")
    ax.plot(0, 0, "*", color="red", ms=14, mec="black", mew=0.6, label="trained weights")
    ax.set_xlabel(f"PC 1 ({pca.ratios[0]:.1%} of the spread), weight-space distance")
    ax.set_ylabel(f"PC 2 ({pca.ratios[1]:.1%} of the spread), weight-space distance")
    ax.set_title(f"plane of the training path (PCA: {pca.explained:.1%} explained)")
    fig.colorbar(filled, ax=list(axes), label="loss (cross-entropy), levels spaced geometrically", shrink=0.9,
                 ticks=levels[::3], format="%.4g")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
