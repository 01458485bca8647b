"""cnnkit.noisy_descent: example losses around a test function, their mini-batch noise, and where descent ends."""
import numpy as np
import pytest

from cnnkit import landscapes as L
from cnnkit import noisy_descent as nd
from cnnkit import optim


@pytest.fixture(scope="module")
def wells():
    return L.wells()


@pytest.fixture(scope="module")
def minima(wells):
    return np.array([s.point for s in L.stationary_points(wells) if s.kind == "minimum"])


@pytest.fixture(scope="module")
def examples(wells):
    return nd.tilted_examples(wells, 50, 2.0, seed=4)


def test_examples_average_to_the_function(wells, examples):
    points = np.random.default_rng(0).uniform(-1.5, 1.5, (20, 2))
    np.testing.assert_allclose(examples.value(points), wells.value(points), atol=1e-12)
    np.testing.assert_allclose(examples.gradient(points), wells.gradient(points), atol=1e-12)
    # one example: the surface plus its own tilt, value and gradient
    np.testing.assert_allclose(examples.value(points, [7]), wells.value(points) + points @ examples.tilts[7])
    np.testing.assert_allclose(examples.gradient(points, [7]), wells.gradient(points) + examples.tilts[7])
    assert examples.n == 50 and examples.sigma2 == pytest.approx(np.mean(np.sum(examples.tilts ** 2, 1)))


def test_measured_noise_follows_the_formula(examples):
    for b in (1, 5, 25):
        assert nd.measured_noise(examples, b, draws=4000, seed=1) == pytest.approx(nd.predicted_noise(examples, b),
                                                                                 rel=0.1)
    assert nd.predicted_noise(examples, 50) == 0 and nd.measured_noise(examples, 50, draws=10) < 1e-25
    # a larger spread, four times the variance
    wider = nd.tilted_examples(examples.fn, 50, 4.0, seed=4)
    assert nd.predicted_noise(wider, 5) == pytest.approx(4 * nd.predicted_noise(examples, 5))


def test_full_batch_descent_is_plain_gradient_descent(wells, examples):
    starts = np.array([[1.4, 1.3], [-0.4, 1.2], [0.3, -0.2]])
    ends = nd.minibatch_descent(examples, starts, 50, np.full(200, 0.05), seeds=(0, 1))
    assert ends.shape == (2, 3, 2)
    for j, s in enumerate(starts):
        gd = optim.minimize(optim.GD(0.05), wells.gradient, s, 200)[-1]
        np.testing.assert_allclose(ends[0, j], gd, atol=1e-12)
        np.testing.assert_allclose(ends[1, j], gd, atol=1e-12)  # no noise: the seed does not matter


def test_noiseless_descent_from_inside_a_well_ends_in_its_minimum(examples, minima):
    offsets = np.array([[0.25, -0.2], [-0.2, 0.25], [0.15, 0.15]])
    for k, m in enumerate(minima):
        ends = nd.minibatch_descent(examples, m + offsets, 50, nd.geometric_rates(0.05, 0.01, 400))
        where, distance = nd.nearest_minimum(ends, minima)
        assert np.all(where == k) and np.all(distance < 1e-6)


def test_small_batches_are_noisy_and_seeded(examples, minima):
    starts = minima + 0.1
    rates = np.full(300, 0.02)
    one = nd.minibatch_descent(examples, starts, 1, rates, seeds=(3, 4))
    again = nd.minibatch_descent(examples, starts, 1, rates, seeds=(3,))
    np.testing.assert_array_equal(one[0], again[0])
    assert not np.allclose(one[0], one[1])
    exact = nd.minibatch_descent(examples, starts, 50, rates)
    assert np.all(np.linalg.norm(one - exact, axis=-1) > 1e-4)


def test_paths_start_at_the_starts_and_end_at_the_result(examples):
    starts = np.array([[1.0, 1.0], [-1.0, 0.5]])
    rates = nd.geometric_rates(0.05, 0.005, 30)
    paths = nd.minibatch_descent(examples, starts, 4, rates, seeds=(0, 2), return_paths=True)
    assert paths.shape == (31, 2, 2, 2)
    np.testing.assert_array_equal(paths[0, 1], starts)
    np.testing.assert_array_equal(paths[-1], nd.minibatch_descent(examples, starts, 4, rates, seeds=(0, 2)))


def test_strong_noise_early_then_less_finds_the_global_minimum_more_often(examples, wells, minima):
    """The lesson's claim in small: starts that plain descent leaves in the shallowest well, shaken by b = 1."""
    loud = nd.tilted_examples(wells, 200, 5.0, seed=0)
    starts = minima[3] + np.random.default_rng(0).uniform(-0.3, 0.3, (10, 2))
    rates = nd.geometric_rates(0.05, 0.002, 3000)
    quiet_ends = nd.nearest_minimum(nd.minibatch_descent(loud, starts, 200, rates, seeds=range(4)), minima)[0]
    noisy_ends = nd.nearest_minimum(nd.minibatch_descent(loud, starts, 1, rates, seeds=range(4)), minima)[0]
    assert np.all(quiet_ends == 3)
    assert np.sum(noisy_ends == 0) >= 10 and np.sum(noisy_ends == 3) < 40


