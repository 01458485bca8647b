"""Checks for lesson 08's update rules: one step of momentum, RMSProp and Adam written by the student.

Each check calls the answer on visible and hidden inputs, compares it with the
tutorial's formula (as corrected in ERRATA.md) and, when it differs, with the
usual mistakes, so the message can name the one that was made (Keras'
velocity form, epsilon inside the root, the slide's v_t instead of g_t, a
missing or shifted bias correction, outputs returned in the wrong order...).
"""
from __future__ import annotations

import math

import numpy as np

from cnnkit.checks import (
    call_answer,
    case_rng,
    cases,
    expect_callable,
    expect_shape,
    fail,
    passed,
    unanswered,
)

__all__ = ["call_on_copies", "check_adam_step", "check_momentum_step", "check_rmsprop_step"]


# --------------------------------------------------------------------------- helpers


def call_on_copies(fn, name: str, *args):
    """Call a student's ``fn`` on copies of the array arguments (it may modify them); the inputs go in any failure."""
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]  # the student may modify inputs
    return call_answer(fn, name, *copies, detail=f" (inputs: {_show(args)})")


def _show(args) -> str:
    parts = []
    for a in args:
        parts.append(np.array2string(np.asarray(a), precision=4) if isinstance(a, np.ndarray) else repr(a))
    return ", ".join(parts)


def _unpack(out, name: str, names: tuple[str, ...]):
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = f"a {type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        fail(f"{name} should return a tuple ({', '.join(names)}); it returned {got}")
    return out


def _matches(got, value) -> bool:
    with np.errstate(all="ignore"):
        return bool(np.all(np.isfinite(value)) and np.allclose(got, value, rtol=1e-6, atol=1e-12))


def _compare(label: str, got, expected, variants: dict, inputs: str):
    """Fail with a hint when ``got`` differs from ``expected``; ``variants`` maps a hint to a wrong value."""
    arr = expect_shape(label, got, np.shape(expected))
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        fail(f"{label} should hold numbers, got dtype {arr.dtype}")
    if _matches(arr, expected):
        return
    for hint, value in variants.items():
        if _matches(arr, value):
            fail(f"{label} is not right: {hint} (inputs: {inputs}; expected {np.round(expected, 6).tolist()}, "
                 f"got {np.round(arr, 6).tolist()})")
    fail(f"{label} is not right for inputs {inputs}: expected {np.round(expected, 6).tolist()}, "
         f"got {np.round(arr, 6).tolist()}; write the update out line by line from the formula and compare")


# --------------------------------------------------------------------------- momentum


def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    """A random small shape of one or two axes, for hidden weight arrays."""
    return tuple(int(d) for d in rng.integers(2, 5, size=int(rng.integers(1, 3))))


def _with_tiny(rng: np.random.Generator, shape, scale: float, tiny: float) -> np.ndarray:
    """Normal values of ``scale`` with one entry of size ``tiny``: where epsilon's place shows."""
    out = rng.normal(0, scale, size=shape)
    out.reshape(-1)[int(rng.integers(out.size))] = tiny * rng.choice([-1.0, 1.0])
    return out


def _momentum_cases():
    def visible(rng):
        return [
            (np.array([1.0, -2.0, 0.5]), np.zeros(3), np.array([0.4, -1.0, 2.0]), 0.1, 0.9),
            (rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), 0.05, 0.8),
            (np.array([3.0, 0.0]), np.array([0.5, -0.5]), np.array([-1.0, 1.0]), 0.5, 0.5),
        ]

    def draw(rng):  # a first step from v = 0, a general one, and beta = 0.5 where the two weights are equal
        drawn = []
        for i, beta in enumerate((float(rng.uniform(0.8, 0.99)), float(rng.uniform(0.6, 0.95)), 0.5)):
            shape = _shape(rng)
            v = np.zeros(shape) if i == 0 else rng.normal(size=shape)
            drawn.append((rng.normal(size=shape), v, rng.normal(size=shape), float(rng.uniform(0.01, 0.5)), beta))
        return drawn

    return cases(visible(case_rng(8)), draw, seed=8)


