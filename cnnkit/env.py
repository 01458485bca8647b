"""Notebook set-up: quiet logs, seeds, version guard, fast mode.

Every lesson starts with ``ck.setup()``. It

* silences TensorFlow's C++ start-up chatter (must happen before TensorFlow is
  imported, so call it first);
* seeds Python, numpy and TensorFlow/Keras (``keras.utils.set_random_seed``);
* checks that numpy, TensorFlow and Keras are inside the range the kit is tested
  with and, when they are not, says what to install;
* reports whether fast mode is on.

Notebooks that compute with numpy only call ``ck.setup(seed=0, tensorflow=False)``:
Python and numpy are seeded and numpy's version is checked, and TensorFlow and
Keras (seconds of start-up) are not imported at all.

Fast mode (environment variable ``CNNKIT_FAST=1``) shrinks training budgets so
that the whole course runs in minutes; the default is the full lesson.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import re
import warnings

import numpy as np

# Tested ranges: (inclusive lower bound, exclusive upper bound), compared on (major, minor).
TESTED = {
    "numpy": ((1, 26), (3, 0)),
    "tensorflow": ((2, 16), (3, 0)),
    "keras": ((3, 0), (4, 0)),
}
INSTALL_HINT = 'pip install "numpy>=1.26,<3" "tensorflow-cpu>=2.16,<3" "keras>=3,<4"'

_TRUE = {"1", "true", "yes", "on"}


def cpu_model() -> str:
    """The processor's model name (Linux' /proc/cpuinfo; what the platform reports elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def fast_mode() -> bool:
    """True when ``CNNKIT_FAST`` is set to 1/true/yes/on (case-insensitive)."""
    return os.environ.get("CNNKIT_FAST", "").strip().lower() in _TRUE


def budget(full, fast):
    """Return ``fast`` in fast mode and ``full`` otherwise.

    >>> epochs = budget(full=10, fast=1)
    """
    return fast if fast_mode() else full


def _version_tuple(text: str) -> tuple[int, int]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 2:
        parts.append(0)
    return tuple(parts)


