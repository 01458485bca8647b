"""cnnkit.params against Keras: parameter counts layer by layer, multiply-adds against TF's profiler."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit import params as P
from cnnkit.env import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

L = keras.layers


# --------------------------------------------------------------------------- helpers (the oracle side)


def keras_counts(model, prefix=""):
    """name -> (trainable, non_trainable) from the weights Keras holds, nested models flattened."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.update(keras_counts(layer, prefix + layer.name + "."))
        else:
            tr = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            nt = sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
            out[prefix + layer.name] = (tr, nt)
    return out


def assert_matches_keras(model):
    """explain(model) (without its own weight check) equals Keras, layer by layer and in total."""
    e = P.explain(model, verify=False)
    expected = keras_counts(model)
    got = {r.name: (r.trainable, r.non_trainable) for r in e.rows}
    assert list(got) == list(expected)
    mismatches = {n: (got[n], expected[n]) for n in expected if got[n] != expected[n]}
    assert not mismatches, f"explain vs Keras (trainable, non-trainable): {mismatches}"
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert (e.trainable, e.non_trainable) == (trainable, non_trainable)
    assert P.count(model) == (trainable, non_trainable)
    assert e.total == model.count_params()
    return e


def profiler_madds(model):
    """Multiply-adds of a bias-free conv/dense model for one input, from TensorFlow's graph profiler."""
    flops = P.profiler_flops(model)
    assert flops % 2 == 0
    return flops // 2


def seq(input_shape, *layers, name=None):
    return keras.Sequential([keras.Input(input_shape), *layers], name=name)


# --------------------------------------------------------------------------- pure formulas


def test_tutorial_examples():
    assert P.conv_params(3, 1, 16) == 160
    assert P.dense_params(128, 64) == 8256
    assert P.bn_params(16) == (32, 32)
    assert P.bn_params(16).trainable == 32 and P.bn_params(16).total == 64
    # section 2.7: 5x5x128 on 32x32x256, with and without a 1x1x64 bottleneck (no biases, as the slide).
    # The slide says 820,000, and 16,384 + 102,400 = 118,784; the 5x5 step on 64 channels is 204,800.
    assert P.conv_params(5, 256, 128, bias=False) == 819_200
    assert P.conv_params(1, 256, 64, bias=False) == 16_384
    assert P.conv_params(5, 64, 128, bias=False) == 204_800


def test_formulas_by_hand():
    assert P.conv_params(3, 3, 16, bias=False) == 432
    assert P.conv_params((3, 5), 4, 8) == (15 * 4 + 1) * 8
    assert P.conv_params((3,), 4, 8) == (12 + 1) * 8
    assert P.conv_params(3, 8, 4, groups=2) == (9 * 4 + 1) * 4
    assert P.conv_madds(3, 8, 4, (5, 6), groups=2) == 9 * 4 * 4 * 30
    assert P.dense_params(10, 3, bias=False) == 30
    assert P.dense_madds(10, 3) == 30 and P.dense_madds(10, 3, positions=4) == 120
    assert P.bn_params(8, center=False) == (8, 16)
    assert P.bn_params(8, center=False, scale=False) == (0, 16)
    assert P.depthwise_params(3, 8, 2) == (9 + 1) * 16
    assert P.depthwise_params(3, 8, bias=False) == 72
    assert P.separable_params(3, 8, 16, 2) == 9 * 16 + (16 + 1) * 16
    assert P.separable_madds(3, 8, 16, 4, 2) == (9 * 16 + 16 * 16) * 16
    assert P.depthwise_madds(3, 8, 4) == 9 * 8 * 16


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: P.conv_params(0, 3, 16), ValueError, "f must be a positive integer (>= 1), got 0"),
        (lambda: P.conv_params(3, -1, 16), ValueError, "c_in"),
        (lambda: P.conv_params(3.0, 3, 16), TypeError, "got 3.0"),
        (lambda: P.conv_params(3, 3, True), TypeError, "k must be a positive integer, got True"),
        (lambda: P.conv_params(3, 6, 16, groups=4), ValueError, "groups=4 must divide"),
        (lambda: P.conv_params(3, 3, 16, bias=1), TypeError, "bias must be True or False"),
        (lambda: P.conv_params((), 3, 16), ValueError, "must not be empty"),
        (lambda: P.dense_params(128, "64"), TypeError, "n_out"),
        (lambda: P.bn_params(0), ValueError, "k must be a positive integer (>= 1), got 0"),
        (lambda: P.conv_madds(3, 3, 16, 0), ValueError, "out_size"),
    ],
)
def test_formula_arguments_are_checked(call, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kh=st.integers(1, 5), kw=st.integers(1, 5), groups=st.integers(1, 3),
    cin_per_group=st.integers(1, 4), k_per_group=st.integers(1, 4), bias=st.booleans(),
)
def test_conv_params_equal_keras(kh, kw, groups, cin_per_group, k_per_group, bias):
    c_in, k = groups * cin_per_group, groups * k_per_group
    layer = L.Conv2D(k, (kh, kw), groups=groups, use_bias=bias)
    layer.build((None, 8, 8, c_in))
    assert P.conv_params((kh, kw), c_in, k, bias=bias, groups=groups) == layer.count_params()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_in=st.integers(1, 300), n_out=st.integers(1, 300), bias=st.booleans())