def check_momentum_step(momentum_step) -> None:
    """``momentum_step(w, v, grad, lr, beta) -> (w_new, v_new)`` with v_new = beta v + (1 - beta) g, w_new = w - lr v_new."""
    unanswered(momentum_step, "momentum_step")
    expect_callable(momentum_step, "momentum_step")
    for w, v, g, lr, beta in _momentum_cases():
        inputs = f"w={_show([w])}, v={_show([v])}, grad={_show([g])}, lr={lr}, beta={beta}"
        out = _unpack(call_on_copies(momentum_step, "momentum_step", w, v, g, lr, beta), "momentum_step", ("w_new", "v_new"))
        v_new = beta * v + (1 - beta) * g
        w_new = w - lr * v_new
        v_keras = beta * v - lr * g
        _compare("v_new", out[1], v_new, {
            "this is Keras' velocity v = beta v - lr g; the tutorial form averages the gradients: "
            "v = beta v + (1 - beta) g": v_keras,
            "you forgot the factor (1 - beta) on the gradient: v = beta v + (1 - beta) g": beta * v + g,
            "the weights beta and (1 - beta) are swapped: beta multiplies the old velocity": (1 - beta) * v + beta * g,
            "you returned (v_new, w_new): return the weights first, (w_new, v_new)": w_new,
        }, inputs)
        _compare("w_new", out[0], w_new, {
            "the step must go against the velocity: w_new = w - lr v_new (a minus sign)": w + lr * v_new,
            "update the velocity first, then step with the NEW velocity v_new, not the old v": w - lr * v,
            "you stepped along the raw gradient; momentum steps along the averaged velocity v_new": w - lr * g,
        }, inputs)
    passed("momentum_step matches v = beta v + (1 - beta) g, w = w - lr v on 3 cases")


# --------------------------------------------------------------------------- RMSProp


def _rmsprop_cases():
    def visible(rng):
        return [
            (np.array([1.0, -2.0, 0.5]), np.zeros(3), np.array([1e-4, -3.0, 0.02]), 0.01, 0.9, 1e-7),
            (rng.normal(size=(2, 3)), rng.uniform(0.1, 1, size=(2, 3)), rng.normal(size=(2, 3)), 0.1, 0.8, 1e-3),
            (np.array([0.0, 1.0]), np.array([1e-10, 4.0]), np.array([-2e-5, 0.5]), 0.05, 0.5, 1e-5),
        ]

    def draw(rng):  # each case has a gradient entry near sqrt(eps), so eps inside or outside the root differ
        drawn = []
        for i, eps in enumerate((1e-7, float(10.0 ** rng.integers(-4, -2)), 1e-5)):
            shape = _shape(rng)
            v = np.zeros(shape) if i == 0 else rng.uniform(0.1, 1, size=shape)
            if i == 2:
                v.reshape(-1)[0] = 1e-10
            grad = _with_tiny(rng, shape, 1.0, 10 * math.sqrt(eps))
            if i == 2:
                grad.reshape(-1)[0] = -2 * math.sqrt(eps)
            rho = (0.9, float(rng.uniform(0.7, 0.95)), 0.5)[i]
            drawn.append((rng.normal(size=shape), v, grad, float(rng.uniform(0.005, 0.2)), rho, eps))
        return drawn

    return cases(visible(case_rng(9)), draw, seed=9)


