"""Figures the lessons share: image grids, feature maps, filters, curves, confusion matrices, histograms.

Every function returns the matplotlib ``Figure`` it drew, so a notebook can
save or further annotate it.
"""
from __future__ import annotations

import math

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _as_displayable(image):
    """Scale an (H, W) or (H, W, C) image to something imshow shows faithfully."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        return img
    img = img.astype(np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    lo, hi = np.nanmin(img), np.nanmax(img)
    if img.ndim == 3 and (lo < 0 or hi > 1):
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def _tile_axes(plt, n: int, ncols: int, size: float, title: str | None):
    """A grid of at least ``n`` square panels of ``size`` inches, at most ``ncols`` to a row (room for a title)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    return plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)


def image_grid(images, labels=None, class_names=None, ncols: int = 8, title: str | None = None,
               size: float = 1.4, predictions=None):
    """Show images (N, H, W[, C]) in a grid, captioned with their labels (and predictions, red when wrong)."""
    plt = _plt()
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
    n = images.shape[0]
    fig, axes = _tile_axes(plt, n, ncols, size, title)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = _as_displayable(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        caption, color = "", "black"
        if labels is not None:
            name = lambda k: class_names[int(k)] if class_names is not None else str(int(k))  # noqa: E731
            caption = name(labels[i])
            if predictions is not None:
                caption = f"{name(predictions[i])}\n(true: {caption})"
                color = "black" if int(predictions[i]) == int(labels[i]) else "crimson"
        if caption:
            ax.set_title(caption, fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_maps(maps, ncols: int = 8, title: str | None = None, cmap: str = "viridis",
                 names=None, size: float = 1.6):
    """Show the K channels of one feature map (H, W, K) side by side, each with its own colour scale."""
    plt = _plt()
    maps = np.asarray(maps)
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (H, W, K) (or (1, H, W, K)), got {maps.shape}")
    k = maps.shape[-1]
    fig, axes = _tile_axes(plt, k, ncols, size, title)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            ax.imshow(maps[..., i], cmap=cmap)
            ax.set_title(names[i] if names is not None else f"map {i}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _epoch_panels(plt, n: int):
    """One row of ``n`` panels for per-epoch curves, and the colour cycle (one colour per run)."""
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.6), squeeze=False)
    return fig, axes, plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _epoch_axis(ax, ylabel: str) -> None:
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)


def _finish_panels(fig, axes, title: str | None, runs, styles=(), names=None):
    """Label the panels (a), (b), ... and put one legend below them, off the data.

    ``runs``: (label, colour) per run; ``styles``: (meaning, Line2D keyword arguments) for the
    kinds of curve every run draws, so that each run takes one legend entry however many
    curves it has. ``names``: the panels' titles after their letters (default: their y labels).
    """
    from matplotlib.lines import Line2D

    axes = list(axes)
    names = [ax.get_ylabel() for ax in axes] if names is None else list(names)
    for letter, ax, name in zip("abcdefghijklmnopqrstuvwxyz", axes, names):
        ax.set_title(f"({letter}) {name}", loc="left", fontsize=10)
    handles = [Line2D([], [], color=color, lw=2, label=label) for label, color in runs]
    handles += [Line2D([], [], color="0.35", label=meaning, **style) for meaning, style in styles]
    columns = min(len(handles), 3)
    rows = -(-len(handles) // columns)
    legend_height = 0.2 * rows + 0.05  # inches
    fig.set_figheight(fig.get_figheight() + legend_height)
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, 1))
    return fig


def seed_curves(runs: dict, metrics=("loss", "val_accuracy"), title: str | None = None):
    """Plot every run of :func:`cnnkit.experiments.compare_seeds`: one colour per label, one thin line per seed.

    ``runs`` maps a label to a list of history dicts; the mean over the runs is drawn bold, so
    the spread between seeds is visible next to the difference between labels.
    """
    plt = _plt()
    if not runs:
        raise ValueError("runs is empty: pass {label: [history_dict, ...]}")
    fig, axes, colors = _epoch_panels(plt, len(metrics))
    for ax, metric in zip(axes.flat, metrics):
        for j, (label, histories) in enumerate(runs.items()):
            color = colors[j % len(colors)]
            curves = np.array([h[metric] for h in histories], dtype=float)
            epochs = np.arange(1, curves.shape[1] + 1)
            for curve in curves:
                ax.plot(epochs, curve, "-", lw=0.8, alpha=0.45, color=color)
            ax.plot(epochs, curves.mean(axis=0), "-o", ms=3, lw=2, color=color,
                    label=f"{label} (mean of {len(curves)})")
        _epoch_axis(ax, metric.replace("val_", "validation "))
    runs_shown = [(label, colors[j % len(colors)]) for j, label in enumerate(runs)]
    styles = [("one seed", {"lw": 0.8, "alpha": 0.6}), ("mean over the seeds", {"lw": 2, "marker": "o", "ms": 3})]
    return _finish_panels(fig, axes.flat, title, runs_shown, styles)


