"""cnnkit.conv against tf.nn.conv2d and Keras' output shapes; argument errors; lesson 01's exercise checks."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnkit import conv, conv_fast
from cnnkit.checks import CheckFailed
from cnnkit.checks import convolution as checks
from cnnkit.conv import (
    conv2d, conv2d_naive, conv_spec, keras_trace_shapes, output_size, padding_amounts, pool_spec,
    same_padding, trace_shapes,
)

import tensorflow as tf  # the oracle: required, never skipped
import keras  # the oracle: required, never skipped

RTOL, ATOL = 1e-4, 1e-4


def tf_conv(x, w, b=None, stride=1, padding="valid"):
    """The oracle: tf.nn.conv2d in float64 with "VALID"/"SAME" or an explicit symmetric padding.

    float64, because TensorFlow 2.21's float32 CPU kernel (oneDNN) returns wrong
    values for some tiny shapes, e.g. x (2, 2, 3, 1), w (1, 2, 1, 1), strides
    (1, 2), "VALID": the second output row comes out as ~2e-5 instead of the
    sum of two products; its float64 kernel and conv2d_naive agree.
    """
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    if isinstance(padding, str):
        tf_padding = padding.upper()
    else:
        p = (padding, padding) if isinstance(padding, int) else tuple(padding)
        tf_padding = [[0, 0], [p[0], p[0]], [p[1], p[1]], [0, 0]]
    y = tf.nn.conv2d(tf.constant(x), tf.constant(w), stride, tf_padding).numpy()
    return y if b is None else y + np.asarray(b, np.float64)


def random_case(rng, n, h, wd, c, f1, f2, k, dtype=np.float32):
    x = rng.standard_normal((n, h, wd, c)).astype(dtype)
    w = rng.standard_normal((f1, f2, c, k)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, w, b


# --------------------------------------------------------------------------- numerics against TensorFlow


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 12), wd=st.integers(1, 12), c=st.integers(1, 4),
       f1=st.integers(1, 5), f2=st.integers(1, 5), k=st.integers(1, 4),
       stride=st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       padding=st.sampled_from(["valid", "same", "VALID", 0, 1, 2]), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_conv2d_matches_tensorflow(n, h, wd, c, f1, f2, k, stride, padding, bias, dtype, seed):
    p = 0 if padding in ("valid", "VALID") else padding
    assume(padding == "same" or (f1 <= h + 2 * p and f2 <= wd + 2 * p))
    x, w, b = random_case(np.random.default_rng(seed), n, h, wd, c, f1, f2, k, dtype)
    b = b if bias else None
    ours = conv2d(x, w, b, stride=stride, padding=padding)
    theirs = tf_conv(x, w, b, stride, padding.lower() if isinstance(padding, str) else padding)
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 7), wd=st.integers(1, 7), c=st.integers(1, 3),
       f=st.integers(1, 4), k=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same", 1]), seed=st.integers(0, 2**16))
def test_naive_loop_equals_vectorised(n, h, wd, c, f, k, stride, padding, seed):
    p = {"valid": 0, "same": 0, 1: 1}[padding]
    assume(padding == "same" or (f <= h + 2 * p and f <= wd + 2 * p))
    x, w, b = random_case(np.random.default_rng(seed), n, h, wd, c, f, f, k, dtype=np.float64)
    np.testing.assert_allclose(conv2d_naive(x, w, b, stride, padding), conv2d(x, w, b, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", [
    ((2, 6, 6, 3), (2, 2, 3, 4), 1, "same"),      # even kernel, "same": the odd zero goes bottom/right
    ((1, 7, 8, 2), (4, 4, 2, 3), 1, "same"),
    ((2, 9, 9, 3), (4, 2, 3, 2), 2, "same"),      # even kernel, stride 2, odd size
    ((3, 7, 7, 2), (3, 3, 2, 5), 2, "valid"),     # stride 2 on odd sizes
    ((3, 7, 9, 2), (3, 3, 2, 5), 2, "same"),
    ((1, 11, 11, 1), (5, 5, 1, 1), 3, "same"),
    ((4, 5, 5, 8), (1, 1, 8, 3), 1, "valid"),     # 1x1 kernels
    ((4, 7, 6, 8), (1, 1, 8, 3), 2, "same"),
    ((1, 32, 32, 3), (3, 3, 3, 16), 1, "same"),   # a single image
    ((1, 1, 1, 3), (1, 1, 3, 2), 1, "valid"),
    ((1, 3, 3, 1), (5, 5, 1, 1), 1, "same"),      # kernel larger than the input: "same" pads enough
    ((2, 8, 12, 3), (3, 5, 3, 4), (2, 3), "same"),  # rectangular everything
])
def test_named_cases_match_tensorflow(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(0)
    x, w, b = random_case(rng, *x_shape, *w_shape[:2], w_shape[3])
    np.testing.assert_allclose(conv2d(x, w, b, stride, padding), tf_conv(x, w, b, stride, padding),
                               rtol=RTOL, atol=ATOL)


def test_large_batch_is_split_into_blocks_without_changing_the_result():
    rng = np.random.default_rng(1)
    x, w, b = random_case(rng, 40, 20, 20, 16, 3, 3, 24)
    np.testing.assert_allclose(conv2d(x, w, b, 1, "same"), tf_conv(x, w, b, 1, "same"), rtol=RTOL, atol=ATOL)
    big, w2, _ = random_case(rng, 1, 300, 200, 3, 5, 5, 4)  # one image cut into row blocks
    np.testing.assert_allclose(conv2d(big, w2, stride=2, padding="same"), tf_conv(big, w2, None, 2, "same"),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("lowering", ["patches", "strips"])
@pytest.mark.parametrize("block_bytes", [1, 700, 5000, 1 << 23])
@pytest.mark.parametrize("n, h, stride, padding", [(1, 13, 1, "same"), (1, 14, 2, "valid"), (5, 9, 1, "same"),
                                                   (3, 11, (2, 1), 1)])
def test_both_lowerings_in_any_block_size_match_tensorflow(monkeypatch, lowering, block_bytes, n, h, stride, padding):
    """Each lowering, forced, with blocks from one output row each up to the default size."""
    monkeypatch.setattr(conv_fast, "_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(conv_fast, "_choose_lowering", lambda *args: lowering)
    x, w, b = random_case(np.random.default_rng(3), n, h, h + 2, 3, 3, 2, 4)
    np.testing.assert_allclose(conv2d(x, w, b, stride, padding), tf_conv(x, w, b, stride, padding),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("lowering", ["patches", "strips"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocks_on_several_threads_give_the_same_result(monkeypatch, lowering, threads):
    """The blocks run concurrently (one BLAS thread each) when BLAS may use several threads."""
    monkeypatch.setattr(conv_fast, "_BLOCK_BYTES", 2000)  # many small blocks
    monkeypatch.setattr(conv_fast, "_choose_lowering", lambda *args: lowering)
    monkeypatch.setattr(conv_fast, "_blas_threads", lambda: threads)
    x, w, b = random_case(np.random.default_rng(4), 6, 17, 15, 4, 3, 3, 5)
    np.testing.assert_allclose(conv2d(x, w, b, 1, "same"), tf_conv(x, w, b, 1, "same"), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("lowering", ["patches", "strips"])
def test_wide_layers_use_larger_blocks_on_one_thread_and_match_tensorflow(monkeypatch, lowering):
    assert conv_fast._block_plan(127) == (conv_fast._BLOCK_BYTES, True)
    assert conv_fast._block_plan(128) == (conv_fast._WIDE_BLOCK_BYTES, False)
    monkeypatch.setattr(conv_fast, "_WIDE_BLOCK_BYTES", 30_000)  # several blocks even for a small case
    monkeypatch.setattr(conv_fast, "_choose_lowering", lambda *args: lowering)
    x, w, b = random_case(np.random.default_rng(5), 3, 9, 8, 4, 3, 3, 128)
    np.testing.assert_allclose(conv2d(x, w, b, 1, "same"), tf_conv(x, w, b, 1, "same"), rtol=RTOL, atol=ATOL)


def test_an_error_in_a_block_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(conv_fast, "_blas_threads", lambda: 2)
    calls = []

    def failing():
        calls.append(1)
        raise FloatingPointError("block 2 failed")

    with pytest.raises(FloatingPointError, match="block 2 failed"):
        conv_fast._run_blocks([lambda: calls.append(0), failing])
    assert len(calls) == 2


def test_blas_thread_count_is_read_from_numpys_blas():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        assert conv_fast._blas_threads() == 1


def test_lowering_choice():
    assert conv_fast._choose_lowering(128, 32, 28, 5, 75, 16) == "strips"      # 5x5 kernel on 3 channels
    assert conv_fast._choose_lowering(128, 34, 32, 3, 27, 32) == "patches"     # 3x3, 3 channels, 32 filters
    assert conv_fast._choose_lowering(1, 516, 512, 5, 75, 16) == "strips"      # one large photograph


def test_tutorial_example_gives_4_at_the_top_left():
    image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    y = conv2d(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0]
    np.testing.assert_array_equal(y, [[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    np.testing.assert_array_equal(conv2d_naive(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0], y)


def test_dtypes_float32_kept_and_others_float64():
    x32 = np.ones((1, 4, 4, 1), np.float32)
    assert conv2d(x32, np.ones((2, 2, 1, 1), np.float32)).dtype == np.float32
    assert conv2d(x32, np.ones((2, 2, 1, 1))).dtype == np.float64
    y = conv2d(np.ones((1, 4, 4, 1), dtype=np.uint8), np.ones((2, 2, 1, 1), dtype=int))
    assert y.dtype == np.float64 and np.all(y == 4)


def test_empty_batch_gives_empty_output():
    y = conv2d(np.zeros((0, 5, 5, 2)), np.zeros((3, 3, 2, 4)), padding="same")
    assert y.shape == (0, 5, 5, 4)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(2)
    x, w, b = random_case(rng, 2, 6, 6, 3, 3, 3, 2)
    copies = x.copy(), w.copy(), b.copy()
    conv2d(x, w, b, 2, "same")
    for before, after in zip(copies, (x, w, b)):
        np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------- sizes and padding


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 40), f=st.integers(1, 7), stride=st.integers(1, 4), padding=st.sampled_from(["valid", "same"]))
def test_output_size_matches_keras_conv2d(n, f, stride, padding):
    assume(padding == "same" or f <= n)
    layer = keras.layers.Conv2D(2, f, strides=stride, padding=padding)
    expected = layer.compute_output_shape((None, n, n + 1, 3))
    assert (output_size(n, f, stride, padding), output_size(n + 1, f, stride, padding)) == tuple(expected[1:3])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), f=st.integers(1, 7), stride=st.integers(1, 4))
def test_same_padding_is_tensorflows_rule(n, f, stride):
    before, after = same_padding(n, f, stride)
    assert after - before in (0, 1)  # the odd zero goes after (bottom / right)
    assert output_size(n, f, stride, (before, after)) == -(-n // stride) == output_size(n, f, stride, "same")
    # padding x explicitly and convolving "valid" is what TensorFlow's "SAME" does
    rng = np.random.default_rng(n * 100 + f * 10 + stride)
    x = rng.standard_normal((1, n, 3, 1))
    w = rng.standard_normal((f, 1, 1, 1))
    padded = np.pad(x, [(0, 0), (before, after), (0, 0), (0, 0)])
    np.testing.assert_allclose(tf.nn.conv2d(padded, w, [stride, 1], "VALID").numpy(),
                               tf.nn.conv2d(x, w, [stride, 1], "SAME").numpy(), rtol=RTOL, atol=ATOL)


def test_output_size_formula_and_floor():
    assert output_size(32, 3) == 30
    assert output_size(32, 3, 1, 1) == 32
    assert output_size(32, 3, 2, 0) == 15          # (32 - 3) / 2 + 1 = 15.5 on the slide: floor gives 15
    assert output_size(227, 11, 4, 0) == 55
    assert output_size(7, 3, 2, "same") == 4
    assert output_size(7, 3, 2, (0, 1)) == 3
    assert padding_amounts(6, 4, 1, "same") == (1, 2)
    assert padding_amounts(6, 4, 1, 2) == (2, 2)
    assert padding_amounts(6, 4, 1, "valid") == (0, 0)


# --------------------------------------------------------------------------- shapes through a stack


LAYERS = st.lists(
    st.one_of(
        st.builds(conv_spec, filters=st.integers(1, 8), kernel=st.integers(1, 5), stride=st.integers(1, 3),
                  padding=st.sampled_from(["valid", "same"])),
        st.builds(pool_spec, size=st.integers(1, 3), stride=st.one_of(st.none(), st.integers(1, 3)),
                  padding=st.sampled_from(["valid", "same"])),
    ),
    min_size=1, max_size=4,
)


@settings(max_examples=12, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), layers=LAYERS)
def test_trace_shapes_matches_keras(h, w, layers):
    try:
        ours = trace_shapes((h, w, 3), layers)
    except ValueError:
        assume(False)
    assert ours == keras_trace_shapes((h, w, 3), layers)


def test_trace_shapes_lenet():
    layers = [conv_spec(6, 5), pool_spec(2), conv_spec(16, 5), pool_spec(2)]
    assert trace_shapes((32, 32, 1), layers) == [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16)]
    assert trace_shapes((32, 32, 1), [{"type": "pool", "size": 3, "stride": 2}]) == [(15, 15, 1)]
    assert trace_shapes((9, 9, 4), [{"type": "pool", "size": 3}]) == [(3, 3, 4)]  # stride defaults to size


@pytest.mark.parametrize("layers, message", [
    ([{"type": "dense", "units": 3}], "layer 0 has type 'dense'"),
    ([{"type": "conv", "kernel": 3}], "needs 'filters'"),
    ([{"type": "conv", "filters": 4, "kernal": 3}], "got keys"),
    ([{"type": "pool", "size": 2, "pading": "same"}], "got keys"),
    ([conv_spec(4, 3), conv_spec(4, 31)], "layer 1 (conv) does not fit its input of shape (30, 30, 4)"),
    ([conv_spec(4, 3, padding="full")], "unknown layer 0 padding 'full'"),
    ([conv_spec(0, 3)], "layer 0 filters must be a positive integer"),
    ([("conv", 4, 3)], "must be a dict"),
])
def test_trace_shapes_errors_name_the_layer(layers, message):
    with pytest.raises((ValueError, TypeError)) as info:
        trace_shapes((32, 32, 3), layers)
    assert message in str(info.value)


def test_trace_shapes_rejects_bad_input_shape():
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        trace_shapes((32, 32), [pool_spec(2)])


# --------------------------------------------------------------------------- argument errors


GOOD_X = np.zeros((1, 5, 5, 3), np.float32)
GOOD_W = np.zeros((3, 3, 3, 2), np.float32)


@pytest.mark.parametrize("fn", [conv2d, conv2d_naive])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"x": np.zeros((5, 5, 3))}, ValueError, r"x must have rank 4 \(NHWC.*got shape \(5, 5, 3\)"),
    ({"w": np.zeros((3, 3, 3))}, ValueError, r"w must have rank 4 \(HWIO.*got shape \(3, 3, 3\)"),
    ({"w": np.zeros((3, 3, 4, 2))}, ValueError, r"channel mismatch: x has 3 channels .* w expects 4 input channels"),
    ({"w": np.zeros((7, 3, 3, 2))}, ValueError, r"kernel 7x3 is larger than the padded input 5x5"),
    ({"w": np.zeros((9, 9, 3, 2)), "padding": 1}, ValueError, r"kernel 9x9 is larger than the padded input 7x7"),
    ({"stride": 0}, ValueError, r"stride must be a positive integer \(>= 1\), got 0"),
    ({"stride": -2}, ValueError, r"stride must be a positive integer \(>= 1\), got -2"),
    ({"stride": (1, 0)}, ValueError, r"stride\[1\] must be a positive integer \(>= 1\), got 0"),
    ({"stride": 1.5}, TypeError, r"stride must be a positive integer, got 1.5"),
    ({"stride": (1, 2, 3)}, ValueError, r"stride must be an int or a pair of ints"),
    ({"padding": "full"}, ValueError, r"unknown padding 'full': expected 'valid', 'same' or a non-negative int"),
    ({"padding": -1}, ValueError, r"padding must be a non-negative integer \(>= 0\), got -1"),
    ({"padding": 1.0}, TypeError, r"padding must be 'valid', 'same' or a non-negative int, got 1.0"),
    ({"x": np.full((1, 5, 5, 3), "a")}, TypeError, r"x must be a numeric array, got dtype <U1"),
    ({"w": [[["a"]]]}, TypeError, r"w must be a numeric array"),
    ({"x": np.zeros((1, 5, 5, 3), complex)}, TypeError, r"x must be real-valued"),
    ({"b": np.zeros(3)}, ValueError, r"b must have shape \(2,\) \(one bias per filter\), got \(3,\)"),
    ({"b": np.zeros((2, 1))}, ValueError, r"b must have rank 1"),
    ({"w": np.zeros((0, 3, 3, 2))}, ValueError, r"w must have no empty axis"),
    ({"x": np.zeros((1, 0, 5, 3))}, ValueError, r"x must have non-empty height, width and channels"),
])
def test_bad_arguments_raise_clear_errors(fn, kwargs, error, message):
    args = {"x": GOOD_X, "w": GOOD_W, "b": None, "stride": 1, "padding": "valid", **kwargs}
    with pytest.raises(error, match=message):
        fn(**args)


@pytest.mark.parametrize("args, error, message", [
    ((5, 7), ValueError, r"kernel size 7 is larger than the padded input 5 \(input 5, padding 0\+0\)"),
    ((5, 8, 1, 1), ValueError, r"kernel size 8 is larger than the padded input 7"),
    ((0, 3), ValueError, r"n must be a positive integer \(>= 1\), got 0"),
    ((5, 0), ValueError, r"f must be a positive integer \(>= 1\), got 0"),
    ((5, 3, 0), ValueError, r"stride must be a positive integer \(>= 1\), got 0"),
    ((5, 3, 1, "full"), ValueError, r"unknown padding 'full'"),
    ((5, 3, 1, -1), ValueError, r"padding must be a non-negative integer"),
    ((5.0, 3), TypeError, r"n must be a positive integer, got 5.0"),
])
def test_output_size_errors(args, error, message):
    with pytest.raises(error, match=message):
        output_size(*args)


# --------------------------------------------------------------------------- pictures and the explorer


def test_geometry_figure_and_explorer_build():
    import matplotlib.pyplot as plt

    fig = conv.draw_conv_geometry(7, 3, 2, "same", position=(1, 2))
    assert "output 4x4" in fig.axes[1].get_title()
    plt.close(fig)
    fig = conv.draw_conv_geometry(8, 3, 2, 0)  # floor: the last column is never reached
    assert "output 3x3" in fig.axes[1].get_title()
    plt.close(fig)
    box = conv.conv_explorer(9, 3, 2, 1)
    controls, label, picture = box.children
    assert label.value == "<b>output size = 5 x 5</b>"  # floor((9 - 3 + 2)/2) + 1
    assert bytes(picture.value).startswith(b"\x89PNG")
    first = bytes(picture.value)
    controls.children[0].children[0].value = 11  # moving the input-size slider redraws both
    assert label.value == "<b>output size = 6 x 6</b>" and bytes(picture.value) != first
    plt.close("all")


# --------------------------------------------------------------------------- exercise checks


def test_check_conv_by_hand_accepts_the_answer_and_explains_mistakes():
    image, kernel = checks.EXERCISE_IMAGE, checks.EXERCISE_KERNEL
    right = conv2d_naive(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0]
    checks.check_conv_by_hand(right)
    checks.check_conv_by_hand(right.tolist())
    flipped = conv2d(image[None, :, :, None], kernel[::-1, ::-1, None, None])[0, :, :, 0]
    with pytest.raises(CheckFailed, match="flipped-kernel"):
        checks.check_conv_by_hand(flipped)
    with pytest.raises(CheckFailed, match=r"shape \(5, 5\)"):
        checks.check_conv_by_hand(np.zeros((5, 5)))
    with pytest.raises(CheckFailed, match="transposed"):
        checks.check_conv_by_hand(right.T)
    wrong = right.copy()
    wrong[1, 2] += 1
    with pytest.raises(CheckFailed, match=r"1 of 9 values differ; first at index \(1, 2\)"):
        checks.check_conv_by_hand(wrong)
    with pytest.raises(CheckFailed, match="write your answer"):
        checks.check_conv_by_hand(None)
    with pytest.raises(CheckFailed, match="array of numbers"):
        checks.check_conv_by_hand([[1, 2], [3]])


@pytest.mark.parametrize("student, message", [
    (lambda n, f, s, p: (n + 2 * p - f) // s, "one too small"),
    (lambda n, f, s, p: -(-(n + 2 * p - f) // s) + 1, "round down"),
    (lambda n, f, s, p: round((n + 2 * p - f) / s) + 1, "round down"),
    (lambda n, f, s, p: (n + 2 * p - f) / s + 1, "not a whole number"),
    (lambda n, f, s, p: (n + p - f) // s + 1, "BOTH sides"),
    (lambda n, f, s, p: (n + 2 * p - f) + 1, "stride > 1"),
    (lambda n, f, s, p: None, "expected a whole number"),
    (lambda n, f, s, p: 1 / 0, "raised ZeroDivisionError"),
])
def test_check_output_size_detects_typical_mistakes(student, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_output_size(student)


def test_check_output_size_passes_and_reports_unimplemented(capsys):
    checks.check_output_size(lambda n, f, s, p: (n + 2 * p - f) // s + 1)
    assert "Passed" in capsys.readouterr().out

    def blank(n, f, s, p):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="NotImplementedError"):
        checks.check_output_size(blank)
    with pytest.raises(CheckFailed, match="should be a function"):
        checks.check_output_size(3)


@pytest.mark.parametrize("student, message", [
    (lambda n, f, s: same_padding(n, f, s)[::-1], "swapped"),
    (lambda n, f, s: ((f - 1) // 2, (f - 1) // 2), "total should be"),
    (lambda n, f, s: (((-(-n // s) - 1) * s + f - n) // 2, ((-(-n // s) - 1) * s + f - n) // 2), "total should be"),
    (lambda n, f, s: (0, sum(same_padding(n, f, s))), "split is not"),
    (lambda n, f, s: 3, "expected a pair"),
])
def test_check_same_padding_detects_mistakes(student, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_same_padding(student)
    checks.check_same_padding(same_padding)


def test_check_relu():
    checks.check_relu(lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float))
    checks.check_relu(lambda z: np.maximum(z, 0), lambda z: z > 0)  # booleans are fine
    with pytest.raises(CheckFailed, match="unchanged"):
        checks.check_relu(lambda z: z, lambda z: (z > 0) * 1.0)
    with pytest.raises(CheckFailed, match=r"\|z\|"):
        checks.check_relu(np.abs, lambda z: (z > 0) * 1.0)
    with pytest.raises(CheckFailed, match="the slope"):
        checks.check_relu(lambda z: np.maximum(z, 0), lambda z: np.maximum(z, 0))
    with pytest.raises(CheckFailed, match="relu_grad"):
        checks.check_relu(lambda z: np.maximum(z, 0), lambda z: (z >= 0) * 0.5)


def test_check_relu_tells_the_mistakes_apart_on_every_hidden_array():
    """Hidden arrays can be as small as five values: each must still hold a clear negative and positive."""
    from cnnkit.checks import hidden_inputs

    right = (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float))
    for seed in range(400):
        with hidden_inputs(seed):
            checks.check_relu(*right)
            with pytest.raises(CheckFailed, match="unchanged"):
                checks.check_relu(lambda z: z, right[1])
            with pytest.raises(CheckFailed, match=r"\|z\|"):
                checks.check_relu(np.abs, right[1])


def test_check_conv_layer():
    checks.check_conv_layer(lambda x, w, b, s: conv2d_naive(x, w, b, s))
    with pytest.raises(CheckFailed, match="except for the bias"):
        checks.check_conv_layer(lambda x, w, b, s: conv2d(x, w, None, s))
    with pytest.raises(CheckFailed, match="flipped the kernel"):
        checks.check_conv_layer(lambda x, w, b, s: conv2d(x, w[::-1, ::-1], b, s))
    with pytest.raises(CheckFailed, match="stride-1 size"):
        checks.check_conv_layer(lambda x, w, b, s: conv2d(x, w, b, 1))
    with pytest.raises(CheckFailed, match="one map per filter"):
        checks.check_conv_layer(lambda x, w, b, s: conv2d(x, w, b, s)[..., :1])
    with pytest.raises(CheckFailed, match="values differ"):
        checks.check_conv_layer(lambda x, w, b, s: conv2d(x, w, b, s) * 1.01)


# --------------------------------------------------------------------------- sizes beyond the memory limit


@pytest.mark.parametrize("fn", [conv2d, conv2d_naive])
@pytest.mark.parametrize("x_shape, w_shape, kwargs, what", [
    ((2, 8, 8, 3), (3, 3, 3, 4), {"padding": 10**4}, r"the padded input \(input 8x8, padding 10000\)"),
    ((1, 100, 100, 1), (2, 2, 1, 60000), {}, r"the output"),
    ((1, 200, 20000, 1), (200, 200, 1, 1), {}, r"one output row of 200x200x1 patches"),
])
def test_arrays_beyond_the_limit_are_refused_before_anything_is_allocated(fn, x_shape, w_shape, kwargs, what):
    import tracemalloc

    from cnnkit._validate import MAX_ARRAY_BYTES, ArrayTooLargeError

    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(ArrayTooLargeError, match=what) as info:
            fn(x, w, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert f"limit of {MAX_ARRAY_BYTES:,} bytes = 2 GiB" in message and "GiB, more than" in message
    assert peak < 1 << 20  # refused before allocating: nothing near the size asked for


def test_the_limit_is_the_one_named_constant(monkeypatch):
    import cnnkit._validate as validate

    x, w = np.ones((1, 8, 8, 3)), np.ones((3, 3, 3, 2))
    needed = 1 * 10 * 10 * 3 * 8  # bytes of the padded float64 input
    monkeypatch.setattr(validate, "MAX_ARRAY_BYTES", needed - 1)
    with pytest.raises(validate.ArrayTooLargeError, match=f"need {needed:,} bytes"):
        conv2d(x, w, padding=1)
    monkeypatch.setattr(validate, "MAX_ARRAY_BYTES", needed)
    np.testing.assert_allclose(conv2d(x, w, padding=1), tf_conv(x, w, padding=1), rtol=RTOL, atol=ATOL)


def test_geometry_picture_refuses_inputs_too_large_to_draw():
    with pytest.raises(ValueError, match="the padded input is 70 cells wide .* at most 64"):
        conv.draw_conv_geometry(60, 3, 1, 5)


@pytest.mark.parametrize("module", ["cnnkit", "cnnkit.conv", "cnnkit.conv_shapes", "cnnkit.conv_explorer",
                                    "cnnkit.activations", "cnnkit.optim", "cnnkit.landscapes", "cnnkit.params"])
def test_numpy_lessons_import_without_tensorflow_or_matplotlib(module):
    """Lessons 01-02 and 05-08 start fast: these modules import neither TensorFlow, Keras nor matplotlib."""
    import subprocess
    import sys

    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import {module} also imported {out.stdout.strip()}"
