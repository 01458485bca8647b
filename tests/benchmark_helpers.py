"""Helpers for the tests of the scripts in benchmarks/: load one as a module, run one in a child process."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` loaded as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subprocess_env(**extra) -> dict:
    """The environment for a child process: quiet TensorFlow, no GPU, no cluster, the checkout importable."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **extra}
    env.pop("TF_CONFIG", None)
    return env
