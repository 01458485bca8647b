"""cnnkit.gradcheck: numerical gradients, relative errors, and the checker finding realistic backward-pass bugs."""
import re

import numpy as np
import pytest

from cnnkit import backward, gradcheck
from cnnkit.activations import relu
from cnnkit.conv import conv2d
from cnnkit.gradcheck import (
    GradientCheckError,
    check_gradient,
    numerical_gradient,
    relative_error,
)
from cnnkit.pooling import max_pool2d
from cnnkit.regularization import apply_dropout_mask, dropout_mask


def failure_points_at_worst_element(error: GradientCheckError, analytic, numeric):
    """The message names an index whose values, both printed, really disagree beyond 1e-5."""
    message = str(error)
    found = re.search(r"at index \(([\d, ]*)\): analytic (\S+), numeric (\S+) ", message)
    assert found, message
    index = tuple(int(i) for i in found.group(1).split(",") if i.strip())
    a, b = np.asarray(analytic)[index], np.asarray(numeric)[index]
    assert float(found.group(2)) == pytest.approx(a, rel=1e-12, abs=0)
    assert float(found.group(3)) == pytest.approx(b, rel=1e-12, abs=0)
    assert abs(a - b) / max(abs(a) + abs(b), 1e-8) > 1e-5
    assert "probably wrong" in message and "1e-07" in message
    return index


# --------------------------------------------------------------------------- numerical_gradient


def test_numerical_gradient_of_a_known_function_and_x_restored():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    before = x.copy()
    dout = rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda t: t**3 + np.sin(t), x, dout)
    np.testing.assert_allclose(grad, (3 * before**2 + np.cos(before)) * dout, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_of_a_scalar_and_of_a_closure():
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(numerical_gradient(lambda t: np.sum(t**2), x), 2 * x, rtol=1e-9)
    w = np.array([[2.0, -1.0], [0.5, 3.0]])
    v = np.array([1.0, 4.0])
    # f ignores its argument and reads w, which is changed in place
    grad = numerical_gradient(lambda _: w @ v, w, dout=np.array([1.0, -1.0]))
    np.testing.assert_allclose(grad, np.outer([1.0, -1.0], v), rtol=1e-9)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    calls = []

    def f(t):
        calls.append(t.copy())
        if len(calls) == 3:
            raise RuntimeError("forward failed")
        return t

    with pytest.raises(RuntimeError, match="forward failed"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    assert calls[2][0] == 1.0 - 1e-5  # it failed while x[0] was moved


def test_numerical_gradient_refuses_too_many_evaluations_with_the_count():
    x = np.zeros(50_001)
    with pytest.raises(ValueError, match="50,001 elements: a numerical gradient needs 100,002 evaluations"):
        numerical_gradient(lambda t: t, x)
    assert numerical_gradient(lambda t: t * 2, np.zeros(5), max_evaluations=10).tolist() == pytest.approx([2] * 5)
    with pytest.raises(ValueError, match="more than the limit of 9"):
        numerical_gradient(lambda t: t, np.zeros(5), max_evaluations=9)
    assert gradcheck.MAX_EVALUATIONS == 100_000


@pytest.mark.parametrize("x, kwargs, error, words", [
    (np.ones(3, np.float32), {}, TypeError, "x must be a float64 numpy array.*dtype float32"),
    ([1.0, 2.0], {}, TypeError, "x must be a float64 numpy array.*got list"),
    (np.ones(3), {"h": 0}, ValueError, "h must be a number in"),
    (np.ones(3), {"dout": np.ones(4)}, ValueError, r"dout must have the shape of f\(x\), \(3,\), got \(4,\)"),
])
def test_numerical_gradient_rejects_bad_arguments(x, kwargs, error, words):
    with pytest.raises(error, match=words):
        numerical_gradient(lambda t: np.asarray(t) * 1.0, x, **kwargs)


def test_numerical_gradient_rejects_bad_functions():
    with pytest.raises(TypeError, match="f must be a function of x"):
        numerical_gradient("f", np.ones(2))
    with pytest.raises(TypeError, match="f must return one array, got a tuple of 2 items"):
        numerical_gradient(lambda t: (t, t), np.ones(2))
    with pytest.raises(ValueError, match="f returned 2 NaN"):
        numerical_gradient(lambda t: t * np.nan, np.ones(2))
    read_only = np.ones(2)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="x is read-only"):
        numerical_gradient(lambda t: t, read_only)


def test_centred_differences_beat_one_sided_ones():
    """The centred quotient's error is of order h^2, the one-sided one's of order h."""
    x = np.array([0.7])
    exact = np.exp(0.7)
    centred = numerical_gradient(np.exp, x, h=1e-3)[0]
    one_sided = (np.exp(0.7 + 1e-3) - np.exp(0.7)) / 1e-3
    assert abs(centred - exact) < 1e-6 < abs(one_sided - exact)


# --------------------------------------------------------------------------- relative_error and check_gradient


def test_relative_error_formula_floor_and_nan():
    assert relative_error([1.0, 2.0], [1.0, 1.0]) == pytest.approx(1 / 3)
    assert relative_error([0.0, 5.0], [0.0, 5.0]) == 0.0
    assert relative_error([1e-12], [3e-12]) == pytest.approx(2e-12 / 1e-8)  # the floor
    assert relative_error([1e-12], [3e-12], floor=1e-20) == pytest.approx(0.5)
    assert relative_error([1.0, np.nan], [1.0, 1.0]) == np.inf
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        relative_error(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="floor must be a number in"):
        relative_error(np.ones(2), np.ones(2), floor=0)


def test_check_gradient_reports_and_raises():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    report = check_gradient("w", a, a * (1 + 1e-9))
    assert report.startswith("w: relative error") and "very good" in report
    assert "look at it" in check_gradient("w", a, a * (1 + 1e-6))
    b = a.copy()
    b[1, 0] = 3.5
    with pytest.raises(GradientCheckError, match=r"at index \(1, 0\): analytic 3.0, numeric 3.5 \(1 of 4"):
        check_gradient("w", a, b)
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        check_gradient("", a, a)
    with pytest.raises(ValueError, match="tolerance must be a number in"):
        check_gradient("w", a, a, tolerance=-1)


# --------------------------------------------------------------------------- every backward pass, checked numerically


@pytest.mark.parametrize("stride, padding", [(1, "valid"), (2, "same"), ((2, 1), 1),
                                             (1, (0, 2))])  # a pair, read as conv2d reads it
def test_conv2d_backward_passes_the_gradient_check(stride, padding):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 2, 3, 4)), rng.standard_normal(4)
    dout = rng.standard_normal(conv2d(x, w, b, stride, padding).shape)
    dx, dw, db = backward.conv2d_backward(dout, x, w, stride, padding)
    check_gradient("conv dx", dx, numerical_gradient(lambda t: conv2d(t, w, b, stride, padding), x, dout))
    check_gradient("conv dw", dw, numerical_gradient(lambda t: conv2d(x, t, b, stride, padding), w, dout))
    report = check_gradient("conv db", db, numerical_gradient(lambda t: conv2d(x, w, t, stride, padding), b, dout))
    assert "very good" in report


