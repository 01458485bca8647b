"""cnnkit.architectures: exact torchvision parameter counts, output shapes, building blocks, argument checks.

Each ImageNet-sized model is built once per module (fixtures); building is
cheap, running them is not, so their shapes are read from the graph and only
the CIFAR-sized models and small blocks run forward passes.
"""
import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras  # the oracle: required, never skipped
import tensorflow as tf  # noqa: E402

try:  # the function model.summary() uses for its "Trainable params" line
    from keras.src.utils.summary_utils import count_params  # noqa: E402
except ImportError:  # pragma: no cover  (moved in another Keras version)
    def count_params(weights):
        return sum(int(np.prod(w.shape)) for w in weights)

from cnnkit import architectures as arch  # noqa: E402

HAS_PARAMS = importlib.util.find_spec("cnnkit.params") is not None

# torchvision's sum(p.numel() for p in model.parameters()) at 224x224x3, 1000 classes
EXPECTED = {
    "alexnet": 61_100_840,
    "googlenet": 6_998_552,
    "googlenet_torchvision": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}
DEPTH = {"alexnet": 8, "googlenet": 22, "googlenet_torchvision": 22, "resnet18": 18, "resnet34": 34, "resnet50": 50}
BUILDERS = {
    "alexnet": arch.alexnet,
    "googlenet": arch.googlenet,
    "googlenet_torchvision": lambda: arch.googlenet(variant="torchvision"),
    "resnet18": arch.resnet18,
    "resnet34": arch.resnet34,
    "resnet50": arch.resnet50,
}


def keras_trainable(model) -> int:
    """Keras' own count, the "Trainable params" line of ``model.summary()``."""
    return int(count_params(model.trainable_weights))


@pytest.fixture(scope="module", params=list(BUILDERS))
def imagenet_model(request):
    keras.backend.clear_session()
    model = BUILDERS[request.param]()
    yield request.param, model
    del model
    keras.backend.clear_session()


def test_imagenet_models_have_torchvision_counts_depth_and_output(imagenet_model):
    key, model = imagenet_model
    assert keras_trainable(model) == EXPECTED[key]
    assert arch.trainable_params(model) == EXPECTED[key]
    assert arch.depth(model) == DEPTH[key]
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert model.layers[-1].get_config()["activation"] == "softmax"
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))


@pytest.mark.skipif(not HAS_PARAMS, reason="cnnkit.params not written yet")
def test_params_count_agrees_with_keras(imagenet_model):
    from cnnkit import params

    _, model = imagenet_model
    trainable, non_trainable = params.count(model)
    assert trainable == keras_trainable(model)
    assert non_trainable == int(count_params(model.non_trainable_weights))