def test_dense_params_equal_keras(n_in, n_out, bias):
    layer = L.Dense(n_out, use_bias=bias)
    layer.build((None, n_in))
    assert P.dense_params(n_in, n_out, bias=bias) == layer.count_params()


# --------------------------------------------------------------------------- explain on hand-built models


def test_tutorial_sample_model_and_formulas():
    model = seq(
        (32, 32, 3),
        L.Conv2D(16, (3, 3), padding="same", name="conv"), L.BatchNormalization(name="bn1"),
        L.Dropout(0.5), L.ReLU(), L.MaxPooling2D((2, 2)), L.Flatten(),
        L.Dense(128, name="fc"), L.BatchNormalization(name="bn2"), L.Dropout(0.5), L.ReLU(),
        L.Dense(10, activation="softmax", name="out"),
    )
    e = assert_matches_keras(model)
    assert e["conv"].formula == "(3*3*3 + 1)*16 = 448"
    assert e["fc"].formula == "(4096 + 1)*128 = 524,416"
    assert (e["bn1"].trainable, e["bn1"].non_trainable) == (32, 32)
    assert e["conv"].output_shape == (None, 32, 32, 16)
    assert e["fc"].multiply_adds == 4096 * 128


@pytest.mark.parametrize("bias", [True, False])
def test_conv_family_with_and_without_bias(bias):
    model = seq(
        (16, 16, 4),
        L.Conv2D(8, 3, strides=2, padding="same", use_bias=bias),
        L.Conv2D(8, (1, 3), dilation_rate=2, use_bias=bias),
        L.Conv2D(8, 3, groups=4, use_bias=bias),
        L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=bias, padding="same"),
        L.SeparableConv2D(6, 3, depth_multiplier=3, use_bias=bias, padding="same"),
        L.Dense(5, use_bias=bias),  # on a 3-D feature map: applied at every pixel
        L.Flatten(), L.Dense(3, use_bias=bias),
    )
    e = assert_matches_keras(model)
    assert e.rows[0].formula == ("(3*3*4 + 1)*8 = 296" if bias else "3*3*4*8 = 288")


def test_conv_1d_3d_and_channels_first():
    assert_matches_keras(seq((20, 3), L.Conv1D(4, 5), L.DepthwiseConv1D(3, depth_multiplier=2),
                             L.SeparableConv1D(5, 3, use_bias=False), L.Flatten(), L.Dense(2)))
    assert_matches_keras(seq((6, 6, 6, 2), L.Conv3D(4, 3, use_bias=False), L.Conv3D(3, (1, 2, 3))))
    e = assert_matches_keras(seq((3, 10, 10), L.Conv2D(4, 3, data_format="channels_first"),
                                 L.BatchNormalization(axis=1)))
    assert e.rows[0].formula == "(3*3*3 + 1)*4 = 112"
    assert e.rows[0].multiply_adds == 3 * 3 * 3 * 4 * 8 * 8


@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False), (False, False)])
def test_batch_and_layer_norm_flags(center, scale):
    e = assert_matches_keras(seq((4, 4, 6), L.BatchNormalization(center=center, scale=scale),
                                 L.Flatten(), L.LayerNormalization(center=center, scale=scale)))
    assert e.rows[0].non_trainable == 12


