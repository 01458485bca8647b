"""The capstone's open task: a classifier of your own design, graded by its accuracy within a budget.

The student writes two answers:

* ``classifier(x, num_classes)``: a Keras block that maps an image tensor ``x`` of
  shape (None, H, W, 3) (uint8 pixels scaled to 0..1) to class probabilities
  (None, num_classes), built from Keras' own layers;
* ``training_plan``: plain data, ``{"epochs", "batch_size", "optimizer",
  "learning_rate", "augment"}``, handed to the kit's training loop
  (:func:`cnnkit.experiments.train`).

Budget (:data:`BUDGET`): at most 300,000 parameters, and at most 60 million
multiply-adds per image x epochs (the multiply-adds of one forward pass of one
image, counted by :func:`cnnkit.params_explain.explain`, times the epochs; on
CIFAR-10 that is at most 60 M x 50,000 = 3 x 10^12 multiply-adds of forward passes
in the whole training). Counted from the architecture, never timed, so the verdict
does not depend on the machine.

:func:`check_open_training` grades one tier (the thresholds of :data:`TIERS` depend
on the dataset). Where it runs decides what it measures:

* in a notebook, it trains the network on 90 % of the training set and measures the
  **validation** accuracy on the other 10 %: an estimate, cached, so the three tier
  checks train once;
* in the grader's planning of the solution (the stand-in has ``grading_phase ==
  "plan"``) it only records the calls it makes, and trains nothing;
* in the grader's judging (``grading_phase == "judge"``) the network is the one the
  student's kernel saved, loaded in Keras' safe mode (no code of the student's runs
  here); its weights are thrown away (:func:`fresh_copy`), it is trained from the plan
  with a fixed seed on the whole training set and evaluated on the **test** split,
  which the kernel never receives. Results are cached by architecture and plan, so a
  submission trains once for its three tiers.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from cnnkit import _validate
from cnnkit.checks import call_block, cases, fail, passed

OPTIMIZERS = ("adam", "sgd", "momentum", "nesterov", "rmsprop")   # the names cnnkit.experiments.train knows
PLAN_FIELDS = ("epochs", "batch_size", "optimizer", "learning_rate", "augment")
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
SEED = 0
VAL_FRACTION = 0.1
MAX_LAYERS = 200
MAX_ACTIVATION = 32 * 32 * 256       # values of the largest layer output, per image
MAX_CONFIG_NUMBERS = 64              # numbers in one list of the model's configuration (no weights hidden there)


@dataclass(frozen=True)
class Budget:
    """What a plan may spend: parameters of the model, and multiply-adds per image x epochs."""

    max_parameters: int = 300_000
    max_madds_epochs: int = 60_000_000
    max_epochs: int = 20
    batch_sizes: tuple[int, int] = (16, 1024)
    learning_rates: tuple[float, float] = (1e-5, 1.0)


BUDGET = Budget()
#: accuracy thresholds of tiers 1, 2 and 3 on the held-out images (test split when grading)
TIERS = {"cifar10": (0.45, 0.50, 0.55), "offline": (0.35, 0.50, 0.60)}
#: images used in fast mode (CNNKIT_FAST=1): a stratified subset of the training set, the first test images
FAST_TRAIN, FAST_TEST = 2000, 1000

_RESULTS: dict = {}      # (split, dataset, fast, architecture, plan) -> accuracy
_MAX_CACHED = 256


# --------------------------------------------------------------------------- the plan


def check_plan(plan, budget: Budget = BUDGET) -> dict:
    """The plan as a dict of exact built-in values; fails naming the first field out of its range."""
    if plan is None or plan is Ellipsis:
        fail(f"training_plan is {plan!r}: write your plan in its cell and run it")
    if type(plan) is not dict:
        fail(f"training_plan should be a dict with the keys {', '.join(PLAN_FIELDS)}, got {type(plan).__name__}")
    missing = [k for k in PLAN_FIELDS if k not in plan]
    unknown = sorted(str(k) for k in plan if k not in PLAN_FIELDS)
    if missing or unknown:
        fail("training_plan " + "; ".join(
            part for part in (f"lacks {', '.join(missing)}" if missing else "",
                              f"has unknown keys {', '.join(unknown)}" if unknown else "") if part)
             + f": its keys are exactly {', '.join(PLAN_FIELDS)}")
    low_lr, high_lr = budget.learning_rates
    try:
        return {
            "epochs": _validate.integer(plan["epochs"], "training_plan['epochs']", minimum=1,
                                        maximum=budget.max_epochs),
            "batch_size": _validate.integer(plan["batch_size"], "training_plan['batch_size']",
                                            minimum=budget.batch_sizes[0], maximum=budget.batch_sizes[1]),
            "optimizer": _validate.one_of(plan["optimizer"], "training_plan['optimizer']", OPTIMIZERS),
            "learning_rate": _validate.real(plan["learning_rate"], "training_plan['learning_rate']",
                                            low=low_lr, high=high_lr),
            "augment": _validate.boolean(plan["augment"], "training_plan['augment']"),
        }
    except (TypeError, ValueError) as exc:
        fail(str(exc))


# --------------------------------------------------------------------------- the model


def _numbers_in_lists(config) -> tuple[int, str]:
    """The most numbers held by one list (nested lists included) of a configuration, and where it is."""
    best = (0, "")

    def numbers(node) -> int:
        if isinstance(node, (list, tuple)):
            return sum(numbers(v) for v in node)
        return int(isinstance(node, (int, float)) and not isinstance(node, bool))

    def walk(node, where):
        nonlocal best
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, (list, tuple)):
            count = numbers(node)
            if count > best[0]:
                best = (count, where)
            for i, value in enumerate(node):
                if isinstance(value, dict):
                    walk(value, f"{where}[{i}]")

    walk(config, "")
    return best


def _shared_layers(model) -> list[str]:
    """Names of layers called more than once in the model's graph (their multiply-adds would be counted once)."""
    shared = []
    for layer in model.layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) > 1:
            shared.append(layer.name)
    return shared