def test_feature_map_sizes_match_torchvision(imagenet_model):
    key, model = imagenet_model
    shape = lambda name: tuple(model.get_layer(name).output.shape[1:])  # noqa: E731
    if key == "alexnet":
        assert shape("conv1") == (55, 55, 64)
        assert shape("pool1") == (27, 27, 64)
        assert shape("pool2") == (13, 13, 192)
        assert shape("pool5") == (6, 6, 256)
        assert shape("adaptive_avgpool") == (6, 6, 256)
        assert shape("flatten") == (9216,)
    elif key.startswith("googlenet"):
        assert shape("conv1" if key == "googlenet" else "conv1_relu") == (112, 112, 64)
        assert shape("pool1") == (56, 56, 64)
        assert shape("pool2") == (28, 28, 192)
        assert shape("inception3b_concat") == (28, 28, 480)
        assert shape("pool3") == (14, 14, 480)
        assert shape("inception4e_concat") == (14, 14, 832)
        assert shape("pool4") == (7, 7, 832)
        assert shape("inception5b_concat") == (7, 7, 1024)
    else:
        out = 2048 if key == "resnet50" else 512
        assert shape("pool1") == (56, 56, 64)
        assert shape("stage2_block1_out") == (28, 28, out // 4)
        last = {"resnet18": 2, "resnet34": 3, "resnet50": 3}[key]
        assert shape(f"stage4_block{last}_out") == (7, 7, out)


def test_googlenet_auxiliary_heads():
    keras.backend.clear_session()
    for variant, main in (("paper", EXPECTED["googlenet"]), ("torchvision", EXPECTED["googlenet_torchvision"])):
        model = arch.googlenet(variant=variant, aux_logits=True, seed=None)
        assert len(model.outputs) == 3
        assert model.output_names == ["classifier", "aux1_classifier", "aux2_classifier"]
        assert all(tuple(o.shape) == (None, 1000) for o in model.outputs)
        # each head: 1x1 conv 128 (+bias or +BN) on 512/528 channels, fc 4*4*128 -> 1024, fc 1024 -> 1000
        extra = 0
        for head, channels in (("aux1", 512), ("aux2", 528)):
            assert tuple(model.get_layer(f"{head}_avgpool").output.shape[1:]) == (4, 4, channels)
            conv = channels * 128 + (128 if variant == "paper" else 2 * 128)
            extra += conv + (2048 + 1) * 1024 + (1024 + 1) * 1000
        assert keras_trainable(model) == main + extra
        del model
        keras.backend.clear_session()
    assert EXPECTED["googlenet_torchvision"] + 6_379_984 == 13_004_888  # torchvision with aux_logits=True


def test_other_sizes_and_class_counts():
    keras.backend.clear_session()
    model = arch.resnet18((64, 96, 1), classes=7)
    assert model.output_shape == (None, 7)
    assert tuple(model.get_layer("stage4_block2_out").output.shape[1:]) == (2, 3, 512)
    model = arch.googlenet((96, 96, 3), classes=5, variant="torchvision")
    assert model.output_shape == (None, 5)
    assert tuple(model.get_layer("inception5b_concat").output.shape[1:]) == (3, 3, 1024)
    keras.backend.clear_session()


# --------------------------------------------------------------------------- PyTorch padding semantics


def numpy_max_pool_torch(x, k, s, pad, ceil_mode):
    """Reference: PyTorch max pooling (−inf padding, ceil_mode rule) on a (H, W, C) array."""
    h, w, _ = x.shape
    oh, ow = (arch.torch_output_size(n, k, s, pad, ceil_mode) for n in (h, w))
    big = np.full((h + 2 * pad + k, w + 2 * pad + k, x.shape[2]), -np.inf)
    big[pad:pad + h, pad:pad + w] = x
    out = np.empty((oh, ow, x.shape[2]))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = big[i * s:i * s + k, j * s:j * s + k].max(axis=(0, 1))
    return out


@settings(max_examples=25, deadline=None)
@given(h=st.integers(3, 17), w=st.integers(3, 17), k=st.sampled_from([2, 3]), s=st.sampled_from([1, 2, 3]),
       pad=st.sampled_from([0, 1]), ceil_mode=st.booleans(), seed=st.integers(0, 2**16))
def test_torch_max_pool_matches_pytorch_semantics(h, w, k, s, pad, ceil_mode, seed):
    if pad * 2 > k:
        pad = 0
    x = np.random.default_rng(seed).random((h, w, 2)).astype(np.float32)  # >= 0, as after a ReLU
    inputs = keras.Input((h, w, 2))
    model = keras.Model(inputs, arch.torch_max_pool(inputs, k, s, pad=pad, ceil_mode=ceil_mode, name="pool"))
    got = np.asarray(model(x[None]))[0]
    np.testing.assert_allclose(got, numpy_max_pool_torch(x, k, s, pad, ceil_mode), rtol=0, atol=0)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(5, 20), k=st.sampled_from([1, 3, 5, 7, 11]), s=st.sampled_from([1, 2, 4]),
       pad=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_conv_unit_pads_like_pytorch(h, k, s, pad, seed):
    if h + 2 * pad < k:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, h, h + 1, 3)).astype(np.float32)
    inputs = keras.Input((h, h + 1, 3))
    model = keras.Model(inputs, arch.conv_unit(inputs, 4, k, stride=s, pad=pad, name="c", relu=False))
    kernel, bias = model.get_layer("c").get_weights()
    bias = rng.standard_normal(bias.shape).astype(np.float32)
    model.get_layer("c").set_weights([kernel, bias])
    # oracle: TensorFlow's convolution with explicit symmetric padding, as torch.nn.Conv2d(padding=pad)
    want = tf.nn.conv2d(x, kernel, strides=s, padding=[[0, 0], [pad, pad], [pad, pad], [0, 0]]) + bias
    assert model.output_shape[1:3] == (arch.torch_output_size(h, k, s, pad), arch.torch_output_size(h + 1, k, s, pad))
    np.testing.assert_allclose(np.asarray(model(x)), want.numpy(), rtol=1e-5, atol=1e-5)


