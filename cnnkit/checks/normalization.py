"""Checks for the exercises of lesson 03 (input normalization, tutorial 2.1).

* :func:`check_min_max` -- min-max scaling by hand, with the correct denominator;
* :func:`check_standardize_splits` -- z-score the three splits with the training statistics only;
* :func:`check_spot_the_leak` -- name the pipelines that leak held-out data.

References come from :mod:`cnnkit.normalization` (tested against Keras); the
inputs are drawn fresh from a seed, so no constant answer can pass.
"""
from __future__ import annotations

import numpy as np

from cnnkit.checks import call_answer, case_rng, cases, expect_callable, expect_shape, fail, passed, unanswered
from cnnkit.checks.quiz import Question, check_choice
from cnnkit.normalization import StandardScaler, detect_leak


def _call(fn, name: str, *args):
    """Call a student's ``fn`` on copies of ``args`` (an answer may modify its inputs)."""
    return call_answer(fn, name, *[a.copy() if isinstance(a, np.ndarray) else a for a in args])


def _leak_report(fn, name: str, *splits):
    """:func:`detect_leak` of ``fn``, every call of ``fn`` made through :func:`_call`."""
    return detect_leak(lambda *parts: _call(fn, name, *parts), *splits)


def _as_numbers(name: str, value, shape) -> np.ndarray:
    arr = expect_shape(name, value, shape)
    if not (np.issubdtype(arr.dtype, np.number)):
        fail(f"{name} should hold numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        fail(f"{name} contains NaN or infinity: did you divide by zero (x_max - x_min = 0, or x - x_max = 0 "
             "as in the slide's formula)?")
    return arr.astype(np.float64)


# --------------------------------------------------------------------------- min-max by hand


def check_min_max(min_max_scale) -> None:
    """``min_max_scale(x, x_min, x_max)`` must return ``(x - x_min) / (x_max - x_min)`` (broadcast per channel)."""
    unanswered(min_max_scale, "min_max_scale")
    expect_callable(min_max_scale, "min_max_scale")
    shape = cases([(6, 4, 4, 3)], lambda r: [(int(r.integers(3, 9)), int(r.integers(2, 6)), int(r.integers(2, 6)),
                                              int(r.integers(2, 5)))], seed=2031)[0]
    channels = shape[-1]
    x = case_rng(2031).integers(20, 200, size=shape).astype(np.float64)
    x_min = x.reshape(-1, channels).min(axis=0)
    x_max = x.reshape(-1, channels).max(axis=0)
    expected = (x - x_min) / (x_max - x_min)
    name = "min_max_scale(x, x_min, x_max)"
    with np.errstate(all="ignore"):
        raw = expect_shape(name, _call(min_max_scale, "min_max_scale", x, x_min, x_max), x.shape)
        slide = (x - x_min) / (x - x_max)
        by_255 = x / 255.0
        global_range = (x - x.min()) / (x.max() - x.min())
        finite = np.isfinite(slide)
        if np.issubdtype(raw.dtype, np.number) and np.allclose(raw[finite].astype(np.float64), slide[finite], rtol=1e-6):
            fail("you used the slide's denominator (x - x_max): it is zero at the maximum and changes from pixel "
                 "to pixel; divide by the range x_max - x_min, one constant per channel (the slide differs here)")
    got = _as_numbers(name, raw, x.shape)
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-9):
        if np.allclose(got, by_255, rtol=1e-6):
            fail("you divided by 255: that is min-max scaling only when x_min = 0 and x_max = 255; here the "
                 "channels range over other values: use (x - x_min) / (x_max - x_min)")
        if np.allclose(got, 1 - expected, rtol=1e-6, atol=1e-9):
            fail("your output is 1 - expected: the numerator must be x - x_min (0 at the minimum, 1 at the maximum)")
        if np.allclose(got, global_range, rtol=1e-6):
            fail("you used the global minimum and maximum of x instead of the x_min and x_max passed in "
                 "(one value per channel)")
        worst = np.unravel_index(np.argmax(np.abs(got - expected)), x.shape)
        fail(f"min_max_scale gives {got[worst]:.6g} at index {tuple(int(i) for i in worst)}, expected "
             f"{expected[worst]:.6g}: compute (x - x_min) / (x_max - x_min) with x_min, x_max broadcast over the "
             "last (channel) axis")
    if not (np.isclose(got.reshape(-1, channels).min(axis=0), 0).all()
            and np.isclose(got.reshape(-1, channels).max(axis=0), 1).all()):
        fail("each channel should span exactly 0..1 after min-max scaling with its own minimum and maximum")
    passed("min_max_scale maps each channel's minimum to 0 and its maximum to 1, with x_max - x_min below the line")


