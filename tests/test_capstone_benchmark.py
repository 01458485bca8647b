"""benchmarks/capstone.py: which models it trains, and what its record says about the data."""
import subprocess
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_helpers import REPO, benchmark_module, subprocess_env  # noqa: E402


class _Dataset:
    def __init__(self, folder):
        self.folder = folder

    def describe(self):
        return f"dataset: cifar10 ({self.folder}/cifar-10-batches-py) | train (50000, 32, 32, 3) uint8"


def test_the_record_names_the_data_folder_portably(tmp_path, monkeypatch):
    capstone = benchmark_module("capstone")
    folder = tmp_path / "cifar"
    folder.mkdir()
    monkeypatch.delenv("CNNKIT_DATA_DIR", raising=False)
    for given in (str(folder), f"{folder}/", str(tmp_path / "." / "cifar")):
        text = capstone.describe_portably(_Dataset(folder), given)
        assert text == "dataset: cifar10 (<data-dir>/cifar-10-batches-py) | train (50000, 32, 32, 3) uint8"
        assert str(tmp_path) not in text
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(folder))
    assert capstone.describe_portably(_Dataset(folder)).startswith("dataset: cifar10 ($CNNKIT_DATA_DIR/cifar-10")
    monkeypatch.delenv("CNNKIT_DATA_DIR")
    assert str(folder) in capstone.describe_portably(_Dataset(folder))  # nothing to name it by: left as it is


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