def seed_sweep(panels: dict, ylabel: str = "validation accuracy", title: str | None = None,
               threshold: float | None = None):
    """Results of seeded runs against a swept setting: one panel per sweep, log x-axis.

    ``panels`` maps a panel's name (its x-axis label, e.g. "learning rate") to
    ``{curve label: {x: [value of each seed's run]}}``. Every run is drawn as a
    point (jittered a little sideways so that equal values stay visible), the mean
    over the seeds as a line through the x values; a curve label keeps its colour
    in every panel. ``threshold`` draws a dotted horizontal line at that value.
    """
    plt = _plt()
    if not panels or not all(panels.values()):
        raise ValueError("panels must map a panel name to a non-empty {curve label: {x: [values]}}")
    labels = list(dict.fromkeys(label for curves in panels.values() for label in curves))
    fig, axes, colors = _epoch_panels(plt, len(panels))
    color_of = {label: colors[j % len(colors)] for j, label in enumerate(labels)}
    from matplotlib.ticker import NullFormatter

    for ax, (name, curves) in zip(axes.flat, panels.items()):
        for j, (label, by_x) in enumerate(curves.items()):
            xs = sorted(by_x)
            if not xs or min(xs) <= 0 or any(len(by_x[x]) == 0 for x in xs):
                raise ValueError(f"panels[{name!r}][{label!r}] needs positive x values, each with at least one "
                                 f"run, got {by_x!r}")
            shift = 1.06 ** (j - (len(curves) - 1) / 2)
            for x in xs:
                ax.plot([x * shift] * len(by_x[x]), by_x[x], "o", ms=4, alpha=0.5, color=color_of[label])
            ax.plot(xs, [np.mean(by_x[x]) for x in xs], "-", lw=2, color=color_of[label])
        if threshold is not None:
            ax.axhline(threshold, color="0.35", ls=":", lw=1)
        ax.set_xscale("log")
        swept = sorted({x for by_x in curves.values() for x in by_x})
        ax.set_xticks(swept, [f"{x:g}" for x in swept])  # the swept values themselves, not powers of 10
        if len(swept) > 6:  # many values over a few decades: tilt the labels so that they do not run together
            ax.tick_params(axis="x", labelrotation=40)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    styles = [("one run (seed)", {"ls": "none", "marker": "o", "ms": 4, "alpha": 0.5}),
              ("mean over the seeds", {"lw": 2})]
    if threshold is not None:
        styles.append((f"threshold {threshold:g}", {"ls": ":", "lw": 1}))
    return _finish_panels(fig, axes.flat, title, list(color_of.items()), styles, names=list(panels))


def training_curves(histories: dict, metrics=("loss", "accuracy"), title: str | None = None):
    """Plot train (solid) and validation (dashed) curves of several runs, one panel per metric.

    ``histories`` maps a label to a history dict (lists per metric, as returned
    by ``cnnkit.experiments.train`` or ``keras.callbacks.History.history``).
    """
    plt = _plt()
    if not histories:
        raise ValueError("histories is empty: pass {label: history_dict}")
    fig, axes, colors = _epoch_panels(plt, len(metrics))
    for ax, metric in zip(axes.flat, metrics):
        for j, (label, hist) in enumerate(histories.items()):
            color = colors[j % len(colors)]
            if metric in hist:
                epochs = np.arange(1, len(hist[metric]) + 1)
                ax.plot(epochs, hist[metric], "-o", ms=3, color=color, label=f"{label} (train)")
            if f"val_{metric}" in hist:
                epochs = np.arange(1, len(hist[f"val_{metric}"]) + 1)
                ax.plot(epochs, hist[f"val_{metric}"], "--s", ms=3, color=color, label=f"{label} (val)")
        _epoch_axis(ax, metric)
    runs_shown = [(label, colors[j % len(colors)]) for j, label in enumerate(histories)]
    styles = [("training", {"marker": "o", "ms": 3}), ("validation", {"ls": "--", "marker": "s", "ms": 3})]
    return _finish_panels(fig, axes.flat, title, runs_shown, styles)


