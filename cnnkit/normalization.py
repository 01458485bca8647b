"""Input scaling fitted on the training split, and batch normalization, in numpy: what lessons 03 and 04 import.

Scalers (tutorial 2.1, :mod:`cnnkit.scalers`)
---------------------------------------------
Statistics are computed over every axis but the last, so images (N, H, W, C)
get one statistic per colour channel and tables (N, D) one per column:

* :class:`MinMaxScaler`: ``x' = (x - x_min) / (x_max - x_min)`` (optionally
  stretched to ``feature_range``). The tutorial's slide writes the denominator
  as ``x - x_max``; that is a slip. The formula equals ``x / 255`` only when the
  fitted minimum is 0 and the maximum is 255.
* :class:`StandardScaler`: ``x' = (x - mean) / std`` with the population
  standard deviation (divide by the count, as ``keras.layers.Normalization``).

Both follow one workflow: split first, ``fit`` on the training split only,
then ``transform`` every split with those same numbers. ``transform`` before
``fit`` raises :class:`NotFittedError`. A constant channel (range or standard
deviation 0) is divided by 1 instead of 0, so it maps to 0 (or to the low end
of ``feature_range``).

Memory: ``fit`` reads uint8 images in chunks (``chunk_size`` samples at a
time, :mod:`cnnkit.channel_stats`), so it never makes a float copy of a whole
50,000-image array; ``transform`` writes float32 chunk by chunk. For training,
prefer ``batch_fn``, which returns ``f(x_batch)`` for
``cnnkit.pipeline.make_dataset(..., preprocess=f)``: the uint8 array stays as
it is and each float32 batch is normalised on the fly.

:func:`detect_leak` (:mod:`cnnkit.leakage`) tells, by experiment, whether a
preprocessing pipeline lets the held-out splits influence what it does.

Batch normalization (tutorial 2.2, :mod:`cnnkit.batchnorm`)
-----------------------------------------------------------
:func:`batch_norm` is the forward pass of ``keras.layers.BatchNormalization``
(axis=-1), in both modes; see its docstring for the formulas. For Keras
models, :func:`set_bn_momentum` changes the moving-average momentum before
training and :func:`reestimate_bn_statistics` recomputes the moving
statistics after it.
"""
from __future__ import annotations

from cnnkit.batchnorm import batch_norm, batch_norm_layers, reestimate_bn_statistics, set_bn_momentum
from cnnkit.channel_stats import channel_extrema, channel_moments, uint8_histograms
from cnnkit.leakage import LeakReport, detect_leak
from cnnkit.scalers import MinMaxScaler, NotFittedError, StandardScaler

__all__ = [
    "NotFittedError", "MinMaxScaler", "StandardScaler", "channel_moments", "channel_extrema",
    "uint8_histograms", "batch_norm", "detect_leak", "LeakReport",
    "batch_norm_layers", "set_bn_momentum", "reestimate_bn_statistics",
]
