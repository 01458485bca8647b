"""Input scaling fitted on the training split, and batch normalization, in numpy.

Scalers (tutorial 2.1)
----------------------
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
time), so it never makes a float copy of a whole 50,000-image array;
``transform`` writes float32 chunk by chunk. For training, prefer
:meth:`batch_fn`, which returns ``f(x_batch)`` for
``cnnkit.pipeline.make_dataset(..., preprocess=f)``: the uint8 array stays as
it is and each float32 batch is normalised on the fly.

:func:`detect_leak` tells, by experiment, whether a preprocessing pipeline lets
the held-out splits influence what it does.

Batch normalization (tutorial 2.2)
----------------------------------
:func:`batch_norm` is the forward pass of ``keras.layers.BatchNormalization``
(axis=-1), in both modes; see its docstring for the formulas. For Keras
models, :func:`set_bn_momentum` changes the moving-average momentum before
training and :func:`reestimate_bn_statistics` recomputes the moving
statistics after it.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from cnnkit._validate import (
    as_float_array, boolean, check_array_bytes, finite_array, numeric_array, positive_int, real,
)

__all__ = [
    "NotFittedError", "MinMaxScaler", "StandardScaler", "channel_moments", "channel_extrema",
    "uint8_histograms", "batch_norm", "detect_leak", "LeakReport",
    "batch_norm_layers", "set_bn_momentum", "reestimate_bn_statistics",
]

DEFAULT_CHUNK = 512


class NotFittedError(RuntimeError):
    """A scaler was used before :meth:`fit` gave it statistics."""


# --------------------------------------------------------------------------- argument checks


def _as_samples(x, name: str = "x") -> np.ndarray:
    """Return ``x`` as a numeric ndarray of rank >= 2 (N, ..., C) without copying or converting it."""
    arr = numeric_array(x, name)
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have rank >= 2: (N, D) features or (N, H, W, C) images, got shape {arr.shape} "
            f"(rank {arr.ndim}); for a single sample use x[None]"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} holds no samples (shape {arr.shape}): statistics need at least one")
    if 0 in arr.shape[1:]:
        raise ValueError(f"{name} has an empty axis (shape {arr.shape}): each sample needs at least one value "
                         "in every axis, and at least one channel (the last axis)")
    return arr


def _chunks(n: int, chunk_size: int):
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _check_finite(block: np.ndarray, name: str) -> None:
    finite_array(block, name, "clean or impute the data before fitting a scaler or transforming with it")


def _check_statistics(values: np.ndarray, what: str, x: np.ndarray) -> None:
    """Raise if a statistic overflowed float64 (values near 1e200 and beyond)."""
    if not np.all(np.isfinite(values)):
        channel = int(np.flatnonzero(~np.isfinite(values))[0])
        largest = float(np.max(np.abs(x[..., channel])))
        raise ValueError(
            f"the {what} of channel {channel} overflows float64 (its values reach {largest:.3g}; float64 stops "
            f"at {np.finfo(np.float64).max:.3g}): divide the data by a constant before scaling it"
        )


def uint8_histograms(x, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Counts of each value 0..255 per channel of uint8 data (N, ..., C): int64 array (C, 256)."""
    arr = _as_samples(x)
    if arr.dtype != np.uint8:
        raise TypeError(f"x must be uint8 for value histograms, got dtype {arr.dtype}")
    chunk_size = positive_int(chunk_size, "chunk_size")
    channels = arr.shape[-1]
    hist = np.zeros((channels, 256), dtype=np.int64)
    for part in _chunks(arr.shape[0], chunk_size):
        block = arr[part].reshape(-1, channels)
        for c in range(channels):
            hist[c] += np.bincount(block[:, c], minlength=256)
    return hist


