"""Inverted dropout: against keras.layers.Dropout in both modes, and a seeded statistical test of E[y] = x."""
import numpy as np
import pytest

from cnnkit.regularization import (
    apply_dropout_mask, dropout, dropout_mask, dropout_with_mask, plot_dropout_subnetworks,
)

import keras  # the oracle: required, never skipped


@pytest.mark.parametrize("shape", [(7,), (5, 9), (2, 6, 6, 4)])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.9])
def test_matches_keras_dropout_in_both_modes(shape, rate):
    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 2.0, shape).astype(np.float32)  # no zeros: Keras' zeros are exactly its drops
    layer = keras.layers.Dropout(rate, seed=3)
    # inference: identity for both
    np.testing.assert_array_equal(dropout(x, rate, training=False), np.asarray(layer(x, training=False)))
    np.testing.assert_array_equal(dropout(x, rate, training=False), x)
    # training: Keras' own mask, applied by cnnkit, gives Keras' output
    y_keras = np.asarray(layer(x, training=True))
    keras_mask = y_keras != 0
    np.testing.assert_allclose(apply_dropout_mask(x, keras_mask, rate), y_keras, rtol=1e-6)
    # and cnnkit's own output has the same form: zeros or x / (1 - rate)
    y, mask = dropout_with_mask(x, rate, training=True, seed=1)
    assert y.dtype == np.float32 and mask.dtype == bool and mask.shape == x.shape
    np.testing.assert_allclose(y[mask], x[mask] / (1 - rate), rtol=1e-6)
    assert np.all(y[~mask] == 0)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_preserves_the_expectation(rate):
    """Seeded: the mean of y over many draws is x (within 5 standard errors), unit by unit."""
    rng = np.random.default_rng(12345)
    x = np.linspace(-3.0, 5.0, 40)
    draws = 20000
    samples = dropout(np.broadcast_to(x, (draws, x.size)), rate, training=True, seed=rng)
    # y = x m / (1 - p), m ~ Bernoulli(1 - p): sd(y) = |x| sqrt(p / (1 - p))
    standard_error = np.abs(x) * np.sqrt(rate / (1 - rate)) / np.sqrt(draws)
    assert np.all(np.abs(samples.mean(axis=0) - x) <= 5 * standard_error + 1e-12)
    # the fraction kept is 1 - rate (binomial, 5 standard errors)
    kept = (samples != 0)[:, x != 0].mean()
    n = draws * np.count_nonzero(x)
    assert abs(kept - (1 - rate)) <= 5 * np.sqrt(rate * (1 - rate) / n)
    # without the 1/(1 - p) scaling the mean would shrink to (1 - p) x: the test can tell
    unscaled = samples * (1 - rate)
    assert np.any(np.abs(unscaled.mean(axis=0) - x) > 5 * standard_error + 1e-12)


def test_rate_zero_and_inference_are_identity_and_copies():
    x = np.arange(6.0).reshape(2, 3)
    for y in (dropout(x, 0.0, training=True, seed=0), dropout(x, 0.7, training=False)):
        np.testing.assert_array_equal(y, x)
        assert y is not x
    _, mask = dropout_with_mask(x, 0.7, training=False)
    assert mask.all()


def test_seeds_make_masks_reproducible_and_generators_advance():
    a = dropout_mask((50,), 0.5, seed=7)
    b = dropout_mask((50,), 0.5, seed=7)
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(7)
    first, second = dropout_mask((50,), 0.5, seed=g), dropout_mask((50,), 0.5, seed=g)
    np.testing.assert_array_equal(first, a)
    assert not np.array_equal(first, second)


