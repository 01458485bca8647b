"""Lookahead on the weights during ``model.fit``: slow weights that the fast ones are pulled back to.

Every ``every`` training steps (k), with t the number of steps taken so far and T the
total of the run, every floating-point weight of the model (trainable or not: batch norm's
moving statistics too; a frozen weight stays as it is) is updated as::

    d(t)  = peak * (t / T) ** power          # the pull grows from 0 towards the end of training
    slow <- slow + (1 - d(t)) * (fast - slow)  # the slow copy moves part of the way to the fast weights
    fast <- slow                            # and the fast weights restart from it

At the end of training the model keeps the slow weights (``d = 1``: the fast steps since
the last update are dropped). Early on ``d`` is near 0, so the slow copy simply follows
the fast weights and the update changes nothing; late in training, when the learning
rate is small, it averages the last stretch of the run, as an exponential moving average
would, but the optimiser keeps stepping from the average rather than from weights that
drift away from it. The cubic schedule with ``peak = 0.95 ** 5`` and ``k = 5`` is Keller
Jordan's airbench94 setting.

Shapes: each slow copy has its weight's shape; memory is one extra copy of the model.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cnnkit._validate import positive_int, real
from cnnkit.loss_slices import float_weights

__all__ = ["Lookahead", "lookahead_decay"]


def lookahead_decay(step, total_steps: int, *, peak: float = 0.95**5, power: float = 3.0):
    """``peak * (step / total_steps) ** power`` (scalar or array of steps in [0, total_steps])."""
    positive_int(total_steps, "total_steps")
    real(peak, "peak", low=0.0, high=1.0)
    real(power, "power", low=0.0)
    fraction = np.clip(np.asarray(step, dtype=np.float64) / total_steps, 0.0, 1.0)
    return peak * fraction**power


class Lookahead(keras.callbacks.Callback):
    """Keras callback: lookahead with the decay of :func:`lookahead_decay` every ``every`` steps.

    ``total_steps``: the steps of the whole run (epochs x steps per epoch), the T above.
    The slow copies are made when training begins, from the model's weights at that point.
    """

    def __init__(self, total_steps: int, *, every: int = 5, peak: float = 0.95**5, power: float = 3.0):
        super().__init__()
        self.total_steps = positive_int(total_steps, "total_steps")
        self.every = positive_int(every, "every")
        lookahead_decay(0, self.total_steps, peak=peak, power=power)  # checks peak and power
        self.peak, self.power = float(peak), float(power)
        self._pairs, self._step = [], 0

    def on_train_begin(self, logs=None):
        self._pairs = [(w, tf.Variable(tf.convert_to_tensor(w.value), trainable=False))
                       for w in float_weights(self.model)]
        self._step = 0

    def _pull(self, decay: float):
        for fast, slow in self._pairs:
            slow.assign(slow + (1.0 - decay) * (tf.convert_to_tensor(fast.value) - slow))
            fast.assign(slow)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every == 0:
            self._pull(float(lookahead_decay(self._step, self.total_steps, peak=self.peak, power=self.power)))

    def on_train_end(self, logs=None):
        self._pull(1.0)  # keep the slow weights
        self._pairs = []