def test_geometric_rates():
    r = nd.geometric_rates(0.1, 0.001, 5)
    np.testing.assert_allclose(r, [0.1, 0.1 * 0.01 ** 0.25, 0.01, 0.1 * 0.01 ** 0.75, 0.001])
    np.testing.assert_allclose(nd.geometric_rates(0.1, 0.1, 3), [0.1] * 3)
    assert nd.geometric_rates(0.1, 0.01, 1).tolist() == [0.1]


@pytest.mark.parametrize("call, match", [
    (lambda ex: nd.tilted_examples(ex.fn, 1, 1.0), "n must be at least 2"),
    (lambda ex: nd.tilted_examples(ex.fn, 10, -1.0), "spread"),
    (lambda ex: nd.tilted_examples("wells", 10, 1.0), "Landscape"),
    (lambda ex: nd.predicted_noise(ex, 51), "batch_size must be at most the number of examples n = 50, got 51"),
    (lambda ex: nd.measured_noise(ex, 0), "batch_size"),
    (lambda ex: nd.geometric_rates(0.1, 0.2, 10), "final_lr"),
    (lambda ex: nd.geometric_rates(0.0, 0.0, 10), "lr"),
    (lambda ex: nd.minibatch_descent(ex, [[0.0, 0.0, 0.0]], 1, [0.1]), r"starts must have shape \(S, 2\)"),
    (lambda ex: nd.minibatch_descent(ex, [[0.0, 0.0]], 1, [0.1, -0.1]), "positive learning rates"),
    (lambda ex: nd.minibatch_descent(ex, [[0.0, np.nan]], 1, [0.1]), "starts contains 1 NaN"),
    (lambda ex: nd.minibatch_descent(ex, [[0.0, 0.0]], 1, [0.1], seeds=()), "at least one seed"),
    (lambda ex: nd.minibatch_descent(ex, [[0.0, 0.0]], 1, [0.1], seeds=(-1,)), r"seeds\[0\]"),
    (lambda ex: nd.nearest_minimum([[np.inf, 0.0]], [[0.0, 0.0]]), "diverged"),
    (lambda ex: nd.nearest_minimum([[0.0, 0.0]], np.zeros((0, 2))), "minima must have shape"),
])
def test_bad_arguments_are_named(examples, call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(examples)


def test_lesson_08_prints_the_counts_these_runs_give(wells, minima):
    """The counts saved in lesson 08 (section 3.5) are those the module computes with the lesson's seeds."""
    import json
    import re
    from pathlib import Path

    notebook = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "08_optimizers.ipynb").read_text("utf-8"))
    cell = next(c for c in notebook["cells"] if c["cell_type"] == "code"
                and "noisy_descent.tilted_examples(wells, n=200, spread=5.0, seed=0)" in "".join(c["source"]))
    printed = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o["output_type"] == "stream")
    saved = {m.group(1).strip(): [int(m.group(2)), *map(int, m.group(3).split(", ")), int(m.group(4)), int(m.group(5))]
             for m in re.finditer(r"^(.+?)\s+global minimum\s+(\d+) of 200, local minima \[([\d, ]+)\]; "
                                  r"carried into the global\s+(\d+), out of it\s+(\d+)", printed, re.M)}
    assert len(saved) == 5, f"lesson 08's noise cell printed {printed!r}"
    examples = nd.tilted_examples(wells, 200, 5.0, seed=0)
    starts = np.stack(np.meshgrid(np.linspace(-1.5, 1.5, 5), np.linspace(-1.5, 1.5, 5)), -1).reshape(-1, 2)
    falling = nd.geometric_rates(0.05, 0.002, 3000)
    runs = {"full batch (b = 200)": (200, falling), "b = 20": (20, falling), "b = 4": (4, falling),
            "b = 1": (1, falling), "b = 1, constant lr 0.05": (1, nd.geometric_rates(0.05, 0.05, 3000))}
    ends = {name: nd.nearest_minimum(nd.minibatch_descent(examples, starts, b, rates, seeds=range(8)), minima)[0]
            for name, (b, rates) in runs.items()}
    plain = ends["full batch (b = 200)"]
    for name, where in ends.items():
        counts = np.bincount(where.ravel(), minlength=4).tolist()
        into, out = int(np.sum((plain != 0) & (where == 0))), int(np.sum((plain == 0) & (where != 0)))
        assert saved[name] == [*counts, into, out], name