def check_rmsprop_step(rmsprop_step) -> None:
    """``rmsprop_step(w, v, grad, lr, rho, eps) -> (w_new, v_new)``: v_new = rho v + (1-rho) g^2, w_new = w - lr g/(sqrt(v_new)+eps)."""
    unanswered(rmsprop_step, "rmsprop_step")
    expect_callable(rmsprop_step, "rmsprop_step")
    for w, v, g, lr, rho, eps in _rmsprop_cases():
        inputs = f"w={_show([w])}, v={_show([v])}, grad={_show([g])}, lr={lr}, rho={rho}, eps={eps}"
        out = _unpack(call_on_copies(rmsprop_step, "rmsprop_step", w, v, g, lr, rho, eps), "rmsprop_step", ("w_new", "v_new"))
        v_new = rho * v + (1 - rho) * g ** 2
        w_new = w - lr * g / (np.sqrt(v_new) + eps)
        _compare("v_new", out[1], v_new, {
            "the average must be of the SQUARED gradient: v = rho v + (1 - rho) g**2": rho * v + (1 - rho) * g,
            "you forgot the factor (1 - rho) on g**2": rho * v + g ** 2,
            "the weights rho and (1 - rho) are swapped: rho multiplies the old average": (1 - rho) * v + rho * g ** 2,
            "you returned (v_new, w_new): return the weights first, (w_new, v_new)": w_new,
        }, inputs)
        _compare("w_new", out[0], w_new, {
            "epsilon belongs outside the root in this form: divide by (sqrt(v_new) + eps), not sqrt(v_new + eps) "
            "(that is Keras' choice)": w - lr * g / np.sqrt(v_new + eps),
            "this is the slide's formula, which multiplies by v_t; the step multiplies the gradient g": (
                w - lr / (np.sqrt(v_new) + eps) * v_new),
            "divide by the square ROOT of v_new (np.sqrt)": w - lr * g / (v_new + eps),
            "use the updated average v_new in the step, not the old v": w - lr * g / (np.sqrt(v) + eps),
            "the step must go against the gradient: w - lr g / (sqrt(v_new) + eps)": w + lr * g / (np.sqrt(v_new) + eps),
        }, inputs)
    passed("rmsprop_step matches v = rho v + (1 - rho) g^2, w = w - lr g / (sqrt(v) + eps) on 3 cases")


# --------------------------------------------------------------------------- Adam


def _adam_cases():
    def visible(rng):
        return [
            (np.array([1.0, -2.0, 0.5]), np.zeros(3), np.zeros(3), np.array([1e-5, -3.0, 0.02]), 1, 0.01, 0.9, 0.999,
             1e-7),
            (rng.normal(size=(2, 2)), rng.normal(size=(2, 2)) * 0.1, rng.uniform(0, 0.1, size=(2, 2)),
             rng.normal(size=(2, 2)), 3, 0.1, 0.8, 0.99, 1e-8),
            (np.array([0.5, 0.5]), np.array([1e-6, 0.2]), np.array([1e-12, 0.3]), np.array([2e-6, -1.0]), 10, 0.05,
             0.9, 0.999, 1e-6),
        ]

    def draw(rng):  # the first step (t = 1, zero moments) and two later ones; tiny entries where eps shows
        drawn = []
        for i, (t, eps) in enumerate(((1, 1e-7), (int(rng.integers(2, 6)), 1e-8), (int(rng.integers(6, 30)), 1e-6))):
            shape = _shape(rng)
            if i == 0:
                m, v = np.zeros(shape), np.zeros(shape)
                grad = _with_tiny(rng, shape, 1.0, 100 * eps)
            else:
                m = rng.normal(0, 0.1, size=shape)
                v = rng.uniform(0, 0.1, size=shape)
                m.reshape(-1)[0], v.reshape(-1)[0] = 1e-6 * (i == 2), 1e-12 * (i == 2)
                grad = rng.normal(size=shape)
                grad.reshape(-1)[0] = 2 * eps
            b1, b2 = float(rng.uniform(0.8, 0.95)), float(rng.choice([0.99, 0.995, 0.999]))
            drawn.append((rng.normal(size=shape), m, v, grad, t, float(rng.uniform(0.005, 0.2)), b1, b2, eps))
        return drawn

    return cases(visible(case_rng(10)), draw, seed=10)


