"""Checks of the capstone exercises: a leak-free standardisation, a residual block, a
learning-rate schedule, per-class accuracy, flip test-time augmentation, and the open
training task (:mod:`cnnkit.checks.open_training`, re-exported here).

Each check calls the student's function on inputs it makes itself, compares the
result with ``cnnkit.training`` (or a direct numpy computation) and, on a mismatch,
says which mistake the numbers point to.
"""
from __future__ import annotations

import numpy as np

from cnnkit.checks import (
    call_answer, call_block, case_rng, cases, expect_callable, fail, numeric_array, passed,
)
from cnnkit.checks.open_training import BUDGET, TIERS, check_open_training, show_estimate  # noqa: F401
from cnnkit.checks.quiz import Question, check_choice

# --------------------------------------------------------------------------- helpers


def _array(value, name: str) -> np.ndarray:
    if value is None:
        fail(f"{name} is None: did you forget a `return`?")
    return numeric_array(value, name)


# --------------------------------------------------------------------------- 1. leak-free standardisation


def _standardize_inputs(seed: int = 0):
    """Three uint8 splits (20, 10, 10 images of 4x4x3); other sizes for hidden inputs."""
    (n_train, n_val, n_test), side = cases([((20, 10, 10), 4)], lambda r: [
        (tuple(int(n) for n in r.integers(6, 30, size=3)), int(r.integers(2, 7)))], seed=seed)[0]
    rng = case_rng(seed)
    # three channels with different means and spreads; the val/test splits are shifted on
    # purpose, so statistics computed on them (or on all splits) differ from the train ones
    def make(n, shift):
        base = rng.normal([60 + shift, 120, 190 - shift], [20, 35, 15], size=(n, side, side, 3))
        return np.clip(np.round(base), 0, 255).astype(np.uint8)

    return make(n_train, 0), make(n_val, 30), make(n_test, -25)


def check_standardize_splits(standardize_splits) -> None:
    """``standardize_splits(x_train, x_val, x_test) -> ((z_train, z_val, z_test), (mean, std))``.

    mean and std: shape (C,), over the training split's images and pixels only; every
    split standardised with them, as float32; the input arrays left untouched.
    """
    expect_callable(standardize_splits, "standardize_splits")
    x_train, x_val, x_test = _standardize_inputs()
    passed_in = [a.copy() for a in (x_train, x_val, x_test)]
    out = call_answer(standardize_splits, "standardize_splits(x_train, x_val, x_test)", *passed_in)
    if not isinstance(out, (tuple, list)) or len(out) != 2 or not isinstance(out[0], (tuple, list)) \
            or len(out[0]) != 3 or not isinstance(out[1], (tuple, list)) or len(out[1]) != 2:
        fail("standardize_splits should return ((z_train, z_val, z_test), (mean, std)): "
             f"got {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}")
    (z_train, z_val, z_test), (mean, std) = out
    for got, kept, name in zip(passed_in, (x_train, x_val, x_test), ("x_train", "x_val", "x_test")):
        if not np.array_equal(got, kept):
            fail(f"{name} was modified in place: compute new arrays and leave the uint8 images as they are")
    mean = _array(mean, "mean")
    std = _array(std, "std")
    want_mean = x_train.reshape(-1, 3).astype(np.float64).mean(axis=0)
    want_std = x_train.reshape(-1, 3).astype(np.float64).std(axis=0)
    for got, want, name in ((mean, want_mean, "mean"), (std, want_std, "std")):
        if got.shape != (3,):
            if got.shape == x_train.shape[1:]:
                hint = "you computed one value per pixel position; average over the images and the pixels, axis=(0, 1, 2)"
            elif got.shape == ():
                hint = "you computed a single value for all channels; keep the channel axis (axis=(0, 1, 2))"
            else:
                hint = "average over axis=(0, 1, 2) to get one value per colour channel"
            fail(f"{name} has shape {got.shape}, expected (3,): {hint}")
    everything = np.concatenate([x_train, x_val, x_test]).reshape(-1, 3).astype(np.float64)
    if np.allclose(mean, everything.mean(axis=0), rtol=1e-4) or np.allclose(std, everything.std(axis=0), rtol=1e-4):
        fail("mean/std equal the statistics of train + validation + test together: that leaks the held-out "
             "images into the preprocessing. Compute them on x_train only")
    if not np.allclose(mean, want_mean, rtol=1e-4):
        fail(f"mean is {np.round(mean, 3)}, expected the training split's per-channel mean {np.round(want_mean, 3)}")
    if not np.allclose(std, want_std, rtol=2e-4):
        ddof1 = x_train.reshape(-1, 3).astype(np.float64).std(axis=0, ddof=1)
        hint = (" (you used ddof=1; use the population standard deviation, np.std's default)"
                if np.allclose(std, ddof1, rtol=2e-4) else "")
        fail(f"std is {np.round(std, 3)}, expected the training split's per-channel std {np.round(want_std, 3)}{hint}")
    for z, x, name in ((z_train, x_train, "z_train"), (z_val, x_val, "z_val"), (z_test, x_test, "z_test")):
        z = _array(z, name)
        if z.shape != x.shape:
            fail(f"{name} has shape {z.shape}, expected {x.shape} (the images' shape)")
        if z.dtype != np.float32:
            fail(f"{name} has dtype {z.dtype}, expected float32 (float64 doubles the memory for nothing)")
        want = (x.astype(np.float64) - want_mean) / want_std
        if not np.allclose(z, want, rtol=1e-4, atol=1e-4):
            own = (x.astype(np.float64) - x.reshape(-1, 3).mean(0)) / x.reshape(-1, 3).std(0)
            if name != "z_train" and np.allclose(z, own, rtol=1e-4, atol=1e-4):
                fail(f"{name} was standardised with its own mean and std: every split must use the "
                     "training split's statistics (the held-out images stand for data you have not seen)")
            fail(f"{name} differs from (x - mean_train) / std_train, e.g. at index 0: got "
                 f"{np.round(z.reshape(-1)[:3], 4)}, expected {np.round(want.reshape(-1)[:3], 4)}")
    passed("statistics from the training split only, applied to all three splits, float32")


