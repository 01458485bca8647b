"""Mini-batch descent on a 2-D test function written as an average of example losses: which minimum each run reaches.

A :class:`~cnnkit.landscape_functions.Landscape` ``f`` is one function, not an
average over training examples, so it has no mini-batch gradient. We give it
one: :func:`tilted_examples` makes ``n`` example losses

    l_i(w) = f(w) + u_i . w,      i = 1..n,   u_i in R^2,   sum_i u_i = 0,

each the same surface tilted its own way. Their mean is ``f`` exactly, the
gradient of one example is ``grad f(w) + u_i``, and the gradient of a
mini-batch ``B`` of ``b`` examples is

    g_B(w) = grad f(w) + mean_{i in B} u_i.

So full-batch gradient descent (``b = n``) is plain gradient descent on ``f``,
and a smaller batch adds zero-mean noise whose size depends on ``b`` alone:
for batches drawn without replacement its expected squared error is

    E |g_B - grad f|^2 = sigma^2 / b * (n - b) / (n - 1),   sigma^2 = mean_i |u_i|^2

(:func:`predicted_noise`), which :func:`measured_noise` checks by drawing
batches. The tilts are a model of examples that disagree; the noise itself is
measured from the mini-batch gradients, not added by hand.

:func:`minibatch_descent` runs many seeded runs at once (every start, every
seed), reshuffling the examples every epoch as the lessons' mini-batch loop
does, with a learning rate per step (:func:`geometric_rates` lowers it from
``lr`` to ``final_lr``). :func:`nearest_minimum` says in which minimum each
run ended and how far from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnkit._validate import as_float_array, check_array_bytes, finite_array, non_negative_int, positive_int, real
from cnnkit.landscape_functions import Landscape, as_points

__all__ = ["ExampleLosses", "geometric_rates", "measured_noise", "minibatch_descent", "nearest_minimum",
           "predicted_noise", "tilted_examples"]


@dataclass(frozen=True)
class ExampleLosses:
    """``n`` example losses ``l_i(w) = f(w) + u_i . w`` whose mean is ``f``; ``tilts`` holds the ``u_i``, shape (n, 2)."""

    fn: Landscape
    tilts: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.tilts.shape[0])

    @property
    def sigma2(self) -> float:
        """Variance of one example's gradient around the full gradient: ``mean_i |u_i|^2``."""
        return float(np.mean(np.sum(self.tilts ** 2, axis=1)))

    def value(self, w, idx=slice(None)) -> np.ndarray:
        """Mean of the example losses ``idx`` at points ``w`` of shape (..., 2): shape (...)."""
        w = as_points(w)
        return self.fn.value(w) + w @ self.tilts[idx].mean(axis=0)

    def gradient(self, w, idx=slice(None)) -> np.ndarray:
        """Gradient of the mean of the example losses ``idx`` at ``w`` (..., 2): ``grad f(w) + mean u_idx``."""
        return self.fn.gradient(w) + self.tilts[idx].mean(axis=0)


def tilted_examples(fn: Landscape, n: int, spread: float, seed: int = 0) -> ExampleLosses:
    """``n`` example losses around ``fn``: tilts ``u_i ~ N(0, spread^2 I)``, then centred so they sum to 0.

    ``spread`` is the standard deviation of each tilt coordinate before
    centring; the centring makes the mean of the examples equal ``fn`` exactly
    (to rounding), whatever the draw.
    """
    if not isinstance(fn, Landscape):
        raise TypeError(f"fn must be a cnnkit Landscape (e.g. cnnkit.landscapes.wells()), got {type(fn).__name__}")
    n = positive_int(n, "n")
    if n < 2:
        raise ValueError(f"n must be at least 2 (one example has no noise to measure), got {n}")
    spread = real(spread, "spread", low=0.0)
    tilts = np.random.default_rng(non_negative_int(seed, "seed")).normal(size=(n, 2)) * spread
    return ExampleLosses(fn, tilts - tilts.mean(axis=0))


def _batch_size(examples: ExampleLosses, batch_size) -> int:
    b = positive_int(batch_size, "batch_size")
    if b > examples.n:
        raise ValueError(f"batch_size must be at most the number of examples n = {examples.n}, got {b}")
    return b


def predicted_noise(examples: ExampleLosses, batch_size: int) -> float:
    """Expected squared error ``sigma^2 / b * (n - b) / (n - 1)`` of a mini-batch gradient drawn without replacement."""
    b, n = _batch_size(examples, batch_size), examples.n
    return examples.sigma2 / b * (n - b) / (n - 1)


