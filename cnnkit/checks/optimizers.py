"""Exercise checks for lesson 08 (loss surfaces and optimizers).

Each check calls the student's answer on several inputs, compares with the
formula (the tutorial's, as corrected in ERRATA.md), and when the answer is
wrong, compares it with the usual mistakes so the message can name the one
that was made (the diagonal read instead of the eigenvalues, a learning rate
past 2 / curvature, the last partial batch forgotten, ...). The checks of the
update rules (momentum, RMSProp, Adam) live in
:mod:`cnnkit.checks.optimizer_steps` and are gathered here with the others, so
the exercise notebook reaches all of them as ``checks.check_...``.
"""
from __future__ import annotations

import math

import numpy as np

from cnnkit.checks import cases, expect_callable, fail, passed, unanswered
from cnnkit.checks.optimizer_steps import (  # noqa: F401  (the exercise's names)
    call_on_copies,
    check_adam_step,
    check_momentum_step,
    check_rmsprop_step,
)
from cnnkit.checks.quiz import Question, check_choice
from cnnkit.landscape_functions import ravine
from cnnkit.landscape_plots import contour_plot
from cnnkit.optim import GD, make, minimize
from cnnkit.stationary import KINDS


# --------------------------------------------------------------------------- stationary points


def _draw_classify_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, str]]:
    """Ten hidden Hessians, small integer entries, like the visible ones.

    Two of each kind from rotations of known eigenvalues would lose the exact
    zeros, so they are built instead: diagonal ones shuffled, 2x2 ones whose
    off-diagonal term decides (the diagonal alone misleads), rank-one ones
    s * u u^T (degenerate), and a 3x3 saddle with a zero eigenvalue.
    """
    def pos(low=1, high=6):
        return int(rng.integers(low, high))

    def off_diagonal(kind):  # [[a, b], [b, c]], a, c > 0; b^2 < ac: minimum, b^2 > ac: saddle
        a, c = pos(), pos()
        b = int(np.floor(np.sqrt(a * c - 1))) if kind == "minimum" else int(np.floor(np.sqrt(a * c))) + pos(1, 3)
        return np.array([[a, b], [b, c]], dtype=float)

    u = rng.integers(1, 4, size=2) * rng.choice([-1, 1], size=2)
    drawn = [
        (np.diag([pos(), pos(), pos()]).astype(float), "minimum"),
        (off_diagonal("minimum"), "minimum"),
        (-np.diag([pos(), pos()]).astype(float), "maximum"),
        (-off_diagonal("minimum"), "maximum"),
        (np.diag(rng.permutation([pos(), -pos()])).astype(float), "saddle"),
        (off_diagonal("saddle"), "saddle"),
        (-off_diagonal("saddle"), "saddle"),
        (np.diag(rng.permutation([pos(), 0, -pos()])).astype(float), "saddle"),
        (float(rng.choice([-1, 1])) * np.outer(u, u).astype(float), "degenerate"),
        (np.diag(rng.permutation([pos(), 0, pos()])).astype(float) * rng.choice([-1, 1]), "degenerate"),
    ]
    return [drawn[i] for i in rng.permutation(len(drawn))]


def _classify_cases():
    return cases(_visible_classify_cases(), _draw_classify_cases, seed=12)


def _visible_classify_cases():
    return [
        (np.array([[2.0, 0.0], [0.0, 3.0]]), "minimum"),
        (np.array([[-1.0, 0.0], [0.0, -4.0]]), "maximum"),
        (np.array([[2.0, 0.0], [0.0, -2.0]]), "saddle"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "saddle"),
        (np.array([[-3.0, 1.0], [1.0, -3.0]]), "maximum"),
        (np.array([[2.0, 1.0], [1.0, 2.0]]), "minimum"),
        (np.array([[4.0, 2.0], [2.0, 1.0]]), "degenerate"),
        (np.array([[0.0, 0.0], [0.0, 0.0]]), "degenerate"),
        (np.diag([1.0, 0.0, -3.0]), "saddle"),
        (np.diag([1.0, 2.0, 5.0]), "minimum"),
    ]


def _classify_by_diagonal(H):
    d = np.diag(H)
    if np.all(d > 0):
        return "minimum"
    if np.all(d < 0):
        return "maximum"
    if np.any(d > 0) and np.any(d < 0):
        return "saddle"
    return "degenerate"


