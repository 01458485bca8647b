"""cnnkit.unit_symmetry and loss_slices.loss_between: unit swaps keep the function, zero starts keep units identical."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnnkit import experiments, loss_slices, unit_symmetry  # noqa: E402
from cnnkit.unit_symmetry import dense_net, permute_units, swap_units, unit_spread  # noqa: E402

import keras  # noqa: E402


def _randomise(model, seed=0):
    """Give every weight (biases and batch-norm statistics too) a distinct random value, so that swaps show."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()])
    for lyr in model.layers:
        if isinstance(lyr, keras.layers.BatchNormalization):
            gamma, beta, mean, var = lyr.get_weights()
            lyr.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    return model


@pytest.fixture(scope="module")
def cnn():
    model = experiments.small_cnn((8, 8, 3), classes=5, widths=(4, 6), batch_norm=True, seed=0)
    return _randomise(model)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (16, 8, 8, 3)).astype(np.float32)


def test_unit_spread_is_the_largest_difference_between_two_columns():
    rng = np.random.default_rng(0)
    for shape in [(5, 3), (3, 3, 2, 4)]:
        w = rng.normal(size=shape)
        cols = w.reshape(-1, shape[-1])
        brute = max(np.max(np.abs(cols[:, j] - cols[:, k])) for j in range(shape[-1]) for k in range(shape[-1]))
        assert unit_spread(w) == pytest.approx(brute)
    same = np.repeat(rng.normal(size=(6, 1)), 5, axis=1)
    assert unit_spread(same) == 0.0
    same[2, 3] += 1e-3
    assert unit_spread(same) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match=r"kernel must have rank .*got shape \(4,\)"):
        unit_spread(np.zeros(4))


@pytest.mark.parametrize("layer,n", [("conv1", 4), ("conv2", 6)])
def test_swapped_copy_computes_the_same_function_with_other_weights(cnn, images, layer, n):
    copy = swap_units(cnn, layer, 1, 3)
    np.testing.assert_allclose(copy(images, training=False), cnn(images, training=False), rtol=1e-5, atol=1e-6)
    old, new = cnn.get_layer(layer).kernel.numpy(), copy.get_layer(layer).kernel.numpy()
    np.testing.assert_array_equal(new[..., 1], old[..., 3])
    np.testing.assert_array_equal(new[..., 3], old[..., 1])
    np.testing.assert_array_equal(new[..., [0, 2]], old[..., [0, 2]])
    assert not np.array_equal(new, old)
    bn = layer.replace("conv", "bn")
    for a, b in zip(cnn.get_layer(bn).get_weights(), copy.get_layer(bn).get_weights()):
        np.testing.assert_array_equal(b[[1, 3]], a[[3, 1]])
    following = "conv2" if layer == "conv1" else "classifier"
    np.testing.assert_array_equal(copy.get_layer(following).kernel.numpy()[..., 1, :],
                                  cnn.get_layer(following).kernel.numpy()[..., 3, :])
    # the original is untouched
    assert cnn.get_layer(layer).kernel.shape[-1] == n


def test_a_half_done_swap_changes_the_function(cnn, images):
    """Reordering the kernel's columns without the next layer's rows is caught: the outputs differ."""
    copy = keras.models.clone_model(cnn)
    copy.set_weights(cnn.get_weights())
    kernel = cnn.get_layer("conv2").kernel.numpy()
    copy.get_layer("conv2").kernel.assign(kernel[..., [1, 0, 2, 3, 4, 5]])
    gap = np.max(np.abs(copy(images, training=False).numpy() - cnn(images, training=False).numpy()))
    assert gap > 1e-3


def test_permute_units_follows_a_full_permutation_of_a_dense_net(images):
    model = _randomise(dense_net((8, 8, 3), classes=4, hidden=(7, 5)))
    order = np.random.default_rng(3).permutation(7)
    copy = permute_units(model, "dense1", order)
    np.testing.assert_allclose(copy(images), model(images), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(copy.get_layer("dense1").bias.numpy(), model.get_layer("dense1").bias.numpy()[order])


def test_a_branch_after_the_layer_is_refused():
    """A skip connection also reads the units; the check sees the changed outputs."""
    inputs = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(inputs)
    b = keras.layers.Conv2D(3, 3, padding="same", name="conv_b")(a)
    out = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b])))
    model = _randomise(keras.Model(inputs, out))
    with pytest.raises(ValueError, match=r"reordering the units of layer 'conv_a' changed the model's outputs"):
        swap_units(model, "conv_a", 0, 2)
    unchecked = swap_units(model, "conv_a", 0, 2, check=False)
    x = np.random.default_rng(0).uniform(size=(4, 6, 6, 3)).astype(np.float32)
    assert np.max(np.abs(unchecked(x).numpy() - model(x).numpy())) > 1e-4


