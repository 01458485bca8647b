"""Gradient-descent optimizers in numpy: plain GD, momentum, AdaGrad, RMSProp and Adam.

Each optimizer is a small class whose :meth:`step` takes the current weights
``w`` and the gradient ``grad`` (numpy arrays of the same shape) and returns
the new weights; the running averages it needs (velocity, squared-gradient
average, step count) are kept inside, one set per ``key`` so a single optimizer
can update several parameter arrays (``step(W, dW, key="W")``,
``step(b, db, key="b")``). :meth:`reset` forgets them.

Two forms of the update are offered (``form=``):

* ``"tutorial"`` -- the lecture's formulas as corrected in ``ERRATA.md``:

  - momentum:  v <- beta v + (1 - beta) g;  w <- w - lr v
  - AdaGrad:   s <- s + g^2;  w <- w - lr g / (sqrt(s) + eps)
  - RMSProp:   v <- rho v + (1 - rho) g^2;  w <- w - lr g / (sqrt(v) + eps)
  - Adam:      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
               m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t);
               w <- w - lr m_hat / (sqrt(v_hat) + eps)

* ``"keras"`` -- Keras 3's own arithmetic (``keras/src/optimizers/sgd.py``,
  ``rmsprop.py``, ``adam.py``), operation for operation:

  - SGD momentum:  v <- v beta - g lr;  w <- w + v
    (Nesterov: w <- w + (v beta - g lr) with the new v)
  - Adagrad:       s starts at 0.1;  s <- s + g^2;  w <- w - (lr g) / sqrt(s + eps)
  - RMSprop:       v <- rho v + (1 - rho) g^2;  w <- w - (lr g) / sqrt(v + eps)
  - Adam:          alpha = lr sqrt(1 - b2^t) / (1 - b1^t);
                   m <- m + (g - m)(1 - b1);  v <- v + (g^2 - v)(1 - b2);
                   w <- w - (m alpha) / (sqrt(v) + eps)

Keras (TensorFlow backend) also rounds some constants to float32 even for
float64 weights: the learning rate lives in a float32 variable (the default
``floatx``), and ``ops.cast(0.9, "float64")`` makes a float32 tensor from the
Python number before casting it, so SGD's momentum and Adam's beta powers are
float32 values. The Keras form does the same (:func:`keras_float`), so that a
float64 run agrees with Keras to rounding error; for float32 weights it makes
no difference.

The two momentum forms trace the same path when the Keras learning rate is
``(1 - beta)`` times the tutorial's; Keras' Adam equals the tutorial's Adam
run with a step-dependent epsilon, ``eps / sqrt(1 - b2^t)``.

:func:`minimize` runs an optimizer on a gradient function and returns the path;
:func:`cnnkit.optim_keras.keras_path` runs a ``keras.optimizers`` optimizer the
same way, for comparison (in its own module, so that this one stays numpy-only).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnkit._validate import (
    as_float_array,
    boolean,
    non_negative_int,
    one_of,
    positive_int,
    probability,
    real,
)

FORMS = ("tutorial", "keras")


# --------------------------------------------------------------------------- argument checks


def _learning_rate(lr) -> float:
    return real(lr, "lr (the learning rate)", low=0, low_open=True)


def _decay(value, name: str) -> float:
    return probability(value, f"{name} (a decay rate)")


def _epsilon(value) -> float:
    return real(value, "epsilon (a small number such as 1e-7 that keeps the division finite)", low=0)


def keras_float(value: float) -> float:
    """``value`` rounded to float32, as Keras holds it (learning rate) or casts it (momentum, beta powers)."""
    return float(np.float32(value))


# --------------------------------------------------------------------------- optimizers


class Optimizer:
    """Base class: argument checks, per-key state, step counting.

    Subclasses implement ``_update(w, g, state)`` returning the new weights and
    updating ``state`` (a dict) in place; ``state["t"]`` is the 1-based number
    of the current step for that key; ``STATE_NAMES`` lists the running
    averages a subclass keeps.
    """

    STATE_NAMES: tuple[str, ...] = ()

    def __init__(self, lr: float):
        self.lr = _learning_rate(lr)
        self._state: dict = {}

    def reset(self) -> None:
        """Forget all running averages and step counts (start again from step 1)."""
        self._state = {}

    def state(self, key=0) -> dict:
        """A copy of the state kept for ``key`` (empty before its first step)."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self._state.get(key, {}).items()}

    def load_state(self, key=0, *, t: int = 0, **arrays) -> None:
        """Set the state for ``key``: the number ``t`` of steps already taken and running averages by name.

        Lets a single step be checked from any state, e.g.
        ``Momentum(0.1).load_state(v=np.ones(3))`` then ``step(w, g)`` computes
        v <- beta * 1 + (1 - beta) g. The names are those of :meth:`state`
        (``v`` for Momentum and RMSProp; ``s`` for AdaGrad; ``m`` and ``v`` for Adam).
        """
        t = non_negative_int(t, "t (steps already taken)")
        unknown = set(arrays) - set(self.STATE_NAMES)
        if unknown:
            raise ValueError(f"{type(self).__name__} keeps {sorted(self.STATE_NAMES) or 'no running averages'}, "
                             f"got {sorted(unknown)}")
        state: dict = {"t": t}
        shapes = set()
        for name, value in arrays.items():
            arr = as_float_array(value, name).copy()
            state[name] = arr
            shapes.add(arr.shape)
        if len(shapes) > 1:
            raise ValueError(f"the arrays of the state must share one shape, got {sorted(shapes)}")
        if shapes:
            state["shape"] = shapes.pop()
        self._state[key] = state

    def step(self, w, grad, key=0) -> np.ndarray:
        """Return the weights after one update of ``w`` (any shape) with gradient ``grad`` (same shape).

        ``w`` itself is not modified. ``key`` names the parameter array whose
        running state is used; one optimizer can thus update several arrays.
        """
        w = as_float_array(w, "w")
        g = as_float_array(grad, "grad")
        if g.shape != w.shape:
            raise ValueError(f"grad has shape {g.shape}, but w has shape {w.shape}: they must match")
        state = self._state.setdefault(key, {"t": 0})
        if "shape" in state and state["shape"] != w.shape:
            raise ValueError(
                f"this optimizer's state for key {key!r} belongs to an array of shape {state['shape']}, "
                f"got w of shape {w.shape}: call reset() or pass another key"
            )
        state["shape"] = w.shape
        state["t"] += 1
        return self._update(w, g, state)

    def _update(self, w, g, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def _params(self) -> str:
        return f"lr={self.lr}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"


class GD(Optimizer):
    """Gradient descent: ``w <- w - lr * g``.

    The same rule serves batch GD (g from the whole training set), stochastic
    GD (g from one example) and mini-batch GD (g from a batch); only the
    choice of examples behind ``g`` differs. ``form="keras"`` computes what
    ``keras.optimizers.SGD(lr)`` does (the learning rate rounded to float32).
    """

    def __init__(self, lr: float, form: str = "tutorial"):
        super().__init__(lr)
        self.form = one_of(form, "form", FORMS)

    def _update(self, w, g, state):
        lr = keras_float(self.lr) if self.form == "keras" else self.lr
        return w - g * lr

    def _params(self) -> str:
        return f"lr={self.lr}" + (", form='keras'" if self.form == "keras" else "")


class Momentum(Optimizer):
    """Gradient descent with momentum.

    ``form="tutorial"`` (an exponential moving average of the gradients)::

        v <- beta v + (1 - beta) g;   w <- w - lr v

    ``form="keras"`` (``keras.optimizers.SGD(lr, momentum=beta, nesterov=...)``)::

        v <- v beta - g lr;   w <- w + v            (nesterov=False)
        v <- v beta - g lr;   w <- w + v beta - g lr (nesterov=True)

    With v starting at 0 the two forms give the same path when the Keras
    learning rate is ``(1 - beta)`` times the tutorial's.
    """

    STATE_NAMES = ("v",)

    def __init__(self, lr: float, beta: float = 0.9, form: str = "tutorial", nesterov: bool = False):
        super().__init__(lr)
        self.beta = _decay(beta, "beta")
        self.form = one_of(form, "form", FORMS)
        nesterov = boolean(nesterov, "nesterov")
        if nesterov and self.form != "keras":
            raise ValueError("nesterov=True is only available with form='keras' (Keras' SGD update); "
                             f"got form={self.form!r}")
        self.nesterov = nesterov

    def _update(self, w, g, state):
        v = state.get("v", np.zeros_like(w))
        if self.form == "tutorial":
            v = self.beta * v + (1 - self.beta) * g
            new = w - self.lr * v
        else:
            lr, beta = keras_float(self.lr), keras_float(self.beta)
            v = v * beta - g * lr
            new = w + (v * beta - g * lr) if self.nesterov else w + v
        state["v"] = v
        return new

    def _params(self) -> str:
        extra = ", nesterov=True" if self.nesterov else ""
        return f"lr={self.lr}, beta={self.beta}, form={self.form!r}{extra}"


class AdaGrad(Optimizer):
    """AdaGrad: divide the step by the root of the *sum* of all squared gradients so far.

    ``form="tutorial"`` (the sum starts at 0)::

        s <- s + g^2;   w <- w - lr g / (sqrt(s) + epsilon)

    ``form="keras"`` (``keras.optimizers.Adagrad(lr, initial_accumulator_value=0.1,
    epsilon=epsilon)``): the sum starts at ``initial_accumulator`` and epsilon is inside
    the root. With a constant gradient the step after t updates is lr / sqrt(t) (tutorial
    form): it only ever shrinks, which is what RMSProp's decaying average changes.
    """

    STATE_NAMES = ("s",)

    def __init__(self, lr: float, epsilon: float = 1e-7, form: str = "tutorial",
                 initial_accumulator: float | None = None):
        super().__init__(lr)
        self.epsilon = _epsilon(epsilon)
        self.form = one_of(form, "form", FORMS)
        default = 0.0 if self.form == "tutorial" else 0.1
        self.initial_accumulator = real(default if initial_accumulator is None else initial_accumulator,
                                        "initial_accumulator", low=0.0)

    def _update(self, w, g, state):
        s = state.get("s", np.full_like(w, self.initial_accumulator)) + np.square(g)
        state["s"] = s
        if self.form == "tutorial":
            return w - self.lr * g / (np.sqrt(s) + self.epsilon)
        return w - (keras_float(self.lr) * g) / np.sqrt(s + self.epsilon)

    def _params(self) -> str:
        return (f"lr={self.lr}, epsilon={self.epsilon}, form={self.form!r}, "
                f"initial_accumulator={self.initial_accumulator}")


class RMSProp(Optimizer):
    """RMSProp: divide the step by the root of a running mean of squared gradients.

    ``form="tutorial"``::

        v <- rho v + (1 - rho) g^2;   w <- w - lr g / (sqrt(v) + epsilon)

    ``form="keras"`` (``keras.optimizers.RMSprop(lr, rho=rho, epsilon=epsilon)``,
    whose default rho is also 0.9): epsilon inside the root::

        v <- rho v + (1 - rho) g^2;   w <- w - (lr g) / sqrt(v + epsilon)
    """

    STATE_NAMES = ("v",)

    def __init__(self, lr: float, rho: float = 0.9, epsilon: float = 1e-7, form: str = "tutorial"):
        super().__init__(lr)
        self.rho = _decay(rho, "rho")
        self.epsilon = _epsilon(epsilon)
        self.form = one_of(form, "form", FORMS)

    def _update(self, w, g, state):
        v = state.get("v", np.zeros_like(w))
        v = self.rho * v + (1 - self.rho) * np.square(g)
        state["v"] = v
        if self.form == "tutorial":
            return w - self.lr * g / (np.sqrt(v) + self.epsilon)
        return w - (keras_float(self.lr) * g) / np.sqrt(v + self.epsilon)

    def _params(self) -> str:
        return f"lr={self.lr}, rho={self.rho}, epsilon={self.epsilon}, form={self.form!r}"


class Adam(Optimizer):
    """Adam: momentum on the gradient, RMSProp scaling, and bias correction.

    ``form="tutorial"`` (t counts steps from 1)::

        m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t);   v_hat = v / (1 - b2^t)
        w <- w - lr m_hat / (sqrt(v_hat) + epsilon)

    ``form="keras"`` (``keras.optimizers.Adam``): the corrections are folded
    into the step size and epsilon is added to the uncorrected root::

        alpha = lr sqrt(1 - b2^t) / (1 - b1^t)
        m <- m + (g - m)(1 - b1);   v <- v + (g^2 - v)(1 - b2)
        w <- w - (m alpha) / (sqrt(v) + epsilon)
    """

    STATE_NAMES = ("m", "v")

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-7,
                 form: str = "tutorial"):
        super().__init__(lr)
        self.beta1 = _decay(beta1, "beta1")
        self.beta2 = _decay(beta2, "beta2")
        self.epsilon = _epsilon(epsilon)
        self.form = one_of(form, "form", FORMS)

    def _update(self, w, g, state):
        t = state["t"]
        m = state.get("m", np.zeros_like(w))
        v = state.get("v", np.zeros_like(w))
        b1, b2 = self.beta1, self.beta2
        if self.form == "tutorial":
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * np.square(g)
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            new = w - self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)
        else:
            # scalars in the weights' dtype, as Keras computes them (float32 weights: float32 scalars)
            scalar = w.dtype.type
            b1_power = scalar(keras_float(b1)) ** scalar(t)
            b2_power = scalar(keras_float(b2)) ** scalar(t)
            alpha = scalar(keras_float(self.lr)) * np.sqrt(scalar(1) - b2_power) / (scalar(1) - b1_power)
            m = m + (g - m) * (1 - b1)
            v = v + (np.square(g) - v) * (1 - b2)
            new = w - (m * alpha) / (np.sqrt(v) + self.epsilon)
        state["m"], state["v"] = m, v
        return new

    def _params(self) -> str:
        return (f"lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, epsilon={self.epsilon}, "
                f"form={self.form!r}")