def test_relu_commutes_with_inverted_dropout():
    """The tutorial's sample puts Dropout before ReLU; with one mask, the order does not matter."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 10))
    mask = dropout_mask(x.shape, 0.5, seed=2)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    np.testing.assert_allclose(relu(apply_dropout_mask(x, mask, 0.5)), apply_dropout_mask(relu(x), mask, 0.5))


@pytest.mark.parametrize("rate, error, message", [
    (1.0, ValueError, r"rate must be a number in \[0, 1\), got 1"),
    (-0.1, ValueError, r"rate must be a number in \[0, 1\), got -0.1"),
    (float("nan"), ValueError, r"rate must be a number in \[0, 1\), got nan"),
    (1.5, ValueError, r"\[0, 1\)"),
    ("0.5", TypeError, "rate must be a number"),
    (True, TypeError, "rate must be a number"),
])
def test_rate_outside_unit_interval_raises(rate, error, message):
    with pytest.raises(error, match=message):
        dropout(np.ones(3), rate, training=True)
    with pytest.raises(error, match=message):
        dropout(np.ones(3), rate, training=False)


def test_other_argument_errors():
    with pytest.raises(TypeError, match="True or False"):
        dropout(np.ones(3), 0.5, training=None)
    with pytest.raises(ValueError, match="seed must be"):
        dropout(np.ones(3), 0.5, training=True, seed=-1)
    with pytest.raises(TypeError, match="numeric"):
        dropout(np.array(["a"]), 0.5, training=True)
    with pytest.raises(ValueError, match=r"mask has shape \(2,\) but x has shape \(3,\)"):
        apply_dropout_mask(np.ones(3), np.ones(2, bool), 0.5)
    with pytest.raises(ValueError, match="0/1"):
        apply_dropout_mask(np.ones(3), np.array([0, 2, 1]), 0.5)


def test_plot_dropout_subnetworks_draws_and_checks_shapes():
    import matplotlib.pyplot as plt

    g = np.random.default_rng(0)
    masks = [[dropout_mask((5,), 0.5, g), dropout_mask((4,), 0.5, g)] for _ in range(3)]
    fig = plot_dropout_subnetworks(masks, (5, 4), input_size=3, title="three masks")
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match=r"masks\[0\]\[1\] has shape \(4,\), expected \(3,\)"):
        plot_dropout_subnetworks(masks, (5, 3))
    with pytest.raises(ValueError, match="empty"):
        plot_dropout_subnetworks([], (5, 4))


@pytest.mark.parametrize("call, error, message", [
    (lambda: dropout_mask((10**6, 10**6), 0.5), ValueError, r"dropout mask would have shape \(1000000, 1000000\).*GiB"),
    (lambda: dropout_mask((4, 2.5), 0.5), TypeError, r"shape\[1\] must be a non-negative integer, got 2.5"),
    (lambda: dropout_mask((4, -1), 0.5), ValueError, r"shape\[1\] must be a non-negative integer \(>= 0\), got -1"),
    (lambda: dropout_mask(3, 0.5, seed=-1), ValueError, "seed must be None, a non-negative int or a numpy Generator"),
    (lambda: dropout_mask(3, 0.5, seed=1.5), ValueError, "seed must be None, a non-negative int"),
    (lambda: dropout(np.ones(3), 0.5, training="yes"), TypeError, "training must be True or False, got 'yes'"),
    (lambda: apply_dropout_mask(np.ones(3), np.ones(4, bool), 0.5), ValueError, r"mask has shape \(4,\)"),
    (lambda: apply_dropout_mask(np.ones(2), np.array([0, 2]), 0.5), ValueError, "only 0/1"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_mask_size_is_checked_before_drawing():
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="limit"):
            dropout_mask((50_000, 50_000), 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# --------------------------------------------------------------------------- exercise check (lesson 04)

from cnnkit.checks import CheckFailed  # noqa: E402
from cnnkit.checks.batchnorm_dropout import check_inverted_dropout  # noqa: E402


def _my_dropout(kind):
    def fn(x, rate, training, rng):
        if not 0 <= rate < 1:
            if kind == "no_raise":
                return x
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        if not training and kind != "drops_at_inference":
            return x
        if kind == "fixed_seed":
            rng = np.random.default_rng(0)
        keep = rng.random(x.shape) >= rate
        if kind == "keep_with_p":
            keep = ~keep
        scale = {"no_scale": 1.0, "times": 1 - rate}.get(kind, 1 / (1 - rate))
        return np.where(keep, x * scale, 0.0)
    return fn


@pytest.mark.parametrize("kind, message", [
    ("ok", None),
    ("no_scale", "not rescaled"),
    ("times", r"multiplied the kept units by \(1 - rate\)"),
    ("keep_with_p", "DROPPED with probability"),
    ("drops_at_inference", "nothing may be dropped"),
    ("fixed_seed", "same mask"),
    ("no_raise", "should raise ValueError"),
])
def test_check_inverted_dropout(kind, message, capsys):
    if message is None:
        check_inverted_dropout(_my_dropout(kind))
        assert "Passed" in capsys.readouterr().out
    else:
        with pytest.raises(CheckFailed, match=message):
            check_inverted_dropout(_my_dropout(kind))
    # the kit's own dropout passes through the same check
    check_inverted_dropout(lambda x, rate, training, rng: dropout(x, rate, training, seed=rng))
