"""Exercise checks for lesson 08 (loss surfaces and optimizers).

Each check calls the student's answer on several inputs, compares with the
formula (the tutorial's, as corrected in ERRATA.md), and when the answer is
wrong, compares it with the usual mistakes so the message can name the one
that was made (Keras' velocity form, epsilon inside the root, the slide's
v_t instead of g_t, a missing bias correction, the diagonal read instead of the
eigenvalues, a learning rate past 2 / curvature, ...).
"""
from __future__ import annotations

import math

import numpy as np

from cnnkit.checks import call_answer, case_rng, cases, expect_callable, expect_shape, fail, passed, unanswered
from cnnkit.checks.quiz import Question, check_choice

KINDS = ("minimum", "maximum", "saddle", "degenerate")


# --------------------------------------------------------------------------- helpers


def _call(fn, name: str, *args):
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]  # the student may modify inputs
    return call_answer(fn, name, *copies, detail=f" (inputs: {_show(args)})")


def _show(args) -> str:
    parts = []
    for a in args:
        parts.append(np.array2string(np.asarray(a), precision=4) if isinstance(a, np.ndarray) else repr(a))
    return ", ".join(parts)


def _unpack(out, name: str, names: tuple[str, ...]):
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = f"a {type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        fail(f"{name} should return a tuple ({', '.join(names)}); it returned {got}")
    return out


def _matches(got, value) -> bool:
    with np.errstate(all="ignore"):
        return bool(np.all(np.isfinite(value)) and np.allclose(got, value, rtol=1e-6, atol=1e-12))


def _compare(label: str, got, expected, variants: dict, inputs: str):
    """Fail with a hint when ``got`` differs from ``expected``; ``variants`` maps a hint to a wrong value."""
    arr = expect_shape(label, got, np.shape(expected))
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        fail(f"{label} should hold numbers, got dtype {arr.dtype}")
    if _matches(arr, expected):
        return
    for hint, value in variants.items():
        if _matches(arr, value):
            fail(f"{label} is not right: {hint} (inputs: {inputs}; expected {np.round(expected, 6).tolist()}, "
                 f"got {np.round(arr, 6).tolist()})")
    fail(f"{label} is not right for inputs {inputs}: expected {np.round(expected, 6).tolist()}, "
         f"got {np.round(arr, 6).tolist()}; write the update out line by line from the formula and compare")


# --------------------------------------------------------------------------- momentum


def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    """A random small shape of one or two axes, for hidden weight arrays."""
    return tuple(int(d) for d in rng.integers(2, 5, size=int(rng.integers(1, 3))))


def _with_tiny(rng: np.random.Generator, shape, scale: float, tiny: float) -> np.ndarray:
    """Normal values of ``scale`` with one entry of size ``tiny``: where epsilon's place shows."""
    out = rng.normal(0, scale, size=shape)
    out.reshape(-1)[int(rng.integers(out.size))] = tiny * rng.choice([-1.0, 1.0])
    return out


def _momentum_cases():
    def visible(rng):
        return [
            (np.array([1.0, -2.0, 0.5]), np.zeros(3), np.array([0.4, -1.0, 2.0]), 0.1, 0.9),
            (rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), 0.05, 0.8),
            (np.array([3.0, 0.0]), np.array([0.5, -0.5]), np.array([-1.0, 1.0]), 0.5, 0.5),
        ]

    def draw(rng):  # a first step from v = 0, a general one, and beta = 0.5 where the two weights are equal
        drawn = []
        for i, beta in enumerate((float(rng.uniform(0.8, 0.99)), float(rng.uniform(0.6, 0.95)), 0.5)):
            shape = _shape(rng)
            v = np.zeros(shape) if i == 0 else rng.normal(size=shape)
            drawn.append((rng.normal(size=shape), v, rng.normal(size=shape), float(rng.uniform(0.01, 0.5)), beta))
        return drawn

    return cases(visible(case_rng(8)), draw, seed=8)