def test_torch_output_size_formula():
    assert arch.torch_output_size(224, 11, 4, 2) == 55
    assert arch.torch_output_size(112, 3, 2, 0, ceil_mode=True) == 56  # floor would give 55
    assert arch.torch_output_size(112, 3, 2, 0) == 55
    assert arch.torch_output_size(14, 2, 2, 0, ceil_mode=True) == 7
    # a last window that would start inside the padding is dropped
    assert arch.torch_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert arch.torch_output_size(2, 3, 1) == 0


@pytest.mark.parametrize("side,out", [(6, 6), (12, 6), (18, 6), (7, 6)])
def test_adaptive_avg_pool_equals_pytorch_where_exact(side, out):
    x = np.arange(side * side, dtype=np.float32).reshape(1, side, side, 1)
    inputs = keras.Input((side, side, 1))
    got = np.asarray(keras.Model(inputs, arch.adaptive_avg_pool(inputs, out, name="p"))(x))[0, :, :, 0]
    # PyTorch's bins: [floor(i*side/out), ceil((i+1)*side/out))
    bins = [(i * side // out, -(-(i + 1) * side // out)) for i in range(out)]
    want = np.array([[x[0, a:b, c:d, 0].mean() for c, d in bins] for a, b in bins])
    np.testing.assert_allclose(got, want, rtol=1e-6)


# --------------------------------------------------------------------------- building blocks


def _submodel_output(model, layer_name, x):
    return np.asarray(keras.Model(model.input, model.get_layer(layer_name).output)(x, training=False))


@pytest.mark.parametrize("bottleneck", [False, True])
@pytest.mark.parametrize("stride,c_in", [(1, None), (2, None), (1, 8)])
def test_residual_block_output_is_relu_of_f_plus_shortcut(bottleneck, stride, c_in):
    filters = 4
    c_out = 4 * filters if bottleneck else filters
    c_in = c_in or c_out
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 9, c_in)).astype(np.float32)
    inputs = keras.Input((9, 9, c_in))
    model = keras.Model(inputs, arch.residual_block(inputs, filters, stride=stride, bottleneck=bottleneck, name="b"))
    for layer in model.layers:  # non-trivial batch-norm statistics and affine parameters
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    f = _submodel_output(model, f"b_conv{3 if bottleneck else 2}_bn", x)
    projected = stride != 1 or c_in != c_out
    names = {layer.name for layer in model.layers}
    assert ("b_proj" in names) == projected
    shortcut = _submodel_output(model, "b_proj_bn", x) if projected else x
    out = np.asarray(model(x, training=False))
    side = -(-9 // stride)
    assert out.shape == (2, side, side, c_out)
    np.testing.assert_allclose(out, np.maximum(f + shortcut, 0), rtol=1e-5, atol=1e-5)


def test_plain_block_has_same_main_path_without_shortcut():
    inputs = keras.Input((8, 8, 4))
    plain = keras.Model(inputs, arch.residual_block(inputs, 8, stride=2, shortcut=False, name="b"))
    res = keras.Model(inputs, arch.residual_block(inputs, 8, stride=2, name="b"))
    kinds = lambda m: [type(layer).__name__ for layer in m.layers]  # noqa: E731
    assert "Add" not in kinds(plain) and "Add" in kinds(res)
    assert keras_trainable(res) - keras_trainable(plain) == 4 * 8 + 2 * 8  # the 1x1 projection and its BN


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
@pytest.mark.parametrize("cfg", [(64, 96, 128, 16, 32, 32), (3, 2, 5, 1, 4, 6)])
def test_inception_block_channels_and_parameters(variant, cfg):
    c1, c3r, c3, c5r, c5, pp = cfg
    c_in = 12
    inputs = keras.Input((10, 10, c_in))
    block = keras.Model(inputs, arch.inception_block(inputs, *cfg, name="inc", variant=variant))
    assert block.output_shape == (None, 10, 10, c1 + c3 + c5 + pp)
    if variant == "paper":  # (F*F*C_in + 1)*K per biased conv
        want = (c_in + 1) * (c1 + c3r + c5r + pp) + (9 * c3r + 1) * c3 + (25 * c5r + 1) * c5
    else:  # no bias, 2K per batch norm, 3x3 in the third branch
        want = c_in * (c1 + c3r + c5r + pp) + 9 * c3r * c3 + 9 * c5r * c5 + 2 * (c1 + c3r + c3 + c5r + c5 + pp)
    assert keras_trainable(block) == want
    x = np.random.default_rng(1).standard_normal((1, 10, 10, c_in)).astype(np.float32)
    out = np.asarray(block(x))
    # the first c1 channels are branch 1, computed alone
    np.testing.assert_allclose(out[..., :c1], _submodel_output(block, "inc_b1_1x1_relu", x), rtol=1e-5, atol=1e-6)


def test_naive_inception_block_keeps_input_channels_and_costs_more():
    inputs = keras.Input((28, 28, 192))
    naive = keras.Model(inputs, arch.naive_inception_block(inputs, 64, 128, 32, name="n"))
    reduced = keras.Model(inputs, arch.inception_block(inputs, *arch.GOOGLENET_BLOCKS[0][1:], name="r"))
    assert naive.output_shape == (None, 28, 28, 64 + 128 + 32 + 192)
    assert keras_trainable(naive) == 193 * 64 + (9 * 192 + 1) * 128 + (25 * 192 + 1) * 32
    assert keras_trainable(reduced) < keras_trainable(naive) / 2


# --------------------------------------------------------------------------- CIFAR-sized twins


def test_cifar_twins_run_and_differ_only_by_shortcuts():
    keras.backend.clear_session()
    res = arch.resnet_cifar(blocks=(2, 2), widths=(8, 16))
    plain = arch.plain_cnn(blocks=(2, 2), widths=(8, 16))
    assert res.name == "resnet10" and plain.name == "plain10"
    assert arch.depth(res) == arch.depth(plain) == 10
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.float32) / 255
    for model in (res, plain):
        probs = np.asarray(model(x))
        assert probs.shape == (3, 10)
        np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    main_path = lambda m: [(type(layer).__name__, layer.name) for layer in m.layers  # noqa: E731
                           if "proj" not in layer.name and not isinstance(layer, keras.layers.Add)]
    assert main_path(res) == main_path(plain)
    assert keras_trainable(res) - keras_trainable(plain) == 8 * 16 + 2 * 16
    default = arch.plain_cnn()
    assert keras_trainable(arch.resnet_cifar()) - keras_trainable(default) == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    keras.backend.clear_session()