def measure_model(model, input_shape: tuple, num_classes: int) -> tuple[int, int]:
    """``(parameters, multiply-adds per image)`` of a built model; fails on anything outside the rules."""
    from cnnkit.params_explain import explain
    from cnnkit.params_formulas import UnsupportedLayerError

    if tuple(model.input_shape) != (None, *input_shape):
        fail(f"the model takes inputs of shape {tuple(model.input_shape)}, expected (None, {', '.join(map(str, input_shape))})")
    if tuple(model.output_shape) != (None, num_classes):
        fail(f"the model's output has shape {tuple(model.output_shape)}, expected (None, {num_classes}): one "
             "probability per class (end with Dense(num_classes, activation='softmax'))")
    if len(model.layers) > MAX_LAYERS:
        fail(f"the model has {len(model.layers)} layers; at most {MAX_LAYERS} are allowed")
    shared = _shared_layers(model)
    if shared:
        fail(f"layer {shared[0]!r} is called more than once: the budget counts each layer's multiply-adds once, "
             "so a layer may be used only once (create a new layer for each use)")
    count, where = _numbers_in_lists(model.get_config())
    if count > MAX_CONFIG_NUMBERS:
        fail(f"the model's configuration holds a list of {count:,} numbers ({where}): arrays in a layer's "
             "arguments (a Constant initializer with an array, fixed weights) are not allowed; "
             "the grader trains the network from fresh weights")
    try:
        explanation = explain(model)
    except UnsupportedLayerError as exc:
        fail(f"the budget cannot be counted for this model: {exc}. Use the usual layers (Conv2D, "
             "DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, pooling, activations, Dropout, Add...)")
    largest = max((math.prod(d for d in tuple(row.output_shape)[1:] if d is not None)
                   for row in explanation.rows if isinstance(row.output_shape, tuple)), default=0)
    if largest > MAX_ACTIVATION:
        fail(f"a layer's output holds {largest:,} values per image; at most {MAX_ACTIVATION:,} (32 x 32 x 256) "
             "are allowed, so that training stays within the time the budget promises")
    madds = explanation.multiply_adds
    if madds is None:
        fail("the multiply-adds of the model cannot be counted (an input size is not fixed)")
    return int(model.count_params()), int(madds)


