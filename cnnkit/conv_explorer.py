"""Pictures and widgets of the sliding window: which input cells one output value reads, and its size.

Lesson 01 draws the geometry of :func:`cnnkit.conv.output_size` with
:func:`draw_conv_geometry` and lets the reader move sliders in
:func:`conv_explorer`. matplotlib and ipywidgets are imported inside the two
functions, so that ``import cnnkit.conv`` (which re-exports both) stays as cheap
as numpy: importing ``matplotlib.pyplot`` and ``ipywidgets`` costs about 0.6 s.
"""
from __future__ import annotations

import html
import io
import threading

from cnnkit.conv_shapes import output_size, padding_amounts

__all__ = ["draw_conv_geometry", "conv_explorer"]


_MAX_DRAWN_CELLS = 64  # cells per side of the drawn input: beyond that the squares are too small to see


def draw_conv_geometry(n: int, f: int, stride: int = 1, padding=0, *, position=(0, 0), ax=None):
    """Draw a square input of size ``n`` (padding shaded), one ``f`` x ``f`` window and the output grid.

    ``position`` (row, col) is the output cell whose window is highlighted.
    Returns the matplotlib Figure. Raises ValueError when the kernel does not fit.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    out = output_size(n, f, stride, padding)
    before, after = padding_amounts(n, f, stride, padding)
    size = n + before + after
    if size > _MAX_DRAWN_CELLS:
        raise ValueError(f"the padded input is {size} cells wide (input {n}, padding {before}+{after}); the picture "
                         f"draws every cell and allows at most {_MAX_DRAWN_CELLS}")
    r, c = (min(max(int(p), 0), out - 1) for p in position)
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), gridspec_kw={"width_ratios": [size, max(out, 1)]})
    else:
        fig, axes = ax.figure, [ax, None]
    left = axes[0]
    for i in range(size):
        for j in range(size):
            inside = before <= i < before + n and before <= j < before + n
            left.add_patch(Rectangle((j, i), 1, 1, facecolor="#dbe9f6" if inside else "#eeeeee",
                                     edgecolor="white" if inside else "#cccccc", hatch=None if inside else "//"))
    covered = stride * (out - 1) + f
    if covered < size:  # cells no window reaches (the floor in the formula)
        for xy, w_, h_ in [((covered, 0), size - covered, size), ((0, covered), size, size - covered)]:
            left.add_patch(Rectangle(xy, w_, h_, facecolor="#d62728", alpha=0.18, edgecolor="#d62728",
                                     linestyle=":", linewidth=1.5))
    left.add_patch(Rectangle((c * stride, r * stride), f, f, facecolor="#ff7f0e", alpha=0.45,
                             edgecolor="#d62728", linewidth=2.5))
    left.set_xlim(0, size)
    left.set_ylim(size, 0)
    left.set_aspect("equal")
    left.set_xticks([])
    left.set_yticks([])
    pad_text = f"padding {before}+{after}" if (before or after) else "no padding"
    left.set_title(f"input {n}x{n} ({pad_text}), kernel {f}x{f}, stride {stride}")
    if axes[1] is not None:
        right = axes[1]
        for i in range(out):
            for j in range(out):
                hit = (i, j) == (r, c)
                right.add_patch(Rectangle((j, i), 1, 1, facecolor="#ff7f0e" if hit else "#c7e9c0",
                                          edgecolor="white"))
        right.set_xlim(0, max(out, 1))
        right.set_ylim(max(out, 1), 0)
        right.set_aspect("equal")
        right.set_xticks([])
        right.set_yticks([])
        right.set_title(f"output {out}x{out}")
    return fig


def conv_explorer(n: int = 7, f: int = 3, stride: int = 1, padding: int = 0):
    """ipywidgets sliders for input size, kernel, stride, padding and window position; returns the widget box.

    Each change prints the output size from :func:`output_size` and redraws
    :func:`draw_conv_geometry`; combinations where the kernel does not fit say so.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    style = {"description_width": "90px"}
    sliders = {
        "n": widgets.IntSlider(n, 1, 16, description="input size", style=style),
        "f": widgets.IntSlider(f, 1, 7, description="kernel", style=style),
        "stride": widgets.IntSlider(stride, 1, 4, description="stride", style=style),
        "padding": widgets.Dropdown(options=[("valid (0)", 0), ("1", 1), ("2", 2), ("3", 3), ("same", "same")],
                                    value=padding, description="padding", style=style),
        "row": widgets.IntSlider(0, 0, 15, description="output row", style=style),
        "col": widgets.IntSlider(0, 0, 15, description="output col", style=style),
    }
    label = widgets.HTML()
    picture = widgets.Image(format="png")
    lock = threading.Lock()  # widget callbacks may arrive on another thread: draw one figure at a time

    def redraw(change=None):
        values = {k: s.value for k, s in sliders.items()}
        with lock:
            try:
                size = output_size(values["n"], values["f"], values["stride"], values["padding"])
            except ValueError as exc:
                label.value = f"<b>{html.escape(str(exc))}</b>"
                return
            label.value = f"<b>output size = {size} x {size}</b>"
            fig = draw_conv_geometry(values["n"], values["f"], values["stride"], values["padding"],
                                     position=(values["row"], values["col"]))
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=80)
            plt.close(fig)
            picture.value = buffer.getvalue()

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([widgets.VBox(list(sliders.values())[:4]),
                                       widgets.VBox(list(sliders.values())[4:])]), label, picture])