# --------------------------------------------------------------------------- 2. residual block


def check_residual_block(residual_block) -> None:
    """``residual_block(x, filters)``: ``x + ReLU(BN(Conv3x3(ReLU(BN(Conv3x3(x))))))``, same shape as x."""
    import keras

    expect_callable(residual_block, "residual_block")
    keras.utils.set_random_seed(0)
    h, w, c = cases([(6, 6, 8)], lambda r: [(int(r.integers(4, 9)), int(r.integers(4, 9)), int(r.integers(3, 11)))],
                    seed=1)[0]
    call = f"residual_block(keras.Input({(h, w, c)}), {c})"
    model = call_block(residual_block, call, (h, w, c), (c,))
    shape = tuple(model.output_shape)
    if shape != (None, h, w, c):
        fail(f"the block maps (None, {h}, {w}, {c}) to {shape}; it must keep the shape so that x can be added: "
             "use padding='same', strides 1 and `filters` filters")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if len(convs) != 2 or len(norms) != 2:
        fail(f"expected 2 Conv2D and 2 BatchNormalization layers, found {len(convs)} and {len(norms)}")
    for conv in convs:
        if tuple(conv.kernel_size) != (3, 3):
            fail(f"{conv.name} has kernel size {conv.kernel_size}, expected (3, 3)")
        if conv.use_bias:
            fail(f"{conv.name} has a bias: batch norm's beta right after it makes the bias redundant; "
                 "pass use_bias=False")
    rng = case_rng(1)
    x = rng.normal(size=(4, h, w, c)).astype(np.float32)
    for conv in convs:
        conv.kernel.assign(np.zeros(conv.kernel.shape, np.float32))
    same = np.asarray(model(x, training=False))
    if not np.allclose(same, x, atol=1e-5):
        if np.allclose(same, np.maximum(x, 0), atol=1e-5):
            fail("with both kernels set to zero the block returned ReLU(x), not x: in this block the ReLU "
                 "goes inside the residual branch F, and the output is x + F(x) with nothing after the addition")
        fail("with both kernels set to zero F(x) = 0, so the block must return its input x unchanged; "
             f"it returned values such as {np.round(same.reshape(-1)[:3], 4)} for inputs "
             f"{np.round(x.reshape(-1)[:3], 4)}: the skip connection (x + F(x)) is missing")
    for conv in convs:
        conv.kernel.assign(rng.normal(0, 0.2, conv.kernel.shape).astype(np.float32))
    for bn in norms:
        bn.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
        bn.beta.assign(rng.normal(0, 0.3, c).astype(np.float32))
        bn.moving_mean.assign(rng.normal(0, 0.3, c).astype(np.float32))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
    got = np.asarray(model(x, training=False))

    def apply(layer, t):
        return np.asarray(layer(t, training=False))

    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    branch = relu(apply(norms[1], apply(convs[1], relu(apply(norms[0], apply(convs[0], x))))))
    if not np.allclose(got, x + branch, rtol=1e-4, atol=1e-4):
        swapped = relu(apply(norms[1], apply(convs[1], apply(norms[0], relu(apply(convs[0], x))))))
        if np.allclose(got, x + swapped, rtol=1e-4, atol=1e-4):
            fail("the ReLU comes before the batch norm; the order inside F is Conv -> BN -> ReLU, twice")
        no_last_relu = apply(norms[1], apply(convs[1], relu(apply(norms[0], apply(convs[0], x)))))
        if np.allclose(got, x + no_last_relu, rtol=1e-4, atol=1e-4):
            fail("the second ReLU is missing: F(x) = ReLU(BN(Conv(ReLU(BN(Conv(x)))))), then add x")
        fail("the block's output differs from x + ReLU(BN(Conv(ReLU(BN(Conv(x)))))) computed with its own layers; "
             "check the order Conv -> BN -> ReLU, twice, then the addition of x")
    passed("residual block x + F(x): shape kept, identity when F = 0, matches Conv-BN-ReLU twice")


