"""Every graded check of every solution notebook, on visible and on hidden inputs.

A small harness runs a solution notebook's code cells in this process (up to its
last graded check cell), then calls each graded check the way its check cell
does (``checks.check_x(args...)``): normally, and inside ``hidden_inputs(seed)``.
The answers a check calls are wrapped to record every call, so the tests can
tell the hidden inputs from the visible ones, and build an answer that only
knows the visible results.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import functools
import io
import itertools
import json
import math
import time
import types
from pathlib import Path

import numpy as np
import pytest

from cnnkit.checks import CheckFailed, block_model, hidden_inputs, protocol
from cnnkit.checks import convolution, one_by_one, optimizers, parameters, pooling

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
SEEDS = (7, 31337, 2**40 + 5)


# --------------------------------------------------------------------------- the harness


def _is_check(cell) -> bool:
    return bool(cell["metadata"].get("nbgrader", {}).get("grade"))


def _parse_check(source: str) -> tuple[str, list[ast.expr]]:
    """The function name and argument expressions of a check cell ``checks.check_x(args...)``."""
    tree = ast.parse(source)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), f"not one call: {source!r}"
    call = tree.body[0].value
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute), f"not a call: {source!r}"
    assert isinstance(call.func.value, ast.Name) and call.func.value.id == "checks", source
    assert not call.keywords, source
    return call.func.attr, list(call.args)


@functools.lru_cache(maxsize=None)
def notebook(name: str):
    """Run the solution's code cells up to its last check; return (namespace, [(grade id, check name, args)])."""
    nb = json.loads((SOLUTIONS / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    last = max(i for i, c in enumerate(code) if _is_check(c))
    namespace: dict = {"__name__": f"solution_{name}"}
    graded = []
    for cell in code[:last + 1]:
        source = "".join(cell["source"])
        if _is_check(cell):
            graded.append((cell["metadata"]["nbgrader"]["grade_id"], *_parse_check(source)))
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - the kit's own notebooks
    checks = []
    for grade_id, func, arg_nodes in graded:
        args = [eval(compile(ast.Expression(node), f"<{name}>", "eval"), namespace) for node in arg_nodes]  # noqa: S307
        checks.append((grade_id, func, args))
    return namespace, checks


def _all_checks():
    names = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))
    out = []
    for name in names:
        nb = json.loads((SOLUTIONS / f"{name}.ipynb").read_text())
        out += [(name, c["metadata"]["nbgrader"]["grade_id"]) for c in nb["cells"] if _is_check(c)]
    return out


ALL_CHECKS = _all_checks()


def _check(name: str, grade_id: str):
    namespace, checks = notebook(name)
    grade, func, args = next(c for c in checks if c[0] == grade_id)
    return getattr(namespace["checks"], func), args


def _answers(args) -> list[int]:
    """Positions of the arguments that are the student's functions."""
    return [i for i, a in enumerate(args) if isinstance(a, types.FunctionType)]


class Recorder:
    """Wraps an answer function: records the identity of every call (and its result) before passing it on."""

    def __init__(self, fn, name: str):
        self.fn, self.name, self.calls = fn, name, []

    def _key(self, args, kwargs) -> str:
        return protocol.key(self.name, tuple(args), dict(kwargs))

    def wrapper(self):
        def answer(*args, **kwargs):
            key = self._key(args, kwargs)  # before the call: the answer may change its inputs
            try:
                result = self.fn(*args, **kwargs)
            except Exception as exc:
                self.calls.append((key, ("raise", exc)))
                raise
            self.calls.append((key, ("return", copy.deepcopy(result))))
            return result

        def build(input_shape, args, kwargs):  # a Keras block: the call is (input shape, arguments)
            self.calls.append((self._key((tuple(input_shape), *args), kwargs), ("block", None)))
            return block_model(self.fn, input_shape, args, kwargs)

        answer.block_model = build
        return answer