# --------------------------------------------------------------------------- running


def minimize(optimizer: Optimizer, grad_fn: Callable, w0, steps: int) -> np.ndarray:
    """Run ``steps`` updates from ``w0`` and return the path, shape ``(steps + 1, *w0.shape)``.

    ``grad_fn(w)`` returns the gradient at ``w`` (same shape as ``w``). The
    optimizer is :meth:`~Optimizer.reset` first, so a path always starts
    fresh. Row 0 of the path is ``w0``; once the weights overflow to
    infinity or NaN (a diverging learning rate) the remaining rows stay
    non-finite instead of raising.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a cnnkit.optim optimizer (GD, Momentum, AdaGrad, RMSProp, Adam), "
                        f"got {type(optimizer).__name__}")
    if not callable(grad_fn):
        raise TypeError(f"grad_fn must be a function w -> gradient, got {type(grad_fn).__name__}")
    steps = positive_int(steps, "steps")
    w = as_float_array(w0, "w0").copy()
    optimizer.reset()
    path = np.empty((steps + 1, *w.shape), dtype=w.dtype)
    path[0] = w
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(1, steps + 1):
            if not np.all(np.isfinite(w)):
                path[i:] = np.nan
                break
            w = optimizer.step(w, grad_fn(w))
            path[i] = w
    return path


def make(name: str, lr: float, form: str = "tutorial", **kwargs) -> Optimizer:
    """Build an optimizer by name: ``"gd"``, ``"momentum"``, ``"nesterov"`` (Keras form), ``"adagrad"``,
    ``"rmsprop"``, ``"adam"``."""
    makers = {"gd": lambda: GD(lr, form=form), "momentum": lambda: Momentum(lr, form=form, **kwargs),
              "nesterov": lambda: Momentum(lr, form="keras", nesterov=True, **kwargs),
              "adagrad": lambda: AdaGrad(lr, form=form, **kwargs), "rmsprop": lambda: RMSProp(lr, form=form, **kwargs),
              "adam": lambda: Adam(lr, form=form, **kwargs)}
    key = str(name).lower()
    if key not in makers:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(map(repr, makers))}")
    return makers[key]()