def test_normalization_adapted_and_constant():
    adapted = L.Normalization()
    adapted.adapt(np.random.default_rng(0).normal(size=(20, 5, 5, 3)).astype("float32"))
    e = assert_matches_keras(seq((5, 5, 3), adapted, L.Normalization(mean=0.5, variance=2.0),
                                 L.Rescaling(1 / 255)))
    assert e.rows[0].non_trainable == 2 * 3 + 1


def _zero_layer_models():
    """One small model per zero-parameter layer type supported by explain."""
    img, vec, seq1, vol = (8, 8, 4), (6,), (8, 4), (4, 4, 4, 2)
    single = {
        "MaxPooling1D": (seq1, L.MaxPooling1D()), "AveragePooling1D": (seq1, L.AveragePooling1D(2)),
        "GlobalAveragePooling1D": (seq1, L.GlobalAveragePooling1D()),
        "GlobalMaxPooling1D": (seq1, L.GlobalMaxPooling1D()),
        "MaxPooling2D": (img, L.MaxPooling2D()), "AveragePooling2D": (img, L.AveragePooling2D(2)),
        "GlobalAveragePooling2D": (img, L.GlobalAveragePooling2D()),
        "GlobalMaxPooling2D": (img, L.GlobalMaxPooling2D()),
        "MaxPooling3D": (vol, L.MaxPooling3D()), "AveragePooling3D": (vol, L.AveragePooling3D(2)),
        "GlobalAveragePooling3D": (vol, L.GlobalAveragePooling3D()),
        "GlobalMaxPooling3D": (vol, L.GlobalMaxPooling3D()),
        "Flatten": (img, L.Flatten()), "Reshape": (img, L.Reshape((16, 16))),
        "Permute": (img, L.Permute((3, 1, 2))), "RepeatVector": (vec, L.RepeatVector(3)),
        "Dropout": (img, L.Dropout(0.5)), "SpatialDropout1D": (seq1, L.SpatialDropout1D(0.5)),
        "SpatialDropout2D": (img, L.SpatialDropout2D(0.5)), "SpatialDropout3D": (vol, L.SpatialDropout3D(0.5)),
        "GaussianNoise": (img, L.GaussianNoise(0.1)), "GaussianDropout": (img, L.GaussianDropout(0.1)),
        "AlphaDropout": (img, L.AlphaDropout(0.1)),
        "Activation": (img, L.Activation("relu")), "ReLU": (img, L.ReLU()), "LeakyReLU": (img, L.LeakyReLU()),
        "ELU": (img, L.ELU()), "Softmax": (img, L.Softmax()),
        "ZeroPadding1D": (seq1, L.ZeroPadding1D()), "ZeroPadding2D": (img, L.ZeroPadding2D()),
        "ZeroPadding3D": (vol, L.ZeroPadding3D()), "Cropping1D": (seq1, L.Cropping1D()),
        "Cropping2D": (img, L.Cropping2D()), "Cropping3D": (vol, L.Cropping3D()),
        "UpSampling1D": (seq1, L.UpSampling1D()), "UpSampling2D": (img, L.UpSampling2D()),
        "UpSampling3D": (vol, L.UpSampling3D()), "Resizing": (img, L.Resizing(4, 4)),
        "CenterCrop": (img, L.CenterCrop(4, 4)), "Rescaling": (img, L.Rescaling(1 / 255)),
        "Identity": (img, L.Identity()), "RandomFlip": (img, L.RandomFlip()),
        "RandomRotation": (img, L.RandomRotation(0.1)), "RandomTranslation": (img, L.RandomTranslation(0.1, 0.1)),
        "RandomZoom": (img, L.RandomZoom(0.1)), "RandomCrop": (img, L.RandomCrop(4, 4)),
        "RandomContrast": (img, L.RandomContrast(0.1)), "RandomBrightness": (img, L.RandomBrightness(0.1)),
    }
    models = {name: seq(shape, layer) for name, (shape, layer) in single.items()}
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"):
        a, b = keras.Input(img), keras.Input(img)
        models[name] = keras.Model([a, b], getattr(L, name)()([a, b]))
    x = keras.Input(img)
    models["InputLayer"] = keras.Model(x, L.Flatten()(x))
    return models


def test_every_zero_parameter_layer():
    models = _zero_layer_models()
    for name, model in models.items():
        e = assert_matches_keras(model)
        rows = [r for r in e.rows if r.layer_type == name]
        assert rows, f"{name} not explained"
        assert rows[0].trainable == rows[0].non_trainable == rows[0].multiply_adds == 0
        assert rows[0].formula.startswith("0 (")


