"""Scalers and batch normalization: numpy references, keras.layers.Normalization and BatchNormalization as oracles."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.normalization import (
    MinMaxScaler, NotFittedError, StandardScaler, batch_norm, channel_extrema, channel_moments,
    detect_leak, uint8_histograms,
)

import keras  # the oracle: required, never skipped

SHAPES = st.one_of(
    st.tuples(st.integers(1, 9), st.integers(1, 6)),                                   # (N, D)
    st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4)),  # (N, H, W, C)
)


def _reference_moments(x):
    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    return flat.mean(axis=0), flat.var(axis=0)


# --------------------------------------------------------------------------- scalers


@settings(max_examples=30, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 2**16), as_uint8=st.booleans(), chunk=st.integers(1, 4))
def test_scalers_match_numpy_reference_per_channel(shape, seed, as_uint8, chunk):
    rng = np.random.default_rng(seed)
    if as_uint8:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        x = rng.normal(50.0, 20.0, shape).astype(np.float32)
    mean, var = _reference_moments(x)
    std = np.sqrt(var)
    std[std == 0] = 1
    z = StandardScaler(chunk_size=chunk).fit(x)
    np.testing.assert_allclose(z.mean_, mean, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(z.var_, var, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(z.transform(x), (x - mean) / std, rtol=1e-4, atol=1e-4)
    flat = np.asarray(x, np.float64).reshape(-1, shape[-1])
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1)
    m = MinMaxScaler(chunk_size=chunk).fit(x)
    np.testing.assert_array_equal(m.data_min_, lo)
    np.testing.assert_array_equal(m.data_max_, hi)
    np.testing.assert_allclose(m.transform(x), (x - lo) / span, rtol=1e-5, atol=1e-6)


def test_standard_scaler_matches_keras_normalization_layer():
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(x_train.astype(np.float32))
    scaler = StandardScaler().fit(x_train)
    np.testing.assert_allclose(scaler.mean_, np.ravel(layer.mean), rtol=1e-5)
    np.testing.assert_allclose(scaler.var_, np.ravel(layer.variance), rtol=1e-4)
    np.testing.assert_allclose(scaler.transform(x_test), np.asarray(layer(x_test.astype(np.float32))),
                               rtol=1e-4, atol=1e-4)


def test_min_max_feature_range_and_inverse():
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 7, (40, 5))
    s = MinMaxScaler(feature_range=(-1, 1)).fit(x)
    y = s.transform(x, dtype=np.float64)
    np.testing.assert_allclose(y.min(axis=0), -1)
    np.testing.assert_allclose(y.max(axis=0), 1)
    np.testing.assert_allclose(s.inverse_transform(y), x, rtol=1e-12)
    z = StandardScaler().fit(x)
    np.testing.assert_allclose(z.inverse_transform(z.transform(x, dtype=np.float64)), x, rtol=1e-12)


def test_min_max_equals_divide_by_255_only_for_the_full_pixel_range():
    full = np.array([[[[0, 0, 0]]], [[[255, 255, 255]]], [[[17, 128, 200]]]], dtype=np.uint8)
    np.testing.assert_allclose(MinMaxScaler().fit_transform(full), full / 255.0, rtol=1e-6)
    dark = (full // 2).astype(np.uint8)  # range 0..127
    assert not np.allclose(MinMaxScaler().fit_transform(dark), dark / 255.0)


def test_transform_before_fit_raises_a_clear_error():
    for scaler in (StandardScaler(), MinMaxScaler()):
        with pytest.raises(NotFittedError, match=r"not fitted yet.*fit\(x_train\).*training split"):
            scaler.transform(np.zeros((2, 3)))
        with pytest.raises(NotFittedError, match="not fitted"):
            scaler.batch_fn()
        with pytest.raises(NotFittedError, match="not fitted"):
            scaler.inverse_transform(np.zeros((2, 3)))
    assert issubclass(NotFittedError, RuntimeError)


def test_constant_channel_does_not_divide_by_zero():
    x = np.zeros((6, 4, 4, 3), dtype=np.uint8)
    x[..., 0] = 9
    x[..., 1] = np.arange(6)[:, None, None]
    with np.errstate(all="raise"):
        z = StandardScaler().fit_transform(x)
        m = MinMaxScaler(feature_range=(2, 3)).fit_transform(x)
    assert np.isfinite(z).all() and np.isfinite(m).all()
    np.testing.assert_array_equal(z[..., 0], 0)
    np.testing.assert_array_equal(z[..., 2], 0)
    np.testing.assert_array_equal(m[..., 0], 2)
    np.testing.assert_allclose(m[:, 0, 0, 1], 2 + np.arange(6) / 5)


@pytest.mark.parametrize("bad, error, message", [
    (np.arange(5), ValueError, r"rank >= 2.*got shape \(5,\)"),
    (np.zeros((0, 3)), ValueError, "no samples"),
    (np.array([["a", "b"]]), TypeError, "numeric"),
    (np.array([[1.0, np.nan]]), ValueError, "NaN"),
    (np.ones((2, 2), dtype=complex), TypeError, "real-valued"),
    (np.zeros((5, 0)), ValueError, r"x has an empty axis \(shape \(5, 0\)\).*at least one channel"),
    (np.zeros((2, 0, 4, 3)), ValueError, r"x has an empty axis \(shape \(2, 0, 4, 3\)\)"),
])
def test_fit_rejects_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        StandardScaler().fit(bad)
    with pytest.raises(error, match=message):
        MinMaxScaler().fit(bad)


def test_statistics_that_overflow_float64_are_refused_without_a_warning():
    import warnings

    rng = np.random.default_rng(0)
    huge = 1e200 * rng.uniform(1, 2, size=(50, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way to the message
        with pytest.raises(ValueError, match=r"variance of channel 0 overflows float64 \(its values reach 1\.9\de\+200"):
            StandardScaler().fit(huge)
        with pytest.raises(ValueError, match=r"range \(max - min\) of channel 1 overflows"):
            MinMaxScaler().fit(np.array([[0.0, -1e308], [1.0, 1e308]]))
        # min-max on the same huge values is representable and exact
        z = MinMaxScaler().fit(huge).transform(huge, dtype=np.float64)
    lo, hi = huge.min(axis=0), huge.max(axis=0)
    np.testing.assert_allclose(z, (huge - lo) / (hi - lo), rtol=1e-12)


def test_transform_refuses_what_fit_refuses_and_what_dtype_cannot_hold():
    s = StandardScaler().fit(np.array([[0.0, 1.0], [0.002, 3.0]]))  # std 0.001 and 1
    for bad in (np.array([[np.nan, 1.0]]), np.array([[1.0, np.inf]])):
        with pytest.raises(ValueError, match="x contains 1 NaN or infinite"):
            s.transform(bad)
    with pytest.raises(ValueError, match="x_scaled contains 1 NaN"):
        s.inverse_transform(np.array([[np.nan, 0.0]]))
    far = np.array([[200.0, 2.0]])  # (200 - 0.001) / 0.001 = 199999 > float16's 65504
    with pytest.raises(ValueError, match=r"reach 2e\+05, beyond the largest float16 \(6.55e\+04\)"):
        s.transform(far, dtype=np.float16)
    np.testing.assert_allclose(s.transform(far, dtype=np.float32), [[199999.0, 0.0]], rtol=1e-6)
    with pytest.raises(TypeError, match="dtype must be a floating numpy type.*'banana'"):
        s.transform(far, dtype="banana")


def test_transform_checks_channel_count_and_dtype():
    s = StandardScaler().fit(np.ones((4, 3)))
    with pytest.raises(ValueError, match="4 channels.*fitted on 3"):
        s.transform(np.ones((2, 4)))
    with pytest.raises(TypeError, match="floating"):
        s.transform(np.ones((2, 3)), dtype=np.int32)
    with pytest.raises(ValueError, match="low < high"):
        MinMaxScaler(feature_range=(1, 1))
    with pytest.raises(ValueError, match="chunk_size"):
        StandardScaler(chunk_size=0)


def test_fit_on_uint8_images_makes_no_float_copy_of_the_array():
    x = np.random.default_rng(3).integers(0, 256, (4000, 32, 32, 3), dtype=np.uint8)
    for scaler in (StandardScaler(), MinMaxScaler()):
        tracemalloc.start()
        scaler.fit(x)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # a float32 copy would be 4 * x.nbytes, a float64 one 8 *
        assert peak < 0.5 * x.nbytes, f"{type(scaler).__name__}.fit peaked at {peak / x.nbytes:.2f} x the input"


def test_uint8_histograms_and_extrema():
    x = np.array([[[[0, 5]], [[255, 5]]]], dtype=np.uint8)  # (1, 2, 1, 2)
    h = uint8_histograms(x)
    assert h.shape == (2, 256) and h[0, 0] == 1 and h[0, 255] == 1 and h[1, 5] == 2
    lo, hi = channel_extrema(x)
    np.testing.assert_array_equal(lo, [0, 5])
    np.testing.assert_array_equal(hi, [255, 5])
    mean, var, count = channel_moments(x)
    np.testing.assert_allclose(mean, [127.5, 5])
    np.testing.assert_allclose(var, [127.5**2, 0])
    assert count == 2


def test_batch_fn_agrees_with_transform_in_numpy_and_in_tf_data():
    import tensorflow as tf

    from cnnkit.pipeline import make_dataset

    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    y = np.arange(20) % 10
    for scaler in (StandardScaler().fit(x[:12]), MinMaxScaler(feature_range=(-1, 1)).fit(x[:12])):
        fn = scaler.batch_fn()
        expected = scaler.transform(x)
        np.testing.assert_allclose(fn(x.astype(np.float32)), expected, rtol=1e-5, atol=1e-5)
        got = np.concatenate([b.numpy() for b, _ in make_dataset(x, y, 8, preprocess=fn)])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="4 channels"):
            fn(tf.zeros((1, 2, 2, 4)))


# --------------------------------------------------------------------------- leakage


def _fit_on_train(x_train, x_val, x_test):
    s = StandardScaler().fit(x_train)
    return s.transform(x_train), s.transform(x_val), s.transform(x_test)


def _fit_on_all(x_train, x_val, x_test):
    s = StandardScaler().fit(np.concatenate([x_train, x_val, x_test]))
    return s.transform(x_train), s.transform(x_val), s.transform(x_test)


def _each_its_own(x_train, x_val, x_test):
    return tuple(StandardScaler().fit_transform(x) for x in (x_train, x_val, x_test))


def test_detect_leak_separates_correct_from_leaky_pipelines():
    rng = np.random.default_rng(5)
    splits = [rng.integers(0, 200, (n, 4, 4, 3), dtype=np.uint8) for n in (30, 10, 10)]
    ok = detect_leak(_fit_on_train, *splits)
    assert not ok.leaks and ok.train_changed == 0 and "no leak" in ok.explain()
    pooled = detect_leak(_fit_on_all, *splits)
    assert pooled.leaks and pooled.train_changed > 0.01 and "fitted on held-out" in pooled.explain()
    own = detect_leak(_each_its_own, *splits)
    assert own.leaks and own.train_changed == 0 and own.heldout_changed > 0.01 and "their own split" in own.explain()
    with pytest.raises(ValueError, match="return 3 arrays"):
        detect_leak(lambda a, b, c: a, *splits)
    with pytest.raises(ValueError, match="at least one held-out"):
        detect_leak(_fit_on_train, splits[0])


# --------------------------------------------------------------------------- batch normalization


def _keras_bn(shape, gamma, beta, mean, var, momentum, epsilon):
    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    layer.build(shape)
    layer.set_weights([gamma, beta, mean, var])
    return layer


@settings(max_examples=25, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 2**16), training=st.booleans(),
       momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]), epsilon=st.sampled_from([1e-3, 1e-5, 0.1]))
def test_batch_norm_matches_keras_in_both_modes(shape, seed, training, momentum, epsilon):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(2.0, 3.0, shape).astype(np.float32)
    gamma, beta = rng.normal(1, 0.5, c), rng.normal(0, 1, c)
    mean, var = rng.normal(0, 1, c), rng.uniform(0.2, 3, c)
    layer = _keras_bn(shape, gamma, beta, mean, var, momentum, epsilon)
    expected = np.asarray(layer(x, training=training))
    y, new_mean, new_var = batch_norm(x, gamma, beta, mean, var, training, momentum=momentum, epsilon=epsilon)
    assert y.shape == x.shape and y.dtype == np.float32
    # a batch of one dense sample in training mode: Keras' float32 variance is rounding noise, ours exactly 0
    atol = 2e-5 if not (training and x.size == c) else 1e-4
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(new_mean, layer.moving_mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_var, layer.moving_variance.numpy(), rtol=1e-5, atol=1e-5)
    if not training:
        np.testing.assert_array_equal(new_mean, mean)
        np.testing.assert_array_equal(new_var, var)


def test_moving_statistics_follow_keras_over_many_training_steps():
    rng = np.random.default_rng(6)
    shape = (8, 4, 4, 3)
    layer = keras.layers.BatchNormalization()
    layer.build(shape)
    gamma, beta, mean, var = (w.copy() for w in layer.get_weights())
    batch_means = []
    for step in range(12):
        x = rng.normal(5.0 + step, 2.0, shape).astype(np.float32)
        layer(x, training=True)
        _, mean, var = batch_norm(x, gamma, beta, mean, var, True)
        batch_means.append(x.reshape(-1, 3).mean(axis=0))
    np.testing.assert_allclose(mean, layer.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(var, layer.moving_variance.numpy(), rtol=1e-5)
    # an exponential moving average, far from the last batch's mean
    assert np.all(np.abs(mean - batch_means[-1]) > 10)


def test_batch_of_one_dense_sample_outputs_beta_in_training_mode():
    beta = np.array([0.5, -1.0, 2.0])
    for x in (np.array([[3.0, -7.0, 100.0]]), np.array([[0.1, 0.2, 0.3]])):
        y, _, _ = batch_norm(x, np.ones(3), beta, np.zeros(3), np.ones(3), True)
        np.testing.assert_allclose(y[0], beta)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(x=np.ones((2, 3, 3))), ValueError, r"rank 2 or 4.*\(N, D\) or \(N, H, W, C\)"),
    (dict(gamma=np.ones(4)), ValueError, r"gamma must have shape \(C,\) = \(3,\)"),
    (dict(moving_var=-np.ones(3)), ValueError, "non-negative"),
    (dict(training=None), TypeError, "True or False"),
    (dict(training="yes"), TypeError, "True or False"),
    (dict(momentum=1.5), ValueError, r"momentum must be a number in \[0, 1\]"),
    (dict(epsilon=0.0), ValueError, r"epsilon must be a number in \(0, inf\), got 0.0"),
    (dict(epsilon=float("inf")), ValueError, "epsilon must be a number in"),
    (dict(momentum=float("nan")), ValueError, "momentum must be a number in"),
    (dict(moving_var=np.array([1.0, np.nan, 1.0])), ValueError, "moving_var contains 1 NaN or infinite"),
    (dict(moving_mean=np.array([np.inf, 0.0, 0.0])), ValueError, "moving_mean contains 1 NaN or infinite"),
    (dict(gamma=np.array([1.0, 1.0, np.nan])), ValueError, "gamma contains 1 NaN"),
    (dict(x=np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]])), ValueError, "x contains 1 NaN.*moving averages"),
    (dict(x=np.ones((2, 0)), gamma=[], beta=[], moving_mean=[], moving_var=[]), ValueError, "no channels"),
    (dict(x=np.array([["a", "b", "c"]])), TypeError, "numeric"),
])
def test_batch_norm_rejects_bad_arguments(kwargs, error, message):
    args = dict(x=np.ones((2, 3)), gamma=np.ones(3), beta=np.zeros(3), moving_mean=np.zeros(3),
                moving_var=np.ones(3), training=True)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        batch_norm(**args)


# --------------------------------------------------------------------------- exercise checks (lessons 03, 04)

from cnnkit.checks import CheckFailed  # noqa: E402
from cnnkit.checks import batchnorm_dropout as bn_checks  # noqa: E402
from cnnkit.checks import normalization as norm_checks  # noqa: E402


def _blank(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("answer, message", [
    (lambda x, lo, hi: (x - lo) / (hi - lo), None),
    (lambda x, lo, hi: (x - lo) / (x - hi), "slide's denominator"),
    (lambda x, lo, hi: x / 255.0, "divided by 255"),
    (lambda x, lo, hi: (x - x.min()) / (x.max() - x.min()), "global minimum"),
    (lambda x, lo, hi: (hi - x) / (hi - lo), "1 - expected"),
    (_blank, "NotImplementedError"),
    (None, "write your answer"),
])
def test_check_min_max(answer, message, capsys):
    if message is None:
        norm_checks.check_min_max(answer)
        assert "Passed" in capsys.readouterr().out
    else:
        with pytest.raises(CheckFailed, match=message):
            norm_checks.check_min_max(answer)


def _own_stats(a, b, c):
    return tuple(StandardScaler().fit_transform(x) for x in (a, b, c))


def _global(a, b, c):
    m, s = a.astype(np.float64).mean(), a.astype(np.float64).std()
    return tuple(((x - m) / s).astype(np.float32) for x in (a, b, c))


def _ddof(a, b, c):
    flat = a.reshape(-1, 3).astype(np.float64)
    m, s = flat.mean(0), flat.std(0, ddof=1)
    return tuple(((x - m) / s).astype(np.float32) for x in (a, b, c))


@pytest.mark.parametrize("answer, message", [
    (_fit_on_train, None),
    (_fit_on_all, "all three splits together"),
    (_own_stats, "its own mean and std"),
    (_global, "per channel"),
    (_ddof, "ddof=1"),
    (lambda a, b, c: tuple(x.astype(np.float64) for x in _fit_on_train(a, b, c)), "float32"),
    (lambda a, b, c: _fit_on_train(a, b, c)[:2], "three arrays"),
    (_blank, "NotImplementedError"),
])
def test_check_standardize_splits(answer, message, capsys):
    if message is None:
        norm_checks.check_standardize_splits(answer)
        assert "Passed" in capsys.readouterr().out
    else:
        with pytest.raises(CheckFailed, match=message):
            norm_checks.check_standardize_splits(answer)


def test_check_spot_the_leak():
    pipelines = {"a": _fit_on_train, "b": _fit_on_all, "c": _each_its_own}
    norm_checks.check_spot_the_leak({"b", "c"}, pipelines)
    norm_checks.check_spot_the_leak(["B", "c"], pipelines)
    with pytest.raises(CheckFailed, match="1 leaky pipeline.*missing"):
        norm_checks.check_spot_the_leak({"b"}, pipelines)
    with pytest.raises(CheckFailed, match="1 pipeline.*do not leak"):
        norm_checks.check_spot_the_leak({"a", "b", "c"}, pipelines)
    with pytest.raises(CheckFailed, match="unknown pipeline"):
        norm_checks.check_spot_the_leak({"z"}, pipelines)
    with pytest.raises(CheckFailed, match="write your answer"):
        norm_checks.check_spot_the_leak(None, pipelines)


def _bn_variant(kind):
    def fn(x, gamma, beta, mm, mv, training, momentum=0.99, epsilon=1e-3):
        axes = tuple(range(x.ndim - 1))
        if not training:
            if kind == "batch_stats_at_inference":
                return fn(x, gamma, beta, mm, mv, True, momentum, epsilon)[0], mm, mv
            if kind == "updates_at_inference":
                return batch_norm(x, gamma, beta, mm, mv, True, momentum, epsilon)
            return batch_norm(x, gamma, beta, mm, mv, False, momentum, epsilon)
        mean = x.mean(axis=axes)
        var = x.var(axis=axes, ddof=1 if kind == "ddof" else 0)
        if kind == "batch_axis_only":
            mean, var = x.mean(axis=0), x.var(axis=0)
        denom = np.sqrt(var) + epsilon if kind == "eps_outside" else np.sqrt(var + epsilon)
        y = gamma * (x - mean) / denom + beta
        new_mean = momentum * mm + (1 - momentum) * x.mean(axis=axes)
        new_var = momentum * mv + (1 - momentum) * x.var(axis=axes)
        if kind == "swapped_momentum":
            new_mean = (1 - momentum) * mm + momentum * x.mean(axis=axes)
        if kind == "no_update":
            new_mean, new_var = mm, mv
        return y, new_mean, new_var
    return fn


@pytest.mark.parametrize("kind, message", [
    ("ok", None), ("ddof", "unbiased variance"), ("eps_outside", "inside the square root"),
    ("batch_axis_only", "batch axis only"), ("swapped_momentum", "wrong term"), ("no_update", "not updated"),
])
def test_check_batch_norm_training(kind, message, capsys):
    if message is None:
        bn_checks.check_batch_norm_training(_bn_variant(kind))
        assert "Passed" in capsys.readouterr().out
    else:
        with pytest.raises(CheckFailed, match=message):
            bn_checks.check_batch_norm_training(_bn_variant(kind))


@pytest.mark.parametrize("kind, message", [
    ("ok", None), ("batch_stats_at_inference", "not the batch's"), ("updates_at_inference", "not the batch's"),
])
def test_check_batch_norm_inference(kind, message, capsys):
    if message is None:
        bn_checks.check_batch_norm_inference(_bn_variant(kind))
        assert "Passed" in capsys.readouterr().out
    else:
        with pytest.raises(CheckFailed, match=message):
            bn_checks.check_batch_norm_inference(_bn_variant(kind))
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        bn_checks.check_batch_norm_inference(_blank)


def test_check_batch_norm_inference_catches_updated_statistics():
    def updates(x, gamma, beta, mm, mv, training, momentum=0.99, epsilon=1e-3):
        y, _, _ = batch_norm(x, gamma, beta, mm, mv, training, momentum, epsilon)
        return y, mm + 1, mv
    with pytest.raises(CheckFailed, match="moving statistics changed"):
        bn_checks.check_batch_norm_inference(updates)


@pytest.mark.parametrize("bn_parameters, totals, message", [
    (lambda k: (2 * k, 2 * k), (526442, 288), None),
    (lambda k: (2 * k, 0), (526442, 288), "the slide counts only the 2K"),
    (lambda k: (4 * k, 0), (526442, 288), "split the 4K"),
    (lambda k: (2 * k, 2 * k), (526730, 0), "is the total"),
    (lambda k: (2 * k, 2 * k), (526442, 0), "non_trainable = 0, expected 288"),
    (lambda k: (2 * k, 2 * k), 526730, "pair"),
])
def test_check_bn_parameters(bn_parameters, totals, message, capsys):
    if message is None:
        bn_checks.check_bn_parameters(bn_parameters, totals)
        assert "526,442 trainable" in capsys.readouterr().out
    else:
        with pytest.raises(CheckFailed, match=message):
            bn_checks.check_bn_parameters(bn_parameters, totals)


# --------------------------------------------------------------------------- Keras model helpers


def _bn_model(momentum=0.99):
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.BatchNormalization(momentum=momentum),
                              keras.Sequential([keras.layers.Dense(2), keras.layers.BatchNormalization()])])
    return model


def test_set_bn_momentum_reaches_nested_layers():
    from cnnkit.normalization import batch_norm_layers, set_bn_momentum

    model = _bn_model()
    assert set_bn_momentum(model, 0.9) == 2
    assert [layer.momentum for layer in batch_norm_layers(model)] == [0.9, 0.9]
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
        set_bn_momentum(model, 1.0)


def test_reestimate_bn_statistics_averages_the_batch_statistics():
    from cnnkit.normalization import reestimate_bn_statistics

    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (96, 4, 4, 3), dtype=np.uint8)
    model = _bn_model(momentum=0.99)
    first = model.layers[0]
    assert reestimate_bn_statistics(model, x, batch_size=32) == 3
    batches = x.astype(np.float64).reshape(3, 32, 4, 4, 3) / 255.0
    means = batches.reshape(3, -1, 3).mean(axis=1)
    variances = batches.reshape(3, -1, 3).var(axis=1)
    np.testing.assert_allclose(first.moving_mean.numpy(), means.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), variances.mean(axis=0), rtol=1e-4)
    assert first.momentum == 0.99  # restored
    with pytest.raises(ValueError, match="no BatchNormalization"):
        reestimate_bn_statistics(keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()]), x)