def check_budget(parameters: int, madds: int, epochs: int, budget: Budget = BUDGET) -> str:
    """Fail when the model or the plan spends more than the budget; else the one-line account."""
    if parameters > budget.max_parameters:
        fail(f"the model has {parameters:,} parameters: over the budget of {budget.max_parameters:,}")
    spent = madds * epochs
    if spent > budget.max_madds_epochs:
        fail(f"{madds:,} multiply-adds per image x {epochs} epochs = {spent:,}: over the budget of "
             f"{budget.max_madds_epochs:,} (fewer epochs, or a network with fewer multiply-adds)")
    return (f"{parameters:,} parameters (budget {budget.max_parameters:,}); {madds / 1e6:.2f} M multiply-adds "
            f"per image x {epochs} epochs = {spent / 1e6:.1f} M (budget {budget.max_madds_epochs / 1e6:.0f} M)")


def _probabilities_ok(model, input_shape: tuple) -> None:
    rng = np.random.default_rng(SEED)
    x = rng.uniform(0, 1, size=(4, *input_shape)).astype(np.float32)
    p = np.asarray(model(x, training=False), dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any(p < -1e-6) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        fail(f"the outputs are not probabilities (row sums {np.round(p.sum(axis=1), 3).tolist()}): end with a "
             "softmax, e.g. Dense(num_classes, activation='softmax'); the kit's training loop takes probabilities")


def fresh_copy(model):
    """The same architecture with new weights drawn from its initializers, seeded with :data:`SEED`."""
    import keras

    keras.utils.set_random_seed(SEED)
    return keras.models.clone_model(model)


def architecture_key(model) -> str:
    """The model's configuration as JSON, with layer names replaced by their positions (names vary per build)."""
    names = {layer.name: f"#{i}" for i, layer in enumerate(model.layers)}
    names[model.name] = "#model"

    def rename(node):
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [rename(v) for v in node]
        return names.get(node, node) if isinstance(node, str) else node

    return json.dumps(rename(model.get_config()), sort_keys=True, default=str)


# --------------------------------------------------------------------------- training and measuring


def _dataset():
    from cnnkit.data import load_dataset

    return load_dataset()


def _fast() -> bool:
    from cnnkit.env import fast_mode

    return fast_mode()


def held_out_accuracy(model, plan: dict, split: str) -> float:
    """Train a fresh copy of ``model`` from ``plan``; accuracy on the validation or the test split.

    ``split="validation"``: trained on 90 % of the training set (stratified, seed 0),
    measured on the other 10 %. ``split="test"``: trained on the whole training set,
    measured on the test split. Fast mode uses :data:`FAST_TRAIN` training and
    :data:`FAST_TEST` held-out images. The accuracy is the model's after its last
    epoch: no choice is made on the held-out images. Cached by architecture and plan.
    """
    from cnnkit.data import stratified_subset, train_val_split

    data = _dataset()
    fast = _fast()
    key = (split, data.name, fast, architecture_key(model), json.dumps(plan, sort_keys=True))
    if key in _RESULTS:
        return _RESULTS[key]
    x, y = data.x_train, data.y_train
    if fast:
        x, y = stratified_subset(x, y, min(FAST_TRAIN, len(y)), seed=SEED)
    if split == "validation":
        (x, y), (x_held, y_held) = train_val_split(x, y, VAL_FRACTION, seed=SEED)
    elif split == "test":
        x_held, y_held = data.x_test, data.y_test
        if fast:
            x_held, y_held = x_held[:FAST_TEST], y_held[:FAST_TEST]
    else:
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    accuracy = _train_and_measure(fresh_copy(model), (x, y), (x_held, y_held), plan)
    if len(_RESULTS) >= _MAX_CACHED:
        _RESULTS.pop(next(iter(_RESULTS)))
    _RESULTS[key] = accuracy
    return accuracy


def _train_and_measure(model, train, held, plan: dict) -> float:
    """Fit with :func:`cnnkit.experiments.train` (pixels scaled to 0..1), then the accuracy on ``held``."""
    from cnnkit.experiments import train as fit
    from cnnkit.pipeline import make_dataset

    x, y = train
    monitor = (x[:256], y[:256])   # the loop reports on a validation set each epoch; nothing is chosen on it
    fit(model, train, monitor, epochs=plan["epochs"], batch_size=plan["batch_size"], optimizer=plan["optimizer"],
        learning_rate=plan["learning_rate"], augment=plan["augment"], preprocess="scale", seed=SEED)
    probabilities = model.predict(make_dataset(*held, 500, preprocess="scale"), verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(held[1])))