def test_every_supported_type_is_tested():
    weighted = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                "SeparableConv2D", "Dense", "BatchNormalization", "LayerNormalization", "Normalization",
                "Functional", "Sequential"}
    tested_zero = set(_zero_layer_models())
    assert set(P.supported_layer_types()) == weighted | tested_zero


def test_nested_models_frozen_and_shared():
    backbone = keras.Sequential(
        [keras.Input((16, 16, 3)), L.Conv2D(8, 3, use_bias=False), L.BatchNormalization(), L.ReLU(),
         L.SeparableConv2D(12, 3)], name="backbone")
    x = keras.Input((12, 12, 12))
    head_inner = keras.Model(x, L.Dense(4)(L.GlobalAveragePooling2D()(x)), name="head")
    inp = keras.Input((16, 16, 3))
    left = backbone(inp)
    right = L.Conv2D(12, 5)(inp)
    merged = L.Concatenate()([L.Add()([left, right]), right])
    out = head_inner(L.Conv2D(12, 1)(merged))
    model = keras.Model(inp, out, name="outer")
    e = assert_matches_keras(model)
    names = [r.name for r in e.rows]
    assert [n for n in names if n.startswith("backbone.")] == [f"backbone.{la.name}" for la in backbone.layers]
    assert [n for n in names if n.startswith("head.")] == [f"head.{la.name}" for la in head_inner.layers]
    backbone.trainable = False  # frozen: the same weights, all non-trainable
    e_frozen = assert_matches_keras(model)
    assert e_frozen.total == e.total and e_frozen.trainable < e.trainable
    collapsed = P.explain(model, expand_nested=False)
    assert [r.name for r in collapsed.rows if r.layer_type in ("Sequential", "Functional")] == ["backbone", "head"]
    assert (collapsed.trainable, collapsed.non_trainable) == (e_frozen.trainable, e_frozen.non_trainable)
    # a layer shared by two nested models holds its weights once
    shared = L.Dense(4)
    a = keras.Sequential([keras.Input((3,)), shared], name="a")
    b = keras.Sequential([keras.Input((3,)), shared, L.Dense(2)], name="b")
    v = keras.Input((3,))
    two = keras.Model(v, [a(v), b(v)])
    assert P.count(two) == (16 + 10, 0) == (two.count_params(), 0)
    second = P.explain(two)[f"b.{shared.name}"]
    assert second.trainable == 0 and "shared" in second.formula and second.multiply_adds == 12


def test_unbuilt_sequential_built_later():
    model = keras.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        P.explain(model)
    model.build((None, 8, 8, 3))
    assert_matches_keras(model)


# --------------------------------------------------------------------------- what explain refuses


class Scale(L.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],))

    def call(self, x):
        return x * self.w


class MyConv(L.Conv2D):
    pass


@pytest.mark.parametrize(
    "make, layer_type",
    [
        (lambda: seq((5, 3), L.LSTM(4)), "LSTM"),
        (lambda: seq((5, 5, 3), Scale()), "Scale"),
        (lambda: seq((5, 5, 3), MyConv(2, 3)), "MyConv"),
        (lambda: seq((5, 5, 3), L.PReLU()), "PReLU"),
        (lambda: seq((5, 5, 3), L.Conv2DTranspose(2, 3)), "Conv2DTranspose"),
        (lambda: seq((7,), L.Embedding(10, 3)), "Embedding"),
    ],
)
def test_unsupported_layers_are_named(make, layer_type):
    model = make()
    with pytest.raises(P.UnsupportedLayerError) as info:
        P.explain(model)
    assert layer_type in str(info.value) and model.layers[-1].name in str(info.value)
    assert info.value.layer_type == layer_type
    with pytest.raises(P.UnsupportedLayerError):
        P.count(model)


def test_configuration_not_covered_is_refused_not_guessed():
    dense = L.Dense(4)
    model = seq((6,), dense)
    dense.enable_lora(2)
    with pytest.raises(P.UnsupportedLayerError, match="LoRA"):
        P.explain(model)


def test_bad_arguments_to_explain():
    with pytest.raises(TypeError, match="explain_layer"):
        P.explain(L.Dense(3))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(P.UnsupportedLayerError, match="subclassed"):
        P.explain(sub)


# --------------------------------------------------------------------------- multiply-adds vs TF's profiler


