"""cnnkit.plotting: every figure helper returns a Figure; confusion counts are exact."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

from cnnkit import plotting


def test_plots_return_figures():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    grid = plotting.image_grid(imgs, [0, 1, 2, 0, 1], ["a", "b", "c"], predictions=[0, 1, 1, 0, 1])
    figs = [
        grid,
        plotting.feature_maps(rng.normal(size=(6, 6, 3))),
        plotting.training_curves({"run": {"loss": [2, 1], "val_loss": [2.2, 1.5]}}, metrics=("loss",)),
        plotting.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], ["a", "b", "c"]),
        plotting.channel_histograms(imgs),
    ]
    assert all(isinstance(f, plt.Figure) for f in figs)
    # the grid draws each image it was given, pixel for pixel
    shown = [np.asarray(ax.images[0].get_array()) for ax in grid.axes if ax.images]
    assert len(shown) == 5 and all(np.array_equal(s, im) for s, im in zip(shown, imgs))
    plt.close("all")


def test_confusion_counts_are_exact():
    np.testing.assert_array_equal(plotting.confusion_counts([0, 1, 2, 2], [0, 2, 2, 2], 3),
                                  [[1, 0, 0], [0, 0, 1], [0, 0, 2]])


def test_image_grid_names_a_bad_shape():
    with pytest.raises(ValueError, match=r"images must have shape"):
        plotting.image_grid(np.zeros((2, 2)))


def test_seed_curves_draw_every_run_and_the_mean():
    runs = {"a": [{"loss": [2.0, 1.0]}, {"loss": [3.0, 2.0]}], "b": [{"loss": [1.0, 0.5]}]}
    fig = plotting.seed_curves(runs, metrics=("loss",))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 + 1 + 1 + 1  # every run thin, then each label's mean
    means = [line for line in lines if line.get_label().startswith("a (mean")]
    assert list(means[0].get_ydata()) == [2.5, 1.5]
    with pytest.raises(ValueError, match="runs is empty"):
        plotting.seed_curves({})


def test_each_filter_is_stretched_over_its_own_range():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, 5, 3, 4))
    kernel[..., 1] *= 100                       # a strong filter next to weak ones
    kernel[..., 3] = 0.7                        # a constant filter
    tiles = plotting.normalise_each_filter(kernel)
    assert tiles.shape == (4, 5, 5, 3)
    for i in (0, 1, 2):
        assert tiles[i].min() == 0 and tiles[i].max() == 1
        w = kernel[..., i]
        np.testing.assert_allclose(tiles[i], (w - w.min()) / (w.max() - w.min()))
    np.testing.assert_array_equal(tiles[3], 0.5)
    with pytest.raises(ValueError, match=r"\(F_h, F_w, C_in, K\), got \(5, 5, 3\)"):
        plotting.normalise_each_filter(kernel[..., 0])


def test_filter_tiles_draws_one_tile_per_filter():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 3, 10))
    fig = plotting.filter_tiles(kernel, ncols=4, title="conv1")
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
    assert len(shown) == 10 and len(fig.axes) == 12
    np.testing.assert_allclose(shown[7], plotting.normalise_each_filter(kernel)[7])
    grey = plotting.filter_tiles(kernel[:, :, :1])
    assert np.asarray(grey.axes[0].images[0].get_array()).shape == (3, 3)
    with pytest.raises(ValueError, match="1 or 3 input channels.*got 4"):
        plotting.filter_tiles(np.zeros((3, 3, 4, 2)))
    plt.close("all")


def test_seed_sweep_draws_every_run_as_a_point_and_the_mean_as_a_line():
    panels = {
        "learning rate": {"plain": {0.01: [0.3, 0.4, 0.5], 1.0: [0.1, 0.1, 0.1]}, "BN": {0.01: [0.5], 1.0: [0.45]}},
        "initial scale": {"plain": {0.1: [0.2, 0.2], 10.0: [0.1, 0.3]}},
    }
    fig = plotting.seed_sweep(panels, threshold=0.2)
    lr_ax, scale_ax = fig.axes[:2]
    assert lr_ax.get_xscale() == scale_ax.get_xscale() == "log"
    assert [t.get_text() for t in scale_ax.get_xticklabels()] == ["0.1", "10"]  # the swept values label the axis
    assert lr_ax.get_title(loc="left") == "(a) learning rate" and scale_ax.get_title(loc="left") == "(b) initial scale"
    points = [ln for ln in lr_ax.get_lines() if ln.get_marker() == "o" and ln.get_linestyle() == "None"]
    assert sorted(float(v) for ln in points for v in ln.get_ydata()) == sorted([0.3, 0.4, 0.5, 0.1, 0.1, 0.1, 0.5, 0.45])
    means = [ln for ln in lr_ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2]
    assert [list(np.round(ln.get_ydata(), 6)) for ln in means] == [[0.4, 0.1], [0.5, 0.45]]
    assert any(list(ln.get_ydata()) == [0.2, 0.2] and ln.get_linestyle() == ":" for ln in lr_ax.get_lines())
    # one colour per curve label in every panel, and one legend outside the panels
    assert means[0].get_color() == [ln for ln in scale_ax.get_lines() if ln.get_linestyle() == "-"][0].get_color()
    assert len(fig.legends) == 1 and not lr_ax.get_legend()
    with pytest.raises(ValueError, match="positive x values"):
        plotting.seed_sweep({"rate": {"plain": {0.0: [0.1]}}})
    with pytest.raises(ValueError, match="positive x values"):
        plotting.seed_sweep({"rate": {"plain": {0.1: []}}})
    with pytest.raises(ValueError, match="panels must map"):
        plotting.seed_sweep({})
    plt.close("all")