# --------------------------------------------------------------------------- 3. learning-rate schedule


def _reference_schedule(peak, warmup, total):
    from cnnkit.training import WarmupDecay

    return WarmupDecay(peak, total, warmup, 0.0, "linear")


def _draw_schedules(rng: np.random.Generator) -> list[tuple[float, int, int]]:
    """Three hidden (peak, warmup_steps, total_steps): a long decay, no warm-up at all, a one-step decay."""
    def peak():
        return float(np.round(rng.uniform(0.05, 3.0), 3))

    warmup = int(rng.integers(2, 12))
    short = int(rng.integers(2, 8))
    return [(peak(), warmup, warmup + int(rng.integers(5, 60))), (peak(), 0, int(rng.integers(3, 40))),
            (peak(), short, short + 1)]


def check_lr_schedule(warmup_linear_decay) -> None:
    """``warmup_linear_decay(step, peak, warmup_steps, total_steps) -> float``: 0 -> peak, then peak -> 0."""
    expect_callable(warmup_linear_decay, "warmup_linear_decay")
    for peak, warmup, total in cases([(0.4, 5, 25), (0.1, 0, 10), (2.0, 3, 4)], _draw_schedules, seed=2):
        reference = _reference_schedule(peak, warmup, total)
        steps = sorted({0, 1, max(warmup - 1, 0), warmup, warmup + 1, (warmup + total) // 2, total - 1, total,
                        total + 3})
        want = reference.values(steps)
        got = []
        for step in steps:
            value = call_answer(warmup_linear_decay, f"warmup_linear_decay({step}, {peak}, {warmup}, {total})",
                          step, peak, warmup, total)
            try:
                got.append(float(value))
            except (TypeError, ValueError):
                fail(f"warmup_linear_decay({step}, {peak}, {warmup}, {total}) returned {value!r}, expected a number")
        got = np.asarray(got)
        bad = np.flatnonzero(~np.isclose(got, want, rtol=1e-5, atol=1e-7))
        if bad.size == 0:
            continue
        i = int(bad[0])
        step = steps[i]
        call = f"warmup_linear_decay({step}, peak={peak}, warmup_steps={warmup}, total_steps={total})"
        if step == 0 and warmup > 0:
            hint = "the warm-up starts from 0 (lr = peak * step / warmup_steps)"
        elif step == warmup:
            hint = "the peak is reached exactly at step = warmup_steps (an off-by-one?)"
        elif step < warmup:
            hint = "during the warm-up the rate grows linearly: peak * step / warmup_steps"
        elif step >= total:
            hint = "after total_steps the rate stays at 0 (clip the progress at 1; never negative)"
        else:
            hint = ("after the warm-up it falls linearly to 0 at total_steps: "
                    "peak * (1 - (step - warmup_steps) / (total_steps - warmup_steps))")
        fail(f"{call} returned {got[i]:.6g}, expected {want[i]:.6g}: {hint}")
    passed("warm-up from 0 to the peak, linear decay to 0 at total_steps, 0 afterwards (3 settings)")


