"""A ``keras.optimizers`` optimizer run on a numpy gradient function, to compare with :mod:`cnnkit.optim`."""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnkit._validate import positive_int
from cnnkit.env import import_tensorflow

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402

__all__ = ["keras_path"]


def keras_path(keras_optimizer, grad_fn: Callable, w0, steps: int, dtype: str = "float64") -> np.ndarray:
    """Apply a ``keras.optimizers`` optimizer to a ``keras.Variable`` holding ``w0``; return its path.

    Gradients come from ``grad_fn`` in numpy, exactly as for :func:`minimize`,
    so the two paths can be compared step by step. Shape ``(steps + 1, *w0.shape)``.
    """
    steps = positive_int(steps, "steps")
    var = keras.Variable(np.asarray(w0, dtype=dtype), dtype=dtype)
    path = [np.array(var.numpy())]
    for _ in range(steps):
        grad = np.asarray(grad_fn(np.array(var.numpy())), dtype=dtype)
        keras_optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad, dtype=dtype), var)])
        path.append(np.array(var.numpy()))
    return np.stack(path)