def lookup_answer(name: str, table: dict, real):
    """An answer that knows only the results in ``table`` (call key -> result) and raises on any other call."""
    def key(args, kwargs):
        return protocol.key(name, tuple(args), dict(kwargs))

    def answer(*args, **kwargs):
        k = key(args, kwargs)
        if k not in table:
            raise KeyError("an input this answer has never seen")
        kind, value = table[k]
        if kind == "raise":
            raise value
        return copy.deepcopy(value)

    def build(input_shape, args, kwargs):
        if key((tuple(input_shape), *args), kwargs) not in table:
            raise KeyError("an input this answer has never seen")
        return block_model(real, input_shape, args, kwargs)

    answer.block_model = build
    return answer


def run(check, args, seed=None) -> str:
    """Run ``check(*args)`` (inside ``hidden_inputs(seed)`` unless seed is None); return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), (hidden_inputs(seed) if seed is not None else contextlib.nullcontext()):
        check(*args)
    return out.getvalue()


@functools.lru_cache(maxsize=None)
def recorded_run(name: str, grade_id: str, seed):
    """Run one check on the solution's answers, wrapped; return (printed text, {argument position: calls})."""
    check, args = _check(name, grade_id)
    recorders = {i: Recorder(args[i], f"arg{i}") for i in _answers(args)}
    wrapped = [recorders[i].wrapper() if i in recorders else a for i, a in enumerate(args)]
    printed = run(check, wrapped, seed)
    return printed, {i: r.calls for i, r in recorders.items()}


FUNCTION_CHECKS = [c for c in ALL_CHECKS if _answers(_check(*c)[1])]


def test_harness_finds_every_graded_check():
    assert len(ALL_CHECKS) >= 35
    assert ("01_convolution", "check_output_size") in FUNCTION_CHECKS
    assert ("02_pooling", "check_stack_shapes") not in FUNCTION_CHECKS


# --------------------------------------------------------------------------- the solutions pass


@pytest.mark.parametrize("name, grade_id", ALL_CHECKS)
def test_solution_passes_visible_and_hidden(name, grade_id):
    for seed in (None, *SEEDS):
        printed, _ = recorded_run(name, grade_id, seed)
        assert printed.startswith("Passed:"), (seed, printed)


@pytest.mark.parametrize("name, grade_id", FUNCTION_CHECKS)
def test_hidden_inputs_differ_from_visible_and_between_seeds(name, grade_id):
    _, visible = recorded_run(name, grade_id, None)
    _, first = recorded_run(name, grade_id, SEEDS[0])
    _, second = recorded_run(name, grade_id, SEEDS[1])
    for i in visible:
        seen = {k for k, _ in visible[i]}
        keys_first, keys_second = [k for k, _ in first[i]], [k for k, _ in second[i]]
        assert seen and keys_first and keys_second
        assert not set(keys_first) <= seen, f"argument {i}: every hidden call was also a visible one"
        assert not set(keys_second) <= seen
        assert keys_first != keys_second, f"argument {i}: two seeds gave the same hidden calls"


@pytest.mark.parametrize("name, grade_id", FUNCTION_CHECKS)
def test_answers_get_only_plain_arguments(name, grade_id):
    for seed in (None, SEEDS[0]):
        _, calls = recorded_run(name, grade_id, seed)
        for key, _ in itertools.chain.from_iterable(calls.values()):
            assert '"$opaque"' not in key, key[:300]
            for callable_name in (v for k, v in _tags(json.loads(key)) if k == "$callable"):
                assert callable_name.startswith("cnnkit.checks."), callable_name


