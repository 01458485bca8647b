"""cnnkit.overfitting: the probes lesson 04 and its benchmark take of a trained model, against direct computations."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cnnkit import overfitting  # noqa: E402
from cnnkit.experiments import sample_model  # noqa: E402


def scale(batch):
    return batch / 255.0


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(37, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=37)


def small(**variant):
    return sample_model(**{"conv_filters": 4, "dense_units": 8, **variant}, seed=0)


def test_accuracy_is_the_share_of_arg_max_hits_over_all_batches(images):
    x, y = images
    model = small(batch_norm=False, dropout=0.0)
    probs = np.asarray(model(scale(x.astype(np.float32)), training=False))
    y = y.copy()
    y[:20] = np.argmax(probs[:20], axis=1)  # 20 sure hits, the rest at random
    expected = float(np.mean(np.argmax(probs, axis=1) == y))
    assert overfitting.accuracy(model, x, y, preprocess=scale, batch_size=8) == pytest.approx(expected)
    assert overfitting.accuracy(model, x, y, preprocess=scale, batch_size=100) == pytest.approx(expected)


def test_accuracy_in_training_mode_uses_the_batch_statistics(images):
    x, y = images
    model = small(batch_norm=True, dropout=0.0)
    probs = np.asarray(model(scale(x.astype(np.float32)), training=True))  # one batch of all 37
    expected = float(np.mean(np.argmax(probs, axis=1) == y))
    assert overfitting.accuracy(model, x, y, preprocess=scale, training=True, batch_size=37) == pytest.approx(expected)


def test_zero_fraction_counts_exact_zeros_of_the_layer_before_the_classifier(images):
    x, _ = images
    model = small(batch_norm=False, dropout=0.0)
    hidden = np.asarray(keras.Model(model.inputs[0], model.layers[-2].output)(scale(x.astype(np.float32))))
    expected = float(np.mean(hidden == 0))
    assert 0.0 < expected < 1.0
    assert overfitting.zero_fraction(model, x, preprocess=scale, batch_size=10) == pytest.approx(expected)
    assert overfitting.zero_fraction(small(batch_norm=False, dropout=0.0, activation="tanh"), x,
                                     preprocess=scale) == 0.0


def test_variance_shift_compares_the_moving_variance_with_the_inputs_at_inference(images):
    x, _ = images
    model = small(batch_norm=True, dropout=0.5)
    norm = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.BatchNormalization)][-1]
    inputs = np.asarray(keras.Model(model.inputs[0], norm.input)(scale(x.astype(np.float32)), training=False))
    norm.moving_variance.assign(2.5 * inputs.var(axis=0))
    assert overfitting.variance_shift(model, x, preprocess=scale) == pytest.approx(2.5, rel=1e-4)


def test_fit_numbers_adds_the_shift_only_where_dropout_precedes_batch_norm(images):
    x, y = images
    expected = {(True, 0.5): True, (True, 0.0): False, (False, 0.5): False, (False, 0.0): False}
    for (bn, rate), shifted in expected.items():
        model = small(batch_norm=bn, dropout=rate)
        assert overfitting.dropout_before_batch_norm(model) is shifted
        numbers = overfitting.fit_numbers(model, x, y, preprocess=scale, shift_images=20)
        assert set(numbers) == ({"train", "zeros", "shift"} if shifted else {"train", "zeros"})
        assert 0.0 <= numbers["train"] <= 1.0 and 0.0 <= numbers["zeros"] <= 1.0


def test_bad_inputs_are_refused_with_what_was_expected(images):
    x, y = images
    model = small(batch_norm=False, dropout=0.0)
    with pytest.raises(ValueError, match=r"uint8 array of images \(N, H, W, C\), got float32 of shape \(37, 32, 32, 3\)"):
        overfitting.accuracy(model, x.astype(np.float32), y, preprocess=scale)
    with pytest.raises(ValueError, match=r"uint8 array of images .* shape \(32, 32, 3\)"):
        overfitting.zero_fraction(model, x[0], preprocess=scale)
    with pytest.raises(ValueError, match=r"one label per image, shape \(37,\), got shape \(36,\)"):
        overfitting.accuracy(model, x, y[:-1], preprocess=scale)
    with pytest.raises(ValueError, match="batch_size"):
        overfitting.accuracy(model, x, y, preprocess=scale, batch_size=0)
    with pytest.raises(TypeError, match="preprocess must be a function"):
        overfitting.accuracy(model, x, y, preprocess="zscore")
    with pytest.raises(ValueError, match=r"one of their names .* got 'nope'"):
        overfitting.zero_fraction(model, x, preprocess=scale, layer="nope")
    with pytest.raises(ValueError, match="has no BatchNormalization layer"):
        overfitting.variance_shift(model, x, preprocess=scale)
