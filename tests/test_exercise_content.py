"""What the exercises ask: backward passes whose checks name realistic mistakes, and questions of judgment.

The answers below are written the way a student would write them (loops over
windows, einsum), each with one classic mistake; every check must fail them
with the message for that mistake, on the visible inputs and on hidden ones.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cnnkit.checks import CheckFailed, hidden_inputs
from cnnkit.checks import backward as checks

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
SEEDS = (None, 7, 31337)


def _graded(path: Path) -> list[dict]:
    """The graded check cells of a notebook: nbgrader metadata plus the cell's source."""
    nb = json.loads(path.read_text())
    return [{**c["metadata"]["nbgrader"], "source": "".join(c["source"])} for c in nb["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade")]


def _failure(check, answer, seed) -> str:
    with pytest.raises(CheckFailed) as info, contextlib.redirect_stdout(io.StringIO()), \
            (hidden_inputs(seed) if seed is not None else contextlib.nullcontext()):
        check(answer)
    return str(info.value)


def _passes(check, answer, seed) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), (hidden_inputs(seed) if seed is not None else contextlib.nullcontext()):
        check(answer)
    return out.getvalue()


# --------------------------------------------------------------------------- a student's convolution backward pass


def _conv_backward(transpose_w=True, flip=False, batch_mean=False):
    """A loop-over-windows conv backward pass; the flags put one mistake in it."""
    def conv_backward(dout, x, w, stride=1):
        kernel = w[::-1, ::-1] if flip else w
        f1, f2 = w.shape[:2]
        dx, dw = np.zeros(x.shape), np.zeros(w.shape)
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                rows, cols = slice(i * stride, i * stride + f1), slice(j * stride, j * stride + f2)
                g = dout[:, i, j, :]                                        # (N, K)
                dw += np.einsum("nuvc,nk->uvck", x[:, rows, cols, :], g)
                spec = "nk,uvck->nuvc" if transpose_w else "nk,uvkc->nuvc"   # the second reads w as (K, C)
                dx[:, rows, cols, :] += np.einsum(spec, g, kernel)
        return dx, dw / x.shape[0] if batch_mean else dw, dout.sum(axis=(0, 1, 2))
    return conv_backward


def _batch_norm_backward(mean_term=True, variance_term=True):
    def batch_norm_backward(dout, x, gamma, eps):
        axes = tuple(range(x.ndim - 1))
        m = x.size // x.shape[-1]
        sigma = np.sqrt(x.var(axis=axes) + eps)
        x_hat = (x - x.mean(axis=axes)) / sigma
        dx_hat = dout * gamma
        dx = m * dx_hat
        if mean_term:
            dx = dx - dx_hat.sum(axis=axes)
        if variance_term:
            dx = dx - x_hat * (dx_hat * x_hat).sum(axis=axes)
        return dx / (m * sigma), (dout * x_hat).sum(axis=axes), dout.sum(axis=axes)
    return batch_norm_backward


def _max_pool_backward(route):
    """Max-pool backward over windows; ``route`` is "max" (right), "all", "mean" or "assign"."""
    def max_pool_backward(dout, x, size, stride):
        dx = np.zeros(x.shape)
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                r, c = i * stride, j * stride
                window = x[:, r:r + size, c:c + size, :]
                g = dout[:, i:i + 1, j:j + 1, :]
                if route == "all":
                    dx[:, r:r + size, c:c + size, :] += g
                elif route == "mean":
                    dx[:, r:r + size, c:c + size, :] += g / size ** 2
                else:
                    winner = window == window.max(axis=(1, 2), keepdims=True)
                    if route == "assign":
                        dx[:, r:r + size, c:c + size, :][winner] = np.broadcast_to(g, window.shape)[winner]
                    else:
                        dx[:, r:r + size, c:c + size, :] += winner * g
        return dx
    return max_pool_backward


@pytest.mark.parametrize("seed", SEEDS)
def test_right_answers_pass(seed):
    assert _passes(checks.check_conv_backward, _conv_backward(), seed).startswith("Passed:")
    assert _passes(checks.check_batch_norm_backward, _batch_norm_backward(), seed).startswith("Passed:")
    assert _passes(checks.check_max_pool_backward, _max_pool_backward("max"), seed).startswith("Passed:")
    assert _passes(checks.check_relu_backward, lambda dout, z: dout * (z > 0), seed).startswith("Passed:")
    assert _passes(checks.check_dropout_backward, lambda dout, mask, rate: dout * mask / (1 - rate),
                   seed).startswith("Passed:")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("check, answer, words", [
    (checks.check_conv_backward, _conv_backward(transpose_w=False), "a missing transpose"),
    (checks.check_conv_backward, _conv_backward(flip=True), "the kernel is flipped the wrong way"),
    (checks.check_conv_backward, _conv_backward(batch_mean=True), "dw is averaged over the batch"),
    (checks.check_batch_norm_backward, _batch_norm_backward(variance_term=False),
     "dx lacks the term - x_hat * sum(dx_hat * x_hat)"),
    (checks.check_batch_norm_backward, _batch_norm_backward(mean_term=False), "dx lacks the term - sum(dx_hat)"),
    (checks.check_batch_norm_backward, _batch_norm_backward(False, False), "treats the batch mean and variance"),
    (checks.check_max_pool_backward, _max_pool_backward("all"), "goes to every cell of the window"),
    (checks.check_max_pool_backward, _max_pool_backward("mean"), "average pooling's backward pass"),
    (checks.check_max_pool_backward, _max_pool_backward("assign"), "accumulate with +="),
    (checks.check_relu_backward, lambda dout, z: dout, "not masked"),
    (checks.check_relu_backward, lambda dout, z: dout * np.maximum(z, 0), "not by its output"),
    (checks.check_dropout_backward, lambda dout, mask, rate: dout * mask, "lacks the 1/(1 - rate) scale"),
    (checks.check_dropout_backward, lambda dout, mask, rate: dout * mask / rate, "divided by rate"),
])
def test_realistic_mistakes_get_their_message(check, answer, words, seed):
    message = _failure(check, answer, seed)
    assert words in message, message


