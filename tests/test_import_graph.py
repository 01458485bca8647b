"""The package's shape: small modules that say what they are for, plain imports, old names still importable.

Read from the source with ``ast`` (nothing is imported for the static checks), and
from fresh interpreters where what an import loads matters.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnkit"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400

# The one module allowed a module-level __getattr__: the package's __init__ imports a submodule on
# first use of `ck.conv`, `ck.data`, ..., so that `import cnnkit as ck` in a numpy-only lesson or
# exercise does not import Keras (4.6 s on this kind of machine, measured). The list may only shrink.
LAZY_ATTRIBUTES = {
    "cnnkit/__init__.py": "ck.conv, ck.data, ... in every lesson after `import cnnkit as ck`",
}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_level_names(tree: ast.Module, names: set[str]) -> list[str]:
    """Names in ``names`` defined (def or assignment) at the top level of ``tree``, outside functions and classes."""
    found = []
    for node in tree.body:
        for inner in ([node] if not isinstance(node, ast.If) else [*node.body, *node.orelse]):
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)) and inner.name in names:
                found.append(inner.name)
            elif isinstance(inner, ast.Assign):
                found += [t.id for t in inner.targets if isinstance(t, ast.Name) and t.id in names]
    return found


def test_the_walk_sees_every_module_and_finds_a_getattr():
    assert len(MODULES) > 40 and PACKAGE / "checks" / "__init__.py" in MODULES
    sample = ast.parse("import x\n\ndef __getattr__(name):\n    return 1\n\nclass A:\n    def __getattr__(self, n): ...\n")
    assert module_level_names(sample, {"__getattr__"}) == ["__getattr__"]
    assert module_level_names(ast.parse("__getattr__ = lambda n: n\n"), {"__getattr__"}) == ["__getattr__"]
    assert module_level_names(ast.parse("class A:\n    def __getattr__(self, n): ...\n"), {"__getattr__"}) == []


def test_no_module_level_getattr_beyond_the_listed_ones():
    found = {_relative(p) for p in MODULES if module_level_names(_tree(p), {"__getattr__"})}
    unexpected = sorted(found - set(LAZY_ATTRIBUTES))
    assert not unexpected, f"module-level __getattr__ in {unexpected}: import what the module offers at its top"
    gone = sorted(set(LAZY_ATTRIBUTES) - found)
    assert not gone, f"{gone} no longer define __getattr__: remove them from LAZY_ATTRIBUTES"


def test_checks_package_has_no_lazy_attributes():
    tree = _tree(PACKAGE / "checks" / "__init__.py")
    assert module_level_names(tree, {"__getattr__", "__dir__"}) == []
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "importlib" not in imported


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_module_is_small_and_its_docstring_says_what_it_is_for(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_relative(path)} has {lines} lines, more than {MAX_LINES}: split it by job"
    doc = ast.get_docstring(_tree(path))
    assert doc and doc.splitlines()[0].strip(), f"{_relative(path)} has no module docstring saying what it is for"


def test_no_module_imports_names_from_the_package_root():
    """``from cnnkit import name`` may import a submodule, never a name of cnnkit/__init__ (an arrow back up)."""
    submodules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    # the version is read from the root by a few modules; it is a constant, not code that runs
    allowed = submodules | {"__version__"}
    bad = []
    for path in MODULES:
        if path == PACKAGE / "__init__.py":
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "cnnkit":
                bad += [f"{_relative(path)}:{node.lineno} {a.name}" for a in node.names if a.name not in allowed]
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                bad.append(f"{_relative(path)}:{node.lineno} relative import")
    assert not bad, f"imports back up to cnnkit/__init__: {bad}"


# --------------------------------------------------------------------------- fresh interpreters


def _run(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


NUMPY_ONLY = ("cnnkit.data", "cnnkit.normalization", "cnnkit.cifar10", "cnnkit.cifar10_files", "cnnkit.offline_data",
              "cnnkit.splits", "cnnkit.channel_stats", "cnnkit.scalers", "cnnkit.leakage", "cnnkit.batchnorm",
              "cnnkit.checks", "cnnkit.checks.normalization")


def test_data_normalization_and_checks_do_not_start_tensorflow():
    loaded = _run(f"import json, sys\nimport {', '.join(NUMPY_ONLY)}\n"
                  "print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))")
    assert loaded == []


def test_check_cells_import_their_topic_without_the_others():
    """``from cnnkit.checks import X as checks`` loads X (and what it needs), not every lesson's checks."""
    result = _run(
        "import json, sys\n"
        "from cnnkit.checks import TOPICS\n"
        "before = {t for t in TOPICS if 'cnnkit.checks.' + t in sys.modules}\n"
        "from cnnkit.checks import normalization as checks\n"
        "after = sorted(t for t in TOPICS if 'cnnkit.checks.' + t in sys.modules)\n"
        "import importlib\n"
        "every = sorted(t for t in TOPICS if importlib.import_module('cnnkit.checks.' + t).__name__.endswith(t))\n"
        "print(json.dumps([sorted(before), after, checks.__name__, every, list(TOPICS)]))"
    )
    before, after, name, every, topics = result
    assert before == [] and after == ["normalization"] and name == "cnnkit.checks.normalization"
    assert every == sorted(topics)


SPLIT = {
    "cnnkit.data": {
        "cnnkit.cifar10": ["CLASS_NAMES", "CIFAR10_URL", "CIFAR10_SHA256", "DataNotFoundError", "find_cifar10",
                           "keras_cache_dir", "load_cifar10", "_candidates", "_search_places"],
        "cnnkit.cifar10_files": ["FOLDER", "ARCHIVE", "TRAIN_BATCHES", "TEST_BATCH", "MAX_BATCH_BYTES", "BATCH_SIZE",
                                 "CorruptDataError", "safe_unpickle"],
        "cnnkit.offline_data": ["OFFLINE_CLASS_NAMES", "make_offline"],
        "cnnkit.splits": ["stratified_indices", "train_val_split", "stratified_subset"],
    },
    "cnnkit.normalization": {
        "cnnkit.channel_stats": ["uint8_histograms", "channel_extrema", "channel_moments"],
        "cnnkit.scalers": ["NotFittedError", "MinMaxScaler", "StandardScaler"],
        "cnnkit.leakage": ["LeakReport", "detect_leak"],
        "cnnkit.batchnorm": ["batch_norm", "batch_norm_layers", "set_bn_momentum", "reestimate_bn_statistics"],
    },
}


@pytest.mark.parametrize("old", sorted(SPLIT))
def test_split_modules_offer_every_old_name_as_the_same_object(old):
    import importlib

    before = importlib.import_module(old)
    for new, names in SPLIT[old].items():
        module = importlib.import_module(new)
        for name in names:
            assert getattr(before, name) is getattr(module, name), f"{old}.{name} is not {new}.{name}"
    if hasattr(before, "__all__"):
        assert all(hasattr(before, name) for name in before.__all__)