def channel_extrema(x, chunk_size: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel minimum and maximum over every axis but the last: two float64 arrays of shape (C,)."""
    arr = _as_samples(x)
    chunk_size = positive_int(chunk_size, "chunk_size")
    lo = np.full(arr.shape[-1], np.inf)
    hi = np.full(arr.shape[-1], -np.inf)
    axes = tuple(range(arr.ndim - 1))
    for part in _chunks(arr.shape[0], chunk_size):
        block = arr[part]
        _check_finite(block, "x")
        lo = np.minimum(lo, block.min(axis=axes).astype(np.float64))
        hi = np.maximum(hi, block.max(axis=axes).astype(np.float64))
    return lo, hi


def channel_moments(x, chunk_size: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and population variance over every axis but the last.

    Returns ``(mean, var, count)``: float64 arrays of shape (C,) and the number
    of values per channel. Chunks of ``chunk_size`` samples are converted to
    float64 one at a time and merged with Chan et al.'s pairwise formula

    .. math:: M_{2,AB} = M_{2,A} + M_{2,B} + \\delta^2 \\frac{n_A n_B}{n_A + n_B},
              \\quad \\delta = \\bar x_B - \\bar x_A,

    which stays accurate where the one-pass ``E[x^2] - E[x]^2`` would cancel.
    uint8 images take an exact shortcut: a 256-bin histogram per channel
    (:func:`uint8_histograms`), from which the moments follow.
    """
    arr = _as_samples(x)
    chunk_size = positive_int(chunk_size, "chunk_size")
    channels = arr.shape[-1]
    if arr.dtype == np.uint8:  # exact and fast: a 256-bin histogram per channel
        hist = uint8_histograms(arr, chunk_size)
        values = np.arange(256, dtype=np.float64)
        count = int(hist[0].sum())
        mean = hist @ values / count
        var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / count
        return mean, var, count
    count, mean, m2 = 0, np.zeros(channels), np.zeros(channels)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by channel
        for part in _chunks(arr.shape[0], chunk_size):
            block = arr[part].reshape(-1, channels).astype(np.float64)
            _check_finite(block, "x")
            n_b = block.shape[0]
            mean_b = block.mean(axis=0)
            m2_b = ((block - mean_b) ** 2).sum(axis=0)
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
    _check_statistics(mean, "mean", arr)
    _check_statistics(m2 / count, "variance", arr)
    return mean, m2 / count, count


# --------------------------------------------------------------------------- scalers


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
        arr = _as_samples(x)
        self._fit_statistics(arr)
        self.n_samples_seen_ = int(arr.shape[0])
        return self

    def transform(self, x, dtype=np.float32) -> np.ndarray:
        """Return the scaled copy of ``x`` (same shape, ``dtype``), written chunk by chunk."""
        self._require_fitted("transform")
        arr = _as_samples(x)
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
        for part in _chunks(arr.shape[0], self.chunk_size):
            block = arr[part].astype(np.float64)  # computed in float64, then stored as dtype
            _check_finite(block, "x")
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
        _check_statistics(span, "range (max - min)", x)
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


# --------------------------------------------------------------------------- leakage


class LeakReport(NamedTuple):
    """Outcome of :func:`detect_leak`."""

    train_changed: float    # largest change of the training output when held-out data changed
    heldout_changed: float  # largest change of an untouched held-out sample's output
    tolerance: float

    @property
    def leaks(self) -> bool:
        return self.train_changed > self.tolerance or self.heldout_changed > self.tolerance

    def explain(self) -> str:
        if not self.leaks:
            return "no leak: the output depends on the training split only"
        if self.train_changed > self.tolerance:
            return (f"leak: statistics were fitted on held-out data (the training output moved by up to "
                    f"{self.train_changed:.3g} when only held-out images changed)")
        return (f"leak: held-out images are scaled with statistics of their own split (an unchanged held-out "
                f"image's output moved by up to {self.heldout_changed:.3g} when other held-out images changed)")


def detect_leak(pipeline: Callable, x_train, *held_out, shift: float = 40.0, tolerance: float = 1e-6) -> LeakReport:
    """Test by experiment whether ``pipeline`` lets held-out data shape its preprocessing.

    ``pipeline(x_train, *held_out)`` must return one transformed array per
    split, in order. It is run twice: on the splits as given, and with the
    second half of every held-out split brightened by ``shift`` (clipped to
    0..255 for uint8). A correct pipeline (fit on ``x_train`` only, the same
    transform everywhere) gives the same training output and the same output
    for the untouched first half of each held-out split. Returns a
    :class:`LeakReport`; ``report.leaks`` is the verdict.
    """
    if not callable(pipeline):
        raise TypeError(f"pipeline must be a function (x_train, *held_out) -> outputs, got {type(pipeline).__name__}")
    shift = real(shift, "shift", low=0.0, low_open=True)
    tolerance = real(tolerance, "tolerance", low=0.0)
    if not held_out:
        raise ValueError("pass at least one held-out split (validation or test) after x_train")
    splits = [_as_samples(x_train, "x_train")] + [_as_samples(h, f"held_out[{i}]") for i, h in enumerate(held_out)]
    for i, h in enumerate(splits[1:]):
        if h.shape[0] < 2:
            raise ValueError(f"held_out[{i}] needs at least 2 samples, got {h.shape[0]}")

    def perturb(h):
        out = h.astype(np.float64)
        out[h.shape[0] // 2:] += shift
        if h.dtype == np.uint8:
            return np.clip(out, 0, 255).astype(np.uint8)
        return out.astype(h.dtype)

    def run(parts):
        outs = pipeline(*parts)
        if not isinstance(outs, (tuple, list)) or len(outs) != len(parts):
            raise ValueError(f"pipeline must return {len(parts)} arrays (one per split), got "
                             f"{type(outs).__name__}{'' if not isinstance(outs, (tuple, list)) else f' of {len(outs)}'}")
        return [np.asarray(o, dtype=np.float64) for o in outs]

    base = run(splits)
    moved = run([splits[0]] + [perturb(h) for h in splits[1:]])
    train_changed = float(np.max(np.abs(base[0] - moved[0])))
    heldout_changed = 0.0
    for b, m, h in zip(base[1:], moved[1:], splits[1:]):
        half = h.shape[0] // 2
        heldout_changed = max(heldout_changed, float(np.max(np.abs(b[:half] - m[:half]))))
    return LeakReport(train_changed, heldout_changed, float(tolerance))


# --------------------------------------------------------------------------- batch normalization


def _param(value, name: str, channels: int) -> np.ndarray:
    arr = finite_array(as_float_array(value, name).astype(np.float64), name)
    if arr.shape != (channels,):
        raise ValueError(
            f"{name} must have shape (C,) = ({channels},), one value per channel of x's last axis, got {arr.shape}"
        )
    return arr


def batch_norm(x, gamma, beta, moving_mean, moving_var, training, momentum: float = 0.99,
               epsilon: float = 1e-3):
    """Batch normalization over the last axis, as ``keras.layers.BatchNormalization()``.

    Shapes: ``x`` is (N, D) or (N, H, W, C); ``gamma``, ``beta``,
    ``moving_mean``, ``moving_var`` are (C,) (C = D for dense inputs). Returns
    ``(y, new_moving_mean, new_moving_var)``, ``y`` shaped like ``x``.

    Training (``training=True``), over the ``m`` values of each channel
    (m = N, or N*H*W for images):

    .. math::
        \\mu_B = \\frac{1}{m}\\sum_i x_i, \\qquad
        \\sigma_B^2 = \\frac{1}{m}\\sum_i (x_i - \\mu_B)^2 \\quad\\text{(biased)}

        y = \\gamma\\,\\frac{x - \\mu_B}{\\sqrt{\\sigma_B^2 + \\varepsilon}} + \\beta

        \\text{moving\\_mean} \\leftarrow \\text{momentum}\\cdot\\text{moving\\_mean} + (1-\\text{momentum})\\,\\mu_B

    and the same update for ``moving_var`` with sigma_B^2 (an exponential
    moving average over all training batches, not the last batch's values).

    Inference (``training=False``): ``y = gamma (x - moving_mean) /
    sqrt(moving_var + eps) + beta``; the moving statistics are returned unchanged.

    A batch of one dense sample in training mode has sigma_B^2 = 0 and gives
    ``y == beta`` whatever ``x`` is: a classic bug. Float32 input gives a
    float32 ``y``; the arithmetic is done in float64.
    """
    arr = as_float_array(x, "x", ndim=(2, 4), layout="(N, D) or (N, H, W, C)")
    training = boolean(training, "training")
    momentum = real(momentum, "momentum", low=0.0, high=1.0)
    epsilon = real(epsilon, "epsilon", low=0.0, low_open=True)
    if arr.shape[0] == 0:
        raise ValueError(f"x holds no samples (shape {arr.shape})")
    if arr.shape[-1] == 0:
        raise ValueError(f"x has no channels (shape {arr.shape})")
    finite_array(arr, "x", "batch statistics of non-finite values would poison the moving averages")
    channels = arr.shape[-1]
    gamma = _param(gamma, "gamma", channels)
    beta = _param(beta, "beta", channels)
    moving_mean = _param(moving_mean, "moving_mean", channels)
    moving_var = _param(moving_var, "moving_var", channels)
    if np.any(moving_var < 0):
        raise ValueError(f"moving_var must be non-negative, got min {moving_var.min()}")
    x64 = arr.astype(np.float64)
    if training:
        axes = tuple(range(arr.ndim - 1))
        mean = x64.mean(axis=axes)
        var = ((x64 - mean) ** 2).mean(axis=axes)
        new_mean = momentum * moving_mean + (1.0 - momentum) * mean
        new_var = momentum * moving_var + (1.0 - momentum) * var
    else:
        mean, var = moving_mean, moving_var
        new_mean, new_var = moving_mean.copy(), moving_var.copy()
    y = gamma * (x64 - mean) / np.sqrt(var + epsilon) + beta
    return y.astype(arr.dtype), new_mean, new_var


# --------------------------------------------------------------------------- Keras models with batch norm


def batch_norm_layers(model) -> list:
    """Every ``keras.layers.BatchNormalization`` inside ``model`` (nested models included), in order."""
    import keras

    found = []

    def walk(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        for child in getattr(layer, "layers", []) or []:
            walk(child)

    walk(model)
    return found


def set_bn_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer; return how many were changed.

    Call it before ``compile``/``fit`` (``cnnkit.experiments.train`` compiles):
    a traced training step keeps the value it was traced with.
    """
    momentum = real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def reestimate_bn_statistics(model, x, batch_size: int = 256, preprocess="scale") -> int:
    """Recompute every BN layer's moving mean and variance from ``x`` with the current weights.

    Runs ``model(batch, training=True)`` over ``x`` (uint8 images, normalised
    per batch with ``preprocess`` as in ``cnnkit.pipeline.make_dataset``) with
    each BN layer's momentum set to ``k / (k + 1)`` at the k-th batch, so the
    moving statistics become the plain average of the batch statistics (the
    initial values and the lag of the training-time moving average are
    forgotten). Weights are not changed; momenta are restored afterwards.
    Dropout layers are active during these passes, as in training.
    Returns the number of batches used.
    """
    from cnnkit.pipeline import make_dataset

    batch_size = positive_int(batch_size, "batch_size")
    x = _as_samples(x)
    layers = batch_norm_layers(model)
    if not layers:
        raise ValueError("the model has no BatchNormalization layer: nothing to re-estimate")
    saved = [layer.momentum for layer in layers]
    batches = 0
    try:
        labels = np.zeros(len(x), dtype=np.int64)
        for k, (images, _) in enumerate(make_dataset(x, labels, batch_size, preprocess=preprocess)):
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(images, training=True)
            batches += 1
    finally:
        for layer, m in zip(layers, saved):
            layer.momentum = m
    return batches