# --------------------------------------------------------------------------- 4. per-class accuracy


def _draw_classes(rng: np.random.Generator) -> list[tuple[int, tuple[int, ...], int]]:
    """A hidden (classes, images per class, the class never predicted right): 3 to 8 classes of unequal sizes."""
    k = int(rng.integers(3, 9))
    return [(k, tuple(int(n) for n in rng.integers(5, 35, size=k)), int(rng.integers(0, k)))]


def check_per_class_accuracy(per_class_accuracy) -> None:
    """``per_class_accuracy(y_true, y_pred, num_classes) -> array (num_classes,)``: recall of each class."""
    from cnnkit.training import per_class_accuracy as reference

    expect_callable(per_class_accuracy, "per_class_accuracy")
    rng = case_rng(3)
    k, counts, never_right = cases([(5, (30, 20, 25, 10, 15), 3)], _draw_classes, seed=3)[0]
    y_true = np.repeat(np.arange(k), counts)
    rng.shuffle(y_true)
    y_pred = np.where(rng.random(y_true.size) < 0.6, y_true, rng.integers(0, k, y_true.size))
    y_pred[y_true == never_right] = (never_right + k - 1) % k  # one class never right: a zero to get right
    want = reference(y_true, y_pred, k)
    got = _array(call_answer(per_class_accuracy, f"per_class_accuracy(y_true, y_pred, {k})", y_true.copy(),
                             y_pred.copy(), k),
                 "per_class_accuracy(...)")
    if got.shape != (k,):
        hint = " (one class short: count classes 0..num_classes-1, e.g. np.bincount(..., minlength=num_classes))" \
            if got.shape == (k - 1,) else ""
        fail(f"per_class_accuracy returned shape {got.shape}, expected ({k},): one value per class{hint}")
    if np.allclose(got, want, atol=1e-6):
        passed("accuracy within each class = correct predictions of the class / images of the class")
        return
    precision = np.array([np.mean(y_true[y_pred == c] == c) if np.any(y_pred == c) else 0.0 for c in range(k)])
    if np.allclose(got, precision, atol=1e-6):
        fail("you divided by the number of images *predicted* as each class (that is precision); "
             "divide by the number of images that truly belong to it")
    if np.allclose(got, np.mean(y_true == y_pred), atol=1e-6):
        fail("every entry equals the overall accuracy: restrict the count to the images of each class (y_true == k)")
    if np.all(np.isin(got, (0, 1))):
        fail(f"got {got}: only 0s and 1s, probably an integer division; divide as floats")
    c = int(np.flatnonzero(~np.isclose(got, want, atol=1e-6))[0])
    fail(f"class {c}: got {got[c]:.4f}, expected {want[c]:.4f} "
         f"({int(np.sum((y_true == c) & (y_pred == c)))} right out of {int(np.sum(y_true == c))} images of class {c})")


# --------------------------------------------------------------------------- 5. flip TTA


