"""Activation functions applied after a convolution, and their derivatives (element-wise, any shape).

==============  ==========================================  ===========================================
function        f(z)                                        f'(z)
==============  ==========================================  ===========================================
ReLU            max(0, z)                                   1 if z > 0 else 0  (0 at z = 0, as TF)
leaky ReLU      z if z > 0 else alpha * z                   1 if z > 0 else alpha
sigmoid         1 / (1 + exp(-z))                           f(z) * (1 - f(z))   (at most 1/4)
tanh            (exp(z) - exp(-z)) / (exp(z) + exp(-z))     1 - f(z)**2
==============  ==========================================  ===========================================

Inputs are checked (numeric, real); float32 stays float32, everything else is
computed in float64. The derivative functions take the *pre-activation* z.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, probability

__all__ = ["relu", "relu_grad", "leaky_relu", "leaky_relu_grad", "sigmoid", "sigmoid_grad",
           "tanh", "tanh_grad", "ACTIVATIONS"]


def relu(z):
    """Rectified linear unit, ``max(0, z)`` element-wise; same shape as ``z``."""
    z = as_float_array(z, "z")
    return np.maximum(z, 0, dtype=z.dtype)


def relu_grad(z):
    """Derivative of ReLU at ``z``: 1 where z > 0, else 0 (TensorFlow's choice at exactly 0)."""
    z = as_float_array(z, "z")
    return (z > 0).astype(z.dtype)


def _alpha(alpha) -> float:
    return probability(alpha, "alpha (the slope for z <= 0)")


def leaky_relu(z, alpha: float = 0.01):
    """Leaky ReLU: ``z`` where z > 0, ``alpha * z`` elsewhere (a small slope keeps gradients alive)."""
    z = as_float_array(z, "z")
    alpha = _alpha(alpha)
    return np.where(z > 0, z, z * z.dtype.type(alpha))


def leaky_relu_grad(z, alpha: float = 0.01):
    """Derivative of leaky ReLU: 1 where z > 0, ``alpha`` elsewhere."""
    z = as_float_array(z, "z")
    alpha = _alpha(alpha)
    return np.where(z > 0, z.dtype.type(1), z.dtype.type(alpha))


def sigmoid(z):
    """Logistic sigmoid ``1 / (1 + exp(-z))``, computed without overflow for large |z|."""
    z = as_float_array(z, "z")
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))  # in (0, 1]: never overflows; underflow to 0 is harmless
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def sigmoid_grad(z):
    """Derivative of the sigmoid, ``s (1 - s)`` with ``s = sigmoid(z)``; its maximum is 1/4 at z = 0."""
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z):
    """Hyperbolic tangent, zero-centred, values in (-1, 1)."""
    z = as_float_array(z, "z")
    return np.tanh(z)


def tanh_grad(z):
    """Derivative of tanh, ``1 - tanh(z)**2``; its maximum is 1 at z = 0."""
    t = tanh(z)
    return 1 - t * t


# name -> (function, derivative), for loops in the lessons
ACTIVATIONS = {
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
}
