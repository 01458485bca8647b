"""benchmarks/capstone.py: which models it trains, and what its record says about the data."""
import subprocess
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_helpers import REPO, benchmark_module, subprocess_env  # noqa: E402


def test_every_recipe_is_a_model_to_train_and_an_unknown_one_is_refused_with_the_choices():
    capstone = benchmark_module("capstone")
    from cnnkit.recipes import RECIPES

    assert set(RECIPES) <= set(capstone.TARGETS)  # every recipe has its target (best's an aim)
    done = subprocess.run([sys.executable, "benchmarks/capstone.py", "--models", "tutorial,fastest"], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "unknown models ['fastest']; choose from tutorial, quick, good, best" in done.stderr


def test_the_shipped_records_name_no_machines_folder():
    import json
    import re

    paths = sorted((REPO / "benchmarks" / "results").glob("capstone_*.json"))
    assert paths
    for path in paths:
        dataset = json.loads(path.read_text())["dataset"]
        assert not re.search(r"\((/|~|[A-Za-z]:\\)", dataset), f"{path.name}: {dataset}"