def check_versions(versions: dict[str, str]) -> list[str]:
    """Return one message per package outside its tested range (empty when all fit)."""
    problems = []
    for name, (low, high) in TESTED.items():
        if name not in versions:
            continue
        got = _version_tuple(versions[name])
        if not (low <= got < high):
            problems.append(
                f"{name} {versions[name]} is outside the tested range "
                f">={low[0]}.{low[1]},<{high[0]}.{high[1]}"
            )
    return problems


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ info/warning logs; effective only before TF is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null for the duration (TensorFlow's C++ start-up lines)."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some embedded hosts)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def keras_backend() -> str:
    """The backend Keras will run on: ``KERAS_BACKEND`` if set, else ``"tensorflow"`` (the kit's own)."""
    return os.environ.get("KERAS_BACKEND", "").strip() or "tensorflow"


def import_tensorflow():
    """Import TensorFlow with its C++ start-up banner hidden; return the module.

    Under another Keras backend (``KERAS_BACKEND=jax`` on a machine without TensorFlow,
    as ``benchmarks/capstone_jax.py`` runs), a missing TensorFlow returns ``None``: the
    model, optimiser, schedule and evaluation work on any backend; the ``tf.data``
    pipelines and :func:`cnnkit.training.fit_recipe` need TensorFlow.
    """
    quiet_tensorflow()
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        with _stderr_silenced():
            import tensorflow as tf
    except ModuleNotFoundError:
        if keras_backend() == "tensorflow":
            raise
        return None
    tf.get_logger().setLevel("ERROR")
    return tf


@contextlib.contextmanager
def traced_gradients_released():
    """Drop, on leaving, the custom gradients TensorFlow registered while inside.

    Tracing a training step under a ``tf.distribute`` strategy (the default one
    included) wraps the gradient all-reduce in ``tf.custom_gradient``, which in graph
    mode registers a ``CustomGradient-<n>`` function in TensorFlow's global gradient
    registry. Nothing ever removes it, and its closure holds tensors of the traced step,
    so every model trained keeps its whole training graph alive after it is deleted
    (TensorFlow issue 97697; tens of MB per model for the lessons' CNNs). The entry is
    used only while the step is being traced; once ``fit`` returns, the compiled step no
    longer needs it (a retrace registers a new one). Entries that existed before are kept.
    If TensorFlow's private registry is not where this expects it, nothing is done.
    """
    import_tensorflow()
    try:
        from tensorflow.python.framework import ops

        entries = ops._gradient_registry._registry
        before = set(entries)
    except (ImportError, AttributeError):  # another TensorFlow layout: leave it alone
        entries = before = None
    try:
        yield
    finally:
        if entries is not None:
            for name in [n for n in entries if n not in before and str(n).startswith("CustomGradient-")]:
                entries.pop(name, None)


def seed_everything(seed: int = 0, *, tensorflow: bool = True) -> None:
    """Seed Python's ``random``, numpy's global generator and, unless ``tensorflow=False``,
    TensorFlow and Keras (which imports them)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    if tensorflow:
        import keras

        keras.utils.set_random_seed(int(seed))


FIGURE_DPI = 100  # Jupyter's inline figures default to 72 dots per inch: small text once saved


def _readable_figures() -> None:
    """Draw notebook figures at :data:`FIGURE_DPI` (matplotlib is not imported if it is not installed)."""
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.rcParams["figure.dpi"] = FIGURE_DPI


def setup(seed: int = 0, *, tensorflow: bool = True, verbose: bool = True) -> dict[str, str]:
    """Prepare a notebook: quiet logs, seeds, version guard, figures at 100 dpi; return the versions.

    Prints one line such as
    ``cnnkit 0.1.0 | numpy 2.4.6 | TensorFlow 2.21.0 | Keras 3.15.1 | fast mode: off``
    and warns (with the pip command to fix it) when a version is outside the
    tested range.

    With ``tensorflow=False`` TensorFlow and Keras are neither imported nor seeded
    (a later import still gets quiet logs); only Python and numpy are seeded, only
    numpy's version is checked, and the line says
    ``TensorFlow not loaded (numpy-only notebook)``. The returned dict then holds
    numpy's version only.
    """
    if not isinstance(tensorflow, bool):
        raise ValueError(f"tensorflow must be True or False, got {tensorflow!r}")
    from cnnkit import __version__

    quiet_tensorflow()
    versions = {"numpy": np.__version__}
    if tensorflow:
        tf = import_tensorflow()
        import keras

        versions.update(tensorflow=tf.__version__, keras=keras.__version__)
    for problem in check_versions(versions):
        warnings.warn(f"{problem}; the lessons may fail. Fix with: {INSTALL_HINT}", stacklevel=2)
    seed_everything(seed, tensorflow=tensorflow)
    _readable_figures()
    if verbose:
        if tensorflow:
            frameworks = f"TensorFlow {versions['tensorflow']} | Keras {versions['keras']}"
        else:
            frameworks = "TensorFlow not loaded (numpy-only notebook)"
        print(f"cnnkit {__version__} | numpy {versions['numpy']} | {frameworks}"
              f" | fast mode: {'on' if fast_mode() else 'off'}")
    return versions


def portable_paths(text: str, data_dir: str | None = None) -> str:
    """``text`` with this machine's folders written portably, for output saved in a notebook or a record.

    The data folder (``data_dir``, as a script's ``--data-dir`` names it; default
    ``$CNNKIT_DATA_DIR``) becomes ``$CNNKIT_DATA_DIR`` and the home folder ``~``, so
    ``dataset: cifar10 (/data/me/cifar-10-batches-py)`` is saved as
    ``dataset: cifar10 ($CNNKIT_DATA_DIR/cifar-10-batches-py)``.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    replacements = []
    data_dir = str(data_dir or os.environ.get("CNNKIT_DATA_DIR", "")).strip()
    if data_dir:
        given = os.path.expanduser(data_dir).rstrip(os.sep)
        for form in {given, os.path.realpath(given), os.path.abspath(given)}:
            if form and form != os.sep:
                replacements.append((form, "$CNNKIT_DATA_DIR"))
    home = os.path.expanduser("~").rstrip(os.sep)
    if home and home != os.sep:
        replacements.append((home, "~"))
    for folder, name in sorted(replacements, key=lambda pair: -len(pair[0])):
        text = re.sub(re.escape(folder) + r"(?=$|[/\\\s)'\"|,;:])", lambda _: name, text)
    return text