def check_momentum_step(momentum_step) -> None:
    """``momentum_step(w, v, grad, lr, beta) -> (w_new, v_new)`` with v_new = beta v + (1 - beta) g, w_new = w - lr v_new."""
    unanswered(momentum_step, "momentum_step")
    expect_callable(momentum_step, "momentum_step")
    for w, v, g, lr, beta in _momentum_cases():
        inputs = f"w={_show([w])}, v={_show([v])}, grad={_show([g])}, lr={lr}, beta={beta}"
        out = _unpack(_call(momentum_step, "momentum_step", w, v, g, lr, beta), "momentum_step", ("w_new", "v_new"))
        v_new = beta * v + (1 - beta) * g
        w_new = w - lr * v_new
        v_keras = beta * v - lr * g
        _compare("v_new", out[1], v_new, {
            "this is Keras' velocity v = beta v - lr g; the tutorial form averages the gradients: "
            "v = beta v + (1 - beta) g": v_keras,
            "you forgot the factor (1 - beta) on the gradient: v = beta v + (1 - beta) g": beta * v + g,
            "the weights beta and (1 - beta) are swapped: beta multiplies the old velocity": (1 - beta) * v + beta * g,
            "you returned (v_new, w_new): return the weights first, (w_new, v_new)": w_new,
        }, inputs)
        _compare("w_new", out[0], w_new, {
            "the step must go against the velocity: w_new = w - lr v_new (a minus sign)": w + lr * v_new,
            "update the velocity first, then step with the NEW velocity v_new, not the old v": w - lr * v,
            "you stepped along the raw gradient; momentum steps along the averaged velocity v_new": w - lr * g,
        }, inputs)
    passed("momentum_step matches v = beta v + (1 - beta) g, w = w - lr v on 3 cases")


# --------------------------------------------------------------------------- RMSProp


def _rmsprop_cases():
    def visible(rng):
        return [
            (np.array([1.0, -2.0, 0.5]), np.zeros(3), np.array([1e-4, -3.0, 0.02]), 0.01, 0.9, 1e-7),
            (rng.normal(size=(2, 3)), rng.uniform(0.1, 1, size=(2, 3)), rng.normal(size=(2, 3)), 0.1, 0.8, 1e-3),
            (np.array([0.0, 1.0]), np.array([1e-10, 4.0]), np.array([-2e-5, 0.5]), 0.05, 0.5, 1e-5),
        ]

    def draw(rng):  # each case has a gradient entry near sqrt(eps), so eps inside or outside the root differ
        drawn = []
        for i, eps in enumerate((1e-7, float(10.0 ** rng.integers(-4, -2)), 1e-5)):
            shape = _shape(rng)
            v = np.zeros(shape) if i == 0 else rng.uniform(0.1, 1, size=shape)
            if i == 2:
                v.reshape(-1)[0] = 1e-10
            grad = _with_tiny(rng, shape, 1.0, 10 * math.sqrt(eps))
            if i == 2:
                grad.reshape(-1)[0] = -2 * math.sqrt(eps)
            rho = (0.9, float(rng.uniform(0.7, 0.95)), 0.5)[i]
            drawn.append((rng.normal(size=shape), v, grad, float(rng.uniform(0.005, 0.2)), rho, eps))
        return drawn

    return cases(visible(case_rng(9)), draw, seed=9)


