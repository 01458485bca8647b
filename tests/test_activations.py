"""cnnkit.activations against TensorFlow's activations and their gradients (tf.GradientTape)."""
import numpy as np
import pytest
import tensorflow as tf  # the oracle: required, never skipped
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnkit import activations as act

# no subnormal numbers: TensorFlow's CPU kernels flush them to zero (its ReLU gradient at 5e-324 is 0)
VALUES = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                    elements=st.floats(-30, 30, allow_nan=False, allow_subnormal=False))


def tf_value_and_grad(fn, z):
    t = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = fn(t)
    return y.numpy(), tape.gradient(y, t).numpy()


@settings(max_examples=40, deadline=None)
@given(z=VALUES, alpha=st.floats(0.0, 0.5))
def test_activations_and_derivatives_match_tensorflow(z, alpha):
    pairs = {
        "relu": (act.relu(z), act.relu_grad(z), tf.nn.relu),
        "sigmoid": (act.sigmoid(z), act.sigmoid_grad(z), tf.math.sigmoid),
        "tanh": (act.tanh(z), act.tanh_grad(z), tf.math.tanh),
        "leaky_relu": (act.leaky_relu(z, alpha), act.leaky_relu_grad(z, alpha),
                       lambda t: tf.nn.leaky_relu(t, alpha)),
    }
    for name, (value, grad, tf_fn) in pairs.items():
        tf_value, tf_grad = tf_value_and_grad(tf_fn, z)
        assert value.shape == grad.shape == z.shape, name
        rtol = 1e-6 if name == "leaky_relu" else 1e-10  # TensorFlow keeps alpha as a float32 attribute
        np.testing.assert_allclose(value, tf_value, rtol=rtol, atol=1e-15, err_msg=name)
        # derivatives are <= 1; 1 - tanh(z)**2 and s (1 - s) cancel for large |z| (in TF too): compare absolutely
        np.testing.assert_allclose(grad, tf_grad, rtol=rtol, atol=1e-12, err_msg=name)


def test_relu_gradient_at_zero_is_zero_like_tensorflow():
    z = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(act.relu_grad(z), tf_value_and_grad(tf.nn.relu, z)[1])
    np.testing.assert_array_equal(act.relu_grad(z), [0.0, 0.0, 1.0])


def test_dtypes():
    z32 = np.linspace(-2, 2, 5, dtype=np.float32)
    for name, (fn, grad) in act.ACTIVATIONS.items():
        assert fn(z32).dtype == np.float32, name
        assert grad(z32).dtype == np.float32, name
        assert fn([-1, 0, 2]).dtype == np.float64, name  # ints and lists become float64


def test_sigmoid_is_stable_for_large_inputs():
    z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(all="raise"):
        s = act.sigmoid(z)
    np.testing.assert_allclose(s, [0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0])
    assert act.sigmoid_grad(np.array(0.0)) == 0.25 and act.tanh_grad(np.array(0.0)) == 1.0


def test_relu_zeroes_negatives_and_keeps_positives():
    z = np.array([[-3.0, -0.5, 0.0], [0.5, 3.0, 7.0]])
    np.testing.assert_array_equal(act.relu(z), [[0, 0, 0], [0.5, 3.0, 7.0]])
    np.testing.assert_allclose(act.leaky_relu(z, 0.1), [[-0.3, -0.05, 0], [0.5, 3.0, 7.0]], rtol=1e-15)


@pytest.mark.parametrize("fn", [act.relu, act.relu_grad, act.sigmoid, act.sigmoid_grad, act.tanh, act.tanh_grad,
                                act.leaky_relu, act.leaky_relu_grad])
@pytest.mark.parametrize("bad, message", [
    (np.array(["a", "b"]), "z must be a numeric array, got dtype <U1"),
    ([1, "x"], "z must be a numeric array"),
    (np.array([1j]), "z must be real-valued"),
    ({"a": 1}, "z must be a numeric array"),
])
def test_non_numeric_input_raises(fn, bad, message):
    with pytest.raises(TypeError, match=message):
        fn(bad)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 2, float("nan")])
def test_leaky_relu_rejects_alpha_out_of_range(alpha):
    message = rf"alpha \(the slope for z <= 0\) must be a number in \[0, 1\), got {alpha!r}"
    with pytest.raises(ValueError, match=message):
        act.leaky_relu(np.ones(3), alpha)
    with pytest.raises(ValueError, match=message):
        act.leaky_relu_grad(np.ones(3), alpha)


@pytest.mark.parametrize("alpha", ["0.1", True, None])
def test_leaky_relu_rejects_alpha_that_is_not_a_number(alpha):
    message = rf"alpha \(the slope for z <= 0\) must be a number, got {alpha!r}"
    with pytest.raises(TypeError, match=message):
        act.leaky_relu(np.ones(3), alpha)
    with pytest.raises(TypeError, match=message):
        act.leaky_relu_grad(np.ones(3), alpha)
