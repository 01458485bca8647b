"""cnnkit.training (the capstone recipe), python -m cnnkit.train and the capstone checks.

TensorFlow/Keras and numpy are the oracles; the end-to-end run uses the offline dataset
in fast mode so that the whole file stays well under two minutes on two CPU cores.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit import training as T
from cnnkit.checks import CheckFailed
from cnnkit.checks import capstone as checks

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tf():
    from cnnkit.env import import_tensorflow

    return import_tensorflow()


def _images(n=40, h=8, w=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


# --------------------------------------------------------------------------- recipes


def test_recipes_are_frozen_complete_and_json_ready():
    assert set(T.RECIPES) == {"quick", "good", "best"}
    for name, recipe in T.RECIPES.items():
        assert recipe.name == name
        assert T.get_recipe(name) is recipe
        with pytest.raises(dataclasses.FrozenInstanceError):
            recipe.epochs = 1
        settings_ = json.loads(json.dumps(recipe.to_dict()))
        for key in ("widths", "epochs", "batch_size", "optimizer", "learning_rate", "label_smoothing",
                    "weight_decay", "warmup_epochs", "decay", "flip", "translate", "tta"):
            assert key in settings_
    assert T.RECIPES["good"].epochs >= T.RECIPES["quick"].epochs
    # best is the good recipe trained longer on its fixed schedule, nothing else changed: no early stopping
    # (patience 4 once cut a 20-epoch run at epoch 10, docs/recipes.md tenth round)
    assert T.RECIPES["best"] == T.RECIPES["good"].replace(name="best", epochs=T.RECIPES["best"].epochs, patience=0)
    assert T.RECIPES["best"].epochs > T.RECIPES["good"].epochs


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs"), ({"optimizer": "lbfgs"}, "optimizer"), ({"decay": "step"}, "decay"),
    ({"label_smoothing": 1.5}, "label_smoothing"), ({"residual": (True,)}, "residual"),
    ({"warmup_epochs": 99}, "warmup_epochs"), ({"learning_rate": -1.0}, "learning_rate"),
    ({"widths": ()}, "widths"), ({"whiten_patch": 5}, "whiten_patch"), ({"whiten_stride": 3}, "whiten_stride"),
    ({"val_fraction": 0.0}, r"val_fraction=0 .* patience=4 asks for early stopping"),
    ({"val_fraction": 1.0}, "val_fraction"), ({"val_fraction": -0.1}, "val_fraction"), ({"learning_rate": float("nan")}, "learning_rate"),
    ({"weight_decay": float("inf")}, "weight_decay"), ({"translate": True}, "translate"),
    ({"flip": "yes"}, "flip"), ({"seed": -1}, "seed"), ({"logit_scale": 0}, "logit_scale"),
    ({"tta": False, "tta_translate": 1}, "tta_translate=1 needs tta=True"), ({"tta_translate": 9}, "tta_translate"),
    ({"ema_momentum": 1.0, "patience": 0}, "ema_momentum"), ({"ema_momentum": 0.9}, "needs patience=0"),
    ({"bn_scale": 1}, "bn_scale must be True or False"), ({"patience": -1}, "patience"),
    ({"bn_weight_decay": None}, "bn_weight_decay"),
    ({"flip": False, "alternate_flip": True}, "alternate_flip=True needs flip=True"),
    ({"alternate_flip": "yes"}, "alternate_flip"),
    ({"crop": 24}, r"crop and crop_epochs go together .* crop=24, crop_epochs=0"),
    ({"crop_epochs": 2}, r"crop and crop_epochs go together"), ({"crop": -1, "crop_epochs": 1}, "crop"),
    ({"crop": 24, "crop_epochs": 6}, r"crop_epochs=6 must leave at least one of the 6 epochs on full-size images"),
])
def test_recipe_rejects_bad_values_naming_them(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        T.RECIPES["quick"].replace(**change)


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match="quick"):
        T.get_recipe("fastest")


# --------------------------------------------------------------------------- data


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), hw=st.integers(1, 6), c=st.integers(1, 4), seed=st.integers(0, 1000))
def test_channel_statistics_match_numpy(n, hw, c, seed):
    x = _images(n, hw, hw, c, seed)
    mean, std = T.channel_statistics(x, chunk=3)
    flat = x.reshape(-1, c).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, np.maximum(flat.std(0), 1e-3), rtol=1e-5)
    assert mean.shape == std.shape == (c,)


def test_channel_statistics_refuse_float_images():
    with pytest.raises(TypeError, match="uint8"):
        T.channel_statistics(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="rank|shape"):
        T.channel_statistics(np.zeros((4, 4, 3), np.uint8))


def test_prepare_data_fits_statistics_on_the_training_split_only():
    from cnnkit.data import load_dataset

    ds = load_dataset("offline")
    data = T.prepare_data(ds, val_fraction=0.2, seed=0, train_size=1000, test_size=200)
    assert data.x_train.dtype == data.x_val.dtype == data.x_test.dtype == np.uint8
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (800, 200, 200)
    assert np.all(np.bincount(data.y_val, minlength=10) == 20)  # stratified: 20 % of each class
    mean, std = T.channel_statistics(data.x_train)
    np.testing.assert_array_equal(data.mean, mean)
    np.testing.assert_array_equal(data.std, std)
    everything, _ = T.channel_statistics(np.concatenate([data.x_train, data.x_val, data.x_test]))
    assert not np.allclose(data.mean, everything, rtol=1e-6)
    # the validation images are taken out of the training set, not shared with it
    train_rows = {row.tobytes() for row in data.x_train.reshape(len(data.x_train), -1)}
    assert not any(row.tobytes() in train_rows for row in data.x_val.reshape(len(data.x_val), -1))


def test_prepare_data_with_no_validation_split_keeps_every_training_image():
    from cnnkit.data import load_dataset

    ds = load_dataset("offline")
    data = T.prepare_data(ds, val_fraction=0, seed=0, train_size=1000, test_size=200)
    assert (len(data.x_train), len(data.x_val), len(data.y_val), len(data.x_test)) == (1000, 0, 0, 200)
    assert data.x_val.shape[1:] == data.x_train.shape[1:] and data.x_val.dtype == np.uint8
    kept = T.prepare_data(ds, val_fraction=0.2, seed=0, train_size=1000, test_size=200)
    everything = np.concatenate([kept.x_train, kept.x_val])  # the same 1,000 images, none held out
    assert sorted(r.tobytes() for r in data.x_train.reshape(1000, -1)) == sorted(
        r.tobytes() for r in everything.reshape(1000, -1))
    np.testing.assert_array_equal(data.mean, T.channel_statistics(data.x_train)[0])
    for bad in (-0.1, 1.0, True, "0"):
        with pytest.raises((TypeError, ValueError), match="val_fraction"):
            T.prepare_data(ds, val_fraction=bad, train_size=100, test_size=20)


def test_fit_recipe_without_a_validation_split_trains_on_every_image(tf, tmp_path):
    from cnnkit.data import load_dataset

    data = T.prepare_data(load_dataset("offline"), val_fraction=0, train_size=40, test_size=20)
    recipe = T.RECIPES["quick"].replace(widths=(4,), residual=(False,), batch_size=10, epochs=2, patience=0,
                                        val_fraction=0.0)
    result = T.fit_recipe(recipe, data, checkpoint_path=tmp_path / "model.keras")
    assert result.steps_per_epoch == 4 and result.epochs_run == result.best_epoch == 2  # 40 images, batch 10
    assert not any(key.startswith("val_") for key in result.history)
    reloaded = T.load_model(tmp_path / "model.keras")  # written after the last epoch
    for got, want in zip(reloaded.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"patience=4 needs a validation split .* val_fraction=0"):
        T.fit_recipe(recipe.replace(patience=4, val_fraction=0.5), data)


def test_fit_recipe_trains_its_first_epochs_on_crops_then_on_full_images(tf, monkeypatch):
    from cnnkit.data import load_dataset

    data = T.prepare_data(load_dataset("offline"), val_fraction=0.2, train_size=50, test_size=20)
    recipe = T.RECIPES["quick"].replace(widths=(4,), residual=(False,), batch_size=10, epochs=4, patience=0,
                                        crop=20, crop_epochs=2)
    seen = []
    real_fit = T.fit

    def spy(model, train, val, **kwargs):  # record the image size of every batch the run draws
        steps = kwargs["steps_per_epoch"] * kwargs["epochs"]
        seen.extend(tuple(images.shape[1:3]) for images, _ in train.take(steps))
        return real_fit(model, train, val, **kwargs)

    monkeypatch.setattr(T, "fit", spy)
    result = T.fit_recipe(recipe, data)
    assert result.steps_per_epoch == 4
    assert seen == [(20, 20)] * 8 + [(32, 32)] * 8  # two epochs of 20 x 20 crops, then two of full images
    assert result.model.input_shape == (None, None, None, 3)
    assert T.evaluate(result.model, data).probabilities.shape == (20, 10)  # tested on full-size images
    seen.clear()
    T.fit_recipe(recipe, data, epochs=2)  # the crop epochs shrink with the schedule, the last stays full-size
    assert seen == [(20, 20)] * 4 + [(32, 32)] * 4
    seen.clear()
    T.fit_recipe(recipe, data, epochs=1)
    assert seen == [(32, 32)] * 4


# --------------------------------------------------------------------------- pipeline


def test_pipeline_standardises_uint8_batches_with_the_given_statistics(tf):
    x = _images(10)
    y = np.arange(10) % 3
    mean, std = np.array([10.0, 100.0, 200.0]), np.array([2.0, 50.0, 80.0])
    ds = T.make_pipeline(x, y, mean=mean, std=std, batch_size=4, num_classes=3)
    batches = list(ds.as_numpy_iterator())
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    z = np.concatenate([b[0] for b in batches])
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, (x.astype(np.float64) - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.eye(3)[y])
    assert x.dtype == np.uint8  # the caller's array is left as it was


def test_pipeline_shuffles_every_epoch_and_sees_each_image_once(tf):
    x = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1) * 10
    y = np.zeros(12, np.int64)
    ds = T.make_pipeline(x, y, mean=[0.0], std=[1.0], batch_size=4, num_classes=1, training=True, seed=3)
    epochs = [np.concatenate([b[0].ravel() for b in ds.as_numpy_iterator()]) for _ in range(2)]
    for values in epochs:
        assert sorted(values.tolist()) == sorted((x.ravel().astype(float)).tolist())
    assert not np.array_equal(epochs[0], epochs[1])


def test_repeated_pipeline_streams_epoch_after_epoch_each_reshuffled(tf):
    x = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1) * 10
    y = np.zeros(12, np.int64)
    ds = T.make_pipeline(x, y, mean=[0.0], std=[1.0], batch_size=4, num_classes=1, training=True, seed=3,
                         repeat=True)
    values = np.concatenate([b[0].ravel() for b in ds.take(9).as_numpy_iterator()])  # 3 epochs of 3 batches
    epochs = values.reshape(3, 12)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == sorted(x.ravel().astype(float).tolist())
    assert not np.array_equal(epochs[0], epochs[1]) or not np.array_equal(epochs[1], epochs[2])


def _all_shifts(image, pad):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = image.shape[:2]
    return [padded[dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


def test_augmentation_keeps_uint8_and_only_flips_and_shifts(tf):
    x = _images(16, 6, 6)
    seed = tf.constant([5, 7], tf.int64)
    flipped = T.random_flip(tf.constant(x), seed).numpy()
    shifted = T.random_translate(tf.constant(x), 2, seed).numpy()
    assert flipped.dtype == shifted.dtype == np.uint8
    n_flipped = 0
    for original, f, s in zip(x, flipped, shifted):
        assert np.array_equal(f, original) or np.array_equal(f, original[:, ::-1])
        n_flipped += not np.array_equal(f, original)
        assert any(np.array_equal(s, candidate) for candidate in _all_shifts(original, 2))
    assert 0 < n_flipped < 16
    assert np.array_equal(T.random_translate(tf.constant(x), 0, seed).numpy(), x)


def test_pipeline_rejects_bad_inputs():
    x = _images(4)
    with pytest.raises(TypeError, match="uint8"):
        T.make_pipeline(x.astype(np.float32), np.zeros(4), mean=[0, 0, 0], std=[1, 1, 1])
    with pytest.raises(ValueError, match="one value per channel"):
        T.make_pipeline(x, np.zeros(4, int), mean=[0, 0], std=[1, 1])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        T.make_pipeline(x, np.zeros(3, int), mean=[0, 0, 0], std=[1, 1, 1])
    with pytest.raises(ValueError, match="labels must lie"):
        T.make_pipeline(x, np.array([0, 1, 2, 11]), mean=[0, 0, 0], std=[1, 1, 1], num_classes=10)


# --------------------------------------------------------------------------- model


def test_patch_whitening_kernel_whitens_training_patches_like_conv2d(tf):
    import keras

    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 8, 8, 1))
    x = np.clip(120 + 40 * np.concatenate([base, 0.5 * base + rng.normal(size=base.shape), rng.normal(size=base.shape)],
                                          axis=-1), 0, 255).astype(np.uint8)  # correlated channels
    mean, std = T.channel_statistics(x)
    kernel = T.patch_whitening_kernel(x, mean, std, 2, eps=1e-8)
    assert kernel.shape == (2, 2, 3, 24)
    z = (x.astype(np.float32) - mean) / std
    conv = keras.layers.Conv2D(24, 2, padding="valid", use_bias=False)
    conv.build((None, 8, 8, 3))
    conv.set_weights([kernel])
    out = np.asarray(conv(z)).reshape(-1, 24).astype(np.float64)
    patches = np.lib.stride_tricks.sliding_window_view(z, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    np.testing.assert_allclose(out, patches.reshape(-1, 12) @ kernel.reshape(12, 24), rtol=1e-4, atol=1e-4)
    half = out[:, :12]
    np.testing.assert_allclose(np.cov(half, rowvar=False, bias=True), np.eye(12), atol=1e-3)
    np.testing.assert_allclose(out[:, 12:], -half, atol=1e-6)


def test_resnet9_block_is_the_identity_when_its_kernels_are_zero(tf):
    import keras

    inputs = keras.Input((5, 5, 4))
    model = keras.Model(inputs, T.resnet9_block(inputs, 4, name="r"))
    assert model.output_shape == (None, 5, 5, 4)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), x, atol=1e-6)
    with pytest.raises(ValueError, match="input has 4"):
        T.resnet9_block(keras.Input((5, 5, 4)), 8)


@pytest.mark.parametrize("name", ["quick", "good"])
def test_models_build_with_logits_for_each_class_and_a_frozen_whitening_layer(tf, name):
    from cnnkit import params

    model = T.build_model(name, num_classes=10)
    assert model.output_shape == (None, 10)
    assert model.get_layer("whiten").trainable is False
    assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)
    table = params.explain(model)
    assert table.total == model.count_params()
    assert table.row("whiten").trainable == 0
    if any(T.RECIPES[name].residual):
        assert any(layer.name.endswith("_add") for layer in model.layers)


def test_batch_norm_options_freeze_the_scale_and_spare_it_from_weight_decay(tf):
    import keras

    recipe = T.RECIPES["quick"].replace(widths=(8, 16), residual=(False, True), bn_scale=False,
                                        bn_weight_decay=False, weight_decay=0.01)
    model = T.build_model(recipe, num_classes=10)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 4 and all(layer.gamma is None for layer in norms)
    assert [v.name for v in norms[0].trainable_weights] == ["beta"]
    T.compile_model(model, recipe, steps_per_epoch=10)
    decayed = {v.path: model.optimizer._use_weight_decay(v) for v in model.trainable_weights}
    assert decayed and all(decayed[p] == ("_bn" not in p) for p in decayed), decayed
    default = T.build_model(recipe.replace(bn_scale=True, bn_weight_decay=True), num_classes=10)
    T.compile_model(default, recipe.replace(bn_weight_decay=True), steps_per_epoch=10)
    assert all(default.optimizer._use_weight_decay(v) for v in default.trainable_weights)
    assert all(layer.gamma is not None for layer in default.layers
               if isinstance(layer, keras.layers.BatchNormalization))


def test_scaled_shift_moves_at_the_square_of_its_multiplier_under_sgd(tf, tmp_path):
    import keras

    from cnnkit.resnet9 import ScaledShift

    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    target = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    moved = {}
    for c in (1.0, 8.0):
        inputs = keras.Input((3,))
        model = keras.Model(inputs, ScaledShift(c, name="shift")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        model.train_on_batch(x, target)
        moved[c] = c * model.get_layer("shift").shift.numpy()  # the shift the layer adds
    np.testing.assert_allclose(moved[8.0], 64 * moved[1.0], rtol=1e-5)
    np.testing.assert_allclose(moved[1.0], 0.01 * 2 * (target - x).mean(axis=0) / 3, rtol=1e-5)  # SGD on mse
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6)
    assert again.get_layer("shift").multiplier == 8.0
    recipe = T.RECIPES["quick"].replace(widths=(8,), residual=(True,), bn_shift_lr=64.0, bn_weight_decay=False)
    built = T.build_model(recipe, num_classes=10)
    shifts = [layer for layer in built.layers if isinstance(layer, ScaledShift)]
    assert len(shifts) == 3 and all(layer.multiplier == 8.0 for layer in shifts)
    assert all(layer.beta is None for layer in built.layers if isinstance(layer, keras.layers.BatchNormalization))
    T.compile_model(built, recipe, steps_per_epoch=10)
    assert not any(built.optimizer._use_weight_decay(layer.shift) for layer in shifts)
    adamw = T.build_model(recipe.replace(optimizer="adamw"), num_classes=10)
    assert {layer.multiplier for layer in adamw.layers if isinstance(layer, ScaledShift)} == {64.0}


def test_ghost_batch_norm_normalises_each_group_and_saves(tf, tmp_path):
    import keras

    from cnnkit.resnet9 import GhostBatchNormalization

    x = np.random.default_rng(0).normal(loc=1.0, scale=3.0, size=(64, 5, 5, 3)).astype(np.float32)
    x[32:] += 4.0  # the second half of the batch has another mean: groups of 32 must each see their own
    whole, ghost = keras.layers.BatchNormalization(momentum=0.9), GhostBatchNormalization(64, momentum=0.9)
    np.testing.assert_allclose(ghost(x, training=True), whole(x, training=True), atol=1e-5)  # one group: plain BN
    np.testing.assert_allclose(ghost.moving_mean.numpy(), whole.moving_mean.numpy(), rtol=1e-6)
    layer = GhostBatchNormalization(32, momentum=0.5)
    y = np.asarray(layer(x, training=True))
    groups = x.reshape(2, 32, 5, 5, 3)
    mean, var = groups.mean(axis=(1, 2, 3), keepdims=True), groups.var(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, ((groups - mean) / np.sqrt(var + 1e-3)).reshape(x.shape), atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * mean.mean(axis=0).ravel(), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 + 0.5 * var.mean(axis=0).ravel(), rtol=1e-5)
    expected = (x - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(layer(x, training=False), expected, atol=1e-5)  # inference: moving statistics
    recipe = T.RECIPES["quick"].replace(widths=(8,), residual=(True,), batch_size=64, bn_group=16)
    model = T.build_model(recipe, num_classes=10)
    ghosts = [layer for layer in model.layers if isinstance(layer, GhostBatchNormalization)]
    assert len(ghosts) == 3 and {g.group_size for g in ghosts} == {16}
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    images = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(again(images), model(images), rtol=1e-5, atol=1e-6)
    assert again.get_layer(ghosts[0].name).group_size == 16
    with pytest.raises(ValueError, match="bn_group=48 must divide batch_size=256"):
        T.RECIPES["quick"].replace(bn_group=48)
    with pytest.raises(ValueError, match="group_size"):
        GhostBatchNormalization(0)


def test_whitening_bias_learns_for_its_epochs_then_keeps_its_value(tf, tmp_path):
    import keras

    from cnnkit.data import load_dataset
    from cnnkit.resnet9 import GatedShift, ShutGate

    layer = GatedShift()
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 3, 3, 2)), tf.float32)
    layer.build(x.shape)
    layer.shift.assign([0.5, -1.0])
    for step in ("open", "shut"):  # dL/db = sum of dL/dy over batch and positions while open, 0 once shut
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y)
        np.testing.assert_allclose(y, x.numpy() + [0.5, -1.0], rtol=1e-6)  # the same output either way
        grad = tape.gradient(loss, layer.shift)
        np.testing.assert_allclose(0.0 if grad is None else grad, [36.0, 36.0] if step == "open" else 0.0)
        if step == "open":
            layer.shut()
    layer.shift.assign([9.0, 9.0])  # what an optimiser still does to the shift no longer counts
    np.testing.assert_allclose(layer(x), x.numpy() + [0.5, -1.0], rtol=1e-6)
    with pytest.raises(TypeError, match="ShutGate needs a GatedShift layer, got Dense"):
        ShutGate(keras.layers.Dense(2), 1)

    data = T.prepare_data(load_dataset("offline"), val_fraction=0.5, train_size=40, test_size=20)
    recipe = T.RECIPES["quick"].replace(widths=(4,), residual=(False,), batch_size=10, epochs=3, patience=0,
                                        whiten_bias_epochs=2, weight_decay=0.05)
    added = []

    class Watch(keras.callbacks.Callback):  # the shift the layer adds after each epoch
        def on_epoch_end(self, epoch, logs=None):
            layer = self.model.get_layer("whiten_bias")
            added.append(np.array(layer(np.zeros((1, 1, 1, layer.shift.shape[0]), np.float32))).ravel())

    result = T.fit_recipe(recipe, data, callbacks=[Watch()])
    assert np.abs(added[0]).max() > 0 and np.abs(added[1] - added[0]).max() > 0  # learns in epochs 1 and 2
    np.testing.assert_array_equal(added[2], added[1])  # kept in epoch 3, though momentum and decay go on
    assert np.abs(np.array(result.model.get_layer("whiten_bias").shift) - added[1]).max() > 0
    result.model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(again(images), result.model(images), rtol=1e-5, atol=1e-6)
    assert "whiten_bias" not in [layer.name for layer in T.build_model("quick").layers]  # off in the recipes
    with pytest.raises(ValueError, match=r"whiten_bias_epochs must be an integer in \[0, 3\], got 4"):
        recipe.replace(whiten_bias_epochs=4)
    with pytest.raises(ValueError, match="whiten_bias_epochs=2 needs the whitening layer"):
        recipe.replace(whiten_patch=0)


def test_two_convolutions_per_stage_and_identity_initialisation(tf):
    import keras

    recipe = T.RECIPES["quick"].replace(widths=(8, 16), residual=(False, False), convs_per_stage=2,
                                        identity_init=True)
    model = T.build_model(recipe, num_classes=10)
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == ["whiten", "stage1_conv", "stage1_conv2", "stage2_conv", "stage2_conv2"]
    conv2 = model.get_layer("stage2_conv2").kernel.numpy()  # (3, 3, 16, 16): every filter an identity
    np.testing.assert_array_equal(conv2, T.partial_identity(np.zeros((3, 3, 16, 16))))
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 16)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.conv(x, conv2, padding="same").numpy(), x, atol=1e-6)
    widening = model.get_layer("stage2_conv").kernel.numpy()  # (3, 3, 8, 16): 8 identities, 8 random filters
    np.testing.assert_array_equal(widening[1, 1, :, :8], np.eye(8))
    assert np.count_nonzero(widening[:, :, :, :8]) == 8 and np.all(widening[:, :, :, 8:] != 0)
    plain = T.build_model(recipe.replace(identity_init=False), num_classes=10)
    assert not np.array_equal(plain.get_layer("stage1_conv2").kernel.numpy()[1, 1], np.eye(8))
    with pytest.raises(ValueError, match=r"odd k, got \(2, 2, 3, 3\)"):
        T.partial_identity(np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="convs_per_stage must be 1 or 2, got 3"):
        recipe.replace(convs_per_stage=3)


def test_weight_average_replaces_the_trained_weights_at_the_end(tf):
    import keras

    from cnnkit.data import load_dataset

    data = T.prepare_data(load_dataset("offline"), val_fraction=0.5, train_size=40, test_size=20)
    recipe = T.RECIPES["quick"].replace(widths=(4,), residual=(False,), batch_size=10, epochs=2, ema_momentum=0.5,
                                        patience=0)
    seen = {}

    class Last(keras.callbacks.Callback):  # the raw weights after the last step, before fit ends
        def on_epoch_end(self, epoch, logs=None):
            seen["raw"] = [np.array(v) for v in self.model.trainable_weights]
            seen["average"] = [np.array(v) for v in self.model.optimizer._model_variables_moving_average]

    result = T.fit_recipe(recipe, data, callbacks=[Last()])
    final = [np.array(v) for v in result.model.trainable_weights]
    for got, average, raw in zip(final, seen["average"], seen["raw"]):
        np.testing.assert_array_equal(got, average)
    assert any(not np.array_equal(a, r) for a, r in zip(seen["average"], seen["raw"]))


# --------------------------------------------------------------------------- schedule, optimiser, saving


def test_warmup_decay_values_follow_the_formula(tf):
    linear = T.WarmupDecay(0.4, total_steps=100, warmup_steps=10, final=0.04)
    steps = np.array([0, 5, 10, 55, 100, 150])
    np.testing.assert_allclose(linear.values(steps), [0.0, 0.2, 0.4, 0.22, 0.04, 0.04], rtol=1e-6)
    values = linear.values(np.arange(101))
    assert np.all(np.diff(values[:11]) > 0) and np.all(np.diff(values[10:]) < 0)
    cosine = T.WarmupDecay(1.0, total_steps=20, warmup_steps=0, final=0.0, shape="cosine")
    np.testing.assert_allclose(cosine.values([0, 10, 20]), [1.0, 0.5, 0.0], atol=1e-6)


def test_warmup_decay_serialisation_round_trip(tf):
    import keras

    schedule = T.WarmupDecay(0.3, total_steps=50, warmup_steps=5, final=0.01, shape="cosine")
    config = keras.saving.serialize_keras_object(schedule)
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(again).__name__ == "WarmupDecay" and again.get_config() == schedule.get_config()
    np.testing.assert_allclose(again.values(np.arange(60)), schedule.values(np.arange(60)))


@pytest.mark.parametrize("kwargs, message", [
    ({"peak": 0.0}, "peak"), ({"total_steps": 0}, "total_steps"), ({"warmup_steps": 10}, "warmup_steps"),
    ({"final": 1.0}, "final"), ({"shape": "step"}, "shape"),
])
def test_warmup_decay_rejects_bad_arguments(tf, kwargs, message):
    args = {"peak": 0.1, "total_steps": 10, "warmup_steps": 2, "final": 0.0, "shape": "linear", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        T.WarmupDecay(**args)


def test_compiled_model_trains_saves_and_reloads(tf, tmp_path):
    import keras

    recipe = T.RECIPES["quick"].replace(widths=(8, 16), residual=(False, True), batch_size=16, epochs=2)
    model = T.build_model(recipe, input_shape=(16, 16, 3), num_classes=4)
    T.compile_model(model, recipe, steps_per_epoch=2)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.nesterov
    x = _images(32, 16, 16)
    y = np.arange(32) % 4
    ds = T.make_pipeline(x, y, mean=[127.0] * 3, std=[70.0] * 3, batch_size=16, num_classes=4, training=True,
                         flip=True, translate=2)
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    path = tmp_path / "m.keras"
    model.save(path)
    again = T.load_model(path)
    p1 = T.predict_proba(model, x, [127.0] * 3, [70.0] * 3, tta=True)
    p2 = T.predict_proba(again, x, [127.0] * 3, [70.0] * 3, tta=True)
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)
    schedule = again.optimizer._learning_rate  # the reloaded optimiser keeps the recipe's schedule
    assert type(schedule).__name__ == "WarmupDecay"
    assert schedule.get_config() == T.recipe_schedule(recipe, 2).get_config()


@pytest.mark.parametrize("smoothing", [0.0, 0.2, 0.5])
def test_compiled_loss_is_cross_entropy_with_the_recipes_label_smoothing(tf, smoothing):
    recipe = T.RECIPES["quick"].replace(widths=(8,), residual=(False,), label_smoothing=smoothing)
    model = T.build_model(recipe, input_shape=(8, 8, 3), num_classes=4)
    T.compile_model(model, recipe, steps_per_epoch=2)
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(6, 4)).astype(np.float32)
    onehot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
    target = onehot * (1 - smoothing) + smoothing / 4  # 1 - s + s/K for the true class, s/K elsewhere
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = float(np.mean(-(target * log_softmax).sum(axis=1)))
    assert float(model.loss(onehot, logits)) == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- fit_recipe


@pytest.fixture(scope="module")
def small_run(tf):
    """A real, short fit_recipe run on the offline dataset (a few seconds on two cores)."""
    from cnnkit.data import load_dataset

    data = T.prepare_data(load_dataset("offline"), val_fraction=0.25, seed=0, train_size=800, test_size=200)
    recipe = T.RECIPES["quick"].replace(widths=(8, 16), residual=(False, False), batch_size=50, epochs=4,
                                        warmup_epochs=0.5, patience=4, learning_rate=0.2)
    return recipe, data, T.fit_recipe(recipe, data)


def test_fit_recipe_returns_the_best_validation_weights_and_their_epoch(small_run):
    recipe, data, result = small_run
    val_acc = result.history["val_accuracy"]
    assert result.epochs_run == len(val_acc) == len(result.history["lr"]) == recipe.epochs
    assert result.steps_per_epoch == len(data.x_train) // recipe.batch_size
    assert 1 <= result.best_epoch <= result.epochs_run  # epochs count from 1
    assert val_acc[result.best_epoch - 1] == max(val_acc)
    assert all(v < max(val_acc) for v in val_acc[:result.best_epoch - 1])  # the first epoch that reached it
    # the returned model holds that epoch's weights: its validation accuracy is the best one
    probs = T.predict_proba(result.model, data.x_val, data.mean, data.std)
    assert np.mean(probs.argmax(1) == data.y_val) == pytest.approx(max(val_acc), abs=1e-6)
    assert result.history["lr"][0] == 0.0 and max(result.history["lr"]) <= recipe.learning_rate


def test_the_capstone_lesson_trains_with_the_steps_fit_recipe_runs(small_run):
    """The lesson assembles the training in plain view; run that cell and fit_recipe side by side."""
    import time

    import keras

    import cnnkit

    recipe, data, result = small_run
    lesson = json.loads((REPO / "notebooks" / "09_capstone.ipynb").read_text(encoding="utf-8"))
    cells = [c for c in lesson["cells"] if "training-assembly" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, "09_capstone.ipynb must have one cell tagged training-assembly"
    from cnnkit.devices import resolve_precision

    namespace = {"T": T, "ck": cnnkit, "keras": keras, "np": np, "time": time, "recipe": recipe, "data": data,
                 "epochs": recipe.epochs, "precision": resolve_precision(recipe.precision),
                 "live": keras.callbacks.Callback()}
    exec(compile("".join(cells[0]["source"]), "09_capstone.ipynb[training-assembly]", "exec"), namespace)
    assert namespace["history"]["val_accuracy"] == result.history["val_accuracy"]
    ours, theirs = namespace["model"].get_weights(), result.model.get_weights()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("val_accuracy, best", [([0.2, 0.6, 0.4], 2), ([0.7, 0.5, 0.6], 1), ([0.1, 0.3, 0.5], 3),
                                                ([0.4, 0.6, 0.6], 2)])
def test_best_epoch_is_the_first_epoch_of_highest_validation_accuracy(tf, monkeypatch, val_accuracy, best):
    """fit_recipe's bookkeeping alone: model.fit is replaced by a stand-in with a known history."""
    import keras

    from cnnkit.data import load_dataset

    class History:
        history = {"loss": [1.0] * 3, "accuracy": [0.5] * 3, "val_loss": [1.0] * 3, "val_accuracy": val_accuracy}

    monkeypatch.setattr(keras.Model, "fit", lambda self, *args, **kwargs: History())
    data = T.prepare_data(load_dataset("offline"), val_fraction=0.5, train_size=40, test_size=20)
    recipe = T.RECIPES["quick"].replace(widths=(4,), residual=(False,), batch_size=10, epochs=3)
    assert T.fit_recipe(recipe, data).best_epoch == best


