"""cnnkit.gradient_flow: per-layer kernel-gradient norms, against GradientTape and the softmax gradient by hand."""
import keras  # the oracle: required, never skipped
import numpy as np
import pytest
import tensorflow as tf

from cnnkit import experiments
from cnnkit.gradient_flow import kernel_gradient_norms, kernel_layers


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(3)
    return rng.normal(size=(6, 8, 8, 3)).astype(np.float32), rng.integers(0, 4, 6)


def test_small_cnn_matches_a_gradient_tape_written_by_hand(batch):
    x, y = batch
    model = experiments.small_cnn((8, 8, 3), 4, widths=(4, 6), batch_norm=True, seed=1)
    # a trained-looking state, so that a pass in inference mode would give other gradients
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.7, np.float32))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 3.0, np.float32))
    state = [v.numpy().copy() for v in model.non_trainable_variables]

    got = kernel_gradient_norms(model, x, y)
    # a training-mode pass moves the moving statistics; the helper puts them back
    for before, after in zip(state, model.non_trainable_variables):
        np.testing.assert_array_equal(before, after.numpy())

    kernels = [model.get_layer(n).kernel for n in ("conv1", "conv2", "classifier")]
    with tf.GradientTape() as tape:
        p = model(x, training=True)
        loss = -tf.reduce_mean(tf.math.log(tf.gather(p, y, axis=1, batch_dims=1)))
    expected = [np.linalg.norm(g.numpy()) for g in tape.gradient(loss, kernels)]
    assert list(got) == ["conv1", "conv2", "classifier"]
    np.testing.assert_allclose(list(got.values()), expected, rtol=1e-5)
    # training mode: the same formula in inference mode gives other numbers
    with tf.GradientTape() as tape:
        p = model(x, training=False)
        loss = -tf.reduce_mean(tf.math.log(tf.gather(p, y, axis=1, batch_dims=1)))
    inference = [np.linalg.norm(g.numpy()) for g in tape.gradient(loss, kernels)]
    assert not np.allclose(list(got.values()), inference, rtol=1e-2)
    # ... and that the statistics were worth putting back: a training-mode pass of its own moves them
    assert not np.allclose(state[0], model.non_trainable_variables[0].numpy())


def test_softmax_regression_matches_the_gradient_by_hand():
    """One dense softmax layer: dL/dW = X^T (P - onehot(y)) / N, computed in numpy."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 5)), rng.integers(0, 3, 10)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax", name="head")])
    w, b = model.get_layer("head").get_weights()
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    by_hand = x.T @ (p - np.eye(3)[y]) / len(x)
    assert kernel_gradient_norms(model, x, y) == {"head": pytest.approx(np.linalg.norm(by_hand), rel=1e-5)}


def test_logits_need_from_logits():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 5)).astype(np.float32), rng.integers(0, 3, 8)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="head")])
    with pytest.raises(ValueError, match="does not output probabilities.*from_logits=True"):
        kernel_gradient_norms(model, x, y)
    w, b = model.get_layer("head").get_weights()
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    by_hand = x.T @ (p - np.eye(3)[y]) / len(x)
    got = kernel_gradient_norms(model, x, y, from_logits=True)["head"]
    assert got == pytest.approx(np.linalg.norm(by_hand), rel=1e-4)


def test_layers_come_in_network_order_not_creation_or_name_order():
    first, second, third = (keras.layers.Dense(4, name="z_first"), keras.layers.Dense(4, name="m_second"),
                            keras.layers.Dense(3, activation="softmax", name="a_third"))
    created_backwards = [third, second, first]  # noqa: F841  (created in one order, called in another)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, third(keras.layers.ReLU()(second(first(inputs)))))
    x, y = np.ones((2, 5), np.float32), np.array([0, 2])
    assert list(kernel_gradient_norms(model, x, y)) == ["z_first", "m_second", "a_third"]
    deep = experiments.small_cnn((16, 16, 3), 4, widths=(4, 8), convs_per_block=3)
    assert [name for name, _ in kernel_layers(deep)] == [f"conv{i}" for i in range(1, 7)] + ["classifier"]


def test_nested_models_are_named_by_their_path():
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="hidden")], name="body")
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(inner(inputs)))
    norms = kernel_gradient_norms(model, np.ones((3, 5), np.float32), np.array([0, 1, 1]))
    assert list(norms) == ["body/hidden", "head"] and all(v > 0 for v in norms.values())


def test_uint8_images_are_scaled(batch):
    model = experiments.small_cnn((8, 8, 3), 4, widths=(4,), seed=0)
    images = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 0])
    assert kernel_gradient_norms(model, images, labels) == kernel_gradient_norms(
        model, images.astype(np.float32) / 255.0, labels)


@pytest.mark.parametrize("x, y, error, message", [
    (np.zeros((8, 8, 3)), np.zeros(1, int), ValueError, r"rank 4\), got shape \(8, 8, 3\) \(rank 3\)"),
    (np.zeros((2, 8, 8, 1)), np.zeros(2, int), ValueError, r"inputs of shape \(8, 8, 1\), model 'small_cnn' expects"),
    (np.zeros((3, 8, 8, 3)), np.zeros(2, int), ValueError, r"one label per input of x, shape \(3,\), got shape \(2,\)"),
    (np.zeros((2, 8, 8, 3)), np.array([0, 4]), ValueError, r"labels in \[0, 4\).*values from 0 to 4"),
    (np.zeros((2, 8, 8, 3)), np.array([0.0, 1.0]), ValueError, r"integer labels.*dtype float64"),
    (np.zeros((0, 8, 8, 3)), np.zeros(0, int), ValueError, "empty batch"),
    (np.full((1, 8, 8, 3), np.nan), np.zeros(1, int), ValueError, "x contains 192 NaN"),
    ("images", np.zeros(1, int), TypeError, "x must be a numeric array"),
])
def test_bad_batches_are_refused_with_the_bad_value(x, y, error, message):
    model = experiments.small_cnn((8, 8, 3), 4, widths=(4,), seed=0)
    with pytest.raises(error, match=message):
        kernel_gradient_norms(model, x, y)


def test_a_model_without_kernels_or_not_a_model_is_refused():
    no_kernels = keras.Sequential([keras.Input((4,)), keras.layers.Softmax()], name="just_softmax")
    with pytest.raises(ValueError, match="model 'just_softmax' has no layer with a kernel"):
        kernel_gradient_norms(no_kernels, np.ones((2, 4)), np.array([0, 1]))
    with pytest.raises(TypeError, match="model must be a Keras model, got function"):
        kernel_gradient_norms(lambda t: t, np.ones((2, 4)), np.array([0, 1]))
    with pytest.raises(TypeError, match="from_logits must be True or False"):
        kernel_gradient_norms(experiments.small_cnn((8, 8, 3), 4, widths=(4,)), np.ones((1, 8, 8, 3)),
                              np.zeros(1, int), from_logits="yes")


def test_small_cnn_stacks_convolutions_per_block():
    model = experiments.small_cnn((16, 16, 3), 4, widths=(4, 8), convs_per_block=2, batch_norm=True)
    convs = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert [c.name for c in convs] == ["conv1", "conv2", "conv3", "conv4"]
    assert [c.filters for c in convs] == [4, 4, 8, 8]
    assert [lyr.name for lyr in model.layers if isinstance(lyr, keras.layers.MaxPooling2D)] == ["pool1", "pool2"]
    assert model.get_layer("bn4") is not None and model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="convs_per_block must be a positive integer"):
        experiments.small_cnn(convs_per_block=0)