# --------------------------------------------------------------------------- standardize the splits


def _splits(seed: int):
    """Three uint8 splits (train, val, test) of 3-channel images; sizes drawn for hidden inputs."""
    sizes = cases([(40, 16, 20, 5)], lambda r: [(int(r.integers(20, 50)), int(r.integers(8, 20)),
                                                 int(r.integers(8, 24)), int(r.integers(3, 7)))], seed=seed)[0]
    n_train, n_val, n_test, side = sizes
    rng = case_rng(seed)
    # the three splits differ on purpose, so statistics fitted on the wrong split give other numbers
    x_train = rng.normal([120, 110, 90], [60, 50, 40], size=(n_train, side, side, 3))
    x_val = rng.normal([140, 100, 80], [45, 55, 35], size=(n_val, side, side, 3))
    x_test = rng.normal([100, 130, 95], [55, 45, 50], size=(n_test, side, side, 3))
    return [np.clip(a, 0, 255).astype(np.uint8) for a in (x_train, x_val, x_test)]


def check_standardize_splits(standardize_splits) -> None:
    """``standardize_splits(x_train, x_val, x_test)`` must z-score all three with the training split's per-channel statistics."""
    unanswered(standardize_splits, "standardize_splits")
    expect_callable(standardize_splits, "standardize_splits")
    x_train, x_val, x_test = _splits(77)
    outs = _call(standardize_splits, "standardize_splits", x_train, x_val, x_test)
    if not isinstance(outs, (tuple, list)) or len(outs) != 3:
        fail(f"standardize_splits should return three arrays (train, val, test), got {type(outs).__name__}"
             + (f" of length {len(outs)}" if isinstance(outs, (tuple, list)) else ""))
    names = ("train", "val", "test")
    got = [_as_numbers(f"the {n} output", o, x.shape) for n, o, x in zip(names, outs, (x_train, x_val, x_test))]
    for n, o in zip(names, outs):
        if np.asarray(o).dtype != np.float32:
            fail(f"the {n} output has dtype {np.asarray(o).dtype}; return float32 (half the memory of float64, "
                 "what Keras computes in): e.g. .astype(np.float32)")
    reference = StandardScaler().fit(x_train)
    expected = [reference.transform(x, dtype=np.float64) for x in (x_train, x_val, x_test)]
    if all(np.allclose(g, e, rtol=1e-4, atol=1e-4) for g, e in zip(got, expected)):
        report = _leak_report(standardize_splits, "standardize_splits", x_train, x_val, x_test)
        if report.leaks:  # right numbers here, but held-out data still matters: be explicit
            fail(f"the values are right on this data, but the function leaks: {report.explain()}")
        passed("all three splits are z-scored per channel with the training split's mean and standard deviation")
        return
    # diagnose
    pooled = StandardScaler().fit(np.concatenate([x_train, x_val, x_test]))
    if all(np.allclose(g, pooled.transform(x, dtype=np.float64), rtol=1e-4, atol=1e-4)
           for g, x in zip(got, (x_train, x_val, x_test))):
        fail("you fitted the statistics on all three splits together: that leaks validation and test data "
             "into training. Compute mean and std on x_train only, then apply them to every split")
    own = [StandardScaler().fit_transform(x, dtype=np.float64) for x in (x_train, x_val, x_test)]
    if all(np.allclose(g, o, rtol=1e-4, atol=1e-4) for g, o in zip(got, own)):
        fail("each split was standardised with its own mean and std; the validation and test splits must use "
             "the training statistics (split, fit on train, apply the same numbers to all)")
    flat = x_train.astype(np.float64)
    global_z = [(x - flat.mean()) / flat.std() for x in (x_train, x_val, x_test)]
    if all(np.allclose(g, z, rtol=1e-4, atol=1e-4) for g, z in zip(got, global_z)):
        fail("you used one mean and one std for all channels; compute them per channel: "
             "x_train.mean(axis=(0, 1, 2)) and x_train.std(axis=(0, 1, 2))")
    mean = flat.reshape(-1, 3).mean(axis=0)
    sample_std = flat.reshape(-1, 3).std(axis=0, ddof=1)
    ddof_z = [(x - mean) / sample_std for x in (x_train, x_val, x_test)]
    if all(np.allclose(g, z, rtol=1e-4, atol=1e-4) for g, z in zip(got, ddof_z)):
        fail("you divided by the sample standard deviation (ddof=1); use the population one (np.std's default, "
             "what keras.layers.Normalization uses)")
    for n, g, e in zip(names, got, expected):
        if not np.allclose(g, e, rtol=1e-4, atol=1e-4):
            worst = np.unravel_index(np.argmax(np.abs(g - e)), g.shape)
            fail(f"the {n} output is {g[worst]:.5g} at index {tuple(int(i) for i in worst)}, expected {e[worst]:.5g}: "
                 "(x - mean_train) / std_train, per channel, with the training statistics")