# --------------------------------------------------------------------------- evaluation


def test_predict_proba_tta_averages_the_mirror_image(tf):
    import keras

    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    x = _images(5, 4, 4, 1)
    z = (x.astype(np.float32) - 100.0) / 50.0
    soft = lambda t: np.asarray(tf.nn.softmax(model(t)))  # noqa: E731
    np.testing.assert_allclose(T.predict_proba(model, x, [100.0], [50.0]), soft(z), rtol=1e-5)
    np.testing.assert_allclose(T.predict_proba(model, x, [100.0], [50.0], tta=True, batch_size=2),
                               0.5 * (soft(z) + soft(z[:, :, ::-1])), rtol=1e-5)


def test_translation_tta_averages_shifted_and_mirrored_views_half_and_half(tf):
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 5, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))  # not shift-invariant
    x = _images(7, 5, 5, 1, seed=2)
    z = (x.astype(np.float32) - 100.0) / 50.0
    soft = lambda t: np.asarray(tf.nn.softmax(model(t)), np.float64)  # noqa: E731
    pair = lambda t: 0.5 * (soft(t) + soft(t[:, :, ::-1]))  # noqa: E731
    padded = np.pad(z, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    up_left, down_right = padded[:, :5, :5], padded[:, 4:9, 4:9]
    assert np.array_equal(up_left[:, 2:, 2:], z[:, :3, :3]) and np.array_equal(down_right[:, :3, :3], z[:, 2:, 2:])
    expected = 0.5 * pair(z) + 0.25 * (pair(up_left) + pair(down_right))
    got = T.predict_proba(model, x, [100.0], [50.0], tta=True, tta_translate=2, batch_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not np.allclose(got, pair(z), rtol=1e-3)
    with pytest.raises(ValueError, match="tta_translate=1 needs tta=True"):
        T.predict_proba(model, x, [100.0], [50.0], tta_translate=1)
    with pytest.raises(ValueError, match=r"translate \(pixels\) must be an integer in \[0, 4\], got 5"):
        T.predict_proba(model, x, [100.0], [50.0], tta=True, tta_translate=5)


def test_evaluate_reports_plain_and_flip_tta_accuracy_separately(tf):
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    x = _images(300, 4, 4, 1, seed=5)
    z = (x.astype(np.float32) - 100.0) / 50.0
    plain = np.asarray(tf.nn.softmax(model(z)), np.float64)
    mirrored = np.asarray(tf.nn.softmax(model(z[:, :, ::-1])), np.float64)
    tta = (plain + mirrored) / 2
    y = np.random.default_rng(0).integers(0, 3, 300)
    y[:150] = tta[:150].argmax(1)  # labels that the flip-averaged predictions get right more often
    expected_plain, expected_tta = np.mean(plain.argmax(1) == y), np.mean(tta.argmax(1) == y)
    assert expected_plain != expected_tta  # the two accuracies are told apart by this data
    data = T.PreparedData(x, y, x, y, x, y, np.array([100.0]), np.array([50.0]), ("a", "b", "c"), "toy")
    result = T.evaluate(model, data, tta=True)
    assert result.accuracy == pytest.approx(expected_plain) and result.accuracy_tta == pytest.approx(expected_tta)
    np.testing.assert_allclose(result.probabilities, tta, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(result.predictions, tta.argmax(1))
    np.testing.assert_array_equal(result.confusion, T.confusion_counts(y, tta.argmax(1), 3))
    np.testing.assert_allclose(result.per_class, T.per_class_accuracy(y, tta.argmax(1), 3))
    without = T.evaluate(model, data, tta=False)
    assert without.accuracy == without.accuracy_tta == pytest.approx(expected_plain)
    np.testing.assert_allclose(without.probabilities, plain, rtol=1e-5, atol=1e-7)


def test_per_class_accuracy_confusion_and_mistakes():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(T.per_class_accuracy(y_true, y_pred, 4), [0.5, 2 / 3, 0.0, np.nan])
    counts = T.confusion_counts(y_true, y_pred, 3)
    assert counts.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    assert np.trace(counts) / counts.sum() == np.mean(y_true == y_pred)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    assert T.most_confident_mistakes(probs, np.array([1, 1, 0, 0]), k=5).tolist() == [0, 3, 2]
    with pytest.raises(ValueError, match="differ in length"):
        T.per_class_accuracy([0, 1], [0], 2)
    with pytest.raises(ValueError, match=r"y_true must lie in 0..2, found 0..5"):
        T.per_class_accuracy([0, 5], [0, 1], 3)  # a class beyond num_classes is not silently dropped
    with pytest.raises(ValueError, match=r"y_pred must lie in 0..2, found -1..0"):
        T.per_class_accuracy([0, 1], [-1, 0], 3)
    with pytest.raises(ValueError, match=r"k must be a positive integer \(>= 1\), got 0"):
        T.most_confident_mistakes(probs, np.array([1, 1, 0, 0]), k=0)


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x: T.predict_proba(m, x, [0.0] * 3, [1.0, 0.0, 1.0]), ValueError, "std finite and positive"),
    (lambda m, x: T.predict_proba(m, x, [0.0] * 2, [1.0] * 2), ValueError, r"shape \(3,\) \(one value per channel\)"),
    (lambda m, x: T.predict_proba(m, x, [np.nan] * 3, [1.0] * 3), ValueError, "mean must be finite"),
    (lambda m, x: T.predict_proba(m, x, [0.0] * 3, [1.0] * 3, tta="yes"), TypeError, "tta must be True or False"),
    (lambda m, x: T.make_pipeline(x, np.zeros(4, int), mean=[0] * 3, std=[1] * 3, translate=8), ValueError,
     r"translate \(pixels\) must be an integer in \[0, 7\], got 8"),
    (lambda m, x: T.make_pipeline(x, np.zeros(4), mean=[0] * 3, std=[1] * 3), TypeError, "integer class indices"),
    (lambda m, x: T.make_pipeline(x, np.zeros(4, int), mean=[0] * 3, std=[1] * 3, num_classes=0), ValueError,
     "num_classes must be a positive integer"),
    (lambda m, x: T.channel_statistics(x, chunk=0), ValueError, "chunk must be a positive integer"),
])
def test_evaluation_and_pipeline_arguments_are_named(tf, call, error, message):
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(error, match=message):
        call(model, _images(4))