def check_classify(classify_hessian) -> None:
    """``classify_hessian(H) -> "minimum" | "maximum" | "saddle" | "degenerate"`` from the eigenvalues of H."""
    unanswered(classify_hessian, "classify_hessian")
    expect_callable(classify_hessian, "classify_hessian")
    table = _classify_cases()
    answers = []
    for H, kind in table:
        got = call_on_copies(classify_hessian, "classify_hessian", H)
        if not isinstance(got, str):
            fail(f"classify_hessian should return one of the strings {KINDS}, got {got!r} ({type(got).__name__})")
        answers.append(got)
    reads_diagonal = all(got == _classify_by_diagonal(H) for got, (H, _) in zip(answers, table))
    for got, (H, kind) in zip(answers, table):
        if got == kind:
            continue
        eig = np.round(np.linalg.eigvalsh(H), 4).tolist()
        if got.strip().lower() == kind:
            fail(f"classify_hessian returned {got!r}; write the kind exactly as {kind!r} (lowercase, no spaces)")
        if got not in KINDS:
            fail(f"classify_hessian returned {got!r}, which is not one of {KINDS}")
        if reads_diagonal:
            hint = ("you read the diagonal entries; the off-diagonal terms matter: use the eigenvalues "
                    "(np.linalg.eigvalsh(H))")
        elif kind == "degenerate":
            hint = ("an eigenvalue is 0 and none has the opposite sign, so the second-derivative test cannot "
                    "decide: answer 'degenerate'")
        elif kind == "saddle":
            hint = ("eigenvalues of both signs mean the function curves up along some directions and down along "
                    "others (a zero eigenvalue does not change that)")
        else:
            hint = f"all eigenvalues are {'positive' if kind == 'minimum' else 'negative'}"
        fail(f"classify_hessian(H) for H = {H.tolist()} (eigenvalues {eig}) returned {got!r}, expected "
             f"{kind!r}: {hint}")
    passed(f"classify_hessian names all {len(table)} stationary points correctly")


# --------------------------------------------------------------------------- learning rate on a ravine


def ravine_outcome(lr: float, condition: float = 20.0, steps: int = 100, start=(-4.0, 1.0)) -> tuple[float, np.ndarray]:
    """Run plain GD on (x^2 + k y^2)/2 from ``start``; return (final loss, final point)."""
    fn = ravine(condition)
    path = minimize(GD(lr), fn.gradient, np.array(start, dtype=float), steps)
    with np.errstate(all="ignore"):
        return float(fn.value(path[-1])), path[-1]