# --------------------------------------------------------------------------- spot the leak


def check_spot_the_leak(leaky_pipelines, pipelines: dict) -> None:
    """``leaky_pipelines`` (a set of names) must be exactly the pipelines that :func:`detect_leak` convicts."""
    unanswered(leaky_pipelines, "leaky_pipelines")
    if isinstance(leaky_pipelines, str):
        leaky_pipelines = {leaky_pipelines} if leaky_pipelines in pipelines else set(leaky_pipelines)
    try:
        answer = {str(name).strip().lower() for name in leaky_pipelines}
    except TypeError:
        fail(f"leaky_pipelines should be a set of names such as {{'a'}}, got {type(leaky_pipelines).__name__}")
    known = {str(k).lower() for k in pipelines}
    unknown = answer - known
    if unknown:
        fail(f"unknown pipeline name(s) {sorted(unknown)}; choose among {sorted(known)}")
    splits = _splits(5)
    verdicts = {str(name).lower(): _leak_report(fn, f"pipeline {name!r}", *splits) for name, fn in pipelines.items()}
    truth = {name for name, report in verdicts.items() if report.leaks}
    missed = truth - answer
    wrong = answer - truth
    if missed or wrong:
        lines = []
        if missed:
            lines.append(f"{len(missed)} leaky pipeline(s) missing from your set")
        if wrong:
            lines.append(f"{len(wrong)} pipeline(s) in your set do not leak")
        fail("; ".join(lines) + ". For each pipeline ask: which rows does every mean/std/min/max see (only "
             "x_train?), and does every split get the same transform with those training numbers?")
    detail = "; ".join(f"{name}: {verdicts[name].explain()}" for name in sorted(truth))
    passed(f"exactly {sorted(truth)} leak -- {detail}")


# --------------------------------------------------------------------------- question of judgment

DEPLOYMENT = Question(
    "A classifier was trained on images standardised with the training split's per-channel mean and standard "
    "deviation. It is now deployed, and photos arrive one at a time. What do you subtract from each photo and "
    "divide it by?",
    choices={
        "a": "That photo's own per-channel mean and standard deviation",
        "b": "The training split's per-channel mean and standard deviation, saved with the model",
        "c": "The mean and standard deviation of the test split",
        "d": "Nothing: a trained network copes with raw pixels",
    },
    answer="b",
    why="The network's weights were fitted to inputs transformed by one fixed map, x -> (x - mean) / std with the "
        "training numbers; every later input must go through the same map with the same numbers, so those "
        "statistics are part of the model and ship with it.",
    hints={
        "a": "That changes the map from photo to photo: a dark and a bright photo of the same scene come out "
             "alike, inputs no longer mean what they meant in training, and a flat photo has a std near 0.",
        "c": "At deployment there is no test split; and statistics of the test split let test data shape the "
             "preprocessing, which leaks it into the evaluation.",
        "d": "The weights were fitted to standardised inputs near 0 with spread 1; raw pixels 0..255 are on a scale "
             "the network never saw.",
    },
).relabelled('bacd')  # the answer letters of the course vary


def check_quiz_deployment(answer) -> None:
    """Which statistics standardise inputs once the model is deployed."""
    check_choice(DEPLOYMENT, answer)