@pytest.mark.parametrize("size, stride, padding", [(2, None, "valid"), (3, 2, "same"), (3, 1, "valid")])
def test_max_pool2d_backward_passes_the_gradient_check(size, stride, padding):
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 6 * 6 * 2).reshape(2, 6, 6, 2) / 10.0  # no ties, no value within 0.1 of another
    dout = rng.standard_normal(max_pool2d(x, size, stride, padding).shape)
    dx = backward.max_pool2d_backward(dout, x, size, stride, padding)
    check_gradient("max-pool dx", dx, numerical_gradient(lambda t: max_pool2d(t, size, stride, padding), x, dout))


def test_relu_and_dropout_backward_pass_the_gradient_check():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 4, 5))
    z[np.abs(z) < 1e-3] = 0.5  # keep away from the kink
    dout = rng.standard_normal(z.shape)
    check_gradient("relu dx", backward.relu_backward(dout, z), numerical_gradient(relu, z, dout))
    mask = dropout_mask(z.shape, 0.4, seed=3)
    check_gradient("dropout dx", backward.dropout_backward(dout, mask, 0.4),
                   numerical_gradient(lambda t: apply_dropout_mask(t, mask, 0.4), z, dout))


@pytest.mark.parametrize("shape", [(6, 4), (3, 3, 2, 3)])
def test_batch_norm_backward_passes_the_gradient_check(shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 2.0, shape[-1]), rng.standard_normal(shape[-1])
    _, cache = backward.batch_norm_forward_train(x, gamma, beta)
    dout = rng.standard_normal(shape)
    dx, dgamma, dbeta = backward.batch_norm_backward(dout, cache)
    check_gradient("bn dx", dx, numerical_gradient(lambda t: backward.batch_norm_forward_train(t, gamma, beta)[0],
                                                   x, dout))
    check_gradient("bn dgamma", dgamma,
                   numerical_gradient(lambda t: backward.batch_norm_forward_train(x, t, beta)[0], gamma, dout))
    check_gradient("bn dbeta", dbeta,
                   numerical_gradient(lambda t: backward.batch_norm_forward_train(x, gamma, t)[0], beta, dout))


