"""Exercise checks: compare a student's answer with a reference and say what is wrong.

Every check raises :class:`CheckFailed` (an ``AssertionError``) with a message a
student can act on, or prints one line starting with ``"Passed:"``. The topic
modules (``cnnkit.checks.convolution``, ...) build on the helpers here::

    from cnnkit.checks import expect_array, passed
    def check_relu(relu):
        x = np.linspace(-2, 2, 9)
        expect_array("relu(x)", relu(x), np.maximum(x, 0))
        passed("relu matches max(0, x)")
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

import numpy as np

# The topic modules, one per lesson. They are not imported here: a check cell imports its own
# (``from cnnkit.checks import pooling as checks``), so a numpy-only exercise loads neither the
# other lessons' checks nor what they import.
TOPICS = ("convolution", "pooling", "normalization", "batchnorm_dropout", "parameters",
          "one_by_one", "architectures", "optimizers", "capstone")


class CheckFailed(AssertionError):
    """An exercise check did not pass; the message says what to fix."""


def fail(message: str):
    raise CheckFailed(message)


def passed(message: str) -> None:
    print(f"Passed: {message}")


def unanswered(value, name: str) -> None:
    """Fail when ``value`` is None or Ellipsis (the answer was left empty)."""
    if value is None or value is Ellipsis:
        fail(f"{name} is {value!r}: write your answer in the cell above and run it")


# ---------------------------------------------------------------- visible and hidden inputs
#
# A check draws its inputs through ``case_rng`` / ``cases``. In a student's
# notebook they are the visible inputs (fixed seeds); the grader runs the same
# check a second time inside ``hidden_inputs(seed)`` with a seed drawn at grading
# time, so that an answer copied from a visible output earns nothing.

_HIDDEN_SEED: contextvars.ContextVar = contextvars.ContextVar("cnnkit_hidden_seed", default=None)


def hidden_seed() -> int | None:
    """The grading run's secret seed while hidden inputs are drawn, else None."""
    return _HIDDEN_SEED.get()