def check_adam_step(adam_step) -> None:
    """``adam_step(w, m, v, grad, t, lr, beta1, beta2, eps) -> (w_new, m_new, v_new)``, t counted from 1.

    m_new = b1 m + (1-b1) g; v_new = b2 v + (1-b2) g^2; m_hat = m_new/(1-b1^t);
    v_hat = v_new/(1-b2^t); w_new = w - lr m_hat/(sqrt(v_hat) + eps).
    """
    unanswered(adam_step, "adam_step")
    expect_callable(adam_step, "adam_step")
    table = _adam_cases()
    for w, m, v, g, t, lr, b1, b2, eps in table:
        inputs = (f"w={_show([w])}, m={_show([m])}, v={_show([v])}, grad={_show([g])}, t={t}, lr={lr}, "
                  f"beta1={b1}, beta2={b2}, eps={eps}")
        out = _unpack(call_on_copies(adam_step, "adam_step", w, m, v, g, t, lr, b1, b2, eps), "adam_step",
                      ("w_new", "m_new", "v_new"))
        m_new = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m_new / (1 - b1 ** t), v_new / (1 - b2 ** t)
        w_new = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        _compare("m_new", out[1], m_new, {
            "return the raw moving average m_new = b1 m + (1 - b1) g; the bias correction m_hat is only used for "
            "the step, never stored": m_hat,
            "you forgot the factor (1 - beta1) on g": b1 * m + g,
            "you returned the moments in the wrong order: (w_new, m_new, v_new)": v_new,
        }, inputs)
        _compare("v_new", out[2], v_new, {
            "the slide's typo: v uses (1 - beta2) g^2, not (1 - beta1) g^2": b2 * v + (1 - b1) * g ** 2,
            "return the raw v_new = b2 v + (1 - b2) g^2; the corrected v_hat is only used for the step": v_hat,
            "v averages the SQUARED gradient: (1 - beta2) * g**2": b2 * v + (1 - b2) * g,
        }, inputs)
        wrong = {
            "you forgot the bias correction: divide m_new by (1 - beta1**t) and v_new by (1 - beta2**t) "
            "before the step": w - lr * m_new / (np.sqrt(v_new) + eps),
            "epsilon belongs outside the root in this form: sqrt(v_hat) + eps, not sqrt(v_hat + eps)": (
                w - lr * m_hat / np.sqrt(v_hat + eps)),
            "this is Keras' folded form (eps added to sqrt(v_new), the corrections moved into the step size); "
            "here divide by sqrt(v_hat) + eps": (
                w - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m_new / (np.sqrt(v_new) + eps)),
            "only half the bias correction: correct BOTH m (by 1 - beta1**t) and v (by 1 - beta2**t)": (
                w - lr * m_hat / (np.sqrt(v_new) + eps)),
            "only half the bias correction: correct BOTH m and v, not just v": w - lr * m_new / (np.sqrt(v_hat) + eps),
            "the step must go against the gradient: w - lr m_hat / (sqrt(v_hat) + eps)": (
                w + lr * m_hat / (np.sqrt(v_hat) + eps)),
        }
        if t > 1:
            for shift, word in ((t - 1, "t - 1"), (t + 1, "t + 1")):
                wrong[f"the bias correction uses the power beta**t with t = {t} here (you used {word}); "
                      f"t counts steps from 1"] = (
                    w - lr * (m_new / (1 - b1 ** shift)) / (np.sqrt(v_new / (1 - b2 ** shift)) + eps))
        _compare("w_new", out[0], w_new, wrong, inputs)
    steps = ", ".join(str(case[4]) for case in table)
    passed(f"adam_step matches Adam with bias-corrected moments and eps outside the root on {len(table)} cases "
           f"(t = {steps})")
