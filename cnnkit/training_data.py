"""The capstone's data: validated uint8 splits and the training split's per-channel statistics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit._validate import positive_int, real
from cnnkit.data import stratified_subset, train_val_split
from cnnkit.normalization import channel_moments

__all__ = ["PreparedData", "prepare_data", "channel_statistics"]


def _check_images(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C), got shape {x.shape}")
    if x.dtype != np.uint8:
        raise TypeError(f"{name} must hold uint8 pixels 0..255 (kept small in memory), got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    return x


def _check_statistics(mean, std, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``std`` as float32 arrays of shape (channels,), std > 0 and both finite."""
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"mean and std must have shape ({channels},) (one value per channel), "
                         f"got {mean.shape} and {std.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"mean must be finite and std finite and positive, got mean {mean} and std {std}")
    return mean, std


def _check_labels(y, num_classes: int, name: str = "labels") -> np.ndarray:
    """``y`` as an int64 array of class indices 0..num_classes-1 (N,)."""
    y = np.asarray(y)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1}, found {y.min()}..{y.max()}")
    return y


def channel_statistics(x, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (N, H, W, C), as two float32 arrays (C,).

    ``mean_c`` and ``std_c = sqrt(var_c)`` over the ``N*H*W`` values of channel c, from
    :func:`cnnkit.normalization.channel_moments` (exact for uint8, no float copy of the
    whole array). A standard deviation below 1e-3 is raised to 1e-3, so that a constant
    channel does not divide by zero when standardised.
    """
    x = _check_images(x)
    mean, var, _ = channel_moments(x, positive_int(chunk, "chunk"))
    return mean.astype(np.float32), np.maximum(np.sqrt(var), 1e-3).astype(np.float32)


@dataclass(frozen=True, repr=False)
class PreparedData:
    """Train / validation / test splits (uint8 images, int64 labels) and the training split's statistics."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple[str, ...]
    dataset: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        return (f"{self.dataset}: train {self.x_train.shape[0]} | val {self.x_val.shape[0]} | "
                f"test {self.x_test.shape[0]} images {self.x_train.shape[1:]} {self.x_train.dtype} | "
                f"train mean {[round(float(v), 2) for v in self.mean]} std {[round(float(v), 2) for v in self.std]}")

    def __repr__(self) -> str:
        return f"<PreparedData {self.describe()}>"


def prepare_data(dataset, *, val_fraction: float = 0.1, seed: int = 0, train_size: int | None = None,
                 test_size: int | None = None) -> PreparedData:
    """Split ``dataset`` (a ``cnnkit.data.Dataset``) into train/val/test and fit the statistics on train only.

    ``val_fraction`` of every class of the training set becomes the validation split
    (stratified, from ``seed``); ``val_fraction=0`` keeps every image for training and
    leaves an empty validation split (0 images, same shapes otherwise). The test set is
    left alone. ``train_size`` and ``test_size`` keep stratified subsets (fast runs). The
    mean and standard deviation are computed on the training split, after the split, so
    neither the validation nor the test images leak into them.
    """
    x, y = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    x_test, y_test = np.asarray(dataset.x_test), np.asarray(dataset.y_test)
    _check_images(x, "dataset.x_train")
    _check_images(x_test, "dataset.x_test")
    if train_size is not None:
        x, y = stratified_subset(x, y, positive_int(train_size, "train_size"), seed=seed)
    if test_size is not None:
        x_test, y_test = stratified_subset(x_test, y_test, positive_int(test_size, "test_size"), seed=seed)
    if real(val_fraction, "val_fraction", low=0.0, high=1.0, high_open=True) == 0:
        (x_tr, y_tr), (x_val, y_val) = (x, y), (x[:0], y[:0])  # the pipelines shuffle: no copy needed
    else:
        (x_tr, y_tr), (x_val, y_val) = train_val_split(x, y, val_fraction=val_fraction, seed=seed)
    mean, std = channel_statistics(x_tr)
    return PreparedData(x_tr, y_tr.astype(np.int64), x_val, y_val.astype(np.int64), x_test,
                        y_test.astype(np.int64), mean, std, tuple(dataset.class_names),
                        getattr(dataset, "name", ""))
