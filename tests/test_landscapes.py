"""cnnkit.landscapes: derivatives against TensorFlow autodiff and finite differences, stationary points, plots, loss slices."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnnkit import landscapes as L  # noqa: E402
from cnnkit import loss_slices  # noqa: E402
from cnnkit import optim  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NAMES = sorted(L.LANDSCAPES)


def random_points(fn, n, seed):
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = fn.bounds
    return np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], axis=1)


@pytest.fixture(scope="module")
def tf():
    import tensorflow as _tf

    return _tf


# ---------------------------------------------------------------- derivatives


@pytest.mark.parametrize("name", NAMES)
def test_gradient_and_hessian_match_tensorflow_autodiff(tf, name):
    fn = L.LANDSCAPES[name]()
    pts = random_points(fn, 50, seed=1)
    x = tf.Variable(pts[:, 0])
    y = tf.Variable(pts[:, 1])
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            f = tf.reduce_sum(fn.expression(x, y))  # the same formula, evaluated on float64 tensors
        gx, gy = inner.gradient(f, [x, y])
    hxx, hxy = outer.gradient(gx, [x, y])
    hyx, hyy = outer.gradient(gy, [x, y])
    np.testing.assert_allclose(fn.value(pts), fn.expression(pts[:, 0], pts[:, 1]))
    np.testing.assert_allclose(fn.gradient(pts), np.stack([gx.numpy(), gy.numpy()], 1), rtol=1e-12, atol=1e-10)
    H = fn.hessian(pts)
    zero = np.zeros(len(pts))
    as_arr = lambda t: zero if t is None else t.numpy()  # noqa: E731 (a constant second derivative)
    np.testing.assert_allclose(H[:, 0, 0], as_arr(hxx), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(H[:, 0, 1], as_arr(hxy), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(H[:, 1, 0], as_arr(hyx), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(H[:, 1, 1], as_arr(hyy), rtol=1e-12, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(NAMES), u=st.floats(0, 1), v=st.floats(0, 1))
def test_derivatives_match_finite_differences(name, u, v):
    fn = L.LANDSCAPES[name]()
    (x0, x1), (y0, y1) = fn.bounds
    p = np.array([x0 + u * (x1 - x0), y0 + v * (y1 - y0)])
    g = fn.gradient(p)
    scale = 1 + np.abs(g).max()
    np.testing.assert_allclose(L.numerical_gradient(fn, p), g, atol=1e-6 * scale)
    H = fn.hessian(p)
    np.testing.assert_allclose(L.numerical_hessian(fn.gradient, p), H, atol=1e-5 * (1 + np.abs(H).max()))
    np.testing.assert_array_equal(H, np.swapaxes(H, -1, -2))


@pytest.mark.parametrize("name", NAMES)
def test_vectorised_over_grids(name):
    fn = L.LANDSCAPES[name]()
    X, Y, Z = fn.grid(7)
    P = np.stack([X, Y], -1)
    assert Z.shape == (7, 7) and fn.gradient(P).shape == (7, 7, 2) and fn.hessian(P).shape == (7, 7, 2, 2)
    i, j = 3, 5
    assert Z[i, j] == pytest.approx(float(fn.value([X[i, j], Y[i, j]])))
    np.testing.assert_allclose(fn.hessian(P)[i, j], fn.hessian(P[i, j]))
    assert fn(P[i, j]) == fn.value(P[i, j])


def test_points_must_have_two_coordinates():
    with pytest.raises(ValueError, match=r"p must have shape \(\.\.\., 2\).*got shape \(3,\)"):
        L.bowl().value([1.0, 2.0, 3.0])


def test_parameters_checked():
    with pytest.raises(ValueError, match=r"condition must be a number in \(0, inf\), got -3"):
        L.ravine(-3)
    with pytest.raises(ValueError, match=r"bounds must be \(\(x_min, x_max\), \(y_min, y_max\)\)"):
        L.bowl().grid(5, bounds=(1, 2))
    with pytest.raises(ValueError, match="bounds must have min < max"):
        L.bowl().grid(5, bounds=((1, 0), (0, 1)))


# ---------------------------------------------------------------- stationary points


@pytest.mark.parametrize("H, kind", [
    ([[2.0, 0.0], [0.0, 3.0]], "minimum"),
    ([[-1.0, 0.0], [0.0, -4.0]], "maximum"),
    ([[2.0, 0.0], [0.0, -2.0]], "saddle"),
    ([[1.0, 2.0], [2.0, 1.0]], "saddle"),        # positive diagonal, eigenvalues 3 and -1
    ([[-1.0, -2.0], [-2.0, -1.0]], "saddle"),
    ([[2.0, 1.0], [1.0, 2.0]], "minimum"),
    ([[4.0, 2.0], [2.0, 1.0]], "degenerate"),    # eigenvalues 5 and 0
    ([[0.0, 0.0], [0.0, 0.0]], "degenerate"),
    ([[1.0, 0.0], [0.0, 0.0]], "degenerate"),
    (np.diag([1.0, 2.0, 3.0]), "minimum"),
    (np.diag([1.0, 0.0, -3.0]), "saddle"),       # a zero eigenvalue does not hide opposite signs
    ([[5.0]], "minimum"),
])
def test_classify(H, kind):
    assert L.classify(H) == kind


@settings(max_examples=40, deadline=None)
@given(a=st.floats(-5, 5), b=st.floats(-5, 5), theta=st.floats(0, np.pi))
def test_classify_is_rotation_invariant(a, b, theta):
    """Rotating the axes changes the entries, not the eigenvalues: the kind must stay."""
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s], [s, c]])
    D = np.diag([a, b])
    assert L.classify(R @ D @ R.T) == L.classify(D)


def test_classify_argument_checks():
    with pytest.raises(ValueError, match=r"hessian must be a square \(d, d\) matrix, got shape \(2, 3\)"):
        L.classify(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="hessian must have rank 2"):
        L.classify(np.zeros(3))
    with pytest.raises(ValueError, match="hessian must be symmetric"):
        L.classify([[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="NaN or infinity"):
        L.classify([[np.nan, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("name, counts", [
    ("bowl", {"minimum": 1}),
    ("ravine", {"minimum": 1}),
    ("saddle", {"saddle": 1}),
    ("wells", {"minimum": 4, "saddle": 4, "maximum": 1}),
    ("rosenbrock", {"minimum": 1}),
    ("monkey_saddle", {"degenerate": 1}),
])
def test_stationary_points_found_and_classified(name, counts):
    fn = L.LANDSCAPES[name]()
    points = L.stationary_points(fn)
    got = {}
    for s in points:
        got[s.kind] = got.get(s.kind, 0) + 1
        assert np.linalg.norm(fn.gradient(s.point)) <= 1e-10
        assert s.kind == L.classify(fn.hessian(s.point))
        assert s.value == pytest.approx(float(fn.value(s.point)))
    assert got == counts
    if fn.minimum is not None:  # the lowest point found is the known global minimum
        np.testing.assert_allclose(points[0].point, fn.minimum, atol=1e-9)
        assert points[0].kind == "minimum"


def test_wells_minima_have_different_depths():
    fn = L.wells()
    minima = [s for s in L.stationary_points(fn) if s.kind == "minimum"]
    values = sorted(s.value for s in minima)
    assert values[0] < values[1] - 0.1  # one global, three merely local
    # gradient descent started in another basin stays in its local minimum
    path = optim.minimize(optim.GD(0.05), fn.gradient, [0.8, 0.8], 300)
    assert np.all(path[-1] > 0) and fn.value(path[-1]) > values[0] + 0.1


def test_gd_stalls_near_the_saddle_along_its_stable_axis():
    fn = L.saddle()
    on_axis = optim.minimize(optim.GD(0.1), fn.gradient, [1.5, 0.0], 100)
    off_axis = optim.minimize(optim.GD(0.1), fn.gradient, [1.5, 1e-6], 100)
    assert np.linalg.norm(on_axis[-1]) < 1e-4  # converges to the saddle point
    assert abs(off_axis[-1, 1]) > 1.0  # a tiny push along y escapes


def test_stationary_points_window():
    fn = L.wells()
    right = L.stationary_points(fn, bounds=((0.5, 1.8), (-1.8, 1.8)))
    assert len(right) == 3 and all(s.point[0] > 0.5 for s in right)


def test_values_along_and_first_step_below():
    fn = L.bowl()
    path = optim.minimize(optim.GD(0.5), fn.gradient, [2.0, 0.0], 5)
    vals = L.values_along(fn, path)
    np.testing.assert_allclose(vals, 2.0 * 0.25 ** np.arange(6))
    assert L.first_step_below(vals, 0.01) == 4
    assert L.first_step_below(vals, 1e-9) is None
    assert L.settle_step([5.0, 0.5, 2.0, 0.5, 0.1], 1.0) == 3  # dipped at 1, bounced, settled at 3
    assert L.settle_step([0.5, 0.1], 1.0) == 0
    assert L.settle_step([0.5, 2.0], 1.0) is None
    assert L.settle_step([2.0, np.nan], 1.0) is None
    blown = L.values_along(fn, np.array([[1.0, 1.0], [np.inf, 0.0]]))
    assert np.isnan(blown[1])


# ---------------------------------------------------------------- plots


def test_contour_plot_draws_paths_points_and_legend():
    fn = L.wells()
    paths = {"GD": optim.minimize(optim.GD(0.05), fn.gradient, [0.1, 1.5], 40),
             "Adam": optim.minimize(optim.Adam(0.1), fn.gradient, [0.1, 1.5], 40)}
    fig = L.contour_plot(fn, paths, points=L.stationary_points(fn))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["GD", "Adam", "minimum", "saddle", "maximum"]
    assert ax.get_xlim() == fn.bounds[0]
    plt.close(fig)


def test_contour_plot_log_levels_and_surface():
    fn = L.rosenbrock()
    path = optim.minimize(optim.Adam(0.05), fn.gradient, [-1.5, 2.0], 50)
    fig = L.contour_plot(fn, {"Adam": path})
    assert fig.axes[0].get_title().startswith("Rosenbrock")
    plt.close(fig)
    fig = L.surface_plot(fn, {"Adam": path}, zclip=200)
    assert fig.axes[0].name == "3d"
    plt.close(fig)


def test_contour_plot_rejects_bad_path():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"path 'x' must have shape \(steps \+ 1, 2\)"):
        L.contour_plot(L.bowl(), {"x": np.zeros((2, 3, 2))}, ax=ax)
    plt.close(fig)


# ---------------------------------------------------------------- a real network's loss


def test_filter_normalized_directions():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4), rng.normal(size=(4, 5)) * 10]
    d1, d2 = L.filter_normalized_directions(weights, seed=3)
    for d in (d1, d2):
        np.testing.assert_allclose(np.linalg.norm(d[0].reshape(-1, 4), axis=0),
                                   np.linalg.norm(weights[0].reshape(-1, 4), axis=0))
        np.testing.assert_allclose(np.linalg.norm(d[2], axis=0), np.linalg.norm(weights[2], axis=0))
        np.testing.assert_array_equal(d[1], 0.0)  # biases are not moved
    assert not np.allclose(d1[0], d2[0])
    again = L.filter_normalized_directions(weights, seed=3)
    np.testing.assert_array_equal(again[0][0], d1[0])


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    return model, x, y


def test_loss_slice_center_matches_keras_and_weights_restored(tiny_model):
    import keras

    model, x, y = tiny_model
    before = [v.numpy().copy() for v in model.trainable_variables]
    sl = loss_slices.loss_slice(model, x, y, steps=3, span=0.5, seed=1, batch_size=16)
    assert sl.loss.shape == sl.error.shape == (3, 3)
    np.testing.assert_allclose(sl.alpha, [-0.5, 0.0, 0.5])
    expected = float(keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean())
    assert sl.loss[1, 1] == pytest.approx(expected, rel=1e-5)
    assert sl.center_loss == pytest.approx(expected, rel=1e-5)
    accuracy = float(np.mean(np.argmax(model(x).numpy(), -1) == y))
    assert sl.error[1, 1] == pytest.approx(1 - accuracy)
    for v, w in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), w)
    assert np.ptp(sl.loss) > 0  # the loss does change along the directions
    fig = L.plot_loss_slice(sl, title="tiny")
    assert len(fig.axes) >= 3
    plt.close(fig)


def test_loss_slice_argument_checks(tiny_model):
    model, x, y = tiny_model
    with pytest.raises(ValueError, match=r"y must have shape \(40,\) to match x, got \(39,\)"):
        loss_slices.loss_slice(model, x, y[:-1], steps=3)
    with pytest.raises(ValueError, match=r"span must be a number in \(0, inf\), got 0"):
        loss_slices.loss_slice(model, x, y, steps=3, span=0)


def test_loss_line_uses_the_first_slice_direction(tiny_model):
    model, x, y = tiny_model
    alpha, loss, error = loss_slices.loss_line(model, x, y, steps=3, span=0.5, seed=1)
    sl = loss_slices.loss_slice(model, x, y, steps=3, span=0.5, seed=1)
    np.testing.assert_allclose(alpha, sl.alpha)
    np.testing.assert_allclose(loss, sl.loss[:, 1], rtol=1e-5)  # beta = 0 column of the slice
    np.testing.assert_allclose(error, sl.error[:, 1])


def test_landscapes_stays_numpy_only_and_the_keras_functions_live_in_loss_slices():
    """``cnnkit.landscapes`` imports no Keras and offers no Keras name; the lesson imports cnnkit.loss_slices."""
    import subprocess
    import sys

    code = ("import sys, cnnkit.landscapes as L; before = 'keras' in sys.modules; "
            "print(before, any(hasattr(L, n) for n in ('loss_slice', 'loss_line', 'LossSlice')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert callable(loss_slices.loss_slice) and callable(loss_slices.loss_line)
    with pytest.raises(AttributeError, match="cnnkit.landscapes.*no attribute 'loss_surface'"):
        L.loss_surface  # noqa: B018