def check_rmsprop_step(rmsprop_step) -> None:
    """``rmsprop_step(w, v, grad, lr, rho, eps) -> (w_new, v_new)``: v_new = rho v + (1-rho) g^2, w_new = w - lr g/(sqrt(v_new)+eps)."""
    unanswered(rmsprop_step, "rmsprop_step")
    expect_callable(rmsprop_step, "rmsprop_step")
    for w, v, g, lr, rho, eps in _rmsprop_cases():
        inputs = f"w={_show([w])}, v={_show([v])}, grad={_show([g])}, lr={lr}, rho={rho}, eps={eps}"
        out = _unpack(_call(rmsprop_step, "rmsprop_step", w, v, g, lr, rho, eps), "rmsprop_step", ("w_new", "v_new"))
        v_new = rho * v + (1 - rho) * g ** 2
        w_new = w - lr * g / (np.sqrt(v_new) + eps)
        _compare("v_new", out[1], v_new, {
            "the average must be of the SQUARED gradient: v = rho v + (1 - rho) g**2": rho * v + (1 - rho) * g,
            "you forgot the factor (1 - rho) on g**2": rho * v + g ** 2,
            "the weights rho and (1 - rho) are swapped: rho multiplies the old average": (1 - rho) * v + rho * g ** 2,
            "you returned (v_new, w_new): return the weights first, (w_new, v_new)": w_new,
        }, inputs)
        _compare("w_new", out[0], w_new, {
            "epsilon belongs outside the root in this form: divide by (sqrt(v_new) + eps), not sqrt(v_new + eps) "
            "(that is Keras' choice)": w - lr * g / np.sqrt(v_new + eps),
            "this is the slide's formula, which multiplies by v_t; the step multiplies the gradient g": (
                w - lr / (np.sqrt(v_new) + eps) * v_new),
            "divide by the square ROOT of v_new (np.sqrt)": w - lr * g / (v_new + eps),
            "use the updated average v_new in the step, not the old v": w - lr * g / (np.sqrt(v) + eps),
            "the step must go against the gradient: w - lr g / (sqrt(v_new) + eps)": w + lr * g / (np.sqrt(v_new) + eps),
        }, inputs)
    passed("rmsprop_step matches v = rho v + (1 - rho) g^2, w = w - lr g / (sqrt(v) + eps) on 3 cases")


# --------------------------------------------------------------------------- Adam


def _adam_cases():
    def visible(rng):
        return [
            (np.array([1.0, -2.0, 0.5]), np.zeros(3), np.zeros(3), np.array([1e-5, -3.0, 0.02]), 1, 0.01, 0.9, 0.999,
             1e-7),
            (rng.normal(size=(2, 2)), rng.normal(size=(2, 2)) * 0.1, rng.uniform(0, 0.1, size=(2, 2)),
             rng.normal(size=(2, 2)), 3, 0.1, 0.8, 0.99, 1e-8),
            (np.array([0.5, 0.5]), np.array([1e-6, 0.2]), np.array([1e-12, 0.3]), np.array([2e-6, -1.0]), 10, 0.05,
             0.9, 0.999, 1e-6),
        ]

    def draw(rng):  # the first step (t = 1, zero moments) and two later ones; tiny entries where eps shows
        drawn = []
        for i, (t, eps) in enumerate(((1, 1e-7), (int(rng.integers(2, 6)), 1e-8), (int(rng.integers(6, 30)), 1e-6))):
            shape = _shape(rng)
            if i == 0:
                m, v = np.zeros(shape), np.zeros(shape)
                grad = _with_tiny(rng, shape, 1.0, 100 * eps)
            else:
                m = rng.normal(0, 0.1, size=shape)
                v = rng.uniform(0, 0.1, size=shape)
                m.reshape(-1)[0], v.reshape(-1)[0] = 1e-6 * (i == 2), 1e-12 * (i == 2)
                grad = rng.normal(size=shape)
                grad.reshape(-1)[0] = 2 * eps
            b1, b2 = float(rng.uniform(0.8, 0.95)), float(rng.choice([0.99, 0.995, 0.999]))
            drawn.append((rng.normal(size=shape), m, v, grad, t, float(rng.uniform(0.005, 0.2)), b1, b2, eps))
        return drawn

    return cases(visible(case_rng(10)), draw, seed=10)


