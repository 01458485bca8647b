"""Learning-rate schedules of the capstone: linear warm-up, then linear or cosine decay."""
from __future__ import annotations

import math

import numpy as np

from cnnkit._validate import integer, one_of, positive_int, real
from cnnkit.env import import_tensorflow
from cnnkit.recipes import DECAYS, get_recipe

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["WarmupDecay", "recipe_schedule"]


@keras.saving.register_keras_serializable(package="cnnkit")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate: linear warm-up from 0 to ``peak``, then decay to ``final`` at ``total_steps``.

    For step ``t`` (the optimiser's iteration count, from 0), ``w = warmup_steps``,
    ``T = total_steps``:

    * ``t < w``:  ``lr = peak * t / w``
    * ``t >= w``: ``p = min((t - w) / (T - w), 1)`` and
      ``lr = final + (peak - final) * (1 - p)`` (``shape="linear"``) or
      ``lr = final + (peak - final) * (1 + cos(pi p)) / 2`` (``shape="cosine"``).

    Serialisable (``get_config``), so a model saved as ``.keras`` with its optimiser reloads.
    """

    def __init__(self, peak, total_steps, warmup_steps=0, final=0.0, shape="linear"):
        peak = real(peak, "peak (learning rate)", low=0.0, low_open=True)
        total_steps = positive_int(total_steps, "total_steps")
        warmup_steps = integer(warmup_steps, "warmup_steps", minimum=0, maximum=total_steps - 1)
        final = real(final, "final (learning rate)", low=0.0, high=peak)
        one_of(shape, "shape", DECAYS)
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.final = float(final)
        self.shape = shape

    def __call__(self, step):
        t = ops.cast(step, "float32")
        warm = self.peak * t / max(self.warmup_steps, 1)
        p = ops.clip((t - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        if self.shape == "linear":
            fraction = 1.0 - p
        else:
            fraction = 0.5 * (1.0 + ops.cos(math.pi * p))
        decayed = self.final + (self.peak - self.final) * fraction
        return ops.where(t < self.warmup_steps, warm, decayed)

    def values(self, steps) -> np.ndarray:
        """The learning rate at each of ``steps`` (numpy), for plots and checks."""
        return np.asarray(self(np.asarray(steps, np.float32)), np.float64)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "final": self.final, "shape": self.shape}


def recipe_schedule(recipe, steps_per_epoch: int, epochs: int | None = None, replicas: int = 1):
    """The :class:`WarmupDecay` of ``recipe`` for ``epochs`` (default: the recipe's) of ``steps_per_epoch`` steps.

    On ``replicas`` devices (each taking the recipe's batch, so ``steps_per_epoch`` counts
    global batches) the peak rate is :func:`cnnkit.devices.scaled_learning_rate`: linear
    in the replica count for SGD, square-root for AdamW. The warm-up and the decay are
    counted in epochs, so they cover the same share of the run whatever the batch.
    """
    from cnnkit.devices import scaled_learning_rate

    recipe = get_recipe(recipe)
    epochs = positive_int(epochs if epochs is not None else recipe.epochs, "epochs")
    steps_per_epoch = positive_int(steps_per_epoch, "steps_per_epoch")
    peak = scaled_learning_rate(recipe.learning_rate, recipe.optimizer, replicas)
    total = epochs * steps_per_epoch
    warmup = min(int(round(recipe.warmup_epochs * steps_per_epoch)), total - 1)
    return WarmupDecay(peak, total, warmup, recipe.final_lr_fraction * peak, recipe.decay)
