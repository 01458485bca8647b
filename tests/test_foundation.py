"""cnnkit.env, cnnkit.pipeline, cnnkit.experiments and cnnkit.plotting."""
import numpy as np
import pytest

import cnnkit as ck
from cnnkit import env, experiments, pipeline, plotting


def test_version_guard_names_the_package_and_range():
    assert env.check_versions({"numpy": "2.4.6", "tensorflow": "2.21.0", "keras": "3.15.1"}) == []
    problems = env.check_versions({"numpy": "1.21.0", "keras": "2.15.0"})
    assert problems == ["numpy 1.21.0 is outside the tested range >=1.26,<3.0",
                        "keras 2.15.0 is outside the tested range >=3.0,<4.0"]


def test_setup_reports_versions_and_fast_mode(capsys, monkeypatch):
    monkeypatch.setenv("CNNKIT_FAST", "1")
    versions = ck.setup(seed=3)
    line = capsys.readouterr().out
    assert f"TensorFlow {versions['tensorflow']}" in line and "fast mode: on" in line
    assert ck.budget(full=10, fast=1) == 1
    monkeypatch.setenv("CNNKIT_FAST", "0")
    assert ck.budget(full=10, fast=1) == 10
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        env.seed_everything(-1)


def test_lazy_submodules():
    assert ck.data.CLASS_NAMES[0] == "airplane"
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ck.nonsense  # noqa: B018


def test_pipeline_keeps_uint8_and_normalises_per_batch():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10)
    batches = list(pipeline.make_dataset(x, y, 4, preprocess="scale"))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    np.testing.assert_allclose(batches[0][0].numpy(), x[:4] / 255.0, rtol=1e-6)
    raw = next(iter(pipeline.make_dataset(x, y, 10, preprocess="raw")))[0].numpy()
    np.testing.assert_array_equal(raw, x.astype(np.float32))
    custom = next(iter(pipeline.make_dataset(x, y, 10, preprocess=lambda b: b - 100.0)))[0].numpy()
    np.testing.assert_allclose(custom, x - 100.0)


def test_pipeline_augmentation_is_seeded_flip_or_shift():
    x = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    y = np.zeros(2, dtype=int)
    a = next(iter(pipeline.make_dataset(x, y, 2, augment=True, seed=1, preprocess="raw")))[0].numpy()
    b = next(iter(pipeline.make_dataset(x, y, 2, augment=True, seed=1, preprocess="raw")))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape
    # every augmented value comes from the same image (a flip and a shift move pixels, never invent them)
    for i in range(2):
        assert set(a[i].ravel()) <= set(x[i].astype(np.float32).ravel())


@pytest.mark.parametrize("kwargs, message", [
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4)}, "x must have rank 4"),
    ({"x": np.zeros((4, 8, 8, 3)), "y": np.zeros(3)}, r"y must have shape \(4,\)"),
    ({"x": np.zeros((4, 8, 8, 3)), "y": np.zeros(4), "batch_size": 0}, "batch_size must be a positive int"),
    ({"x": np.zeros((4, 8, 8, 3)), "y": np.zeros(4), "preprocess": "zscore"}, "preprocess must be"),
])
def test_pipeline_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipeline.make_dataset(**kwargs)


def test_small_cnn_and_training_history():
    model = experiments.small_cnn((16, 16, 3), 4, widths=(8, 8), batch_norm=True, dropout=0.2)
    assert model.output_shape == (None, 4)
    assert not model.get_layer("conv1").use_bias
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 64)
    hist = experiments.train(model, (x, y), (x[:16], y[:16]), epochs=2, batch_size=16)
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(hist)
    assert len(hist["loss"]) == 2 and hist["seconds"] > 0
    runs = experiments.compare({"a": lambda: experiments.small_cnn((16, 16, 3), 4, widths=(4,))},
                               (x, y), (x[:16], y[:16]), epochs=1, batch_size=32)
    assert list(runs) == ["a"]
    with pytest.raises(ValueError, match="unknown optimizer 'adamw2'"):
        experiments.train(model, (x, y), (x, y), epochs=1, optimizer="adamw2")
    with pytest.raises(ValueError, match="per_model names unknown models"):
        experiments.compare({"a": model}, (x, y), (x, y), epochs=1, per_model={"b": {}})


def test_plots_return_figures():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    figs = [
        plotting.image_grid(imgs, [0, 1, 2, 0, 1], ["a", "b", "c"], predictions=[0, 1, 1, 0, 1]),
        plotting.feature_maps(rng.normal(size=(6, 6, 3))),
        plotting.training_curves({"run": {"loss": [2, 1], "val_loss": [2.2, 1.5]}}, metrics=("loss",)),
        plotting.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], ["a", "b", "c"]),
        plotting.channel_histograms(imgs),
    ]
    assert all(isinstance(f, plt.Figure) for f in figs)
    np.testing.assert_array_equal(plotting.confusion_counts([0, 1, 2, 2], [0, 2, 2, 2], 3),
                                  [[1, 0, 0], [0, 0, 1], [0, 0, 2]])
    plt.close("all")
    with pytest.raises(ValueError, match=r"images must have shape"):
        plotting.image_grid(np.zeros((2, 2)))
