"""cnnkit.trajectory: the principal plane of a training path, against an eigen-decomposition; the loss on that plane."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnnkit import landscape_plots, loss_slices, trajectory  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def eigen_reference(points, final):
    """Eigenvalues (descending) and eigenvectors of the second-moment matrix sum_i m_i m_i^T, m_i = w_i - w_f."""
    m = np.asarray(points, dtype=np.float64) - final
    values, vectors = np.linalg.eigh(m.T @ m)
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


# ---------------------------------------------------------------- PCA of a trajectory


def test_points_on_a_line_need_one_direction():
    rng = np.random.default_rng(0)
    final = rng.normal(size=7)
    u = rng.normal(size=7)
    u /= np.linalg.norm(u)
    t = np.array([-3.0, -2.2, -1.5, -0.7, -0.2, 0.0])
    pca = trajectory.trajectory_pca(final + t[:, None] * u, final)
    assert pca.ratios[0] == pytest.approx(1.0, abs=1e-12)
    assert pca.ratios[1] == pytest.approx(0.0, abs=1e-12)
    (d1,), (d2,) = pca.directions
    np.testing.assert_allclose(abs(d1 @ u), 1.0, atol=1e-12)
    assert abs(d1 @ d2) < 1e-12 and np.linalg.norm(d2) == pytest.approx(1.0)  # any unit vector orthogonal to d1
    np.testing.assert_allclose(pca.coords[:, 0], t, atol=1e-12)  # the start at -3: d1 points along +u
    np.testing.assert_allclose(pca.coords[:, 1], 0.0, atol=1e-12)


def test_points_in_a_known_plane_match_the_eigen_decomposition():
    rng = np.random.default_rng(1)
    p = 12
    final = rng.normal(size=p)
    basis, _ = np.linalg.qr(rng.normal(size=(p, 2)))  # an orthonormal pair spanning the plane
    ab = np.stack([np.linspace(-4, 0, 30), 1.5 * np.sin(np.linspace(0, 3, 30))], axis=1)
    points = final + ab @ basis.T
    pca = trajectory.trajectory_pca(points, final)
    values, vectors = eigen_reference(points, final)
    np.testing.assert_allclose(pca.ratios, values[:2] / values.sum(), rtol=1e-10)
    assert pca.explained == pytest.approx(1.0, abs=1e-12)
    d = np.stack([pca.directions[0][0], pca.directions[1][0]])
    for k in range(2):
        np.testing.assert_allclose(abs(d[k] @ vectors[:, k]), 1.0, atol=1e-10)  # same axis, up to sign
    np.testing.assert_allclose(d @ d.T, np.eye(2), atol=1e-12)
    # the plane is the plane the points were drawn in, and the coordinates reproduce the points
    np.testing.assert_allclose(basis @ (basis.T @ d.T), d.T, atol=1e-10)
    np.testing.assert_allclose(final + pca.coords @ d, points, atol=1e-10)
    assert np.all(pca.coords[0] <= 0)  # training runs towards +


def test_a_noisy_trajectory_matches_the_eigen_decomposition_and_its_ratios_are_a_share():
    rng = np.random.default_rng(2)
    final = rng.normal(size=9)
    points = final + np.cumsum(rng.normal(size=(15, 9)) * np.linspace(3, 0.1, 9), axis=0)[::-1]
    pca = trajectory.trajectory_pca(points.astype(np.float32), final)
    values, vectors = eigen_reference(points.astype(np.float32), final)
    np.testing.assert_allclose(pca.singular_values ** 2, values[:len(pca.singular_values)], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(pca.ratios, values[:2] / values.sum(), rtol=1e-8)
    assert 0 < pca.ratios[1] <= pca.ratios[0] and pca.explained < 1
    for k in range(2):
        np.testing.assert_allclose(abs(pca.directions[k][0] @ vectors[:, k]), 1.0, atol=1e-8)


def test_directions_are_laid_out_like_the_weights():
    rng = np.random.default_rng(3)
    final = [rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4), rng.normal(size=(4, 5))]
    flat = trajectory.flatten_weights(final)
    points = flat + rng.normal(size=(6, flat.size))
    pca = trajectory.trajectory_pca(points, final)
    for d in pca.directions:
        assert [a.shape for a in d] == [w.shape for w in final]
        assert np.linalg.norm(trajectory.flatten_weights(d)) == pytest.approx(1.0)
    projected = (points - flat) @ np.stack([trajectory.flatten_weights(d) for d in pca.directions]).T
    np.testing.assert_allclose(pca.coords, projected, atol=1e-12)


def test_pca_argument_checks():
    final = [np.zeros((2, 2)), np.zeros(3)]
    with pytest.raises(ValueError, match=r"final holds 7 numbers, points has shape \(4, 6\)"):
        trajectory.trajectory_pca(np.ones((4, 6)), final)
    with pytest.raises(ValueError, match=r"points must have rank 2 \(checkpoints n, weights P\), got shape \(7,\)"):
        trajectory.trajectory_pca(np.ones(7), final)
    with pytest.raises(ValueError, match="at least 2 checkpoints, got 1"):
        trajectory.trajectory_pca(np.ones((1, 7)), final)
    with pytest.raises(ValueError, match="points contains 1 NaN"):
        trajectory.trajectory_pca(np.array([[np.nan] + [1.0] * 6, [1.0] * 7]), final)
    with pytest.raises(ValueError, match="every checkpoint equals final"):
        trajectory.trajectory_pca(np.zeros((3, 7)), final)
    with pytest.raises(ValueError, match="final must hold at least one weight array"):
        trajectory.trajectory_pca(np.ones((3, 7)), [])


def test_plane_grid_covers_the_path_and_the_origin():
    coords = np.array([[-4.0, -1.0], [-2.0, 0.5], [0.0, 0.0]])
    alpha, beta = trajectory.plane_grid(coords, 5, margin=0.25)
    np.testing.assert_allclose(alpha, np.linspace(-5.0, 1.0, 5))
    np.testing.assert_allclose(beta, np.linspace(-1.375, 0.875, 5))
    with pytest.raises(ValueError, match=r"coords must have shape \(n, 2\)"):
        trajectory.plane_grid(np.zeros((3, 3)), 5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        trajectory.plane_grid(coords, 0)


# ---------------------------------------------------------------- a real network


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained for a few steps with its trajectory recorded."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    initial = trajectory.flatten_weights(v.numpy() for v in model.trainable_variables)
    recorder = trajectory.WeightTrajectory(every=3)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[recorder])
    return model, x, y, recorder, initial


def test_recorder_keeps_the_initial_every_kth_and_the_final_weights(trained):
    model, _, _, recorder, initial = trained
    assert recorder.steps == [0, 3, 6, 9, 10]  # 2 epochs of 5 batches: the end is recorded once more
    points = recorder.array()
    assert points.shape == (5, sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    np.testing.assert_allclose(points[0], initial)
    np.testing.assert_allclose(points[-1], trajectory.flatten_weights(v.numpy() for v in model.trainable_variables))
    assert not np.allclose(points[0], points[-1])
    with pytest.raises(ValueError, match="no weights recorded yet"):
        trajectory.WeightTrajectory(every=2).array()
    with pytest.raises(ValueError, match="every must be a positive integer"):
        trajectory.WeightTrajectory(every=0)


def test_loss_on_plane_origin_is_keras_evaluate_and_weights_are_restored(trained):
    model, x, y, recorder, _ = trained
    final = [v.numpy().copy() for v in model.trainable_variables]
    pca = trajectory.trajectory_pca(recorder.array(), final)
    alpha, beta = np.array([-1.0, 0.0, 0.5]), np.array([0.0, 0.25])
    plane = loss_slices.loss_on_plane(model, x, y, pca.directions, alpha, beta, batch_size=16)
    assert plane.loss.shape == plane.error.shape == (3, 2)
    expected = model.evaluate(x, y, batch_size=40, verbose=0)
    assert plane.loss[1, 0] == pytest.approx(expected, rel=1e-5)
    assert plane.center_loss == pytest.approx(expected, rel=1e-5)
    for v, w in zip(model.trainable_variables, final):
        np.testing.assert_array_equal(v.numpy(), w)
    # another point of the plane: the loss of the weights w_f + a d1 + b d2 set by hand
    moved = [w + 0.5 * d1 + 0.25 * d2 for w, d1, d2 in zip(final, *pca.directions)]
    model.set_weights(moved)
    assert plane.loss[2, 1] == pytest.approx(model.evaluate(x, y, batch_size=40, verbose=0), rel=1e-5)
    model.set_weights(final)
    fig = landscape_plots.plot_trajectory_plane(plane, pca, title="tiny")
    assert len(fig.axes) == 2 and fig.dpi >= 100  # the plane and its colour bar
    plt.close(fig)


def test_loss_on_plane_restores_the_weights_when_evaluation_fails(trained):
    model, x, y, recorder, _ = trained
    final = [v.numpy().copy() for v in model.trainable_variables]
    pca = trajectory.trajectory_pca(recorder.array(), final)
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="label value of 7"):
        # a label out of range for 3 classes makes the loss fail after the weights have been moved
        loss_slices.loss_on_plane(model, x, np.full(len(x), 7), pca.directions, [0.5], [0.5])
    for v, w in zip(model.trainable_variables, final):
        np.testing.assert_array_equal(v.numpy(), w)


def test_loss_on_plane_argument_checks(trained):
    model, x, y, recorder, _ = trained
    final = [v.numpy() for v in model.trainable_variables]
    pca = trajectory.trajectory_pca(recorder.array(), final)
    d1, d2 = pca.directions
    with pytest.raises(ValueError, match="directions must be a pair"):
        loss_slices.loss_on_plane(model, x, y, [d1], [0.0], [0.0])
    with pytest.raises(ValueError, match=r"directions\[1\] must be a list of 4 arrays"):
        loss_slices.loss_on_plane(model, x, y, [d1, d2[:3]], [0.0], [0.0])
    with pytest.raises(ValueError, match=r"directions\[0\]\[2\] must have the shape of trainable weight 2"):
        loss_slices.loss_on_plane(model, x, y, [[*d1[:2], d1[2][:-1], d1[3]], d2], [0.0], [0.0])
    with pytest.raises(ValueError, match="alpha must have rank 1"):
        loss_slices.loss_on_plane(model, x, y, pca.directions, [[0.0]], [0.0])
    with pytest.raises(ValueError, match="beta contains 1 NaN"):
        loss_slices.loss_on_plane(model, x, y, pca.directions, [0.0], [np.nan])
    with pytest.raises(ValueError, match=r"y must have shape \(40,\) to match x, got \(39,\)"):
        loss_slices.loss_on_plane(model, x, y[:-1], pca.directions, [0.0], [0.0])


def test_plot_beside_the_random_slice_shares_one_colour_scale(trained):
    model, x, y, recorder, _ = trained
    final = [v.numpy() for v in model.trainable_variables]
    pca = trajectory.trajectory_pca(recorder.array(), final)
    alpha, beta = trajectory.plane_grid(pca.coords, 4)
    plane = loss_slices.loss_on_plane(model, x, y, pca.directions, alpha, beta)
    random_slice = loss_slices.loss_slice(model, x, y, steps=3, span=0.5)
    fig = landscape_plots.plot_trajectory_plane(plane, pca, random_slice)
    assert len(fig.axes) == 3
    assert "PC 1" in fig.axes[1].get_xlabel() and f"{pca.ratios[0]:.1%}" in fig.axes[1].get_xlabel()
    assert all(ax.get_title() for ax in fig.axes[:2])
    assert fig.legends and not fig.axes[1].get_legend()  # the legend is the figure's, off the panels
    plt.close(fig)
    with pytest.raises(ValueError, match="zclip must be above the lowest loss"):
        landscape_plots.plot_trajectory_plane(plane, pca, zclip=-1.0)
