"""cnnkit.experiments: the lessons' small CNN, seeded training and side-by-side comparisons."""
import keras  # the oracle: required, never skipped
import numpy as np
import pytest

from cnnkit import experiments


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 64)
    return x, y


def test_small_cnn_layout():
    model = experiments.small_cnn((16, 16, 3), 4, widths=(8, 8), batch_norm=True, dropout=0.2)
    assert model.output_shape == (None, 4)
    assert not model.get_layer("conv1").use_bias
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [8, 8]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.2, 0.2]
    assert model.get_layer("bn1").momentum == 0.99  # Keras' default unless asked
    assert experiments.small_cnn((16, 16, 3), 4, widths=(8,), batch_norm=True, bn_momentum=0.9).get_layer("bn1").momentum == 0.9
    plain = experiments.small_cnn((16, 16, 3), 4, widths=(8,))
    assert plain.get_layer("conv1").use_bias
    assert not any(isinstance(layer, (keras.layers.Dropout, keras.layers.BatchNormalization)) for layer in plain.layers)


def test_small_cnn_flatten_head_keeps_every_position():
    """The flatten head sees h*w*C features: (4*4*8 + 1)*4 head weights on 16x16 images after two poolings."""
    gap = experiments.small_cnn((16, 16, 3), 4, widths=(8, 8), seed=0)
    flat = experiments.small_cnn((16, 16, 3), 4, widths=(8, 8), seed=0, head="flatten")
    assert flat.get_layer("flatten").output.shape == (None, 4 * 4 * 8)
    assert flat.get_layer("classifier").count_params() == (4 * 4 * 8 + 1) * 4
    assert gap.get_layer("classifier").count_params() == (8 + 1) * 4
    reference = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, padding="same"),
                                  keras.layers.MaxPooling2D(2), keras.layers.Conv2D(8, 3, padding="same"),
                                  keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(4)])
    assert flat.count_params() == reference.count_params()
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(flat(x)).sum(axis=1), 1.0, rtol=1e-5)  # softmax rows


def test_training_history_describes_the_trained_model(toy):
    x, y = toy
    model = experiments.small_cnn((16, 16, 3), 4, widths=(8, 8), batch_norm=True, dropout=0.2)
    hist = experiments.train(model, (x, y), (x[:16], y[:16]), epochs=2, batch_size=16)
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(hist)
    assert len(hist["loss"]) == len(hist["val_accuracy"]) == 2 and hist["seconds"] > 0
    # the last validation numbers are those of the final model on the validation images scaled to 0..1
    probs = np.asarray(model(x[:16].astype(np.float32) / 255.0, training=False), np.float64)
    assert hist["val_accuracy"][-1] == pytest.approx(np.mean(probs.argmax(1) == y[:16]))
    cross_entropy = -np.mean(np.log(probs[np.arange(16), y[:16]]))
    assert hist["val_loss"][-1] == pytest.approx(cross_entropy, rel=1e-4)


def test_compare_trains_one_fresh_model_per_builder_with_overrides(toy):
    x, y = toy
    build = lambda: experiments.small_cnn((16, 16, 3), 4, widths=(4,))  # noqa: E731
    runs = experiments.compare({"a": build, "b": build}, (x, y), (x[:16], y[:16]), epochs=1, batch_size=32,
                               per_model={"b": {"epochs": 2}})
    assert list(runs) == ["a", "b"]
    assert len(runs["a"]["loss"]) == 1 and len(runs["b"]["loss"]) == 2
    # same seed, same builder, same data: the first epoch is identical
    assert runs["a"]["loss"][0] == pytest.approx(runs["b"]["loss"][0], rel=1e-5)