def test_prepare_data_refuses_fractional_sizes():
    from cnnkit.data import load_dataset

    with pytest.raises(TypeError, match="train_size must be a positive integer, got 100.5"):
        T.prepare_data(load_dataset("offline"), train_size=100.5)


# --------------------------------------------------------------------------- command line


def _cli(*args, env_extra=None, timeout=240):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **(env_extra or {})}
    env.pop("CNNKIT_DATASET", None)
    return subprocess.run([sys.executable, "-m", "cnnkit.train", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def _leftovers(parent: Path):
    return [p.name for p in parent.iterdir() if ".partial-" in p.name]


def test_cli_fast_offline_run_writes_model_metrics_and_figures(tmp_path):
    out = tmp_path / "run"
    done = _cli("--recipe", "quick", "--epochs", "1", "--out", str(out), "--dataset", "offline", "--fast")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 1/1" in done.stdout and "test accuracy" in done.stdout
    assert {"model.keras", "metrics.json", "curves.png", "learning_rate.png", "confusion.png"} <= \
        {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "train_seconds", "epochs", "recipe", "dataset"):
        assert key in metrics
    assert metrics["recipe"] == "quick" and metrics["dataset"] == "offline" and metrics["epochs"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["train_seconds"] > 0
    assert metrics["normalization"]["fitted_on"] == "training split"
    machine = metrics["machine"]
    from cnnkit.devices import keras_policy, resolve_precision

    assert machine["cpu"] and machine["precision"] == resolve_precision("auto")  # the recipe's "auto", resolved
    assert machine["keras_policy"] == keras_policy(machine["precision"])
    assert (machine["strategy"], machine["replicas"]) == ("default", 1)
    assert machine["device_count"] == len(machine["devices"]) >= 1 and "CPU" in machine["devices"][0]
    assert _leftovers(tmp_path) == []
    model = T.load_model(out / "model.keras")
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("args, message", [
    (["--recipe", "huge"], "invalid choice"),
    (["--recipe", "quick", "--epochs", "0"], "positive integer"),
    (["--recipe", "quick", "--epochs", "ten"], "positive integer"),
    (["--recipe", "quick", "--dataset", "mnist"], "invalid choice"),
    (["--recipe", "quick"], "--out"),
])
def test_cli_bad_arguments_exit_2_with_a_clear_message(tmp_path, args, message):
    out = tmp_path / "run"
    extra = [] if "--out" in message else ["--out", str(out)]
    done = _cli(*args, *extra, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert not out.exists() and _leftovers(tmp_path) == []


def test_cli_missing_data_exits_3_and_leaves_an_existing_out_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    empty = tmp_path / "nodata"
    empty.mkdir()
    env = {"KERAS_HOME": str(tmp_path / "keras_home"), "CNNKIT_DATA_DIR": str(empty)}
    for extra in (["--data-dir", str(tmp_path / "missing")], ["--data-dir", str(empty)]):
        done = _cli("--recipe", "quick", "--out", str(out), "--dataset", "cifar10", *extra, env_extra=env, timeout=60)
        assert done.returncode == 3, done.stderr
        assert "could not be loaded" in done.stderr and "--data-dir" in done.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert _leftovers(tmp_path) == []


def test_cli_failure_during_training_removes_the_partial_output(tmp_path, monkeypatch, capsys):
    from cnnkit import train as cli

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash in the middle of training")

    monkeypatch.setattr(T, "fit_recipe", broken)
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.json").write_text("{}")
    code = cli.main(["--recipe", "quick", "--out", str(out), "--dataset", "offline", "--fast", "--quiet"])
    assert code == 1
    assert "simulated crash" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["old.json"]
    assert _leftovers(tmp_path) == []
    assert cli.main(["--recipe", "quick", "--out", str(out / "old.json")]) == 2


# --------------------------------------------------------------------------- the exercise checks


def _standardize(x_train, x_val, x_test):
    mean, std = x_train.mean(axis=(0, 1, 2)), x_train.std(axis=(0, 1, 2))
    return tuple(((x - mean) / std).astype(np.float32) for x in (x_train, x_val, x_test)), (mean, std)


def test_checks_pass_right_answers_and_explain_wrong_ones(tf):
    checks.check_standardize_splits(_standardize)
    checks.check_lr_schedule(lambda s, p, w, t: p * s / w if s < w else p * (1 - min((s - w) / (t - w), 1)))
    checks.check_per_class_accuracy(lambda yt, yp, k: T.per_class_accuracy(yt, yp, k))
    checks.check_flip_tta(lambda predict, x: (predict(x) + predict(x[:, :, ::-1])) / 2)
    checks.check_residual_block(lambda x, f: T.resnet9_block(x, f))
    leak = lambda a, b, c: _standardize(np.concatenate([a, b, c]), b, c)  # noqa: E731
    with pytest.raises(CheckFailed, match="leaks"):
        checks.check_standardize_splits(leak)
    with pytest.raises(CheckFailed, match="off-by-one|starts from 0"):
        checks.check_lr_schedule(lambda s, p, w, t: p * (s + 1) / w if s < w else p * (1 - min((s - w) / (t - w), 1)))
    with pytest.raises(CheckFailed, match="precision"):
        checks.check_per_class_accuracy(
            lambda yt, yp, k: np.array([np.mean(yt[yp == c] == c) if np.any(yp == c) else 0 for c in range(k)]))
    with pytest.raises(CheckFailed, match="upside down"):
        checks.check_flip_tta(lambda predict, x: (predict(x) + predict(x[:, ::-1])) / 2)
    import keras

    with pytest.raises(CheckFailed, match="ReLU\\(x\\)"):
        checks.check_residual_block(lambda x, f: keras.layers.ReLU()(T.resnet9_block(x, f)))


@pytest.mark.parametrize("check", ["check_standardize_splits", "check_residual_block", "check_lr_schedule",
                                   "check_per_class_accuracy", "check_flip_tta"])
def test_checks_fail_on_a_blank_answer(tf, check):
    def blank(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, check)(blank)