def _tags(data):
    """Every (tag, body) pair of protocol-encoded data, depth first."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield k, v
            yield from _tags(v)
    elif isinstance(data, list):
        for v in data:
            yield from _tags(v)


@pytest.mark.parametrize("name, grade_id", FUNCTION_CHECKS)
def test_answer_that_knows_only_the_visible_results_fails_on_hidden_inputs(name, grade_id):
    check, args = _check(name, grade_id)
    _, visible = recorded_run(name, grade_id, None)
    answers = list(args)
    for i, calls in visible.items():
        answers[i] = lookup_answer(f"arg{i}", dict(calls), args[i])
    assert run(check, answers).startswith("Passed:")
    with pytest.raises(CheckFailed):
        run(check, answers, SEEDS[2])


@pytest.mark.parametrize("name, grade_id", ALL_CHECKS)
def test_visible_feedback_is_what_the_solution_notebook_shows(name, grade_id):
    nb = json.loads((SOLUTIONS / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if _is_check(c) and c["metadata"]["nbgrader"]["grade_id"] == grade_id)
    shown = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout")
    printed, _ = recorded_run(name, grade_id, None)
    assert printed.strip() == shown.strip()


def test_visible_inputs_are_the_published_cases():
    _, calls = recorded_run("01_convolution", "check_output_size", None)
    expected = [protocol.key("arg0", case, {}) for case in convolution.OUTPUT_SIZE_CASES]
    assert [k for k, _ in calls[0]] == expected


# --------------------------------------------------------------------------- messages


def _failure(check, *args, seed=None) -> str:
    with pytest.raises(CheckFailed) as info:
        run(check, args, seed)
    return str(info.value)


@pytest.mark.parametrize("seed", (None, SEEDS[0]))
def test_same_pad_returning_nan_is_told_why(seed):
    message = _failure(convolution.check_same_padding, lambda n, f, s: (math.nan, math.nan), seed=seed)
    assert "NaN" in message and "//" in message and "expected a pair" not in message


def test_same_pad_returning_halves_is_told_to_split_with_integers():
    def same_pad(n, f, s):
        total = max((-(-n // s) - 1) * s + f - n, 0)
        return total / 2, total / 2

    assert "total // 2" in _failure(convolution.check_same_padding, same_pad)


@pytest.mark.parametrize("bad", (math.nan, math.inf, np.float64("nan")))
def test_nan_or_inf_counts_get_a_message_not_a_crash(bad):
    for check, answer in ((parameters.check_conv_count, lambda f, c, k, b: bad),
                          (parameters.check_dense_count, lambda n, m: bad),
                          (one_by_one.check_bottleneck_cost, lambda *a: (bad, 10)),
                          (one_by_one.check_bottleneck_cost, lambda *a: (1, bad)),
                          (convolution.check_output_size, lambda *a: bad),
                          (pooling.check_pool_output_size, lambda *a: bad)):
        message = _failure(check, answer)
        assert repr(bad) in message and "whole number" in message, message
    assert "bn_trainable" in _failure(parameters.check_bn_counts, 24, bad, 48)
    walk = [(shape, bad) for shape, _ in notebook("05_parameter_counting")[0]["walk"]]
    assert "walk[0]" in _failure(parameters.check_model_walk, walk)


def _pool_axes(x, size, stride, axes):
    """Max pooling over any two axes of x (what an answer that picked the wrong axes computes)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=axes)
    index = [slice(None)] * x.ndim
    for a in axes:
        index[a] = slice(None, None, stride)
    return windows[tuple(index)].max(axis=(-2, -1))


def _loop_pool(reduce_axes):
    """A loop answer that takes each window's max over ``reduce_axes`` of its (N, size, size, C) block."""
    def max_pool(x, size, stride):
        n, h, w, c = x.shape
        h_out, w_out = (h - size) // stride + 1, (w - size) // stride + 1
        out = np.zeros((n, h_out, w_out, c))
        for i, j in itertools.product(range(h_out), range(w_out)):
            window = x[:, i * stride:i * stride + size, j * stride:j * stride + size, :]
            out[:, i, j, :] = window.max(axis=reduce_axes, keepdims=True)[:, 0, 0, :]
        return out

    return max_pool