@pytest.mark.parametrize("call, error, message", [
    (lambda m, d: experiments.train(m, d, d, epochs=1, optimizer="adamw2"), ValueError, "unknown optimizer 'adamw2'"),
    (lambda m, d: experiments.train(m, d, d, epochs=0), ValueError, r"epochs must be a positive integer \(>= 1\)"),
    (lambda m, d: experiments.train(m, d, d, epochs=1.5), TypeError, "epochs must be a positive integer, got 1.5"),
    (lambda m, d: experiments.train(m, d, d, epochs=1, learning_rate=-1), ValueError, r"learning_rate must be a number in \(0, inf\)"),
    (lambda m, d: experiments.train(m, d, d, epochs=1, batch_size=0), ValueError, "batch_size must be a positive integer"),
    (lambda m, d: experiments.compare({"a": m}, d, d, epochs=1), TypeError, r"builders\['a'\] must be a function"),
    (lambda m, d: experiments.compare({"a": lambda: m}, d, d, epochs=1, per_model={"b": {}}), ValueError,
     "per_model names unknown models"),
    (lambda m, d: experiments.small_cnn(dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\)"),
    (lambda m, d: experiments.small_cnn(widths=(8, 0)), ValueError, r"widths\[1\] must be a positive integer"),
    (lambda m, d: experiments.small_cnn(widths=()), ValueError, "widths must name at least one block"),
    (lambda m, d: experiments.small_cnn(classes=0), ValueError, "classes must be a positive integer"),
    (lambda m, d: experiments.small_cnn(bn_momentum=1.0), ValueError, r"bn_momentum must be a number in \[0, 1\)"),
    (lambda m, d: experiments.small_cnn(head="dense"), ValueError, "head must be 'gap' .* or 'flatten', got 'dense'"),
])
def test_bad_arguments_are_named(toy, call, error, message):
    model = experiments.small_cnn((16, 16, 3), 4, widths=(4,))
    with pytest.raises(error, match=message):
        call(model, toy)


def test_final_gap():
    assert experiments.final_gap({"accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.7]}) == pytest.approx(0.2)


def test_compare_seeds_repeats_compare_with_each_seed(toy):
    x, y = toy
    build = lambda seed: experiments.small_cnn((16, 16, 3), 4, widths=(4,), seed=seed)  # noqa: E731
    runs = experiments.compare_seeds({"a": build, "b": build}, (x, y), (x[:16], y[:16]), seeds=(0, 5, 0 + 1),
                                     epochs=1, batch_size=32)
    assert list(runs) == ["a", "b"] and [len(v) for v in runs.values()] == [3, 3]
    # each round is compare() with that seed: same numbers as calling it directly
    direct = experiments.compare({"a": lambda: build(5)}, (x, y), (x[:16], y[:16]), epochs=1, batch_size=32, seed=5)
    assert runs["a"][1]["loss"] == pytest.approx(direct["a"]["loss"], rel=1e-6)
    assert runs["a"][0]["loss"] == pytest.approx(runs["b"][0]["loss"], rel=1e-6)  # same builder, same seed
    assert runs["a"][0]["loss"] != pytest.approx(runs["a"][1]["loss"], rel=1e-6)  # another seed, another run
    with pytest.raises(ValueError, match=r"seeds must be different from each other, got \[1, 1\]"):
        experiments.compare_seeds({"a": build}, (x, y), (x, y), seeds=(1, 1), epochs=1)
    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        experiments.compare_seeds({"a": build}, (x, y), (x, y), seeds=(), epochs=1)


def test_spread_gives_mean_and_range_of_the_last_epoch():
    runs = {"a": [{"val_accuracy": [0.1, 0.5]}, {"val_accuracy": [0.2, 0.7]}, {"val_accuracy": [0.3, 0.6]}]}
    got = experiments.spread(runs)["a"]
    assert got["values"] == [0.5, 0.7, 0.6]
    assert (got["mean"], got["min"], got["max"]) == (pytest.approx(0.6), 0.5, 0.7)
    assert experiments.spread(runs, epoch=0)["a"]["max"] == 0.3
    with pytest.raises(KeyError, match="runs\\['a'\\] has no 'loss'"):
        experiments.spread(runs, "loss")


def _fit_toy(x, y, compile_step):
    keras.utils.set_random_seed(0)
    model = experiments.small_cnn((16, 16, 3), 4, widths=(8,), seed=0)
    compile_step(model, optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    keras.utils.set_random_seed(0)
    model.fit(x.astype(np.float32) / 255, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    return model.get_weights()


def test_building_the_optimiser_first_changes_no_number(toy):
    x, y = toy
    plain = _fit_toy(x, y, lambda model, **kw: model.compile(**kw))
    built = _fit_toy(x, y, experiments.compile_for_training)
    assert len(plain) == len(built)
    for a, b in zip(plain, built):
        np.testing.assert_array_equal(a, b)


def _live_func_graphs() -> int:
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def _graphs_left_per_model(run) -> int:
    """Live traced graphs added by one more ``run()`` (a model built, trained and deleted)."""
    keras.backend.clear_session()
    run()
    keras.backend.clear_session()
    first = _live_func_graphs()
    run()
    keras.backend.clear_session()
    return _live_func_graphs() - first


def test_a_model_trained_by_the_kit_leaves_no_traced_graph_behind(toy):
    """Keras' own compile + fit leaves the optimiser's initialisation graphs and the training
    step (held by TensorFlow's gradient registry) behind; train() leaves nothing."""
    x, y = toy

    def keras_alone():
        model = experiments.small_cnn((16, 16, 3), 4, widths=(8,), seed=0)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x.astype(np.float32) / 255, y, epochs=1, batch_size=32, verbose=0)

    def the_kit():
        model = experiments.small_cnn((16, 16, 3), 4, widths=(8,), seed=0)
        experiments.train(model, (x, y), (x[:16], y[:16]), epochs=1, batch_size=32)

    assert _graphs_left_per_model(keras_alone) > 0  # the leak guarded against is real in this TensorFlow
    assert _graphs_left_per_model(the_kit) == 0


def test_released_gradients_keep_what_was_registered_before():
    from tensorflow.python.framework import ops

    from cnnkit.env import traced_gradients_released

    entries = ops._gradient_registry._registry
    before = set(entries)
    with traced_gradients_released():
        entries["CustomGradient-kit-test"] = {}
        entries["KitTestOp"] = {}
    try:
        assert "CustomGradient-kit-test" not in entries and "KitTestOp" in entries
        assert before <= set(entries)
    finally:
        entries.pop("KitTestOp", None)


# --------------------------------------------------------------------------- timing a training step


def test_timed_step_is_one_sgd_step_of_keras_own_training(toy):
    """Each timed call is forward, backward and an SGD update: the weights end where Keras' own steps take them."""
    x, y = toy
    timed = experiments.small_cnn((16, 16, 3), 4, widths=(8,), seed=3)
    reference = experiments.small_cnn((16, 16, 3), 4, widths=(8,), seed=3)
    before = [w.copy() for w in timed.get_weights()]
    times = experiments.time_train_step(timed, x, y, (2, 5), repeats=2, learning_rate=0.05)
    reference.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    for b in (2, 5):
        for _ in range(1 + 2):  # one untimed step, then the repeats
            reference.train_on_batch(x[:b].astype(np.float32) / 255.0, y[:b])
    assert any(not np.allclose(a, w) for a, w in zip(before, timed.get_weights()))
    for got, want in zip(timed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert list(times.batch_sizes) == [2, 5] and np.all(times.seconds > 0)
    np.testing.assert_allclose(times.per_example, times.seconds / np.array([2, 5]))


def test_step_times_fit_recovers_overhead_and_cost_per_example():
    sizes = [1, 2, 4, 8, 16, 32, 64]
    exact = experiments.StepTimes.fitted(sizes, [0.003 + 0.0007 * b for b in sizes])
    assert exact.overhead == pytest.approx(0.003) and exact.per_example_cost == pytest.approx(0.0007)
    # per example: 0.0037, 0.00205, ... falling towards 0.0007: best at the largest size, within 25% from b = 16
    assert exact.best_batch == 64 and exact.flat_from(1.25) == 16 and exact.flat_from(1.0) == 64
    bumpy = experiments.StepTimes.fitted([1, 2, 4], [0.004, 0.002, 0.006])
    assert bumpy.best_batch == 2 and bumpy.flat_from() == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_sizes": (1, 128)}, "up to 128 but x holds only 64"),
    ({"batch_sizes": (0, 2)}, r"batch_sizes\[0\]"),
    ({"repeats": 0}, "repeats"),
    ({"learning_rate": -1.0}, "learning_rate"),
])
def test_time_train_step_names_bad_arguments(toy, kwargs, match):
    x, y = toy
    model = experiments.small_cnn((16, 16, 3), 4, widths=(8,))
    with pytest.raises(ValueError, match=match):
        experiments.time_train_step(model, x, y, **{"batch_sizes": (1, 2), **kwargs})


def test_time_train_step_refuses_images_of_another_shape(toy):
    x, y = toy
    with pytest.raises(ValueError, match=r"model expects \(32, 32, 3\)"):
        experiments.time_train_step(experiments.small_cnn(widths=(8,)), x, y, (1,))
    with pytest.raises(ValueError, match="one positive time per batch size"):
        experiments.StepTimes.fitted([1, 2], [0.1])


def test_small_cnn_draws_its_kernels_with_the_initializer_asked_for():
    he = experiments.small_cnn(widths=(8, 16, 64), kernel_initializer="he_normal", seed=3)
    default = experiments.small_cnn(widths=(8, 16, 64), seed=3)
    kernel = he.get_layer("conv3").kernel.numpy()  # (3, 3, 16, 64): fan-in 3 * 3 * 16 = 144
    assert kernel.std() == pytest.approx(np.sqrt(2 / 144), rel=0.05)
    # Glorot's uniform draw has variance 2 / (fan_in + fan_out): a different spread
    assert default.get_layer("conv3").kernel.numpy().std() == pytest.approx(np.sqrt(2 / (144 + 576)), rel=0.05)
    assert he.get_layer("classifier").kernel.numpy().std() == pytest.approx(np.sqrt(2 / 64), rel=0.2)


def _features(model, x):
    """The global-average-pooled features of a small_cnn in training mode (batch statistics), shape (N, width)."""
    return np.asarray(keras.Model(model.inputs[0], model.get_layer("gap").output)(x, training=True), np.float64)


def test_scale_initial_weights_scales_every_kernel_and_nothing_else():
    model = experiments.small_cnn((16, 16, 3), 4, widths=(4, 8), batch_norm=True, seed=1)
    before = {w.path: w.numpy().copy() for w in model.weights}
    assert experiments.scale_initial_weights(model, 10) is model
    for w in model.weights:
        expected = before[w.path] * (10 if w.path.endswith("kernel") else 1)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, err_msg=w.path)
    assert sum(w.path.endswith("kernel") for w in model.weights) == 3  # two convolutions and the head


@pytest.mark.parametrize("batch_norm", [True, False])
def test_batch_norm_cancels_the_initial_scale_and_the_plain_network_multiplies_it(batch_norm):
    """With BN after each convolution the features do not change; without, 3 layers of ReLU give factor^3."""
    x = np.random.default_rng(2).normal(size=(32, 16, 16, 3)).astype(np.float32)
    build = lambda: experiments.small_cnn((16, 16, 3), 4, widths=(4, 8, 8), batch_norm=batch_norm, seed=4)  # noqa: E731
    reference = _features(build(), x)
    for factor in (0.5, 10.0):
        scaled = _features(experiments.scale_initial_weights(build(), factor), x)
        expected = reference if batch_norm else reference * factor**3  # biases start at zero; ReLU is homogeneous
        # BN adds epsilon = 0.001 to the variance, so its cancellation is exact only up to about 1e-3
        np.testing.assert_allclose(scaled, expected, rtol=1e-2 if batch_norm else 1e-4,
                                   atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("model, factor, error, message", [
    ("cnn", 0, ValueError, r"factor must be a number in \(0, inf\), got 0"),
    ("cnn", -2.0, ValueError, r"factor must be a number in \(0, inf\), got -2.0"),
    ("cnn", float("nan"), ValueError, "factor must be a number"),
    ("cnn", "10", TypeError, "factor must be a number, got '10'"),
    ("cnn", True, TypeError, "factor must be a number, got True"),
    ("array", 2.0, TypeError, "model must be a Keras model, got ndarray"),
    ("no kernels", 2.0, ValueError, "has no Conv2D or Dense layer"),
])
def test_scale_initial_weights_names_bad_arguments(model, factor, error, message):
    models = {
        "cnn": lambda: experiments.small_cnn((16, 16, 3), 4, widths=(4,)),
        "array": lambda: np.ones((3, 3)),
        "no kernels": lambda: keras.Sequential([keras.Input((4,)), keras.layers.ReLU()], name="relu_only"),
    }
    target = models[model]()
    before = [w.numpy().copy() for w in getattr(target, "weights", [])]
    with pytest.raises(error, match=message):
        experiments.scale_initial_weights(target, factor)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, getattr(target, "weights", [])))


def test_named_optimizer_makes_the_optimiser_each_name_stands_for():
    import keras

    from cnnkit.experiments import named_optimizer

    momentum = named_optimizer("momentum", 0.03)
    assert isinstance(momentum, keras.optimizers.SGD) and momentum.momentum == 0.9 and not momentum.nesterov
    assert float(momentum.learning_rate) == pytest.approx(0.03)
    assert named_optimizer("Nesterov", 0.1).nesterov
    assert isinstance(named_optimizer("rmsprop", 1e-3), keras.optimizers.RMSprop)
    assert named_optimizer("adam", 1e-3) is not named_optimizer("adam", 1e-3)  # a fresh one every call
    given = keras.optimizers.Adam(0.5)
    assert named_optimizer(given, 1e-3) is given
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'; expected one of adam, sgd, momentum"):
        named_optimizer("adagrad", 1e-3)


def test_sample_model_is_the_slides_model_with_its_extras_switchable():
    """With its defaults, the tutorial's 2.4 model as the exercise checks count it; each switch removes or swaps layers."""
    from cnnkit.checks.batchnorm_dropout import keras_counts, reference_sample_model

    def kinds(model):
        return [type(layer).__name__ for layer in model.layers]

    full = experiments.sample_model()
    assert kinds(full) == kinds(reference_sample_model()) and keras_counts(full) == keras_counts(reference_sample_model())
    assert keras_counts(full) == (526_442, 288)  # 448 + 32 + 524,416 + 256 + 1,290 trainable; 32 + 256 moving statistics
    plain = experiments.sample_model(batch_norm=False, dropout=0.0)
    assert kinds(plain) == ["Conv2D", "ReLU", "MaxPooling2D", "Flatten", "Dense", "ReLU", "Dense"]
    assert [layer.momentum for layer in experiments.sample_model(bn_momentum=0.9).layers
            if isinstance(layer, keras.layers.BatchNormalization)] == [0.9, 0.9]
    tanh = experiments.sample_model(batch_norm=False, dropout=0.0, activation="tanh")
    assert kinds(tanh)[1] == "Activation" and tanh.layers[1].activation.__name__ == "tanh"
    same = [np.array_equal(a, b) for a, b in zip(experiments.sample_model(seed=3).get_weights(),
                                                  experiments.sample_model(seed=3).get_weights())]
    assert all(same)
    with pytest.raises(ValueError, match="dropout"):
        experiments.sample_model(dropout=1.5)
    with pytest.raises(ValueError, match="conv_filters"):
        experiments.sample_model(conv_filters=0)
