"""cnnkit: the helper package of the course "Building a Good Image Classifier with CNN".

Submodules are imported on first use, so ``import cnnkit as ck`` is cheap and
does not start TensorFlow::

    import cnnkit as ck
    ck.setup()                       # quiet logs, seeds, version guard
    data = ck.data.load_dataset()    # CIFAR-10, or CNNKIT_DATASET=offline
    y = ck.conv.conv2d(x, w)         # from-scratch layers in numpy
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

SUBMODULES = (
    "activations", "architectures", "backward", "checks", "conv", "data", "env", "exercises", "gradcheck",
    "experiments", "landscapes", "normalization", "optim", "params", "pipeline",
    "plotting", "pooling", "regularization", "training",
)

from cnnkit.env import budget, fast_mode, setup  # noqa: E402  (cheap: numpy only)


# The package's one lazy mechanism. Plain imports of every submodule here would
# start TensorFlow: architectures, training and experiments import Keras at their
# top. Measured on the course machine (python -X importtime, best of 3):
# ``import cnnkit`` takes about 0.07-0.1 s with this lazy access, while importing
# Keras alone takes about 2.5-4.4 s, which every numpy-only lesson and every
# exercise kernel would then pay. So ``ck.conv`` imports cnnkit.conv on first
# use (PEP 562), and ``import cnnkit`` imports only cnnkit.env (numpy).
def __getattr__(name: str):
    if name in SUBMODULES:
        module = importlib.import_module(f"cnnkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(SUBMODULES))


__all__ = ["__version__", "setup", "fast_mode", "budget", *SUBMODULES]
