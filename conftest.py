"""Test-suite set-up: fast mode, and the offline dataset unless CIFAR-10 is on this machine.

At the repository root so that it applies however pytest is called: the whole suite, one
test file, or one notebook (``pytest solutions/09_capstone.ipynb``).

The environment variables set here are inherited by the Jupyter kernels that
nbval starts, so the notebooks run in fast mode too.
"""
import os

import matplotlib

matplotlib.use("Agg")

os.environ.setdefault("CNNKIT_FAST", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if "CNNKIT_DATASET" not in os.environ:
    from cnnkit.data import find_cifar10

    local = find_cifar10()
    os.environ["CNNKIT_DATASET"] = "cifar10" if local is not None else "offline"


def pytest_report_header(config):
    return (f"cnnkit: CNNKIT_FAST={os.environ.get('CNNKIT_FAST')} "
            f"CNNKIT_DATASET={os.environ.get('CNNKIT_DATASET')} "
            f"CNNKIT_DATA_DIR={os.environ.get('CNNKIT_DATA_DIR', '')}")