def test_cifar_resnet_is_seeded():
    a = arch.resnet_cifar((1,), (4,), seed=3)
    b = arch.resnet_cifar((1,), (4,), seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# --------------------------------------------------------------------------- CIFAR-sized AlexNet and GoogLeNet


def test_alexnet_cifar_shapes_and_parameters_by_hand():
    keras.backend.clear_session()
    widths, dense, classes = (4, 6, 8, 8, 5), 7, 3
    model = arch.alexnet_cifar(widths=widths, dense=dense, classes=classes)
    sides = {name: model.get_layer(name).output.shape[1] for name in ("conv1", "pool1", "conv2", "pool2", "pool5")}
    assert sides == {"conv1": 16, "pool1": 8, "conv2": 8, "pool2": 4, "pool5": 2}
    assert model.get_layer("conv1").kernel.shape == (5, 5, 3, 4) and model.get_layer("conv1").strides == (2, 2)
    assert model.get_layer("fc6").input.shape[-1] == 2 * 2 * 5
    by_hand = ((5 * 5 * 3 + 1) * 4 + (5 * 5 * 4 + 1) * 6 + (3 * 3 * 6 + 1) * 8 + (3 * 3 * 8 + 1) * 8
               + (3 * 3 * 8 + 1) * 5 + (2 * 2 * 5 + 1) * 7 + (7 + 1) * 7 + (7 + 1) * 3)
    assert keras_trainable(model) == by_hand
    assert arch.depth(model) == 8
    assert [type(layer).__name__ for layer in model.layers].count("Dropout") == 2
    probs = np.asarray(model(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)))
    assert probs.shape == (2, classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert keras_trainable(arch.alexnet_cifar()) == 381_642  # the docstring's count for the defaults
    assert arch.alexnet_cifar(first_kernel=7).get_layer("conv1").output.shape[1:] == (16, 16, 32)
    keras.backend.clear_session()


def test_googlenet_cifar_shapes_and_parameters_by_hand():
    keras.backend.clear_session()
    stem, classes = 5, 4
    stages = (((2, 3, 4, 1, 2, 2),), ((3, 2, 3, 2, 1, 1), (1, 1, 2, 1, 1, 1)))
    model = arch.googlenet_cifar(stem=stem, stages=stages, classes=classes)
    names = [layer.name for layer in model.layers if layer.name.endswith("_concat")]
    assert names == ["inception1a_concat", "inception2a_concat", "inception2b_concat"]
    assert model.get_layer("inception1a_concat").output.shape[1:] == (16, 16, 2 + 4 + 2 + 2)
    assert model.get_layer("inception2b_concat").output.shape[1:] == (8, 8, 1 + 2 + 1 + 1)

    def block(c_in, c1, c3r, c3, c5r, c5, pp):  # the paper variant: biased 1x1, 3x3 and 5x5 convolutions
        return ((c_in + 1) * c1 + (c_in + 1) * c3r + (9 * c3r + 1) * c3 + (c_in + 1) * c5r + (25 * c5r + 1) * c5
                + (c_in + 1) * pp)

    by_hand = ((3 * 3 * 3 + 1) * stem + block(stem, *stages[0][0]) + block(10, *stages[1][0])
               + block(3 + 3 + 1 + 1, *stages[1][1]) + (5 + 1) * classes)
    assert keras_trainable(model) == by_hand
    assert arch.depth(model) == 2 + 2 * 3
    probs = np.asarray(model(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)))
    assert probs.shape == (2, classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    default = arch.googlenet_cifar()
    assert default.get_layer("inception1a_concat").output.shape[-1] == sum(arch.GOOGLENET_CIFAR_STAGES[0][0][i]
                                                                             for i in (0, 2, 4, 5))
    assert arch.depth(default) == 10
    with_bn = arch.googlenet_cifar(variant="torchvision")
    assert "inception1a_b3_3x3_bn" in [layer.name for layer in with_bn.layers]
    keras.backend.clear_session()


def test_cifar_family_builders_are_seeded():
    for build in (arch.alexnet_cifar, arch.googlenet_cifar):
        a, b, c = build(seed=5), build(seed=5), build(seed=6)
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(a.get_layer("classifier").get_weights()[0], c.get_layer("classifier").get_weights()[0])
    keras.backend.clear_session()


@pytest.mark.parametrize("kwargs,error,words", [
    ({"widths": (32, 64)}, ValueError, "5 convolutions, got 2"),
    ({"widths": (32, 0, 96, 96, 64)}, ValueError, r"widths\[1\]"),
    ({"widths": ()}, ValueError, "widths"),
    ({"dense": 0}, ValueError, "dense"),
    ({"first_kernel": 2.5}, TypeError, "first_kernel"),
    ({"dropout": 1.5}, ValueError, r"dropout must be a number in \[0, 1\), got 1.5"),
])
def test_alexnet_cifar_names_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        arch.alexnet_cifar(**kwargs)


@pytest.mark.parametrize("kwargs,error,words", [
    ({"stages": ()}, ValueError, "stages must be a non-empty"),
    ({"stages": ((),)}, ValueError, r"stages\[0\] must be a non-empty"),
    ({"stages": (((1, 2, 3),),)}, ValueError, r"stages\[0\]\[0\] must give 6 widths .*, got 3: \(1, 2, 3\)"),
    ({"stages": (((1, 1, 1, 1, 1, 1),), ((1, 1, 0, 1, 1, 1),))}, ValueError, r"stages\[1\]\[0\]\[2\]"),
    ({"stem": -1}, ValueError, "stem"),
    ({"variant": "v3"}, ValueError, "'v3'"),
    ({"dropout": -0.1}, ValueError, "dropout"),
])
def test_googlenet_cifar_names_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        arch.googlenet_cifar(**kwargs)


def test_params_by_type_splits_alexnet_like_counts():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(x))
    assert arch.params_by_type(model) == {"Conv2D": (27 + 1) * 4, "BatchNormalization": 8, "Dense": (144 + 1) * 2}
    assert arch.depth(model) == 2


