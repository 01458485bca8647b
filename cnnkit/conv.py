"""2-D convolution as CNNs compute it: a loop for reading, a vectorised version for use, output sizes.

Layouts are TensorFlow's: images ``x`` are NHWC (batch, height, width,
channels) and kernels ``w`` are HWIO (kernel height, kernel width, input
channels, output channels = number of filters K).

What a convolutional layer computes is a **cross-correlation** (the kernel is
not flipped)::

    y[n, i, j, k] = b[k] + sum_{u, v, c} xp[n, i*sh + u, j*sw + v, c] * w[u, v, c, k]

where ``xp`` is ``x`` zero-padded and ``(sh, sw)`` the stride. Flipping the
kernel (``w[::-1, ::-1]``) turns it into the convolution of signal processing.

Output size along one axis (input n, kernel f, stride s, padding p per side)::

    n_out = floor((n + 2p - f) / s) + 1            # "valid" is p = 0
    n_out = ceil(n / s)                            # "same" (TensorFlow's rule)

For "same", TensorFlow pads ``max((n_out - 1) * s + f - n, 0)`` zeros in total,
half before and the rest (the odd one) after: bottom / right.

Exercise 1's helper :func:`trace_shapes` follows an (H, W, C) volume through a
list of layer specs; a spec is a dict, made most easily with :func:`conv_spec`
and :func:`pool_spec`::

    trace_shapes((32, 32, 3), [conv_spec(32, 3, padding="same"), pool_spec(2)])
    # -> [(32, 32, 32), (16, 16, 32)]
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnkit._validate import as_float_array, check_array_bytes, non_negative_int, pair, positive_int

PADDINGS = ("valid", "same")

__all__ = [
    "conv2d", "conv2d_naive", "output_size", "same_padding", "padding_amounts",
    "conv_spec", "pool_spec", "trace_shapes", "keras_trace_shapes",
    "draw_conv_geometry", "conv_explorer",
]


# --------------------------------------------------------------------------- sizes and padding


def _padding_value(padding, name: str = "padding"):
    """Return "valid", "same", or a non-negative int / (before, after) pair; raise otherwise."""
    if isinstance(padding, str):
        key = padding.lower()
        if key not in PADDINGS:
            raise ValueError(f"unknown {name} {padding!r}: expected 'valid', 'same' or a non-negative int")
        return key
    if isinstance(padding, (tuple, list)):
        return pair(padding, name, check=non_negative_int)
    try:
        return non_negative_int(padding, name)
    except TypeError:
        raise TypeError(f"{name} must be 'valid', 'same' or a non-negative int, got {padding!r}") from None


def same_padding(n: int, f: int, stride: int = 1) -> tuple[int, int]:
    """Zeros TensorFlow adds before and after an axis of size ``n`` for ``padding="same"``.

    The output has ``ceil(n / stride)`` positions; the total padding is
    ``max((ceil(n / stride) - 1) * stride + f - n, 0)``, split as
    ``(total // 2, total - total // 2)``: an odd zero goes to the bottom / right.

    >>> same_padding(5, 3, 1), same_padding(6, 4, 1), same_padding(7, 3, 2)
    ((1, 1), (1, 2), (1, 1))
    """
    n = positive_int(n, "n")
    f = positive_int(f, "f")
    stride = positive_int(stride, "stride")
    out = -(-n // stride)
    total = max((out - 1) * stride + f - n, 0)
    return total // 2, total - total // 2


def padding_amounts(n: int, f: int, stride: int = 1, padding="valid") -> tuple[int, int]:
    """Zeros ``(before, after)`` added to one axis for ``padding`` ("valid", "same", int or pair)."""
    padding = _padding_value(padding)
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_padding(n, f, stride)
    if isinstance(padding, tuple):
        return padding
    return padding, padding


def output_size(n: int, f: int, stride: int = 1, padding=0) -> int:
    """Number of positions a kernel of size ``f`` takes along an axis of size ``n``.

    .. math:: n_{out} = \\left\\lfloor \\frac{n + 2p - f}{s} \\right\\rfloor + 1

    ``padding`` is an int ``p`` (zeros on each side), a pair ``(before, after)``,
    ``"valid"`` (p = 0) or ``"same"`` (TensorFlow: ``ceil(n / s)``). Raises
    ValueError when the kernel is larger than the padded axis.

    >>> output_size(32, 3, 1, 0), output_size(32, 3, 2, 1), output_size(7, 3, 2, "same")
    (30, 16, 4)
    """
    n = positive_int(n, "n")
    f = positive_int(f, "f")
    stride = positive_int(stride, "stride")
    before, after = padding_amounts(n, f, stride, padding)
    padded = n + before + after
    if f > padded:
        raise ValueError(
            f"kernel size {f} is larger than the padded input {padded} "
            f"(input {n}, padding {before}+{after}); no position fits"
        )
    return (padded - f) // stride + 1


# --------------------------------------------------------------------------- argument checks


def _conv_args(x, w, b, stride, padding):
    """Validate conv2d's arguments; return arrays, strides, paddings and output size."""
    x = as_float_array(x, "x", ndim=4, layout="NHWC: batch, height, width, channels")
    w = as_float_array(w, "w", ndim=4, layout="HWIO: kernel height, kernel width, in channels, filters")
    if 0 in w.shape:
        raise ValueError(f"w must have no empty axis, got shape {w.shape}")
    if 0 in x.shape[1:]:
        raise ValueError(f"x must have non-empty height, width and channels, got shape {x.shape}")
    f1, f2, c_in, k = w.shape
    if x.shape[3] != c_in:
        raise ValueError(
            f"channel mismatch: x has {x.shape[3]} channels (shape {x.shape}) but w expects "
            f"{c_in} input channels (shape {w.shape}, HWIO)"
        )
    dtype = np.float32 if x.dtype == w.dtype == np.float32 else np.float64
    if b is not None:
        b = as_float_array(b, "b", ndim=1, layout="one bias per filter")
        if b.shape != (k,):
            raise ValueError(f"b must have shape ({k},) (one bias per filter), got {b.shape}")
        b = b.astype(dtype, copy=False)
    sh, sw = pair(stride, "stride")
    padding = _padding_value(padding)
    _, h, wd, _ = x.shape
    pads = (padding_amounts(h, f1, sh, padding), padding_amounts(wd, f2, sw, padding))
    hp, wp = h + sum(pads[0]), wd + sum(pads[1])
    if f1 > hp or f2 > wp:
        raise ValueError(
            f"kernel {f1}x{f2} is larger than the padded input {hp}x{wp} "
            f"(input {h}x{wd}, padding {padding!r}); no position fits"
        )
    out_hw = ((hp - f1) // sh + 1, (wp - f2) // sw + 1)
    n = x.shape[0]
    if hp != h or wp != wd:
        check_array_bytes((n, hp, wp, c_in), dtype, f"the padded input (input {h}x{wd}, padding {padding!r})")
    check_array_bytes((n, *out_hw, k), dtype, f"the output (padding {padding!r}, stride {(sh, sw)})")
    if f1 * f2 > 1:  # the smallest block the lowering copies: one output row of patches
        check_array_bytes((out_hw[1], f1 * f2 * c_in), dtype, f"one output row of {f1}x{f2}x{c_in} patches")
    return x.astype(dtype, copy=False), w.astype(dtype, copy=False), b, (sh, sw), pads, out_hw


def _pad(x, pads, value=0.0):
    """Return ``x`` (NHWC) with ``pads = ((top, bottom), (left, right))`` cells of ``value`` added."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    xp = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    xp[:, top:top + h, left:left + w, :] = x
    return xp


# --------------------------------------------------------------------------- the loop version


def conv2d_naive(x, w, b=None, stride=1, padding="valid"):
    """Cross-correlation of NHWC ``x`` with HWIO ``w``, written as the formula's loops.

    ``y[n, i, j, k] = b[k] + sum_{u, v, c} xp[n, i*sh + u, j*sw + v, c] * w[u, v, c, k]``

    Same arguments and result as :func:`conv2d`; meant for reading (it is
    hundreds to thousands of times slower).
    """
    x, w, b, (sh, sw), pads, (h_out, w_out) = _conv_args(x, w, b, stride, padding)
    xp = _pad(x, pads)
    n_images = x.shape[0]
    f1, f2, c_in, n_filters = w.shape
    y = np.zeros((n_images, h_out, w_out, n_filters), dtype=x.dtype)
    for n in range(n_images):
        for i in range(h_out):
            for j in range(w_out):
                for k in range(n_filters):
                    total = 0.0
                    for u in range(f1):
                        for v in range(f2):
                            for c in range(c_in):
                                total += xp[n, i * sh + u, j * sw + v, c] * w[u, v, c, k]
                    y[n, i, j, k] = total + (b[k] if b is not None else 0.0)
    return y


# --------------------------------------------------------------------------- the vectorised version

# Bytes of patches (or strips) copied per block: about one core's L2 cache, so
# the product reads the block while it is still cached; large enough that the
# per-block Python and BLAS start-up costs stay small (of blocks from 1 to 16
# MiB, 1 MiB gave the best geometric mean in benchmarks/conv_speed.py's suite
# on a 2-core machine).
_BLOCK_BYTES = 1 << 20
# With this many filters or more, the products outweigh the copying: one product per larger
# block, multi-threaded by BLAS itself, beat blocks spread over the cores (256 filters: 14 ms
# against 16.5 ms on the benchmark's "wide channels" case).
_WIDE_FILTERS = 128
_WIDE_BLOCK_BYTES = 1 << 23


def _block_plan(n_filters: int) -> tuple[int, bool]:
    """(bytes per block, whether blocks run on several threads) for a layer of ``n_filters`` filters."""
    if n_filters >= _WIDE_FILTERS:
        return _WIDE_BLOCK_BYTES, False
    return _BLOCK_BYTES, True

_BLAS = {}  # the threadpoolctl controller and a thread pool, made on first use


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded (made once)."""
    if "controller" not in _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS["controller"] = ThreadpoolController()
    return _BLAS["controller"]


def _blas_threads() -> int:
    """How many threads numpy's BLAS may use (``OPENBLAS_NUM_THREADS`` and the like set it); 1 if unknown."""
    counts = [lib.num_threads for lib in _blas_controller().select(user_api="blas").lib_controllers]
    return max(1, min(counts)) if counts else 1


def _run_blocks(tasks, parallel: bool = True) -> None:
    """Run the block computations ``tasks`` (callables writing disjoint parts of the output).

    The blocks run concurrently on as many threads as numpy's BLAS may use, each
    matrix product then on one BLAS thread: both the copying (single-threaded in
    numpy) and the products are spread over the cores. numpy releases the GIL for
    both, so the threads run in parallel.
    """
    workers = min(_blas_threads(), len(tasks)) if parallel else 1
    if workers <= 1:
        for task in tasks:
            task()
        return
    from concurrent.futures import ThreadPoolExecutor

    if _BLAS.get("pool_size", 0) < workers:
        if "pool" in _BLAS:
            _BLAS["pool"].shutdown()
        _BLAS["pool"], _BLAS["pool_size"] = ThreadPoolExecutor(workers, thread_name_prefix="cnnkit-conv"), workers
    with _blas_controller().limit(limits=1, user_api="blas"):
        for future in [_BLAS["pool"].submit(task) for task in tasks]:
            future.result()  # re-raises an error of the block


def _row_bands(n_images: int, h_out: int, rows_fitting: int):
    """Blocks (first image, last image + 1, first output row, last + 1) of about ``rows_fitting`` output rows.

    Whole images are grouped when one image has at most ``rows_fitting`` output
    rows; otherwise each image is cut into bands of output rows.
    """
    rows_fitting = max(1, rows_fitting)
    if h_out <= rows_fitting:
        step = rows_fitting // h_out
        return [(n, min(n + step, n_images), 0, h_out) for n in range(0, n_images, step)]
    return [(n, n + 1, i, min(i + rows_fitting, h_out)) for n in range(n_images) for i in range(0, h_out, rows_fitting)]


def _conv_patches(xp, w_mat, kernel, stride, y):
    """im2col: copy each block's F1 x F2 x C patches into a matrix, one row per output pixel, times w_mat."""
    (f1, f2), (sh, sw) = kernel, stride
    n_images, h_out, w_out, n_filters = y.shape
    c_in = xp.shape[3]
    sn, sy, sx, sc = xp.strides
    patches = as_strided(xp, shape=(n_images, h_out, w_out, f1, f2, c_in),
                         strides=(sn, sy * sh, sx * sw, sy, sx, sc), writeable=False)  # a view, no copy
    row_bytes = w_out * f1 * f2 * c_in * xp.itemsize
    block_bytes, parallel = _block_plan(n_filters)

    def block(n0, n1, i0, i1):
        lowered = np.ascontiguousarray(patches[n0:n1, i0:i1]).reshape(-1, w_mat.shape[0])
        np.matmul(lowered, w_mat, out=y[n0:n1, i0:i1].reshape(-1, n_filters))

    _run_blocks([lambda b=b: block(*b) for b in _row_bands(n_images, h_out, block_bytes // row_bytes)], parallel)


def _conv_strips(xp, w_mat, kernel, stride, y):
    """Lowering by column strips: F1 times less copying than im2col, one product per output row.

    The strip of output column j holds input columns j*s .. j*s+F2-1 of every
    row, flattened row by row; the patch of output row i is then the
    contiguous slice of rows i*s .. i*s+F1-1, read in place by the product.
    With several images in a block, the product's rows are (image, column)
    pairs, so each band of output rows is reordered into NHWC afterwards.
    """
    (f1, f2), (sh, sw) = kernel, stride
    n_images, h_out, w_out, n_filters = y.shape
    c_in = xp.shape[3]
    sn, sy, sx, sc = xp.strides
    row_len = f2 * c_in           # one input row of a strip
    depth = f1 * row_len          # one patch: f1 consecutive rows of a strip
    block_bytes, parallel = _block_plan(n_filters)
    rows_fitting = (block_bytes // (w_out * row_len * xp.itemsize) - f1) // sh + 1

    def block(n0, n1, i0, i1):
        top, bottom = i0 * sh, (i1 - 1) * sh + f1                 # input rows this block reads
        strips = as_strided(xp[n0:n1, top:bottom], shape=(n1 - n0, w_out, bottom - top, f2, c_in),
                            strides=(sn, sx * sw, sy, sx, sc), writeable=False)
        lowered = np.ascontiguousarray(strips).reshape((n1 - n0) * w_out, (bottom - top) * row_len)
        band = y[n0] if n1 - n0 == 1 else np.empty((i1 - i0, (n1 - n0) * w_out, n_filters), dtype=y.dtype)
        offset = i0 if n1 - n0 == 1 else 0
        for i in range(i0, i1):
            start = (i - i0) * sh * row_len
            np.matmul(lowered[:, start:start + depth], w_mat, out=band[i - i0 + offset])
        if n1 - n0 > 1:
            y[n0:n1, i0:i1] = band.reshape(i1 - i0, n1 - n0, w_out, n_filters).transpose(1, 0, 2, 3)

    _run_blocks([lambda b=b: block(*b) for b in _row_bands(n_images, h_out, rows_fitting)], parallel)


def _choose_lowering(n_images: int, padded_h: int, h_out: int, f1: int, depth: int, n_filters: int) -> str:
    """"patches" (im2col) or "strips", whichever copies clearly less per output pixel.

    im2col copies ``depth = F1*F2*C`` values per output pixel; strips copy about
    ``depth * H_padded / (F1 * H_out)``, plus, for several images, a reordering
    of the output (K values written and read again).
    """
    strips = depth * padded_h / (f1 * h_out) + (2 * n_filters if n_images > 1 else 0)
    return "strips" if strips < 0.7 * depth else "patches"


def conv2d(x, w, b=None, stride=1, padding="valid"):
    """Cross-correlation of a batch of images with a bank of filters, vectorised.

    Parameters
    ----------
    x : array (N, H, W, C)
        images, NHWC.
    w : array (F1, F2, C, K)
        K filters of size F1 x F2 over C channels, HWIO (as ``tf.nn.conv2d``).
    b : array (K,), optional
        one bias per filter.
    stride : int or (int, int)
        step of the window, rows then columns.
    padding : "valid", "same", int or (int, int)
        "valid": no padding; "same": TensorFlow's rule (output ``ceil(H / s)``,
        an odd zero at the bottom / right); an int p: p zeros on every side.

    Returns
    -------
    array (N, H_out, W_out, K), ``H_out = floor((H + pad_top + pad_bottom - F1) / s) + 1``.
    float32 when x and w are float32, float64 otherwise.

    How (no Python loop over pixels): every output value is the dot product of
    one F1 x F2 x C patch with one filter, so with the patches as the rows of a
    matrix P (one row per output pixel) and the filters as the columns of
    ``w_mat = w.reshape(F1*F2*C, K)``, the whole layer is one matrix product
    ``P @ w_mat``: the *im2col* method. P is read from the padded input through
    ``as_strided`` (a view), copied one cache-sized block of images or rows at
    a time, each block followed by its product; with fewer than 128 filters
    the blocks are shared out among as many threads as numpy's BLAS may use
    (with more, BLAS threads each product itself). Patches overlap, so P repeats
    each pixel F1*F2 times; where that copying dominates (large kernels on few
    channels, a single large image), a leaner lowering copies each output
    column's *strip* (all rows, F2 columns, C channels) once: the patch of
    output row i is a contiguous slice of the strip, so each output row is one
    product read straight from the strips (F1 times less copying). A 1x1
    kernel needs no copy at all: ``x.reshape(-1, C) @ w_mat``.
    """
    x, w, b, stride, pads, (h_out, w_out) = _conv_args(x, w, b, stride, padding)
    n_images = x.shape[0]
    f1, f2, c_in, n_filters = w.shape
    w_mat = w.reshape(f1 * f2 * c_in, n_filters)  # row (u, v, c) matches a patch flattened in that order
    y = np.empty((n_images, h_out, w_out, n_filters), dtype=x.dtype)
    if n_images == 0:
        return y
    xp = _pad(x, pads)
    if f1 == f2 == 1:
        sh, sw = stride
        pixels = xp[:, : (h_out - 1) * sh + 1: sh, : (w_out - 1) * sw + 1: sw, :]
        np.matmul(pixels.reshape(-1, c_in), w_mat, out=y.reshape(-1, n_filters))
    elif _choose_lowering(n_images, xp.shape[1], h_out, f1, w_mat.shape[0], n_filters) == "strips":
        _conv_strips(xp, w_mat, (f1, f2), stride, y)
    else:
        _conv_patches(xp, w_mat, (f1, f2), stride, y)
    if b is not None:
        y += b
    return y


# --------------------------------------------------------------------------- Exercise 1: shapes through a stack

_CONV_KEYS = {"type", "filters", "kernel", "stride", "padding"}
_POOL_KEYS = {"type", "size", "stride", "padding"}


def conv_spec(filters: int, kernel=3, stride=1, padding="valid") -> dict:
    """A convolution layer for :func:`trace_shapes`: ``{"type": "conv", "filters", "kernel", "stride", "padding"}``."""
    return {"type": "conv", "filters": filters, "kernel": kernel, "stride": stride, "padding": padding}


def pool_spec(size=2, stride=None, padding="valid") -> dict:
    """A pooling layer for :func:`trace_shapes`: ``{"type": "pool", "size", "stride", "padding"}`` (stride defaults to size)."""
    return {"type": "pool", "size": size, "stride": size if stride is None else stride, "padding": padding}


def _layer_geometry(spec, index: int):
    """Return (kind, kernel pair, stride pair, padding, filters or None) for one layer spec."""
    where = f"layer {index}"
    if not isinstance(spec, dict):
        raise TypeError(f"{where} must be a dict such as conv_spec(32, 3) or pool_spec(2), got {spec!r}")
    kind = spec.get("type")
    if kind == "conv":
        unknown = set(spec) - _CONV_KEYS
        if unknown or "filters" not in spec:
            raise ValueError(f"{where}: a conv spec needs 'filters' and may have 'kernel', 'stride', "
                             f"'padding'; got keys {sorted(spec)}")
        kernel = pair(spec.get("kernel", 3), f"{where} kernel")
        filters = positive_int(spec["filters"], f"{where} filters")
        stride = pair(spec.get("stride", 1), f"{where} stride")
    elif kind == "pool":
        unknown = set(spec) - _POOL_KEYS
        if unknown:
            raise ValueError(f"{where}: a pool spec may have 'size', 'stride', 'padding'; got keys {sorted(spec)}")
        kernel = pair(spec.get("size", 2), f"{where} size")
        filters = None
        stride_value = spec.get("stride")
        stride = kernel if stride_value is None else pair(stride_value, f"{where} stride")
    else:
        raise ValueError(f"{where} has type {kind!r}; expected 'conv' or 'pool'")
    padding = _padding_value(spec.get("padding", "valid"), f"{where} padding")
    return kind, kernel, stride, padding, filters


def trace_shapes(input_shape, layers) -> list[tuple[int, int, int]]:
    """Output shape (H, W, C) of every layer in ``layers``, applied in order to ``input_shape`` (H, W, C).

    A conv layer maps C channels to ``filters``; a pooling layer keeps C. Each
    spatial size follows :func:`output_size`. Specs are dicts (see
    :func:`conv_spec`, :func:`pool_spec`)::

        {"type": "conv", "filters": 32, "kernel": 3, "stride": 1, "padding": "same"}
        {"type": "pool", "size": 2, "stride": 2, "padding": "valid"}

    Raises ValueError naming the layer when a kernel no longer fits.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {tuple(input_shape)!r}")
    h, w, c = (positive_int(v, f"input_shape[{i}]") for i, v in enumerate(input_shape))
    shapes = []
    for index, spec in enumerate(layers):
        kind, (f1, f2), (s1, s2), padding, filters = _layer_geometry(spec, index)
        try:
            h, w = output_size(h, f1, s1, padding), output_size(w, f2, s2, padding)
        except ValueError as exc:
            raise ValueError(f"layer {index} ({kind}) does not fit its input of shape {(h, w, c)}: {exc}") from None
        c = filters if kind == "conv" else c
        shapes.append((h, w, c))
    return shapes


def keras_trace_shapes(input_shape, layers, pool: str = "max") -> list[tuple[int, int, int]]:
    """The same shapes as :func:`trace_shapes`, read from a Keras model built from the specs.

    Only "valid" and "same" paddings exist in Keras (an int padding raises
    ValueError). ``pool`` chooses MaxPooling2D or AveragePooling2D.
    """
    import keras

    inputs = keras.Input(shape=tuple(input_shape))
    t = inputs
    shapes = []
    for index, spec in enumerate(layers):
        kind, kernel, stride, padding, filters = _layer_geometry(spec, index)
        if padding not in PADDINGS:
            raise ValueError(f"layer {index}: Keras layers take padding 'valid' or 'same', got {padding!r}")
        if kind == "conv":
            t = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding)(t)
        else:
            layer = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
            t = layer(kernel, strides=stride, padding=padding)(t)
        shapes.append(tuple(int(v) for v in t.shape[1:]))
    return shapes


# --------------------------------------------------------------------------- pictures of the sliding window


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
    import html
    import io
    import threading

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
