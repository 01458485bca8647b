"""cnnkit.pooling against tf.nn.max_pool2d / tf.nn.avg_pool2d and Keras' pooling layers; lesson 02's checks."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnkit.checks import CheckFailed
from cnnkit.checks import pooling as checks
from cnnkit.conv import trace_shapes
from cnnkit.pooling import avg_pool2d, max_pool2d, pool_output_shape, pool_output_size

import tensorflow as tf  # the oracle: required, never skipped
import keras  # the oracle: required, never skipped

SIZES = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 11), w=st.integers(1, 11), c=st.integers(1, 4), size=SIZES,
       stride=st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 2**16))
def test_pooling_matches_tensorflow(n, h, w, c, size, stride, padding, seed):
    f1, f2 = (size, size) if isinstance(size, int) else size
    assume(padding == "same" or (f1 <= h and f2 <= w))
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(np.float32)
    tf_stride = size if stride is None else stride
    for ours, theirs in [(max_pool2d, tf.nn.max_pool2d), (avg_pool2d, tf.nn.avg_pool2d)]:
        got = ours(x, size, stride, padding)
        expected = theirs(x, size, tf_stride, padding.upper()).numpy()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=ours.__name__)


@pytest.mark.parametrize("shape, size, stride, padding", [
    ((1, 7, 7, 3), 2, None, "same"),    # odd size, "same": the last window holds one real row / column
    ((2, 9, 9, 1), 2, 2, "valid"),      # stride 2 on an odd size drops the last row / column
    ((1, 5, 5, 2), 4, 3, "same"),
    ((1, 6, 6, 2), 1, 2, "valid"),      # 1x1 windows with stride 2: subsampling
    ((1, 3, 3, 1), 5, 1, "same"),       # window larger than the image: "same" pads enough
    ((4, 32, 32, 16), 2, None, "valid"),
])
def test_named_cases_match_tensorflow(shape, size, stride, padding):
    x = np.random.default_rng(1).standard_normal(shape)
    tf_stride = size if stride is None else stride
    np.testing.assert_allclose(max_pool2d(x, size, stride, padding),
                               tf.nn.max_pool2d(x, size, tf_stride, padding.upper()).numpy(), rtol=1e-6)
    np.testing.assert_allclose(avg_pool2d(x, size, stride, padding),
                               tf.nn.avg_pool2d(x, size, tf_stride, padding.upper()).numpy(), rtol=1e-6)


def test_same_padding_ignores_padded_cells():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # all negative: a zero-padded max would return 0
    y = max_pool2d(x, 2, padding="same")
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])
    a = avg_pool2d(x, 2, padding="same")
    np.testing.assert_allclose(a[0, :, :, 0], [[-3.0, -4.5], [-7.5, -9.0]])  # corner: one real cell


def test_stride_defaults_to_size():
    x = np.random.default_rng(2).standard_normal((1, 12, 12, 1))
    np.testing.assert_array_equal(max_pool2d(x, 3), max_pool2d(x, 3, 3))
    assert max_pool2d(x, 3).shape == (1, 4, 4, 1)
    assert pool_output_size(12, 3) == 4


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), size=st.integers(1, 5), stride=st.one_of(st.none(), st.integers(1, 4)),
       padding=st.sampled_from(["valid", "same"]))
def test_output_size_matches_keras(n, size, stride, padding):
    assume(padding == "same" or size <= n)
    for layer in (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D):
        expected = layer(size, strides=stride, padding=padding).compute_output_shape((None, n, n + 2, 5))
        assert pool_output_shape((n, n + 2, 5), size, stride, padding) == tuple(expected[1:])
        assert pool_output_size(n, size, stride, padding) == expected[1]


def test_pooling_layers_have_no_parameters():
    inputs = keras.Input((8, 8, 4))
    for layer in (keras.layers.MaxPooling2D(2), keras.layers.AveragePooling2D(2)):
        layer(inputs)
        assert layer.count_params() == 0


GOOD_X = np.zeros((1, 5, 5, 2))


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"x": np.zeros((5, 5, 2))}, ValueError, r"x must have rank 4 \(NHWC.*got shape \(5, 5, 2\)"),
    ({"size": 6}, ValueError, r"pooling window 6x6 is larger than the padded input 5x5"),
    ({"size": 0}, ValueError, r"size must be a positive integer \(>= 1\), got 0"),
    ({"size": (2, -1)}, ValueError, r"size\[1\] must be a positive integer \(>= 1\), got -1"),
    ({"stride": 0}, ValueError, r"stride must be a positive integer \(>= 1\), got 0"),
    ({"stride": 2.0}, TypeError, r"stride must be a positive integer, got 2.0"),
    ({"padding": "full"}, ValueError, r"unknown padding 'full' for pooling: expected 'valid' or 'same'"),
    ({"padding": 1}, ValueError, r"unknown padding 1 for pooling"),
    ({"x": np.full((1, 4, 4, 1), "a")}, TypeError, r"x must be a numeric array, got dtype <U1"),
    ({"x": [[[[1]], [[1, 2]]]]}, TypeError, r"x must be a numeric array"),
    ({"x": np.zeros((1, 0, 4, 1))}, ValueError, r"x must have non-empty height and width"),
])
def test_bad_arguments_raise_clear_errors(fn, kwargs, error, message):
    args = {"x": GOOD_X, "size": 2, "stride": None, "padding": "valid", **kwargs}
    with pytest.raises(error, match=message):
        fn(**args)


def test_pool_output_shape_errors():
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        pool_output_shape((4, 4))
    with pytest.raises(ValueError, match="kernel size 5 is larger than the padded input 4"):
        pool_output_size(4, 5)


# --------------------------------------------------------------------------- exercise checks


def my_max_pool(x, size, stride):
    n, h, w, c = x.shape
    ho, wo = (h - size) // stride + 1, (w - size) // stride + 1
    y = np.empty((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            y[:, i, j, :] = x[:, i * stride:i * stride + size, j * stride:j * stride + size, :].max(axis=(1, 2))
    return y


def test_check_max_pool_by_hand():
    right = max_pool2d(checks.FEATURE_MAP[None, :, :, None], 2)[0, :, :, 0]
    checks.check_max_pool_by_hand(right)
    with pytest.raises(CheckFailed, match="averages"):
        checks.check_max_pool_by_hand(avg_pool2d(checks.FEATURE_MAP[None, :, :, None], 2)[0, :, :, 0])
    with pytest.raises(CheckFailed, match=r"shape \(3, 3\)"):
        checks.check_max_pool_by_hand(max_pool2d(checks.FEATURE_MAP[None, :, :, None], 2, 1)[0, :, :, 0])
    with pytest.raises(CheckFailed, match="transposed"):
        checks.check_max_pool_by_hand(right.T)
    with pytest.raises(CheckFailed, match="write your answer"):
        checks.check_max_pool_by_hand(None)


def test_check_max_pool():
    checks.check_max_pool(my_max_pool)
    with pytest.raises(CheckFailed, match="averages"):
        checks.check_max_pool(lambda x, f, s: avg_pool2d(x, f, s))
    with pytest.raises(CheckFailed, match="across channels"):
        checks.check_max_pool(lambda x, f, s: np.broadcast_to(max_pool2d(x, f, s).max(axis=3, keepdims=True),
                                                              max_pool2d(x, f, s).shape))
    with pytest.raises(CheckFailed, match="channel axis was pooled away"):
        checks.check_max_pool(lambda x, f, s: max_pool2d(x, f, s).max(axis=3))
    with pytest.raises(CheckFailed, match=r"floor\(\(n - 3\) / 2\) \+ 1"):
        checks.check_max_pool(lambda x, f, s: max_pool2d(x, f, s, padding="same"))

    def blank(x, f, s):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="NotImplementedError"):
        checks.check_max_pool(blank)


@pytest.mark.parametrize("student, message", [
    (lambda n, f, s: (n + f) // s + 1, "minus sign"),
    (lambda n, f, s: -(-(n - f) // s) + 1, "rounded up"),
    (lambda n, f, s: (n - f) // s, "one too few"),
    (lambda n, f, s: n // s, "only right when"),
    (lambda n, f, s: (n - f) / s + 1, "round down"),
    (lambda n, f, s: n - f + 1, "stride is ignored"),
    (lambda n, f, s: (n - f) // s + 1 + (n == 9), "1 of 8 cases wrong"),
])
def test_check_pool_output_size_detects_mistakes(student, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_pool_output_size(student)
    checks.check_pool_output_size(lambda n, f, s: (n - f) // s + 1)


def test_check_stack_shapes():
    right = trace_shapes(checks.EXERCISE1_INPUT, checks.EXERCISE1_LAYERS)
    checks.check_stack_shapes(right)
    checks.check_stack_shapes([list(s) for s in right])
    wrong = list(right)
    wrong[2] = (right[2][0] + 1, right[2][1] + 1, right[2][2])
    with pytest.raises(CheckFailed, match=r"layer 2 \(conv 32 filters 3x3, stride 2.*off by one"):
        checks.check_stack_shapes(wrong)
    wrong = list(right)
    wrong[1] = (right[1][0], right[1][1], 32)
    with pytest.raises(CheckFailed, match="depth is not"):
        checks.check_stack_shapes(wrong)
    with pytest.raises(CheckFailed, match="7 entries, expected 6"):
        checks.check_stack_shapes([checks.EXERCISE1_INPUT] + right)
    with pytest.raises(CheckFailed, match="list of"):
        checks.check_stack_shapes(5)


def test_check_flatten_size():
    h, w, c = trace_shapes(checks.EXERCISE1_INPUT, checks.EXERCISE1_LAYERS)[-1]
    checks.check_flatten_size(h * w * c)
    with pytest.raises(CheckFailed, match="channels contributes"):
        checks.check_flatten_size(h * w)
    with pytest.raises(CheckFailed, match="expected H"):
        checks.check_flatten_size(h * w * c + 1)
    with pytest.raises(CheckFailed, match="should be an int"):
        checks.check_flatten_size(float(h * w * c))


def test_exercise1_stack_agrees_with_keras():
    from cnnkit.conv import keras_trace_shapes

    assert trace_shapes(checks.EXERCISE1_INPUT, checks.EXERCISE1_LAYERS) == \
        keras_trace_shapes(checks.EXERCISE1_INPUT, checks.EXERCISE1_LAYERS)


@pytest.mark.parametrize("pool, tf_pool", [(max_pool2d, tf.nn.max_pool2d), (avg_pool2d, tf.nn.avg_pool2d)])
@pytest.mark.parametrize("size, stride", [(3000, 1), ((3000, 5), (2, 1)), (9, 4)])
def test_windows_far_larger_than_the_image_cost_no_more_than_the_image(pool, tf_pool, size, stride):
    """With "same" padding, offsets that read only padding are skipped: no 3000x3000 loop, no huge padded copy."""
    import time
    import tracemalloc

    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        ours = pool(x, size=size, stride=stride, padding="same")
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    theirs = tf_pool(x, ksize=size, strides=stride, padding="SAME").numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert seconds < 0.5 and peak < 1 << 20