def measured_noise(examples: ExampleLosses, batch_size: int, draws: int = 2000, seed: int = 0) -> float:
    """Mean of ``|g_B - grad f|^2`` over ``draws`` batches of ``batch_size`` examples drawn without replacement.

    The tilt makes the error the same at every point ``w``, so it is measured
    at the origin.
    """
    b = _batch_size(examples, batch_size)
    draws = positive_int(draws, "draws")
    rng = np.random.default_rng(non_negative_int(seed, "seed"))
    origin = np.zeros(2)
    full = examples.gradient(origin)
    errors = [examples.gradient(origin, rng.choice(examples.n, b, replace=False)) - full for _ in range(draws)]
    return float(np.mean(np.sum(np.square(errors), axis=1)))


def geometric_rates(lr: float, final_lr: float, steps: int) -> np.ndarray:
    """Learning rates falling geometrically from ``lr`` (step 0) to ``final_lr`` (last step): shape (steps,).

    ``lr_t = lr * (final_lr / lr) ** (t / (steps - 1))``; ``final_lr = lr``
    gives a constant rate.
    """
    lr = real(lr, "lr", low=0.0, low_open=True)
    final_lr = real(final_lr, "final_lr", low=0.0, high=lr, low_open=True)
    steps = positive_int(steps, "steps")
    if steps == 1:
        return np.array([lr])
    return lr * (final_lr / lr) ** (np.arange(steps) / (steps - 1))


def minibatch_descent(examples: ExampleLosses, starts, batch_size: int, rates, seeds=(0,),
                      return_paths: bool = False) -> np.ndarray:
    """Mini-batch gradient descent from every start for every seed; the final weights, shape (seeds, starts, 2).

    ``starts`` has shape (S, 2); ``rates`` holds one learning rate per step,
    shape (T,). Run ``(s, j)`` starts at ``starts[j]`` and, at every epoch,
    takes the ``n`` examples in a new random order drawn from the generator of
    seed ``seeds[s]``, ``b`` at a time (the last batch of an epoch may be
    smaller): ``w <- w - lr_t * g_B(w)``. With ``batch_size = n`` every step
    uses the full gradient, whatever the seed. ``return_paths=True`` returns
    every step instead, shape (T + 1, seeds, S, 2), row 0 the starts.
    """
    if not isinstance(examples, ExampleLosses):
        raise TypeError(f"examples must be ExampleLosses (from tilted_examples), got {type(examples).__name__}")
    starts = finite_array(as_float_array(starts, "starts", ndim=2, layout="(starts, 2)"), "starts")
    if starts.shape[1] != 2 or starts.shape[0] == 0:
        raise ValueError(f"starts must have shape (S, 2) with S >= 1, got {starts.shape}")
    b, n = _batch_size(examples, batch_size), examples.n
    rates = finite_array(as_float_array(rates, "rates", ndim=1, layout="one learning rate per step"), "rates")
    if rates.size == 0 or np.any(rates <= 0):
        raise ValueError(f"rates must be a non-empty sequence of positive learning rates, got {rates!r}")
    seeds = [non_negative_int(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must name at least one seed, got an empty sequence")
    n_seeds, n_starts = len(seeds), starts.shape[0]
    if return_paths:
        check_array_bytes((rates.size + 1, n_seeds, n_starts, 2), np.float64, "the recorded paths")
    generators = [np.random.default_rng(s) for s in seeds]
    w = np.broadcast_to(starts, (n_seeds, n_starts, 2)).astype(np.float64)
    paths = [w.copy()] if return_paths else None
    per_epoch = -(-n // b)
    order = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t, lr in enumerate(rates):
            k = t % per_epoch
            if b == n:
                noise = 0.0
            else:
                if k == 0:  # a new epoch: each run shuffles the examples again
                    order = np.stack([g.permuted(np.tile(np.arange(n), (n_starts, 1)), axis=1) for g in generators])
                noise = examples.tilts[order[:, :, k * b:(k + 1) * b]].mean(axis=2)
            w = w - lr * (examples.fn.gradient(w) + noise)
            if return_paths:
                paths.append(w.copy())
    return np.stack(paths) if return_paths else w


def nearest_minimum(points, minima) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest of ``minima`` (M, 2) for every point (..., 2), and the distance to it: shapes (...), (...)."""
    points = finite_array(as_points(points), "points", "a run diverged; lower its learning rate")
    minima = as_float_array(minima, "minima", ndim=2, layout="(minima, 2)")
    if minima.shape[1] != 2 or minima.shape[0] == 0:
        raise ValueError(f"minima must have shape (M, 2) with M >= 1, got {minima.shape}")
    distances = np.linalg.norm(points[..., None, :] - minima, axis=-1)
    return distances.argmin(axis=-1), distances.min(axis=-1)