@pytest.mark.parametrize(
    "make",
    [
        lambda: L.Conv2D(8, 3, use_bias=False),
        lambda: L.Conv2D(8, (3, 5), strides=2, padding="same", use_bias=False),
        lambda: L.Conv2D(6, 1, use_bias=False),
        lambda: L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False),
        lambda: L.SeparableConv2D(8, 3, use_bias=False),
        lambda: L.Dense(5, use_bias=False),
    ],
)
def test_multiply_adds_agree_with_tensorflow_profiler(make):
    model = seq((10, 12, 4), make())
    assert P.explain(model).multiply_adds == profiler_madds(model) > 0


def test_profiler_counts_bias_adds_on_top_of_multiply_adds():
    model = seq((8, 8, 16), L.Conv2D(4, 1), L.Conv2D(6, 3, padding="same"))
    assert P.profiler_flops(model) == 2 * P.explain(model).multiply_adds + 8 * 8 * (4 + 6)
    with pytest.raises(ValueError, match="fixed input size"):
        P.profiler_flops(seq((None, None, 3), L.Conv2D(2, 1)))


def test_grouped_conv_madds_equal_separate_convolutions():
    """A conv with groups=g is g convolutions on channel slices; count those with TF's profiler."""
    g, c_in, k = 2, 4, 6
    inp = keras.Input((9, 9, c_in))
    parts = [L.Conv2D(k // g, 3, use_bias=False)(L.Lambda(lambda t, i=i: t[..., i * 2:(i + 1) * 2])(inp))
             for i in range(g)]
    split = keras.Model(inp, L.Concatenate()(parts))
    grouped = seq((9, 9, c_in), L.Conv2D(k, 3, groups=g, use_bias=False))
    assert P.explain(grouped).multiply_adds == profiler_madds(split) == 3 * 3 * 2 * 6 * 7 * 7


def test_unknown_spatial_size_gives_unknown_madds():
    e = P.explain(seq((None, None, 3), L.Conv2D(4, 3), L.GlobalAveragePooling2D(), L.Dense(2)))
    assert e.rows[0].multiply_adds is None and e.rows[-1].multiply_adds == 8
    assert e.multiply_adds is None and "unknown" in str(e)
    assert e.rows[0].trainable == 112


# --------------------------------------------------------------------------- rendering


def test_rendering_text_html_and_dicts():
    model = seq((8, 8, 3), L.Conv2D(4, 3, name="c<1>"), L.Flatten(), L.Dense(2))
    e = P.explain(model)
    text = str(e)
    assert repr(e) == text
    for word in ("Layer", "Output shape", "Trainable", "Non-trainable", "Formula", "Multiply-adds",
                 "(3*3*3 + 1)*4 = 112", "(144 + 1)*2 = 290", "Total: 402 parameters = 402 trainable"):
        assert word in text
    page = e._repr_html_()
    assert page.startswith("<table>") and "c&lt;1&gt;" in page and "<tfoot>" in page
    dicts = e.to_dicts()
    assert [d["name"] for d in dicts] == [layer.name for layer in model.layers]
    assert set(P.Explanation.COLUMNS) <= set(dicts[0])
    assert len(e) == 3 and e[0].name == "c<1>" and e["c<1>"].multiply_adds == 27 * 4 * 36
    with pytest.raises(KeyError, match="no layer named"):
        e.row("nope")


# --------------------------------------------------------------------------- keras.applications


@pytest.fixture(scope="module")
def applications():
    """Built once per module with random weights (no download); small inputs keep them fast."""
    keras.utils.set_random_seed(0)
    return {
        "ResNet50": keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3)),
        "VGG16": keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3)),
        "MobileNetV2": keras.applications.MobileNetV2(weights=None, include_top=True, input_shape=(32, 32, 3)),
    }


@pytest.mark.parametrize("name", ["ResNet50", "VGG16", "MobileNetV2"])
def test_applications_layer_by_layer(applications, name):
    e = assert_matches_keras(applications[name])
    assert len(e) == len(applications[name].layers)


def test_applications_known_totals(applications):
    # Keras' published counts: ResNet50 without its top, MobileNetV2 with its top (input-size free)
    assert P.count(applications["ResNet50"]) == (23_534_592, 53_120)
    assert sum(P.count(applications["MobileNetV2"])) == 3_538_984
    # VGG16 at 32x32: the first dense layer sees 1*1*512 features instead of 7*7*512
    assert P.explain(applications["VGG16"])["fc1"].formula == "(512 + 1)*4096 = 2,101,248"