@contextlib.contextmanager
def hidden_inputs(seed: int):
    """Within this block every ``case_rng``/``cases`` draws hidden inputs from ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"hidden-input seed must be a non-negative int, got {seed!r}")
    token = _HIDDEN_SEED.set(seed)
    try:
        yield
    finally:
        _HIDDEN_SEED.reset(token)


def case_rng(seed: int) -> np.random.Generator:
    """``np.random.default_rng(seed)`` for visible inputs; a generator of the secret seed for hidden ones."""
    hidden = hidden_seed()
    return np.random.default_rng(seed if hidden is None else [hidden, seed])


def cases(visible: list, draw, seed: int = 0) -> list:
    """``visible`` (the notebook's cases), or ``draw(rng)`` with the secret seed when inputs are hidden."""
    hidden = hidden_seed()
    return list(visible) if hidden is None else list(draw(np.random.default_rng([hidden, seed])))


# ---------------------------------------------------------------- calling the student's answers


def _raised_name(exc: BaseException) -> str:
    """The exception's type name (as the student's kernel reported it, for a replayed exception)."""
    return getattr(exc, "type_name", None) or type(exc).__name__


class NotABlock(Exception):
    """A block function returned something that is not a Keras tensor computed from its input."""


class AnswerRaised(Exception):
    """An exception the student's code raised in the kernel, as the grader rebuilds it (type name and text)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


def block_model(fn, input_shape: tuple, args: tuple = (), kwargs: dict | None = None):
    """``keras.Model(x, fn(x, *args, **kwargs))`` for ``x = keras.Input(input_shape)``.

    A student's block function returns a Keras tensor; checks look at the model it
    makes. Exceptions of ``fn`` propagate unchanged; a result that is not a Keras
    tensor computed from ``x`` raises :class:`NotABlock`. In grading, ``fn`` is a
    stand-in whose ``block_model`` returns the model the student's kernel built.
    """
    build = getattr(fn, "block_model", None)
    if build is not None and not isinstance(fn, type):
        return build(tuple(input_shape), tuple(args), dict(kwargs or {}))
    import keras

    inputs = keras.Input(tuple(input_shape))
    out = fn(inputs, *args, **(kwargs or {}))
    if not isinstance(out, keras.KerasTensor):
        raise NotABlock(f"should return the block's output tensor (the result of its last layer), "
                        f"got {type(out).__name__}")
    try:
        return keras.Model(inputs, out)
    except Exception as exc:
        raise NotABlock(f"returned a tensor that is not computed from the input x ({type(exc).__name__}: {exc})") from None


def call_answer(fn, name: str, *args, detail: str = "", **kwargs):
    """Call a student's ``fn(*args, **kwargs)``; a blank answer or a crash becomes a CheckFailed.

    ``name`` is how the call is shown (e.g. ``"relu(z)"``); ``detail`` is added
    after the crash message (e.g. the inputs that caused it).
    """
    try:
        return fn(*args, **kwargs)
    except CheckFailed:
        raise
    except NotImplementedError:
        fail(f"{name} raised NotImplementedError: the answer is not written yet; replace "
             "`raise NotImplementedError()` with your code and run the cell")
    except Exception as exc:  # the student's code crashed: say where, do not crash the check
        fail(f"{name} raised {_raised_name(exc)}: {exc}{detail}")


def call_block(fn, call: str, input_shape, args: tuple = (), *, returns: str = "the tensor"):
    """:func:`block_model` of a student's block ``fn``, failing as :func:`call_answer` does, naming ``call``.

    A result that is not a block fails with "return ``returns`` computed from x with the functional API".
    """
    def build():
        try:
            return block_model(fn, tuple(input_shape), tuple(args))
        except NotABlock as exc:
            fail(f"{call} {exc}; return {returns} computed from x with the functional API")

    return call_answer(build, call)


def expect_count(value, name: str) -> int:
    """Return ``value`` as an int, failing unless it is a whole number (a parameter count, a size)."""
    unanswered(value, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{name} should be a whole number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        fail(f"{name} is {value!r}: a count is a whole number; NaN or infinity comes from float "
             "arithmetic gone wrong (0 / 0, a division by zero, math.inf); count with integers: +, * and //")
    if value != int(value):
        fail(f"{name} should be a whole number, got {value!r}: parameter counts are integers")
    return int(value)


def expect_callable(fn, name: str) -> None:
    if not callable(fn):
        fail(f"{name} should be a function, but it is {type(fn).__name__}")


def numeric_array(value, name: str) -> np.ndarray:
    """``np.asarray(value)``, failing with a readable message when that fails or gives a ragged object array."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        fail(f"{name} could not be turned into an array: {exc}")
    if arr.dtype == object:
        fail(f"{name} should be a numeric array, got a ragged or non-numeric {type(value).__name__}")
    return arr


def expect_shape(name: str, got, expected: tuple) -> np.ndarray:
    """Return ``got`` as an array, failing with a readable message if its shape differs."""
    unanswered(got, name)
    arr = numeric_array(got, name)
    expected = tuple(expected)
    if arr.shape != expected:
        hint = ""
        if arr.ndim == len(expected):
            diffs = [g - e for g, e in zip(arr.shape, expected)]
            if any(d != 0 for d in diffs) and all(abs(d) <= 2 for d in diffs):
                hint = " (off by a row or column or two: check the output-size formula, the padding and the range of your loops)"
        elif arr.size == int(np.prod(expected)):
            hint = " (same number of elements: a reshape or transpose is missing or in the wrong order)"
        fail(f"{name} has shape {arr.shape}, expected {expected}{hint}")
    return arr


def expect_array(name: str, got, expected, *, rtol: float = 1e-5, atol: float = 1e-6) -> np.ndarray:
    """Fail unless ``got`` has ``expected``'s shape and values (within rtol/atol)."""
    expected = np.asarray(expected)
    arr = expect_shape(name, got, expected.shape)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        fail(f"{name} should hold numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        fail(f"{name} contains NaN or infinity at {np.argwhere(~np.isfinite(arr))[:3].tolist()}")
    close = np.isclose(arr, expected, rtol=rtol, atol=atol)
    if not close.all():
        bad = np.argwhere(~close)
        first = tuple(int(i) for i in bad[0]) if bad.size else ()
        n_bad = int((~close).sum())
        fail(
            f"{name}: {n_bad} of {arr.size} values differ; first at index {first}: "
            f"got {arr[first]!r}, expected {expected[first]!r}"
        )
    return arr


def expect_equal(name: str, got, expected) -> None:
    """Fail unless ``got == expected`` (for ints, strings, tuples)."""
    unanswered(got, name)
    if isinstance(expected, tuple) and isinstance(got, list):
        got = tuple(got)
    if got != expected:
        hint = ""
        if isinstance(expected, int) and isinstance(got, (int, np.integer)) and abs(int(got) - expected) == 1:
            hint = " (off by one: did you forget the +1, or round instead of taking the floor?)"
        fail(f"{name} is {got!r}, expected {expected!r}{hint}")


def expect_close(name: str, got, expected: float, *, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Fail unless the scalar ``got`` is within tolerance of ``expected``."""
    unanswered(got, name)
    try:
        value = float(got)
    except (TypeError, ValueError):
        fail(f"{name} should be a number, got {type(got).__name__}")
    if not np.isclose(value, expected, rtol=rtol, atol=atol):
        fail(f"{name} is {value!r}, expected {expected!r}")