def thresholds(dataset_name: str) -> tuple[float, ...]:
    if dataset_name not in TIERS:
        raise ValueError(f"no thresholds for dataset {dataset_name!r}; known: {', '.join(TIERS)}")
    return TIERS[dataset_name]


# --------------------------------------------------------------------------- the check


def _draw_shape(rng) -> list[tuple[tuple[int, int, int], int]]:
    """A hidden (input shape, classes): sides 24 to 48 in steps of 8, 2 to 20 classes."""
    return [((int(rng.choice([24, 32, 40, 48])), int(rng.choice([24, 32, 40, 48])), 3), int(rng.integers(2, 21)))]


def _build(classifier, input_shape, num_classes):
    call = f"classifier(keras.Input({tuple(input_shape)}), {num_classes})"
    return call_block(classifier, call, input_shape, (num_classes,), returns="the probabilities tensor")


def check_open_training(classifier, training_plan, tier: int) -> None:
    """Tier ``tier`` (1, 2 or 3) of the open task: within the budget, and accuracy >= the tier's threshold.

    In a notebook the accuracy is a validation estimate; in the grader it is the test
    accuracy of the network retrained from the plan (see the module's docstring).
    """
    tier = _validate.integer(tier, "tier", minimum=1, maximum=3)
    phase = getattr(classifier, "grading_phase", None)
    plan = check_plan(training_plan)
    model = _build(classifier, INPUT_SHAPE, NUM_CLASSES)
    for shape, classes in cases([], _draw_shape, seed=9):   # hidden inputs: the builder follows its arguments
        other = _build(classifier, shape, classes)
        if tuple(other.output_shape) != (None, classes):
            fail(f"classifier(keras.Input({shape}), {classes}) gives outputs of shape {tuple(other.output_shape)}, "
                 f"expected (None, {classes}): use num_classes, not a fixed 10")
    parameters, madds = measure_model(model, INPUT_SHAPE, NUM_CLASSES)
    account = check_budget(parameters, madds, plan["epochs"])
    _probabilities_ok(model, INPUT_SHAPE)
    if phase == "plan":
        passed(f"within the budget: {account}")   # planning records the calls; nothing is trained
        return
    split = "test" if phase == "judge" else "validation"
    data_name = _dataset().name
    needed = thresholds(data_name)[tier - 1]
    accuracy = held_out_accuracy(model, plan, split)
    if split == "test":
        measured = f"test accuracy {accuracy:.1%} of the network retrained from your plan"
    else:
        measured = (f"estimated accuracy {accuracy:.1%} on the validation split (10 % of the training set; "
                    "the grader retrains on the whole training set and measures the test split)")
    if accuracy < needed:
        fail(f"tier {tier} needs {needed:.0%} on {data_name}: {measured}. Within the budget: {account}")
    if split == "test":
        passed(f"tier {tier}: {measured} >= {needed:.0%} on {data_name}; {account}")
    else:
        passed(f"tier {tier} reached by the validation estimate (the numbers are shown below the checks); "
               f"within the budget: {account}")


def show_estimate(classifier, training_plan) -> None:
    """Print the validation estimate of the open task and the tiers it reaches (not graded).

    Trains only when the check cells have not already done so for this network and
    plan. While a submission is graded (``CNNKIT_PROBE_OUT`` is set) it does
    nothing: the grader trains the network itself.
    """
    if os.environ.get("CNNKIT_PROBE_OUT"):
        print("Skipped while grading: the grader retrains your network itself.")
        return
    try:
        plan = check_plan(training_plan)
        model = _build(classifier, INPUT_SHAPE, NUM_CLASSES)
        parameters, madds = measure_model(model, INPUT_SHAPE, NUM_CLASSES)
        account = check_budget(parameters, madds, plan["epochs"])
    except AssertionError as exc:
        print(f"No estimate yet: {exc}")
        return
    data_name = _dataset().name
    accuracy = held_out_accuracy(model, plan, "validation")
    reached = [i + 1 for i, t in enumerate(thresholds(data_name)) if accuracy >= t]
    print(f"Budget: {account}")
    print(f"Validation accuracy (an estimate, {data_name}{', fast mode' if _fast() else ''}): {accuracy:.2%}")
    print("Thresholds: " + ", ".join(f"tier {i + 1} {t:.0%}" for i, t in enumerate(thresholds(data_name)))
          + f"; reached by the estimate: {', '.join(map(str, reached)) if reached else 'none'}")
