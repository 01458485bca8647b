"""Lookahead (cnnkit.lookahead): the decay schedule, each pull, the end of training, and the recipe field."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.lookahead import Lookahead, lookahead_decay


@pytest.fixture(scope="module")
def tf():
    from cnnkit.env import import_tensorflow

    return import_tensorflow()


def test_decay_rises_cubically_from_zero_to_the_peak():
    steps = np.array([0, 25, 50, 100])
    np.testing.assert_allclose(lookahead_decay(steps, 100, peak=0.8), 0.8 * (steps / 100) ** 3)
    assert lookahead_decay(100, 100) == pytest.approx(0.95**5)
    assert lookahead_decay(250, 100) == pytest.approx(0.95**5)  # past the end: held at the peak


@pytest.mark.parametrize("kwargs, message", [
    ({"total_steps": 0}, "total_steps"), ({"total_steps": 10, "peak": 1.5}, "peak"),
    ({"total_steps": 10, "power": -1.0}, "power"), ({"total_steps": 10, "every": 0}, "every"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Lookahead(**kwargs)


def _model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    model.compile(optimizer="sgd", loss="mse")
    return model


def _values(model):
    return {w.path: np.array(w.value) for w in model.weights}


def test_each_pull_moves_the_slow_copy_part_way_and_restarts_from_it(tf):
    model = _model()
    callback = Lookahead(total_steps=4, every=2, peak=0.5, power=1.0)
    callback.set_model(model)
    callback.on_train_begin()
    slow = _values(model)
    assert {p.split("/")[-1] for p in slow} >= {"kernel", "gamma", "beta", "moving_mean", "moving_variance"}
    rng = np.random.default_rng(0)
    for step in (1, 2):  # stand-ins for two optimiser steps (and moving statistics updates)
        for w in model.weights:
            w.assign(np.array(w.value) + rng.normal(size=w.shape).astype(np.float32))
        fast = _values(model)
        callback.on_train_batch_end(step - 1)
    decay = 0.5 * (2 / 4)  # the pull after step 2 of 4
    for path, value in _values(model).items():
        np.testing.assert_allclose(value, slow[path] + (1 - decay) * (fast[path] - slow[path]), rtol=1e-6, atol=1e-6)


def test_the_model_ends_with_the_slow_weights(tf):
    model = _model()
    callback = Lookahead(total_steps=10, every=2)
    callback.set_model(model)
    callback.on_train_begin()
    for w in model.weights:
        w.assign(np.array(w.value) + 1.0)
    callback.on_train_batch_end(0)  # step 1: not a pull
    start = {p: v - 1.0 for p, v in _values(model).items()}  # the slow copy: the weights before the step
    callback.on_train_end()  # the fast step since the last pull is dropped
    for path, value in _values(model).items():
        np.testing.assert_allclose(value, start[path], atol=1e-6)


def test_recipe_with_lookahead_needs_a_fixed_schedule(tf):
    from cnnkit.data import load_dataset
    from cnnkit import training as T

    with pytest.raises(ValueError, match="lookahead=True needs patience=0"):
        T.RECIPES["quick"].replace(lookahead=True)
    with pytest.raises(TypeError, match="lookahead must be True or False, got 'yes'"):
        T.RECIPES["quick"].replace(lookahead="yes", patience=0)
    data = T.prepare_data(load_dataset("offline"), val_fraction=0.5, train_size=40, test_size=20)
    recipe = T.RECIPES["quick"].replace(widths=(4,), residual=(False,), batch_size=10, epochs=3, lookahead=True,
                                        patience=0)
    result = T.fit_recipe(recipe, data)
    assert result.epochs_run == 3 and all(np.isfinite(np.array(w)).all() for w in result.model.weights)