@pytest.mark.parametrize("seed", (None, *SEEDS))
@pytest.mark.parametrize("answer, words", [
    (lambda x, size, stride: _pool_axes(x, size, stride, (0, 1)), "axes 0 and 1"),
    (lambda x, size, stride: _pool_axes(x, size, stride, (2, 3)), "axes 2 and 3"),
    (lambda x, size, stride: _pool_axes(x, size, stride, (1, 3)), "axes 1 and 3"),
    (_loop_pool((0, 1, 2)), "across images (axis 0, batch)"),
    (_loop_pool((1, 2, 3)), "across channels (axis 3, channels)"),
])
def test_max_pool_over_the_wrong_axes_is_told_which_axes(answer, words, seed):
    message = _failure(pooling.check_max_pool, answer, seed=seed)
    assert words in message and "pool over axes 1 and 2" in message, message


# --------------------------------------------------------------------------- hints stay reachable on hidden inputs


def _adam_eps_inside(w, m, v, g, t, lr, b1, b2, eps):
    m_new, v_new = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g ** 2
    return w - lr * (m_new / (1 - b1 ** t)) / np.sqrt(v_new / (1 - b2 ** t) + eps), m_new, v_new


def _rmsprop_eps_inside(w, v, g, lr, rho, eps):
    v_new = rho * v + (1 - rho) * g ** 2
    return w - lr * g / np.sqrt(v_new + eps), v_new


def _diagonal_reader(H):
    d = np.diag(H)
    if (d > 0).all() or (d < 0).all():
        return "minimum" if d[0] > 0 else "maximum"
    return "saddle" if (d > 0).any() and (d < 0).any() else "degenerate"


@pytest.mark.parametrize("seed", (None, *SEEDS))
@pytest.mark.parametrize("check, answer, words", [
    (convolution.check_output_size, lambda n, f, s, p: -(-(n + 2 * p - f) // s) + 1, "round down"),
    (convolution.check_output_size, lambda n, f, s, p: (n + p - f) // s + 1, "BOTH sides"),
    (convolution.check_same_padding,
     lambda n, f, s: (lambda t: (t - t // 2, t // 2))(max((-(-n // s) - 1) * s + f - n, 0)), "swapped"),
    (convolution.check_same_padding, lambda n, f, s: (lambda t: (t // 2, t - t // 2))((-(-n // s) - 1) * s + f - n),
     "negative padding"),
    (pooling.check_pool_output_size, lambda n, f, s: (n - f) // s, "+1"),
    (pooling.check_pool_output_size, lambda n, f, s: n - f + 1, "stride is ignored"),
    (pooling.check_pool_output_size, lambda n, f, s: n // s, "only right when the window fits"),
    (optimizers.check_adam_step, _adam_eps_inside, "epsilon belongs outside the root"),
    (optimizers.check_rmsprop_step, _rmsprop_eps_inside, "epsilon belongs outside the root"),
    (optimizers.check_classify, _diagonal_reader, "diagonal"),
    (optimizers.check_updates_per_epoch, lambda n, b: n // b, "last, smaller batch"),
    (optimizers.check_updates_per_epoch, lambda n, b: n // b + 1, "divides n exactly"),
    (parameters.check_conv_count, lambda f, c, k, bias: f * f * c * k, "forgot the bias"),
    (parameters.check_dense_count, lambda n, m: n * (m + 1), "the +1 goes with the inputs"),
])
def test_hints_are_reachable_on_hidden_inputs(check, answer, words, seed):
    assert words in _failure(check, answer, seed=seed)


# --------------------------------------------------------------------------- many hidden seeds

SWEEP_SEEDS = range(10_000, 10_200)
SWEEP_SECONDS = 2.5  # per check: the Keras checks build models, so they get fewer of the 200 seeds
SWEEP_AT_LEAST = 3


@pytest.mark.parametrize("name, grade_id", ALL_CHECKS)
def test_solution_passes_on_many_hidden_seeds(name, grade_id):
    """The grader draws a fresh seed per class: a check that fails the solution on a rare draw is a false alarm."""
    check, args = _check(name, grade_id)
    start, ran = time.perf_counter(), 0
    for seed in SWEEP_SEEDS:
        printed = run(check, args, seed)
        assert printed.startswith("Passed:"), (seed, printed)
        ran += 1
        if ran >= SWEEP_AT_LEAST and time.perf_counter() - start > SWEEP_SECONDS:
            break