def test_resnet50_multiply_adds_at_imagenet_size():
    model = keras.applications.ResNet50(weights=None, include_top=True)
    e = P.explain(model)
    assert e.total == model.count_params() == 25_636_712
    # the ResNet paper gives 3.8e9 multiply-adds for ResNet-50 (convolutions and the fc layer)
    assert math.isclose(e.multiply_adds, 3.86e9, rel_tol=0.01)


# --------------------------------------------------------------------------- exercise checks (lessons 05, 06)


def _fails(check, *args, match=""):
    from cnnkit.checks import CheckFailed

    with pytest.raises(CheckFailed, match=match):
        check(*args)


def _not_written(*args):
    raise NotImplementedError()


def test_parameter_checks_pass_right_answers_and_explain_wrong_ones(capsys):
    from cnnkit.checks import parameters as C

    C.check_conv_count(lambda f, c, k, bias: P.conv_params(f, c, k, bias=bias))
    C.check_dense_count(P.dense_params)
    C.check_bn_counts(24, *P.bn_params(24))
    walk = [(r.output_shape[1:], r.total) for r in P.explain(C.walk_model())]
    C.check_model_walk(walk)
    assert capsys.readouterr().out.count("Passed:") == 4

    _fails(C.check_conv_count, lambda f, c, k, bias: f * f * c * k, match=r"forgot the bias: add one per filter \(\+16\)")
    _fails(C.check_conv_count, lambda f, c, k, bias: (f * f * c + 1) * k, match="use_bias=False")
    _fails(C.check_conv_count, lambda f, c, k, bias: (f * f + 1) * k, match="multiply F\\*F by C_in")
    _fails(C.check_conv_count, _not_written, match="not written yet")
    _fails(C.check_conv_count, 448, match="should be a function")
    _fails(C.check_dense_count, lambda i, o: i * o, match=r"forgot the biases.*\(\+64\)")
    _fails(C.check_dense_count, lambda i, o: i * o + 1, match="not \\+1")
    _fails(C.check_bn_counts, 24, 96, 0, match="moving statistics as trainable")
    _fails(C.check_bn_counts, 24, 48, 0, match="moving mean and a moving variance")
    _fails(C.check_bn_counts, 24, None, None, match="write your answer")
    bad = list(walk)
    bad[3] = (walk[3][0], walk[3][1] // 2)
    _fails(C.check_model_walk, bad, match="non-trainable moving statistics")
    bad = list(walk)
    bad[1] = ((12, 12, 8), 0)
    _fails(C.check_model_walk, bad, match="halves height and width")
    _fails(C.check_model_walk, walk[:-1], match="one \\(shape, parameters\\) pair per layer")


def test_one_by_one_checks_pass_right_answers_and_explain_wrong_ones(capsys):
    from cnnkit.checks import one_by_one as O

    O.check_one_by_one(lambda x, w, b: x @ w + b)

    def bottleneck(h, w, c_in, c_mid, k, f):
        params = P.conv_params(1, c_in, c_mid) + P.conv_params(f, c_mid, k)
        return params, P.conv_madds(1, c_in, c_mid, (h, w)) + P.conv_madds(f, c_mid, k, (h, w))

    O.check_bottleneck_cost(bottleneck)
    assert capsys.readouterr().out.count("Passed:") == 2

    _fails(O.check_one_by_one, lambda x, w, b: x @ w, match="bias is missing")
    _fails(O.check_one_by_one, lambda x, w, b: np.einsum("hwc,kc->hwk", x, w) + b if w.shape[0] == w.shape[1]
           else x @ w + b, match="transposed")
    _fails(O.check_one_by_one, lambda x, w, b: np.moveaxis(x @ w + b, -1, 0), match="channels last")
    _fails(O.check_one_by_one, _not_written, match="not written yet")
    _fails(O.check_bottleneck_cost, lambda *a: (bottleneck(*a)[0] - a[3] - a[4], bottleneck(*a)[1]),
           match="forgot the biases")
    _fails(O.check_bottleneck_cost, lambda h, w, *a: (bottleneck(h, w, *a)[0], bottleneck(h, w, *a)[1] // (h * w)),
           match="one pixel")
    _fails(O.check_bottleneck_cost, lambda *a: 5, match="pair")
    _fails(O.check_bottleneck_cost, _not_written, match="not written yet")
