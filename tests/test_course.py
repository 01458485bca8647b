"""The course as committed: every lesson is linked, structured as agreed and saved from a full run."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnkit import platforms

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
ALL = LESSONS + SOLUTIONS


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def _setup_cell(nb):
    """The set-up cell: the first code cell that calls ``ck.setup(``, right after the install cell."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == platforms.install_cell(), "the first code cell is not the install cell"
    assert "import cnnkit as ck" in code[1].source and "ck.setup(" in code[1].source, \
        "the second code cell is not the set-up cell"
    return code[1]


def test_every_lesson_linked_from_readme_and_start_page():
    readme = (ROOT / "README.md").read_text()
    start = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    start_text = "".join(c.source for c in start.cells)
    linked = set(re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", readme))
    for target in linked | set(re.findall(r"\]\((exercises/[^)]+\.ipynb)\)", readme)):
        assert (ROOT / target).exists(), f"README links to missing {target}"
    for lesson in LESSONS:
        assert f"notebooks/{lesson.name}" in linked, f"README's course map lacks {lesson.name}"
        assert f"({lesson.name})" in start_text, f"00_start_here lacks {lesson.name}"
        assert (ROOT / "solutions" / lesson.name).exists(), f"{lesson.name} has no solutions/ notebook"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_anatomy(path):
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {path.stem[:2]}")
    assert platforms.badges(f"notebooks/{path.name}") in title.source, "title cell lacks the badges"
    exercise = f"../exercises/{path.name}"
    assert f"]({exercise}) {platforms.colab_link(f'exercises/{path.name}')}" in title.source, \
        "title cell lacks the link to the exercise notebook, relative and on Colab"
    _setup_cell(nb)


def _benchmark():
    spec = importlib.util.spec_from_file_location("notebook_memory", ROOT / "benchmarks" / "notebook_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_states_its_measured_run_time(path):
    """The title cell's run-time line is the one written from the lesson's last recorded full run."""
    bench = _benchmark()
    results = json.loads(bench.RESULTS.read_text())
    assert path.stem in results, (f"no recorded full run of {path.name}: "
                                  "python benchmarks/notebook_memory.py --inplace --record " + str(path.relative_to(ROOT)))
    lines = [line for line in nbformat.read(path, as_version=4).cells[0].source.splitlines()
             if line.startswith(bench.RUN_TIME)]
    assert lines == [bench.run_time_line(results[path.stem])]


@pytest.mark.parametrize("path", ALL, ids=[f"{p.parent.name}/{p.stem}" for p in ALL])
def test_saved_from_a_full_run_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    unrun = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unrun, f"code cells {unrun} were not run before saving"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), "cells were run out of order"
    errors = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.outputs)]
    assert not errors, f"code cells {errors} saved with an error output"
    setup_output = _outputs_text(_setup_cell(nb))
    assert "fast mode: off" in setup_output, "saved from a fast-mode run; re-run it in full"
    described = [_outputs_text(c) for c in code if "dataset: " in _outputs_text(c)]
    for text in described:
        assert "dataset: cifar10" in text, "saved from a run on the offline dataset; re-run it on CIFAR-10"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_metadata(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("cnnkit", {}).get("exercise") == path.stem
    assert (ROOT / "notebooks" / path.name).exists(), f"{path.name} has no lesson"


# what a saved output must not carry: a folder of the machine it ran on, or a terminal colour code
MACHINE_PATH = re.compile(r"(?<![\w.~$])/(?:work|tmp|root|home|Users|usr|opt|var|private|mnt|content|kaggle)/")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _saved_texts(cell):
    for out in cell.get("outputs", []):
        yield out.get("text", "")
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                yield value if isinstance(value, str) else str(value)
        yield "\n".join(out.get("traceback", []))


@pytest.mark.parametrize("path", ALL, ids=[f"{p.parent.name}/{p.stem}" for p in ALL])
def test_saved_outputs_carry_no_machine_paths_or_colour_codes(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for text in _saved_texts(cell):
            found = MACHINE_PATH.search(text) or ANSI.search(text)
            assert not found, (f"cell {index} saved {text[max(0, found.start() - 40):found.end() + 40]!r}: "
                               "print paths through ck.env.portable_paths, summaries with print_fn=print")


def _png_dots_per_inch(png: bytes) -> float | None:
    """The resolution a PNG declares in its pHYs chunk (pixels per metre, unit 1), or None without one."""
    import struct

    at = 8
    while at + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        if kind == b"pHYs":
            per_metre, _, unit = struct.unpack(">IIB", png[at + 8:at + 17])
            return per_metre * 0.0254 if unit == 1 else None
        at += 12 + length
    return None


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_saved_figures_are_drawn_at_100_dpi_or_more(path):
    import base64

    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                dpi = _png_dots_per_inch(base64.b64decode(png))
                assert dpi is not None and dpi >= 99.5, (
                    f"cell {index} saved a figure at {dpi} dpi; ck.setup() sets 100: re-run the lesson")


def test_the_resolution_check_reads_what_matplotlib_writes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots(figsize=(2, 1))
    for dpi in (72, 100):
        fig.savefig(tmp_path / "f.png", dpi=dpi)
        assert abs(_png_dots_per_inch((tmp_path / "f.png").read_bytes()) - dpi) < 0.5
    plt.close(fig)


def test_the_saved_output_check_catches_paths_and_colour_codes():
    assert MACHINE_PATH.search("dataset: cifar10 (/work/cifar/cifar-10-batches-py)")
    assert ANSI.search("\x1b[1mModel: \"m\"\x1b[0m")
    assert not MACHINE_PATH.search("dataset: cifar10 ($CNNKIT_DATA_DIR/cifar-10-batches-py) | ~/.keras/datasets")


# exercises whose answers and checks are numpy only: nothing in them loads TensorFlow
NUMPY_ONLY = {"01_convolution", "02_pooling", "03_normalization", "08_optimizers"}
# exercises whose answers need no TensorFlow: their set-up cell does not load it (05's and 06's checks
# compare the answers with Keras layers and load Keras themselves when a student runs them; a grading
# kernel runs only the answers, so it never pays for TensorFlow)
LIGHT_SETUP = NUMPY_ONLY | {"05_parameter_counting", "06_one_by_one_conv"}


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_numpy_only_exercises_set_up_without_tensorflow(path):
    setup = _setup_cell(nbformat.read(path, as_version=4))
    light = "ck.setup(seed=0, tensorflow=False)" in setup.source
    assert light == (path.stem in LIGHT_SETUP), f"{path.name}: set-up cell is {setup.source.splitlines()[2]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(NUMPY_ONLY))
def test_numpy_only_exercises_run_without_loading_tensorflow(stem, tmp_path):
    """Every code cell of the solution, run as one script: TensorFlow and Keras are never imported."""
    nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    script = "\n\n".join(c.source for c in nb.cells if c.cell_type == "code")
    script += ("\n\nimport sys\nloaded = sorted({'tensorflow', 'keras'} & set(sys.modules))\n"
               "print('loaded:', ', '.join(loaded) or 'none')\n")
    (tmp_path / "run.py").write_text(script)
    env = dict(os.environ, MPLBACKEND="Agg", CNNKIT_FAST="1", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "TensorFlow not loaded" in result.stdout
    assert result.stdout.rstrip().endswith("loaded: none"), result.stdout[-500:]
