"""Input scalers fitted on the training split: min-max and z-score, per channel, in numpy (tutorial 2.1).

* :class:`MinMaxScaler`: ``x' = (x - x_min) / (x_max - x_min)`` (optionally
  stretched to ``feature_range``). The tutorial's slide writes the denominator
  as ``x - x_max``; that is a slip. The formula equals ``x / 255`` only when the
  fitted minimum is 0 and the maximum is 255.
* :class:`StandardScaler`: ``x' = (x - mean) / std`` with the population
  standard deviation (divide by the count, as ``keras.layers.Normalization``).

Both follow one workflow: split first, ``fit`` on the training split only, then
``transform`` every split with those same numbers. ``transform`` before ``fit``
raises :class:`NotFittedError`. A constant channel (range or standard deviation
0) is divided by 1 instead of 0, so it maps to 0 (or to the low end of
``feature_range``). ``fit`` reads the data in chunks (:mod:`cnnkit.channel_stats`);
``transform`` writes float32 chunk by chunk; :meth:`batch_fn` normalises batch by
batch inside a ``tf.data`` pipeline instead.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnkit._validate import as_float_array, check_array_bytes, finite_array, positive_int
from cnnkit.channel_stats import (
    DEFAULT_CHUNK, as_samples, channel_extrema, channel_moments, check_finite, check_statistics, sample_chunks,
)


class NotFittedError(RuntimeError):
    """A scaler was used before :meth:`fit` gave it statistics."""


class _ChannelScaler:
    """Shared machinery: ``x' = (x - offset) * factor`` per channel, with fitted ``offset`` and ``factor``."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        self.chunk_size = positive_int(chunk_size, "chunk_size")
        self.offset_: np.ndarray | None = None
        self.factor_: np.ndarray | None = None
        self.shift_: float = 0.0  # added after scaling (MinMaxScaler's feature_range low end)
        self.n_samples_seen_: int = 0

    # subclasses set offset_, factor_ from x
    def _fit_statistics(self, x: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return self.offset_ is not None

    @property
    def n_channels(self) -> int:
        self._require_fitted("n_channels")
        return int(self.offset_.shape[0])

    def _require_fitted(self, what: str) -> None:
        if not self.is_fitted:
            name = type(self).__name__
            raise NotFittedError(
                f"this {name} is not fitted yet, so it cannot {what}: call {name}.fit(x_train) on the "
                "training split first, then transform the training, validation and test splits with it"
            )

    def _check_channels(self, arr: np.ndarray, name: str) -> None:
        if arr.shape[-1] != self.offset_.shape[0]:
            raise ValueError(
                f"{name} has {arr.shape[-1]} channels (last axis of shape {arr.shape}) but the scaler was "
                f"fitted on {self.offset_.shape[0]}: transform data laid out like the training split"
            )

    def fit(self, x):
        """Compute per-channel statistics of ``x`` (N, ..., C), the training split only; return self."""
        arr = as_samples(x)
        self._fit_statistics(arr)
        self.n_samples_seen_ = int(arr.shape[0])
        return self

    def transform(self, x, dtype=np.float32) -> np.ndarray:
        """Return the scaled copy of ``x`` (same shape, ``dtype``), written chunk by chunk."""
        self._require_fitted("transform")
        arr = as_samples(x)
        self._check_channels(arr, "x")
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a floating numpy type such as np.float32, got {dtype!r}") from None
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"dtype must be a floating type, got {dtype}")
        check_array_bytes(arr.shape, dtype, "the transformed array")
        largest = float(np.finfo(dtype).max)
        out = np.empty(arr.shape, dtype=dtype)
        for part in sample_chunks(arr.shape[0], self.chunk_size):
            block = arr[part].astype(np.float64)  # computed in float64, then stored as dtype
            check_finite(block, "x")
            block -= self.offset_
            block *= self.factor_
            block += self.shift_
            peak = float(np.max(np.abs(block)))
            if not peak <= largest:
                raise ValueError(f"the transformed values reach {peak:.4g}, beyond the largest {dtype} "
                                 f"({largest:.4g}): choose a wider dtype such as np.float32 or np.float64")
            out[part] = block
        return out

    def fit_transform(self, x, dtype=np.float32) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``: use it on the training split only."""
        return self.fit(x).transform(x, dtype=dtype)

    def inverse_transform(self, x_scaled) -> np.ndarray:
        """Undo :meth:`transform` (float64 result); constant channels come back as their fitted value."""
        self._require_fitted("inverse_transform")
        arr = finite_array(as_float_array(x_scaled, "x_scaled"), "x_scaled")
        if arr.ndim < 1:
            raise ValueError(f"x_scaled must have at least one axis (channels last), got shape {arr.shape}")
        self._check_channels(arr, "x_scaled")
        return (arr.astype(np.float64) - self.shift_) / self.factor_ + self.offset_

    def batch_fn(self) -> Callable:
        """Return ``f(batch) = (batch - offset) * factor (+ shift)`` with float32 constants.

        ``f`` works on numpy arrays and on TensorFlow tensors (inside
        ``tf.data``), so it can be passed as ``preprocess=`` to
        ``cnnkit.pipeline.make_dataset`` and ``cnnkit.experiments.train``,
        which hand it float32 batches (B, H, W, C).
        """
        self._require_fitted("make a batch function")
        offset = self.offset_.astype(np.float32)
        factor = self.factor_.astype(np.float32)
        shift = np.float32(self.shift_)
        channels = offset.shape[0]
        name = type(self).__name__

        def normalize_batch(batch):
            try:  # numpy arrays and tf tensors; a symbolic shape may leave the channel count unknown
                last = batch.shape[-1]
            except (AttributeError, IndexError, ValueError):
                last = None
            if last is not None and last != channels:
                raise ValueError(f"{name} batch function: batch has {last} channels, fitted on {channels}")
            return (batch - offset) * factor + shift

        normalize_batch.__name__ = f"{name.lower()}_batch"
        return normalize_batch


class MinMaxScaler(_ChannelScaler):
    """Min-max scaling per channel, fitted on the training split.

    .. math:: x' = a + (b - a)\\,\\frac{x - x_{\\min}}{x_{\\max} - x_{\\min}}

    with ``feature_range = (a, b)`` (default ``(0, 1)``) and ``x_min``,
    ``x_max`` of shape (C,) taken over every axis but the last of the training
    split. Fitted attributes: ``data_min_``, ``data_max_``. A constant channel
    (``x_max == x_min``) is divided by 1, so it maps to ``a``.

    >>> s = MinMaxScaler().fit(x_train)          # x_train (N, 32, 32, 3) uint8
    >>> x_val01 = s.transform(x_val)              # float32, (x_val - min) / (max - min)
    """

    def __init__(self, feature_range=(0.0, 1.0), chunk_size: int = DEFAULT_CHUNK):
        super().__init__(chunk_size)
        try:
            low, high = (float(v) for v in feature_range)
        except (TypeError, ValueError):
            raise TypeError(f"feature_range must be a pair of numbers (low, high), got {feature_range!r}") from None
        if not np.isfinite([low, high]).all() or not low < high:
            raise ValueError(f"feature_range must satisfy low < high (finite), got {feature_range!r}")
        self.feature_range = (low, high)
        self.data_min_: np.ndarray | None = None
        self.data_max_: np.ndarray | None = None

    def _fit_statistics(self, x):
        lo, hi = channel_extrema(x, self.chunk_size)
        with np.errstate(over="ignore"):
            span = hi - lo
        check_statistics(span, "range (max - min)", x)
        span[span == 0] = 1.0  # constant channel: no division by zero, maps to feature_range[0]
        low, high = self.feature_range
        self.data_min_, self.data_max_ = lo, hi
        self.offset_ = lo
        self.factor_ = (high - low) / span
        self.shift_ = low

    def __repr__(self):
        if not self.is_fitted:
            return f"MinMaxScaler(feature_range={self.feature_range}, not fitted)"
        return (f"MinMaxScaler(min={np.round(self.data_min_, 4).tolist()}, "
                f"max={np.round(self.data_max_, 4).tolist()}, feature_range={self.feature_range})")


class StandardScaler(_ChannelScaler):
    """Z-score standardisation per channel, fitted on the training split.

    .. math:: x' = \\frac{x - \\mu}{\\sigma}, \\qquad
              \\mu = \\frac{1}{m}\\sum x, \\quad \\sigma^2 = \\frac{1}{m}\\sum (x - \\mu)^2

    with ``mu``, ``sigma`` of shape (C,) over the ``m = N*H*W`` values of each
    channel of the training split (population variance, as
    ``keras.layers.Normalization``). Fitted attributes: ``mean_``, ``var_``,
    ``scale_`` (= sigma). A constant channel (sigma 0) is divided by 1, so it
    maps to 0.

    >>> s = StandardScaler().fit(x_train)
    >>> f = s.batch_fn()   # for cnnkit.pipeline.make_dataset(x, y, preprocess=f)
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        super().__init__(chunk_size)
        self.mean_: np.ndarray | None = None
        self.var_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def _fit_statistics(self, x):
        mean, var, _ = channel_moments(x, self.chunk_size)
        std = np.sqrt(var)
        std[std == 0] = 1.0  # constant channel: no division by zero, maps to 0
        self.mean_, self.var_, self.scale_ = mean, var, std
        self.offset_ = mean
        self.factor_ = 1.0 / std
        self.shift_ = 0.0

    def __repr__(self):
        if not self.is_fitted:
            return "StandardScaler(not fitted)"
        return f"StandardScaler(mean={np.round(self.mean_, 4).tolist()}, std={np.round(self.scale_, 4).tolist()})"