def test_depth_follows_shared_layers_nested_models_and_sequential_chains():
    keras.backend.clear_session()
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(3)(keras.layers.ReLU()(keras.layers.Dense(3)(inner_in))))
    chain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(3), keras.layers.Dense(3)])
    assert arch.depth(inner) == 2 and arch.depth(chain) == 3
    x = keras.Input((4,))
    shared = keras.layers.Dense(4)
    twice = shared(shared(x))                      # one layer, two calls: 2 on this path
    deep = chain(inner(twice))                     # + 2 (inner) + 3 (chain) = 7
    short = keras.layers.Dense(3)(x)               # a parallel branch of depth 1
    model = keras.Model(x, keras.layers.Add()([deep, short]))
    assert arch.depth(model) == 7
    two_outputs = keras.Model(x, [short, inner(x)])  # the second call of inner, straight from the input
    assert arch.depth(two_outputs) == 2

    class Subclassed(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(TypeError, match="functional or Sequential"):
        arch.depth(Subclassed())
    keras.backend.clear_session()


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("builder", [arch.alexnet, arch.googlenet, arch.resnet18, arch.resnet_cifar, arch.plain_cnn,
                                     arch.alexnet_cifar, arch.googlenet_cifar])
@pytest.mark.parametrize("bad,error,words", [
    ((224, 224), ValueError, "3 entries"),
    ((224, 224, 3, 1), ValueError, "3 entries"),
    ((224, -1, 3), ValueError, "input_shape[1]"),
    ((224, 224, 0), ValueError, "input_shape[2]"),
    ((224.0, 224, 3), TypeError, "input_shape[0]"),
    ("224x224x3", TypeError, "tuple"),
    (224, TypeError, "tuple"),
])
def test_bad_input_shape_is_named(builder, bad, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        builder(input_shape=bad)


@pytest.mark.parametrize("builder", [arch.alexnet, arch.googlenet, arch.resnet50, arch.resnet_cifar, arch.alexnet_cifar,
                                     arch.googlenet_cifar])
@pytest.mark.parametrize("classes,error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_classes(builder, classes, error):
    with pytest.raises(error, match="classes"):
        builder(classes=classes)


def test_too_small_inputs_say_the_smallest_size():
    with pytest.raises(ValueError, match=r"adaptive_avgpool.*at least 223"):
        arch.alexnet((64, 64, 3))
    with pytest.raises(ValueError, match="width"):
        arch.alexnet((224, 100, 3))
    with pytest.raises(ValueError, match="pool"):
        arch.googlenet((16, 16, 3))
    with pytest.raises(ValueError, match="aux1_avgpool"):
        arch.googlenet((64, 64, 3), aux_logits=True)


def test_bad_options():
    with pytest.raises(ValueError, match="'v3'.*'paper', 'torchvision'"):
        arch.googlenet(variant="v3")
    with pytest.raises(TypeError, match="aux_logits"):
        arch.googlenet(aux_logits="yes")
    with pytest.raises(ValueError, match="one entry per stage"):
        arch.resnet_cifar(blocks=(3, 3, 3), widths=(16, 32))
    with pytest.raises(ValueError, match="blocks"):
        arch.resnet_cifar(blocks=())
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        arch.plain_cnn(widths=(16, 0, 64))
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match="stride"):
        arch.residual_block(inputs, 4, stride=0)
    with pytest.raises(ValueError, match="c5_reduce"):
        arch.inception_block(inputs, 1, 1, 1, 0, 1, 1)


# --------------------------------------------------------------------------- exercise checks (lesson 07)


def test_exercise2_checks_accept_keras_counts_and_name_mistakes():
    from cnnkit.checks import CheckFailed
    from cnnkit.checks import architectures as checks

    model = checks.exercise2_model()
    counts = {layer.name: arch.trainable_params(layer) for layer in model.layers[1:]}
    assert sum(counts.values()) == 123_802  # (5*5*3+1)*32 + 3*3*32*64 + 2*64 + (64+1)*16 + (784+1)*128 + 129*10
    checks.check_exercise2_layers(counts)
    checks.check_exercise2_totals(sum(counts.values()), 128)
    for layer, wrong, words in (("conv1", 5 * 5 * 3 * 32, "forgot the bias"),
                                ("conv2", (3 * 3 * 32 + 1) * 64, "use_bias=False"),
                                ("bn2", 4 * 64, "moving"),
                                ("fc4", (14 * 14 * 16 + 1) * 128, "7*7*16 = 784"),
                                ("pool1", 1, "no weights")):
        with pytest.raises(CheckFailed, match=words):
            checks.check_exercise2_layers({**counts, layer: wrong})
    with pytest.raises(CheckFailed, match="missing"):
        checks.check_exercise2_layers({k: v for k, v in counts.items() if k != "flatten"})
    with pytest.raises(CheckFailed, match="not trainable"):
        checks.check_exercise2_totals(sum(counts.values()) + 128, 128)
    with pytest.raises(CheckFailed, match="moving mean and variance"):
        checks.check_exercise2_totals(sum(counts.values()), 0)


def test_block_checks_accept_the_reference_and_explain_mistakes():
    from keras import layers

    from cnnkit.checks import CheckFailed
    from cnnkit.checks import architectures as checks

    checks.check_residual_block(lambda x, f, stride=1: arch.residual_block(x, f, stride=stride, name="r"))
    checks.check_inception_block(lambda x, *w: arch.inception_block(x, *w, name="i"))

    def no_projection(x, filters, stride=1):
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        return layers.ReLU()(layers.Add()([y, x]))

    def relu_before_add(x, filters, stride=1):
        y = arch.residual_block(x, filters, stride=stride, shortcut=False, name="p")
        s = x if stride == 1 and x.shape[-1] == filters else layers.BatchNormalization()(
            layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x))
        return layers.Add()([y, s])

    with pytest.raises(CheckFailed, match="needs a projection"):
        checks.check_residual_block(no_projection)
    with pytest.raises(CheckFailed, match="after the addition"):
        checks.check_residual_block(relu_before_add)
    with pytest.raises(CheckFailed, match="not written yet"):
        checks.check_residual_block(lambda x, f, stride=1: (_ for _ in ()).throw(NotImplementedError()))

    def branches_swapped(x, c1, c3r, c3, c5r, c5, pp):
        conv = lambda t, n, k: layers.Conv2D(n, k, padding="same", activation="relu")(t)  # noqa: E731
        b4 = conv(layers.MaxPooling2D(3, strides=1, padding="same")(x), pp, 1)
        return layers.Concatenate()([conv(x, c1, 1), conv(conv(x, c5r, 1), c5, 5), conv(conv(x, c3r, 1), c3, 3), b4])

    with pytest.raises(CheckFailed, match=r"order \[1x1, 3x3, 5x5, pool\]"):
        checks.check_inception_block(branches_swapped)
    with pytest.raises(CheckFailed, match="no batch normalization"):
        checks.check_inception_block(lambda x, *w: arch.inception_block(x, *w, name="t", variant="torchvision"))

    naive = 193 * 64 + (9 * 192 + 1) * 128 + (25 * 192 + 1) * 32
    reduced = 193 * (64 + 96 + 16 + 32) + (9 * 96 + 1) * 128 + (25 * 16 + 1) * 32
    checks.check_inception_savings(naive, reduced)
    with pytest.raises(CheckFailed, match="pool branch"):
        checks.check_inception_savings(naive, reduced - 193 * 32)
    with pytest.raises(CheckFailed, match="no projection"):
        checks.check_inception_savings(naive + 193 * 32, reduced)


def test_blueprint_counts_without_allocating_and_runs_when_asked():
    keras.backend.clear_session()
    model = arch.blueprint(arch.resnet18)
    assert keras_trainable(model) == EXPECTED["resnet18"]
    assert arch.depth(model) == DEPTH["resnet18"]
    assert all(w._value is None for w in model.weights)  # nothing allocated yet (Keras' deferred initialisation)
    small = arch.blueprint(arch.resnet_cifar, (1,), (4,), classes=3)
    probs = np.asarray(small(np.zeros((2, 32, 32, 3), np.float32)))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    with pytest.raises(TypeError, match="builder"):
        arch.blueprint("resnet18")
    keras.backend.clear_session()


def test_keras_resnet50_counts_conv_biases_and_moving_statistics_on_top_of_torchvision():
    """keras.applications.ResNet50's 25,636,712 = torchvision's 25,557,032 + conv biases + BN moving mean/variance."""
    model = keras.applications.ResNet50(weights=None)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    biases = sum(layer.filters for layer in convs if layer.use_bias)
    moving = sum(int(np.prod(w.shape)) for layer in model.layers
                 if isinstance(layer, keras.layers.BatchNormalization) for w in layer.non_trainable_weights)
    assert model.count_params() == 25_636_712
    assert (biases, moving) == (26_560, 53_120)
    assert model.count_params() - biases - moving == EXPECTED["resnet50"]
    ours = arch.resnet50()
    assert sum(int(np.prod(w.shape)) for w in ours.trainable_weights) == EXPECTED["resnet50"]
