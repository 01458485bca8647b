"""The fast lowering behind :func:`cnnkit.conv.conv2d`: cache-sized blocks, two lowerings, threads.

:func:`cnnkit.conv.conv2d` is one matrix product per layer, ``P @ w_mat``, where
the rows of P are the F1 x F2 x C input patches (one per output pixel; *im2col*)
and ``w_mat = w.reshape(F1*F2*C, K)``. This module is the machinery that makes
that product fast without changing its result:

* P is never built whole: it is read from the padded input through
  ``as_strided`` (a view) and copied one cache-sized block of images or output
  rows at a time, each block followed by its product (:func:`_conv_patches`);
* where copying the overlapping patches dominates (large kernels on few
  channels, one large image), each output column's *strip* (all rows, F2
  columns, C channels) is copied once instead and every output row is a
  product read in place from the strips, F1 times less copying
  (:func:`_conv_strips`; :func:`_choose_lowering` picks);
* with fewer than 128 filters the blocks run on as many threads as numpy's BLAS
  may use, each product on one BLAS thread (:func:`_run_blocks`).

The lesson reads :func:`cnnkit.conv.conv2d_naive` and :func:`cnnkit.conv.conv2d`;
nothing here is needed to follow the formula.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided
from threadpoolctl import ThreadpoolController

__all__ = ["lowered_conv"]


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


def lowered_conv(xp, w_mat, kernel, stride, y) -> None:
    """Write into ``y`` (N, H_out, W_out, K) the cross-correlation of the padded ``xp`` with ``w_mat``.

    ``xp`` is the padded input (N, H_p, W_p, C), ``w_mat`` the filters as a
    (F1*F2*C, K) matrix, ``kernel = (F1, F2)``, ``stride = (sh, sw)``. Picks the
    lowering that copies less (:func:`_choose_lowering`) and runs it block by block.
    """
    f1 = kernel[0]
    n_images, h_out = y.shape[:2]
    n_filters = y.shape[3]
    if _choose_lowering(n_images, xp.shape[1], h_out, f1, w_mat.shape[0], n_filters) == "strips":
        _conv_strips(xp, w_mat, kernel, stride, y)
    else:
        _conv_patches(xp, w_mat, kernel, stride, y)