def confusion_counts(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Confusion matrix C (num_classes, num_classes): C[i, j] = images of class i predicted as j."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_matrix(y_true, y_pred, class_names, normalize: bool = True, title: str | None = None):
    """Draw the confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    plt = _plt()
    k = len(class_names)
    counts = confusion_counts(y_true, y_pred, k)
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    fig, ax = plt.subplots(figsize=(0.62 * k + 2.4, 0.62 * k + 1.6))
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = shown.max() / 2
    for i in range(k):
        for j in range(k):
            text = f"{shown[i, j]:.2f}" if normalize else str(counts[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5,
                    color="white" if shown[i, j] > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    fig.tight_layout()
    return fig


def normalise_each_filter(kernel) -> np.ndarray:
    """Rescale every filter of a convolution kernel to [0, 1] on its own: ``(w - min_k) / (max_k - min_k)``.

    ``kernel`` has Keras' layout (F_h, F_w, C_in, K); returns (K, F_h, F_w, C_in), one tile per filter,
    each stretched over its own minimum and maximum (a constant filter becomes 0.5 everywhere), so
    that weak and strong filters are both visible and 0.5 is not necessarily zero.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must have shape (F_h, F_w, C_in, K), got {kernel.shape}")
    tiles = np.moveaxis(kernel, -1, 0)
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (tiles - lo) / np.where(span > 0, span, 1), 0.5)


def filter_tiles(kernel, ncols: int = 8, title: str | None = None, size: float = 0.9):
    """Show the K filters of a first convolution (F, F, 3, K) as small RGB tiles, each on its own range.

    A kernel with one input channel (F, F, 1, K) is shown in grey. See :func:`normalise_each_filter`.
    """
    plt = _plt()
    tiles = normalise_each_filter(kernel)
    if tiles.shape[-1] not in (1, 3):
        raise ValueError(f"kernel must have 1 or 3 input channels to be shown as images, got {tiles.shape[-1]} "
                         f"(shape {np.shape(kernel)})")
    k = tiles.shape[0]
    fig, axes = _tile_axes(plt, k, ncols, size, title)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            tile = tiles[i, ..., 0] if tiles.shape[-1] == 1 else tiles[i]
            ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def channel_histograms(x, title: str | None = None, ax=None, bins: int = 64, max_values: int = 2_000_000):
    """Histogram of each colour channel of images (N, H, W, C), drawn as outlines in R, G, B."""
    plt = _plt()
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, H, W, C), got {x.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    else:
        fig = ax.figure
    step = max(1, x[..., 0].size // max_values)
    colors = ("tab:red", "tab:green", "tab:blue") if x.shape[-1] == 3 else [None] * x.shape[-1]
    names = ("R", "G", "B") if x.shape[-1] == 3 else [f"c{i}" for i in range(x.shape[-1])]
    for c in range(x.shape[-1]):
        values = x[..., c].ravel()[::step].astype(np.float32)
        ax.hist(values, bins=bins, histtype="step", color=colors[c], label=names[c], density=True)
    ax.set_xlabel("value")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


class LiveCurves:
    """A Keras callback that redraws loss/accuracy curves in the notebook after every epoch.

    Outside a notebook it draws nothing and just collects the history in ``self.history``.
    """

    def __new__(cls, *args, **kwargs):
        import keras

        class _LiveCurves(keras.callbacks.Callback):
            def __init__(self, metrics=("loss", "accuracy"), title=None):
                super().__init__()
                self.metrics = tuple(metrics)
                self.title = title
                self.history: dict[str, list[float]] = {}
                self._handle = None

            def on_epoch_end(self, epoch, logs=None):
                for key, value in (logs or {}).items():
                    self.history.setdefault(key, []).append(float(value))
                try:
                    from IPython import get_ipython
                    from IPython.display import display
                except ImportError:
                    return
                if get_ipython() is None:
                    return
                plt = _plt()
                fig = training_curves({"run": self.history}, self.metrics, title=self.title)
                if self._handle is None:
                    self._handle = display(fig, display_id=True)
                else:
                    self._handle.update(fig)
                plt.close(fig)

        return _LiveCurves(*args, **kwargs)