def check_ravine_lr(lr, condition: float = 20.0, steps: int = 100, target: float = 1e-4) -> None:
    """Plain GD with learning rate ``lr`` must bring the ravine's loss below ``target`` within ``steps`` steps."""
    unanswered(lr, "ravine_lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        fail(f"ravine_lr should be a number (a learning rate such as 0.01), got {type(lr).__name__}")
    lr = float(lr)
    if not math.isfinite(lr) or lr <= 0:
        fail(f"ravine_lr must be a positive number, got {lr}")
    loss, point = ravine_outcome(lr, condition, steps)
    limit = 2.0 / condition
    if lr >= limit:
        fail(f"with lr = {lr:g} GD does not settle: along y the curvature is {condition:g}, so each step multiplies y "
             f"by (1 - {condition:g} lr) = {1 - condition * lr:.3g}, whose size is >= 1; GD on this direction "
             f"converges only for lr < 2/{condition:g} = {limit:g}")
    if not (math.isfinite(loss) and loss <= target):
        shrink_x = abs(1 - lr) ** steps
        shrink_y = abs(1 - condition * lr) ** steps
        slow = "x" if shrink_x >= shrink_y else "y"
        fail(f"with lr = {lr:g}, after {steps} steps the loss is still {loss:.3g} (> {target:g}) at "
             f"({point[0]:.3g}, {point[1]:.3g}): x shrinks by |1 - lr|^{steps} = {shrink_x:.2g}, y by "
             f"|1 - {condition:g} lr|^{steps} = {shrink_y:.2g}; the slow one is {slow}. "
             + ("Increase lr (keeping it below 2/k = " + f"{limit:g})" if slow == "x"
                else "Move lr away from the stability limit 2/k, towards 1/k"))
    passed(f"GD with lr = {lr:g} reaches loss {loss:.2g} on the ravine (k = {condition:g}) in {steps} steps")


# --------------------------------------------------------------------------- batches


def _draw_batch_cases(rng: np.random.Generator) -> list[tuple[int, int]]:
    """Six hidden (n, batch size): a partial last batch twice, b dividing n, b larger than n, b = 1, b = n."""
    n = int(rng.integers(1000, 60000))
    b = int(rng.choice([32, 64, 100, 128, 256]))
    while n % b == 0:
        n += 1
    divides = int(rng.integers(2, 50))
    small = int(rng.integers(2, 30))
    ones, whole = int(rng.integers(10, 2000)), int(rng.integers(10, 2000))
    n2 = int(rng.integers(500, 5000))
    b2 = int(rng.integers(7, 99))
    n2 += (n2 % b2 == 0)
    drawn = [(n, b), (divides * b2, b2), (small, small + int(rng.integers(1, 40))), (ones, 1), (whole, whole), (n2, b2)]
    return [drawn[i] for i in rng.permutation(len(drawn))]


def check_updates_per_epoch(updates_per_epoch) -> None:
    """``updates_per_epoch(n_examples, batch_size) -> int``: ceil(n / b) (the last, smaller batch also updates)."""
    unanswered(updates_per_epoch, "updates_per_epoch")
    expect_callable(updates_per_epoch, "updates_per_epoch")
    table = cases([(50000, 128), (100, 10), (10, 32), (1000, 1), (1000, 1000), (45000, 256)], _draw_batch_cases,
                  seed=13)
    for n, b in table:
        got = call_on_copies(updates_per_epoch, "updates_per_epoch", n, b)
        expected = -(-n // b)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            if isinstance(got, (float, np.floating)) and float(got).is_integer() and int(got) == expected:
                fail(f"updates_per_epoch({n}, {b}) returned the float {got!r}; return an int (int(...) or //)")
            fail(f"updates_per_epoch({n}, {b}) should return an int, got {got!r} ({type(got).__name__})")
        if got != expected:
            if got == n // b:
                hint = ("the last, smaller batch of n % b examples is also a step (Keras keeps it): round up, "
                        "e.g. -(-n // b) or math.ceil(n / b)")
            elif got == n // b + 1:
                hint = "when b divides n exactly there is no extra partial batch: round up, do not add 1"
            else:
                hint = "one update per batch: count how many batches of size b cover n examples"
            fail(f"updates_per_epoch({n}, {b}) is {got}, expected {expected}: {hint}")
    passed("updates_per_epoch counts batch GD (1), SGD (n) and mini-batch (ceil(n / b)) updates correctly")


# --------------------------------------------------------------------------- question of judgment

# the three optimizers of the figure, by the letter it labels their path with
QUIZ_PATHS = {"A": ("momentum", 0.09, {"beta": 0.9}), "B": ("adam", 0.3, {}), "C": ("gd", 0.09, {})}
QUIZ_START, QUIZ_STEPS, QUIZ_CONDITION = (-4.0, 1.0), 30, 20.0


def quiz_paths() -> dict:
    """The figure's paths: ``QUIZ_STEPS`` steps of each optimizer of ``QUIZ_PATHS`` on the ravine, from ``QUIZ_START``."""
    fn = ravine(QUIZ_CONDITION)
    return {label: minimize(make(name, lr, **kwargs), fn.gradient, np.array(QUIZ_START), QUIZ_STEPS)
            for label, (name, lr, kwargs) in QUIZ_PATHS.items()}


def draw_quiz_paths():
    """Contour plot of the ravine with the three unnamed paths of :func:`quiz_paths`; returns the Figure."""
    return contour_plot(ravine(QUIZ_CONDITION), quiz_paths(),
                                   title=f"{QUIZ_STEPS} steps of three optimizers from {QUIZ_START}")


WHICH_IS_ADAM = Question(
    f"The figure shows {QUIZ_STEPS} steps of three optimizers from the same start (open circle) on the ravine "
    f"f = (x^2 + {QUIZ_CONDITION:g} y^2) / 2: plain gradient descent (lr 0.09), momentum (lr 0.09, beta 0.9) and "
    "Adam (lr 0.3), in some order. Which path is Adam's?",
    choices={"a": "path A", "b": "path B", "c": "path C"},
    answer="b",
    why="Adam divides each coordinate's step by the root of that coordinate's mean squared gradient, so its first "
        "steps move both coordinates by about lr (0.3) however steep each direction is: a straight line on "
        "which x and y change by equal amounts (45 degrees in equal units), although the ravine is 20 times "
        "steeper across (y) than along (x).",
    hints={
        "a": "Path A starts with short steps that grow and then swings in wide arcs: velocity building up and "
             "carrying the point past the valley floor. That is momentum.",
        "c": "Path C jumps across the ravine and back at every step, by a step proportional to the steep y-slope "
             "(lr x 20 y), while crawling along x: plain gradient descent.",
    },
)


def check_quiz_which_is_adam(answer) -> None:
    """Which optimizer path on the ravine is Adam's."""
    check_choice(WHICH_IS_ADAM, answer)
