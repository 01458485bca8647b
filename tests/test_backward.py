"""cnnkit.backward against tf.GradientTape on the matching TensorFlow forward passes; argument errors."""
import zlib

import numpy as np
import pytest
import tensorflow as tf  # the oracle: required, never skipped

from cnnkit import backward
from cnnkit.conv import conv2d
from cnnkit.normalization import batch_norm
from cnnkit.pooling import max_pool2d
from cnnkit.regularization import apply_dropout_mask, dropout_mask

RTOL, ATOL = 1e-9, 1e-10  # float64 on both sides


def tape_gradients(forward, dout, *arrays):
    """Gradients of sum(forward(*tensors) * dout) with respect to every array, by tf.GradientTape (float64)."""
    tensors = [tf.constant(np.asarray(a, np.float64)) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        y = forward(*tensors)
    return [g.numpy() for g in tape.gradient(y, tensors, output_gradients=tf.constant(dout, tf.float64))]


def seed_of(*params):
    """A seed that depends on a test case's parameters only (stable from run to run)."""
    return zlib.crc32(repr(params).encode())


def tf_padding(padding):
    if isinstance(padding, str):
        return padding.upper()
    return [[0, 0], [padding, padding], [padding, padding], [0, 0]]


# --------------------------------------------------------------------------- convolution

CONV_CASES = [
    # (N, H, W, C), (F1, F2, K), stride, padding
    ((2, 5, 5, 3), (3, 3, 4), 1, "valid"),
    ((1, 6, 7, 2), (3, 3, 2), 1, "same"),
    ((2, 7, 6, 3), (3, 2, 5), 2, "same"),
    ((3, 8, 8, 1), (4, 4, 2), 2, "valid"),
    ((1, 9, 7, 2), (3, 3, 3), 3, "valid"),  # the last input rows are reached by no window
    ((2, 5, 6, 2), (3, 3, 2), 1, 1),
    ((1, 6, 5, 3), (2, 3, 2), (2, 1), 2),
    ((2, 4, 4, 4), (1, 1, 3), 1, "valid"),
    ((1, 6, 6, 2), (5, 5, 1), (1, 2), "same"),
]


@pytest.mark.parametrize("x_shape, kernel, stride, padding", CONV_CASES)
def test_conv2d_backward_matches_tensorflow(x_shape, kernel, stride, padding):
    rng = np.random.default_rng(seed_of(x_shape, kernel, stride, padding))
    f1, f2, k = kernel
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((f1, f2, x_shape[3], k))
    b = rng.standard_normal(k)
    y = conv2d(x, w, b, stride=stride, padding=padding)
    dout = rng.standard_normal(y.shape)

    def forward(x_t, w_t, b_t):
        return tf.nn.conv2d(x_t, w_t, stride, tf_padding(padding)) + b_t

    want_dx, want_dw, want_db = tape_gradients(forward, dout, x, w, b)
    dx, dw, db = backward.conv2d_backward(dout, x, w, stride=stride, padding=padding)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    np.testing.assert_allclose(dx, want_dx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw, want_dw, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(db, want_db, rtol=RTOL, atol=ATOL)


def test_conv2d_backward_is_a_full_correlation_with_the_flipped_kernel_at_stride_one():
    """dx = full correlation of dout with w flipped in space and transposed in channels."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    dout = rng.standard_normal((2, 4, 4, 4))
    dx, _, _ = backward.conv2d_backward(dout, x, w)
    flipped = w[::-1, ::-1].transpose(0, 1, 3, 2)
    padded = np.pad(dout, ((0, 0), (2, 2), (1, 1), (0, 0)))  # F1 - 1 and F2 - 1 zeros on each side
    full = conv2d(padded, flipped)
    np.testing.assert_allclose(dx, full, rtol=1e-12, atol=1e-12)


def test_conv2d_backward_keeps_float32():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    dout = rng.standard_normal((1, 3, 3, 2)).astype(np.float32)
    dx, dw, db = backward.conv2d_backward(dout, x, w)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    ref = backward.conv2d_backward(dout.astype(np.float64), x.astype(np.float64), w.astype(np.float64))
    for ours, want in zip((dx, dw, db), ref):
        np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((np.ones((1, 3, 3, 2)), np.ones((3, 3)), np.ones((3, 3, 2, 1))), {}, ValueError, "x must have rank 4"),
    ((np.ones((1, 1, 1, 1)), np.ones((1, 3, 3, 2)), np.ones((3, 3, 3, 1))), {}, ValueError,
     "channel mismatch: x has 2 channels"),
    ((np.ones((1, 2, 2, 1)), np.ones((1, 3, 3, 2)), np.ones((3, 3, 2, 1))), {}, ValueError,
     "dout must have the shape of the forward output, (1, 1, 1, 1)"),
    ((np.ones((1, 1, 1, 1)), np.ones((1, 3, 3, 2)), np.ones((3, 3, 2, 1))), {"padding": "full"}, ValueError,
     "unknown padding 'full'"),
    ((np.ones((1, 1, 1, 1)), np.ones((1, 3, 3, 2)), np.ones((3, 3, 2, 1))), {"stride": 0}, ValueError,
     "stride must be a positive integer"),
    ((np.ones((1, 1, 1, 1)), np.ones((1, 3, 3, 2)), np.ones((4, 4, 2, 1))), {}, ValueError,
     "kernel size 4 is larger than the padded input 3"),
    ((np.ones((1, 1, 1, 1)), np.ones((1, 3, 3, 2)), np.ones((3, 3, 2, 1))), {"padding": -1}, ValueError,
     "padding must be a non-negative integer"),
    ((np.full((1, 1, 1, 1), np.nan), np.ones((1, 3, 3, 2)), np.ones((3, 3, 2, 1))), {}, ValueError,
     "dout contains 1 NaN"),
    ((np.ones((1, 1, 1, 1)), np.ones((1, 3, 3, 2)), "w"), {}, TypeError, "w must be a numeric array"),
])
def test_conv2d_backward_rejects_bad_arguments(args, kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        backward.conv2d_backward(*args, **kwargs)


# --------------------------------------------------------------------------- max pooling


def distinct_values(rng, shape):
    """Random values with no two equal (no ties inside any window)."""
    return rng.permutation(np.prod(shape)).reshape(shape) / 7.0 + rng.uniform(-0.01, 0.01)


POOL_CASES = [
    ((2, 4, 4, 3), 2, None, "valid"),
    ((1, 5, 5, 2), 2, None, "valid"),     # the last row and column are in no window
    ((2, 5, 7, 2), 2, None, "same"),
    ((1, 6, 6, 3), 3, 1, "valid"),        # overlapping windows: one cell may win several
    ((2, 7, 5, 1), 3, 2, "same"),
    ((1, 6, 8, 2), (2, 3), (1, 2), "same"),
]


@pytest.mark.parametrize("x_shape, size, stride, padding", POOL_CASES)
def test_max_pool2d_backward_matches_tensorflow(x_shape, size, stride, padding):
    rng = np.random.default_rng(seed_of(x_shape, size, stride, padding))
    x = distinct_values(rng, x_shape)
    y = max_pool2d(x, size, stride, padding)
    dout = rng.standard_normal(y.shape)
    tf_stride = size if stride is None else stride
    (want,) = tape_gradients(lambda t: tf.nn.max_pool2d(t, size, tf_stride, padding.upper()), dout, x)
    dx = backward.max_pool2d_backward(dout, x, size, stride, padding)
    np.testing.assert_allclose(dx, want, rtol=RTOL, atol=ATOL)
    assert np.count_nonzero(dx) <= dout.size  # each window sends its gradient to one cell


TIES = np.array([[1.0, 3.0, 3.0, 0.0],
                 [3.0, 2.0, 1.0, 3.0],
                 [0.0, 0.0, 5.0, 5.0],
                 [0.0, 0.0, 5.0, 5.0]]).reshape(1, 4, 4, 1)


@pytest.mark.parametrize("size, stride, padding", [(2, 2, "valid"), (3, 1, "same")])
def test_max_pool2d_backward_sends_a_tie_to_the_first_maximum_as_tensorflow(size, stride, padding):
    shape = max_pool2d(TIES, size, stride, padding).shape
    dout = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    (want,) = tape_gradients(lambda t: tf.nn.max_pool2d(t, size, stride, padding.upper()), dout, TIES)
    np.testing.assert_array_equal(backward.max_pool2d_backward(dout, TIES, size, stride, padding), want)


def test_max_pool2d_backward_tie_goes_to_the_top_row_first():
    dx = backward.max_pool2d_backward(np.ones((1, 2, 2, 1)), TIES, 2)
    assert dx[0, 0, 1, 0] == 1 and dx[0, 1, 0, 0] == 0  # the window [[1, 3], [3, 2]]


def test_max_pool2d_backward_rejects_bad_arguments():
    x = np.ones((1, 4, 4, 1))
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output, \(1, 2, 2, 1\)"):
        backward.max_pool2d_backward(np.ones((1, 4, 4, 1)), x, 2)
    with pytest.raises(ValueError, match="unknown padding 'full'"):
        backward.max_pool2d_backward(np.ones((1, 2, 2, 1)), x, 2, padding="full")
    with pytest.raises(ValueError, match="size must be a positive integer"):
        backward.max_pool2d_backward(np.ones((1, 2, 2, 1)), x, 0)
    with pytest.raises(ValueError, match="x must have rank 4"):
        backward.max_pool2d_backward(np.ones((1, 2, 2, 1)), np.ones((4, 4)), 2)
    with pytest.raises(ValueError, match="x contains 4 NaN"):
        backward.max_pool2d_backward(np.ones((1, 2, 2, 1)), np.where(np.eye(4)[None, :, :, None] > 0, np.nan, 1), 2)


# --------------------------------------------------------------------------- ReLU


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 3, 2)])
def test_relu_backward_matches_tensorflow_zeros_included(shape):
    rng = np.random.default_rng(len(shape))
    z = rng.standard_normal(shape)
    z.flat[::3] = 0.0  # exact zeros: TensorFlow's gradient there is 0
    dout = rng.standard_normal(shape)
    (want,) = tape_gradients(tf.nn.relu, dout, z)
    dx = backward.relu_backward(dout, z)
    np.testing.assert_array_equal(dx, want)
    assert np.all(dx[z == 0] == 0)


def test_relu_backward_from_the_output_mask_is_the_same_even_at_zero():
    """max(0, z) > 0 exactly when z > 0, so the output's mask is the input's (zeros included)."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4, 5))
    z[:, ::2] = 0.0  # the kink itself
    dout = rng.standard_normal(z.shape)
    from_output = dout * (np.maximum(z, 0) > 0)
    np.testing.assert_array_equal(backward.relu_backward(dout, z), from_output)


def test_relu_backward_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output, \(2, 3\)"):
        backward.relu_backward(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(TypeError, match="z must be a numeric array"):
        backward.relu_backward(np.ones(2), ["a", "b"])


# --------------------------------------------------------------------------- batch normalization


def tf_batch_norm(x, gamma, beta, eps):
    axes = list(range(len(x.shape) - 1))
    mean, var = tf.nn.moments(x, axes)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)


@pytest.mark.parametrize("shape", [(8, 5), (3, 4, 4, 3), (2, 1, 5, 2), (16, 1)])
@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_batch_norm_backward_matches_tensorflow(shape, eps):
    rng = np.random.default_rng(shape[0] * 10 + len(shape))
    x = rng.standard_normal(shape) * 2.0 + 0.5
    gamma = rng.uniform(0.5, 1.5, shape[-1])
    beta = rng.standard_normal(shape[-1])
    out, cache = backward.batch_norm_forward_train(x, gamma, beta, eps)
    dout = rng.standard_normal(shape)
    want_dx, want_dgamma, want_dbeta = tape_gradients(
        lambda xt, gt, bt: tf_batch_norm(xt, gt, bt, eps), dout, x, gamma, beta)
    dx, dgamma, dbeta = backward.batch_norm_backward(dout, cache)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dgamma, want_dgamma, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dbeta, want_dbeta, rtol=RTOL, atol=ATOL)
    # the forward pass is the kit's batch norm in training mode
    want_out = batch_norm(x, gamma, beta, np.zeros(shape[-1]), np.ones(shape[-1]), True, epsilon=eps)[0]
    np.testing.assert_allclose(out, want_out, rtol=1e-12, atol=1e-12)


def test_batch_norm_backward_dx_sums_to_zero_per_channel():
    """Shifting a whole channel changes nothing after normalisation, so dx sums to 0 per channel."""
    rng = np.random.default_rng(6)
    _, cache = backward.batch_norm_forward_train(rng.standard_normal((4, 3, 3, 2)), np.ones(2), np.zeros(2))
    dx, _, _ = backward.batch_norm_backward(rng.standard_normal((4, 3, 3, 2)), cache)
    np.testing.assert_allclose(dx.sum(axis=(0, 1, 2)), 0.0, atol=1e-12)


def test_batch_norm_float32_in_float32_out():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    out, cache = backward.batch_norm_forward_train(x, np.ones(3), np.zeros(3))
    dx, _, _ = backward.batch_norm_backward(np.ones((6, 3), np.float32), cache)
    assert out.dtype == dx.dtype == np.float32


def test_batch_norm_rejects_bad_arguments():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"gamma must have shape \(C,\) = \(3,\)"):
        backward.batch_norm_forward_train(x, np.ones(2), np.zeros(3))
    with pytest.raises(ValueError, match="eps must be a number in"):
        backward.batch_norm_forward_train(x, np.ones(3), np.zeros(3), eps=0)
    with pytest.raises(ValueError, match="x must have rank 2 or 4"):
        backward.batch_norm_forward_train(np.ones((2, 3, 3)), np.ones(3), np.zeros(3))
    _, cache = backward.batch_norm_forward_train(np.arange(12.0).reshape(4, 3), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output, \(4, 3\)"):
        backward.batch_norm_backward(np.ones((3, 4)), cache)
    with pytest.raises(TypeError, match="cache must be the BatchNormCache"):
        backward.batch_norm_backward(np.ones((4, 3)), (np.ones((4, 3)), np.ones(3)))


# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("shape, rate", [((10,), 0.5), ((4, 6), 0.2), ((2, 3, 3, 4), 0.75), ((3, 3), 0.0)])
def test_dropout_backward_matches_tensorflow_with_a_fixed_mask(shape, rate):
    rng = np.random.default_rng(int(rate * 100))
    x = rng.standard_normal(shape)
    mask = dropout_mask(shape, rate, seed=1)
    dout = rng.standard_normal(shape)
    keep = tf.constant(mask.astype(np.float64))
    (want,) = tape_gradients(lambda t: t * keep / (1.0 - rate), dout, x)
    dx = backward.dropout_backward(dout, mask, rate)
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=0)
    # the gradient of the kit's forward pass: the same linear map
    np.testing.assert_allclose(apply_dropout_mask(x, mask, rate), x * mask / (1 - rate), rtol=1e-12)


def test_dropout_backward_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"mask has shape \(3,\) but dout has shape \(4,\)"):
        backward.dropout_backward(np.ones(4), np.ones(3, bool), 0.5)
    with pytest.raises(ValueError, match="rate must be a number in"):
        backward.dropout_backward(np.ones(4), np.ones(4, bool), 1.0)
    with pytest.raises(ValueError, match="mask must hold only 0/1"):
        backward.dropout_backward(np.ones(4), np.array([0, 1, 2, 1]), 0.5)
