"""Leakage detection by experiment: does a preprocessing pipeline let held-out splits shape what it does?"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from cnnkit._validate import real
from cnnkit.channel_stats import as_samples


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
    splits = [as_samples(x_train, "x_train")] + [as_samples(h, f"held_out[{i}]") for i, h in enumerate(held_out)]
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