def check_adam_step(adam_step) -> None:
    """``adam_step(w, m, v, grad, t, lr, beta1, beta2, eps) -> (w_new, m_new, v_new)``, t counted from 1.

    m_new = b1 m + (1-b1) g; v_new = b2 v + (1-b2) g^2; m_hat = m_new/(1-b1^t);
    v_hat = v_new/(1-b2^t); w_new = w - lr m_hat/(sqrt(v_hat) + eps).
    """
    unanswered(adam_step, "adam_step")
    expect_callable(adam_step, "adam_step")
    table = _adam_cases()
    for w, m, v, g, t, lr, b1, b2, eps in table:
        inputs = (f"w={_show([w])}, m={_show([m])}, v={_show([v])}, grad={_show([g])}, t={t}, lr={lr}, "
                  f"beta1={b1}, beta2={b2}, eps={eps}")
        out = _unpack(_call(adam_step, "adam_step", w, m, v, g, t, lr, b1, b2, eps), "adam_step",
                      ("w_new", "m_new", "v_new"))
        m_new = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m_new / (1 - b1 ** t), v_new / (1 - b2 ** t)
        w_new = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        _compare("m_new", out[1], m_new, {
            "return the raw moving average m_new = b1 m + (1 - b1) g; the bias correction m_hat is only used for "
            "the step, never stored": m_hat,
            "you forgot the factor (1 - beta1) on g": b1 * m + g,
            "you returned the moments in the wrong order: (w_new, m_new, v_new)": v_new,
        }, inputs)
        _compare("v_new", out[2], v_new, {
            "the slide's typo: v uses (1 - beta2) g^2, not (1 - beta1) g^2": b2 * v + (1 - b1) * g ** 2,
            "return the raw v_new = b2 v + (1 - b2) g^2; the corrected v_hat is only used for the step": v_hat,
            "v averages the SQUARED gradient: (1 - beta2) * g**2": b2 * v + (1 - b2) * g,
        }, inputs)
        wrong = {
            "you forgot the bias correction: divide m_new by (1 - beta1**t) and v_new by (1 - beta2**t) "
            "before the step": w - lr * m_new / (np.sqrt(v_new) + eps),
            "epsilon belongs outside the root in this form: sqrt(v_hat) + eps, not sqrt(v_hat + eps)": (
                w - lr * m_hat / np.sqrt(v_hat + eps)),
            "this is Keras' folded form (eps added to sqrt(v_new), the corrections moved into the step size); "
            "here divide by sqrt(v_hat) + eps": (
                w - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m_new / (np.sqrt(v_new) + eps)),
            "only half the bias correction: correct BOTH m (by 1 - beta1**t) and v (by 1 - beta2**t)": (
                w - lr * m_hat / (np.sqrt(v_new) + eps)),
            "only half the bias correction: correct BOTH m and v, not just v": w - lr * m_new / (np.sqrt(v_hat) + eps),
            "the step must go against the gradient: w - lr m_hat / (sqrt(v_hat) + eps)": (
                w + lr * m_hat / (np.sqrt(v_hat) + eps)),
        }
        if t > 1:
            for shift, word in ((t - 1, "t - 1"), (t + 1, "t + 1")):
                wrong[f"the bias correction uses the power beta**t with t = {t} here (you used {word}); "
                      f"t counts steps from 1"] = (
                    w - lr * (m_new / (1 - b1 ** shift)) / (np.sqrt(v_new / (1 - b2 ** shift)) + eps))
        _compare("w_new", out[0], w_new, wrong, inputs)
    steps = ", ".join(str(case[4]) for case in table)
    passed(f"adam_step matches Adam with bias-corrected moments and eps outside the root on {len(table)} cases "
           f"(t = {steps})")


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
        got = _call(classify_hessian, "classify_hessian", H)
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
    from cnnkit import landscapes, optim

    fn = landscapes.ravine(condition)
    path = optim.minimize(optim.GD(lr), fn.gradient, np.array(start, dtype=float), steps)
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
        got = _call(updates_per_epoch, "updates_per_epoch", n, b)
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
    from cnnkit import landscapes, optim

    fn = landscapes.ravine(QUIZ_CONDITION)
    return {label: optim.minimize(optim.make(name, lr, **kwargs), fn.gradient, np.array(QUIZ_START), QUIZ_STEPS)
            for label, (name, lr, kwargs) in QUIZ_PATHS.items()}


def draw_quiz_paths():
    """Contour plot of the ravine with the three unnamed paths of :func:`quiz_paths`; returns the Figure."""
    from cnnkit import landscapes

    return landscapes.contour_plot(landscapes.ravine(QUIZ_CONDITION), quiz_paths(),
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