def _toy_predict(images):
    """A deliberately lopsided 'classifier': its probabilities change when an image is mirrored."""
    x = np.asarray(images, np.float64)
    w = x.shape[2]
    left = x[:, :, : w // 2].mean(axis=(1, 2, 3))
    top = x[:, : x.shape[1] // 2].mean(axis=(1, 2, 3))
    red = x[..., 0].mean(axis=(1, 2))
    logits = np.stack([left, 0.5 * top, 0.3 * red, -left + top], axis=1) / 20.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def check_flip_tta(flip_tta) -> None:
    """``flip_tta(predict, images) -> (N, K)``: mean of predict(images) and predict(left-right mirrored images)."""
    expect_callable(flip_tta, "flip_tta")
    shape = cases([(6, 8, 8, 3)], lambda r: [(int(r.integers(2, 9)), int(r.integers(4, 12)), int(r.integers(4, 12)),
                                              3)], seed=4)[0]
    images = case_rng(4).integers(0, 256, size=shape).astype(np.uint8)
    passed_in = images.copy()
    got = _array(call_answer(flip_tta, "flip_tta(predict, images)", _toy_predict, passed_in), "flip_tta(predict, images)")
    if not np.array_equal(passed_in, images):
        fail("flip_tta modified the images in place: flip a copy (x[:, :, ::-1] makes a view, which is fine)")
    plain = _toy_predict(images)
    want = 0.5 * (plain + _toy_predict(images[:, :, ::-1]))
    if got.shape != want.shape:
        fail(f"flip_tta returned shape {got.shape}, expected {want.shape} (N images x K classes)")
    if np.allclose(got, want, atol=1e-6):
        passed("flip TTA = average of the probabilities of the image and of its mirror image")
        return
    if np.allclose(got, plain, atol=1e-6):
        fail("the result equals predict(images): the mirrored images are missing from the average")
    if np.allclose(got, 0.5 * (plain + _toy_predict(images[:, ::-1])), atol=1e-6):
        fail("you flipped upside down (axis 1, the rows); a left-right mirror reverses the columns, axis 2 of (N, H, W, C)")
    if np.allclose(got, 0.5 * (plain + _toy_predict(images[..., ::-1])), atol=1e-6):
        fail("you reversed the colour channels (axis 3); a left-right mirror reverses axis 2 of (N, H, W, C)")
    if np.allclose(got, 0.5 * (plain + _toy_predict(images[::-1])), atol=1e-6):
        fail("you reversed the order of the images (axis 0); mirror each image: reverse axis 2 of (N, H, W, C)")
    if np.allclose(got, 2 * want, atol=1e-6):
        fail("the rows sum to 2: divide the sum of the two probability arrays by 2")
    fail(f"flip_tta differs from (predict(x) + predict(x mirrored)) / 2; first row: got {np.round(got[0], 4)}, "
         f"expected {np.round(want[0], 4)}")


# --------------------------------------------------------------------------- question of judgment

OVERFITTING = Question(
    "Your CIFAR-10 network reaches 99% training accuracy and 72% validation accuracy; over the last ten epochs "
    "the training loss kept falling while the validation loss rose. What do you change first?",
    choices={
        "a": "Train for more epochs",
        "b": "Regularise: data augmentation (random crops and flips), weight decay or dropout, and keep the "
             "weights of the epoch with the best validation loss",
        "c": "Make the network wider and deeper",
        "d": "Raise the learning rate",
    },
    answer="b",
    why="The gap between training and validation, with validation loss rising, is overfitting: the network "
        "memorises the training images. Augmentation shows it new variants of them, weight decay and dropout "
        "limit what it can memorise, and early stopping keeps the best epoch.",
    hints={
        "a": "Validation loss is already rising: more epochs widen the gap between training and validation.",
        "c": "A bigger network memorises more easily; capacity is not what is missing when training accuracy "
             "is 99%.",
        "d": "The training loss is already low; a higher learning rate makes training less stable and does not "
             "address the gap (it is a tool against underfitting).",
    },
).relabelled('bacd')  # the answer letters of the course vary


def check_quiz_overfitting(answer) -> None:
    """What to change first when training accuracy is high and validation accuracy low."""
    check_choice(OVERFITTING, answer)