def test_bad_arguments_are_named(cnn):
    with pytest.raises(ValueError, match=r"i must be an integer in \[0, 3\], got 4"):
        swap_units(cnn, "conv1", 4, 0)
    with pytest.raises(ValueError, match=r"j must be an integer in \[0, 5\], got -1"):
        swap_units(cnn, "conv2", 0, -1)
    with pytest.raises(ValueError, match=r"two different units of layer 'conv1', got 2 twice"):
        swap_units(cnn, "conv1", 2, 2)
    with pytest.raises(ValueError, match=r"layer 'relu1' \(ReLU\) has no kernel"):
        swap_units(cnn, "relu1", 0, 1)
    with pytest.raises(ValueError, match=r"layer 'bn1' \(BatchNormalization\) has no kernel"):
        swap_units(cnn, "bn1", 0, 1)
    with pytest.raises(ValueError, match=r"has no layer 'conv9'"):
        swap_units(cnn, "conv9", 0, 1)
    with pytest.raises(ValueError, match=r"'classifier' is the last Dense or Conv2D layer"):
        swap_units(cnn, "classifier", 0, 1)
    with pytest.raises(ValueError, match=r"order must be a permutation of the 4 units of layer 'conv1'"):
        permute_units(cnn, "conv1", [0, 1, 1, 3])
    with pytest.raises(TypeError, match=r"model must be a Keras model, got list"):
        swap_units([1], "conv1", 0, 1)
    flat = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="c"), keras.layers.Flatten(name="f"),
                             keras.layers.Dense(3, name="d")])
    with pytest.raises(ValueError, match=r"layer 'f' \(Flatten\) lies between 'c' and the next Dense"):
        swap_units(flat, "c", 0, 1)


def test_loss_between_ends_are_the_two_models_losses_and_weights_come_back(cnn, images):
    y = np.arange(len(images)) % 5
    other = swap_units(cnn, "conv2", 0, 5)
    other.get_layer("classifier").bias.assign(other.get_layer("classifier").bias + 0.7 * np.arange(5))  # other loss
    before = [w.copy() for w in cnn.get_weights()]
    t, loss, error = loss_slices.loss_between(cnn, other, images, y, steps=5, batch_size=7)
    np.testing.assert_allclose(t, [0, 0.25, 0.5, 0.75, 1])
    for model, end in ((cnn, 0), (other, -1)):
        expected = float(keras.losses.sparse_categorical_crossentropy(y, model(images, training=False)).numpy().mean())
        assert loss[end] == pytest.approx(expected, rel=1e-5)
        accuracy = float(np.mean(np.argmax(model(images, training=False).numpy(), -1) == y))
        assert error[end] == pytest.approx(1 - accuracy)
    assert abs(loss[-1] - loss[0]) > 0.1  # the two ends do differ here, so the test tells them apart
    for now, w in zip(cnn.get_weights(), before):
        np.testing.assert_array_equal(now, w)
    # the same line given as weight arrays
    _, again, _ = loss_slices.loss_between(cnn, other.get_weights(), images, y, steps=5)
    np.testing.assert_allclose(again, loss, rtol=1e-6)
    flat_t, flat, _ = loss_slices.loss_between(cnn, cnn, images, y, steps=3)
    np.testing.assert_allclose(flat, loss[0], rtol=1e-6)


def test_loss_between_argument_checks(cnn, images):
    y = np.zeros(len(images), dtype=int)
    weights = cnn.get_weights()
    with pytest.raises(ValueError, match=r"steps must be at least 2"):
        loss_slices.loss_between(cnn, cnn, images, y, steps=1)
    with pytest.raises(ValueError, match=r"other must be a list of \d+ arrays"):
        loss_slices.loss_between(cnn, weights[:-1], images, y)
    with pytest.raises(ValueError, match=r"other\[0\] must have the shape of weight 0"):
        loss_slices.loss_between(cnn, [weights[0][..., :2], *weights[1:]], images, y)


def _train_briefly(model, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (96, 8, 8, 3), dtype=np.uint8)
    y = (x[..., 0].mean(axis=(1, 2)) > 127).astype(int) + 2 * (x[..., 1].mean(axis=(1, 2)) > 127)
    history = experiments.train(model, (x, y), (x[:16], y[:16]), epochs=3, batch_size=16, optimizer="adam",
                                learning_rate=1e-2, seed=seed)
    return history, y


def test_units_trained_from_zeros_stay_identical_and_default_ones_differ():
    zero_relu = dense_net((8, 8, 3), classes=4, hidden=(6, 5), kernel_initializer="zeros")
    history, y = _train_briefly(zero_relu)
    for name in ("dense1", "dense2"):
        layer = zero_relu.get_layer(name)
        assert unit_spread(layer.kernel.numpy()) == 0.0
        assert np.all(layer.kernel.numpy() == 0) and np.all(layer.bias.numpy() == 0)  # ReLU at 0: no gradient at all
    # no better than predicting the class frequencies, whatever the image: the entropy of the labels
    freq = np.bincount(y) / len(y)
    assert min(history["loss"]) >= -np.sum(freq * np.log(freq)) - 1e-3
    zero_sigmoid = dense_net((8, 8, 3), classes=4, hidden=(6, 5), activation="sigmoid", kernel_initializer="zeros")
    history, _ = _train_briefly(zero_sigmoid)
    for name in ("dense1", "dense2"):
        kernel = zero_sigmoid.get_layer(name).kernel.numpy()
        assert np.max(np.abs(kernel)) > 1e-3  # sigmoid units do learn...
        assert unit_spread(kernel) <= 1e-6 * np.max(np.abs(kernel))  # ...but all alike
    default = dense_net((8, 8, 3), classes=4, hidden=(6, 5), seed=0)
    _train_briefly(default)
    assert unit_spread(default.get_layer("dense1").kernel.numpy()) > 0.05


def test_dense_net_shapes_and_checks():
    model = dense_net((4, 4, 2), classes=3, hidden=(5,))
    assert [lyr.name for lyr in model.layers] == ["image", "flatten", "dense1", "classifier"]
    assert model.get_layer("dense1").kernel.shape == (32, 5) and model.output_shape == (None, 3)
    with pytest.raises(ValueError, match=r"hidden\[1\] must be a positive integer"):
        dense_net(hidden=(4, 0))
    with pytest.raises(ValueError, match=r"classes must be an integer in \[2, inf\], got 1"):
        dense_net(classes=1)
    assert unit_symmetry.CHANNELWISE