# --------------------------------------------------------------------------- realistic bugs are caught


def conv_dx_with(dout, x, w, weights_for_offset):
    """dx of a stride-1 "valid" convolution, scattering dout through ``weights_for_offset(u, v)``, (K, C)."""
    f1, f2 = w.shape[:2]
    h_out, w_out = dout.shape[1:3]
    dx = np.zeros_like(x)
    for u in range(f1):
        for v in range(f2):
            dx[:, u:u + h_out, v:v + w_out] += dout @ weights_for_offset(u, v)
    return dx


def test_conv_dx_bugs_are_caught_with_the_element():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 5, 5, 3)), rng.standard_normal((3, 3, 3, 3))  # C = K: a missing transpose runs
    dout = rng.standard_normal((1, 3, 3, 3))
    numeric = numerical_gradient(lambda t: conv2d(t, w), x, dout)
    right = conv_dx_with(dout, x, w, lambda u, v: w[u, v].T)
    np.testing.assert_allclose(right, backward.conv2d_backward(dout, x, w)[0], rtol=1e-12)
    check_gradient("conv dx", right, numeric)
    for bug in (lambda u, v: w[u, v],                  # the transpose of the channel matrix forgotten
                lambda u, v: w[2 - u, 2 - v].T):       # the kernel flipped once too often
        wrong = conv_dx_with(dout, x, w, bug)
        with pytest.raises(GradientCheckError) as info:
            check_gradient("conv dx", wrong, numeric)
        failure_points_at_worst_element(info.value, wrong, numeric)


def test_batch_norm_without_the_variance_term_is_caught():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3))
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.standard_normal(3)
    _, cache = backward.batch_norm_forward_train(x, gamma, beta)
    dout = rng.standard_normal(x.shape)
    m = x.shape[0]
    dx_hat = dout * gamma
    wrong = (m * dx_hat - dx_hat.sum(axis=0)) / (m * cache.sigma)  # "- x_hat * sum(dx_hat * x_hat)" forgotten
    numeric = numerical_gradient(lambda t: backward.batch_norm_forward_train(t, gamma, beta)[0], x, dout)
    with pytest.raises(GradientCheckError) as info:
        check_gradient("bn dx", wrong, numeric)
    failure_points_at_worst_element(info.value, wrong, numeric)


def test_dropout_without_the_scale_is_caught():
    rng = np.random.default_rng(6)
    x, dout = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    mask = dropout_mask(x.shape, 0.5, seed=7)
    numeric = numerical_gradient(lambda t: apply_dropout_mask(t, mask, 0.5), x, dout)
    wrong = dout * mask  # the 1 / (1 - rate) forgotten
    with pytest.raises(GradientCheckError) as info:
        check_gradient("dropout dx", wrong, numeric)
    index = failure_points_at_worst_element(info.value, wrong, numeric)
    assert mask[index]  # a kept unit: the dropped ones are right (0 on both sides)


def test_relu_kink_is_where_the_check_complains_not_a_bug():
    """At z = 0 the numerical slope averages 0 and 1; the analytic 0 is TensorFlow's choice, not a mistake."""
    z = np.array([-1.0, 0.0, 2.0, 0.3])
    dout = np.ones(4)
    numeric = numerical_gradient(relu, z, dout)
    assert numeric[1] == pytest.approx(0.5)
    from_output = dout * (relu(z) > 0)
    np.testing.assert_array_equal(from_output, backward.relu_backward(dout, z))
    with pytest.raises(GradientCheckError, match=r"at index \(1,\): analytic 0.0, numeric 0.5"):
        check_gradient("relu dx", backward.relu_backward(dout, z), numeric)
    check_gradient("relu dx", backward.relu_backward(dout, z)[[0, 2, 3]], numeric[[0, 2, 3]])