@pytest.mark.parametrize("seed", SEEDS)
def test_an_answer_that_crashes_or_returns_too_little_is_told_what_to_return(seed):
    assert "NotImplementedError" in _failure(checks.check_conv_backward, _raise, seed)
    message = _failure(checks.check_conv_backward, lambda dout, x, w, stride: (np.zeros(x.shape),), seed)
    assert "should return a tuple (dx, dw, db)" in message
    message = _failure(checks.check_batch_norm_backward,
                       lambda dout, x, gamma, eps: (dout, dout, dout.sum(axis=0)), seed)
    assert "one value per channel" in message


def _raise(*args):
    raise NotImplementedError()


# --------------------------------------------------------------------------- what the notebooks hold


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_exercise_asks_a_question_of_judgment(path):
    quizzes = [c for c in _graded(path) if c["grade_id"].startswith("quiz_")]
    assert quizzes, f"{path.name} has no quiz_ check"
    for cell in quizzes:
        assert cell["points"] == 1 and cell["source"].startswith("checks.check_quiz_"), cell
    exercise = json.loads((ROOT / "exercises" / path.name).read_text())
    blanks = ["".join(c["source"]) for c in exercise["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade_id", "").endswith("_answer")]
    assert blanks and all(b.endswith("= None\nraise NotImplementedError()") for b in blanks), blanks


def test_five_backward_checks_each_after_a_derivation_and_a_numerical_check():
    found = {}
    for path in SOLUTIONS:
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            meta = cell["metadata"].get("nbgrader", {})
            if not (meta.get("grade") and "backward" in meta["grade_id"]):
                continue
            found[meta["grade_id"]] = path.stem
            derivation, answer, numerical = cells[i - 3], cells[i - 2], cells[i - 1]
            assert derivation["cell_type"] == "markdown" and "$" in "".join(derivation["source"])
            assert answer["metadata"]["nbgrader"]["solution"]
            assert "ck.gradcheck.check_gradient" in "".join(numerical["source"])
            assert "except NotImplementedError" in "".join(numerical["source"])
    assert found == {"check_relu_backward": "01_convolution", "check_conv_backward": "01_convolution",
                     "check_max_pool_backward": "02_pooling", "check_batch_norm_backward": "04_batchnorm_dropout",
                     "check_dropout_backward": "04_batchnorm_dropout"}


def _lesson_numbers() -> np.ndarray:
    """Every decimal number the lessons' saved outputs print, in order."""
    numbers = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
                numbers += [float(v) for v in re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?", text)]
    return np.array(numbers)


def _printed(numbers: np.ndarray, gradient) -> bool:
    """Whether three consecutive values of ``gradient`` (each above 0.01 in size) appear in ``numbers``, rounded."""
    flat = np.asarray(gradient, dtype=float).ravel()
    windows = np.lib.stride_tricks.sliding_window_view(flat, 3) if flat.size >= 3 else flat[None, :]
    big = windows[np.all(np.abs(windows) > 0.01, axis=1)]
    if not big.size or numbers.size < big.shape[1]:
        return False
    printed = np.lib.stride_tricks.sliding_window_view(numbers, big.shape[1])
    return bool(np.any(np.all(np.abs(printed - big[0]) < 6e-4, axis=1)))


class _Recorder:
    """A right answer that keeps every gradient it returns."""

    def __init__(self, fn):
        self.fn, self.results = fn, []

    def __call__(self, *args):
        result = self.fn(*args)
        self.results += list(result) if isinstance(result, tuple) else [result]
        return result


def test_no_lesson_prints_a_visible_expected_gradient():
    numbers = _lesson_numbers()
    answers = [(checks.check_conv_backward, _conv_backward()), (checks.check_batch_norm_backward, _batch_norm_backward()),
               (checks.check_max_pool_backward, _max_pool_backward("max")),
               (checks.check_relu_backward, lambda dout, z: dout * (z > 0)),
               (checks.check_dropout_backward, lambda dout, mask, rate: dout * mask / (1 - rate))]
    for check, fn in answers:
        recorder = _Recorder(fn)
        _passes(check, recorder, None)
        assert recorder.results
        for gradient in recorder.results:
            assert not _printed(numbers, gradient), f"a lesson prints an expected value of {check.__name__}"


def test_the_leak_search_finds_a_printed_gradient():
    gradient = np.random.default_rng(0).normal(size=(3, 4))
    numbers = np.array([float(v) for v in re.findall(r"-?\d+\.\d*", str(np.round(gradient, 4)))])
    assert _printed(np.concatenate([_lesson_numbers(), numbers]), gradient)
    assert not _printed(_lesson_numbers(), gradient)
