"""The course as a student uses it: JupyterLab in a real headless Chromium.

nbval proves that the notebooks' code runs; this test proves that a student sees
what the lessons mean to show. One JupyterLab server (this environment's, on a free
127.0.0.1 port with a random token, serving a temporary copy of notebooks/ and
exercises/ with outputs cleared) and one Chromium (Debian's, driven by Playwright)
serve the whole module. For each lesson the test

1. opens the notebook by double-clicking it in the file browser,
2. runs Run > Run All Cells (fast mode; the offline dataset unless CIFAR-10 is local),
3. waits until the kernel is idle and no cell shows ``[*]``,
4. checks: every code cell ran; no cell shows an error (an error output, or a traceback
   on stderr; warnings are fine); no LaTeX error; every image the kernel produced is
   shown as a loaded <img> in its cell, and every cell that draws a figure in the
   committed notebook draws one here too; for lesson 01 (and any lesson that displays
   ipywidgets), the explorer renders and its output changes when a slider moves,
5. saves a screenshot of the whole notebook under ``$CNNKIT_BROWSER_ARTIFACTS``
   (default: ``<tmp>/cnnkit-browser``), never in the repository.

One test starts JupyterLab the README's way instead, ``./kit lab`` in a temporary copy of
the course (the launcher chooses the served folder and the landing page; it must install
nothing), lands on the course map, clicks its first lesson link and its first exercise
link in the rendered Markdown, and expects each notebook to open (its title shown, its
kernel session on the server, no error dialog); every process the server started must be
gone once it is stopped.

A last test opens an exercise notebook, types the first answer (from solutions/) into
its answer cell with the keyboard, runs it and expects its check cell to print "Passed:".

Select with ``-m browser``, leave out with ``-m "not browser"``. Skipped, with the
command that enables it, where chromium or Playwright is missing. Environment:
``CNNKIT_BROWSER_TIMEOUT`` (seconds a lesson may take to run, default 900; the
capstone gets twice that), ``CNNKIT_CHROMIUM`` (browser path), ``CNNKIT_BROWSER_ARTIFACTS``.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_helpers import (  # noqa: E402
    ARTIFACTS, CHROMIUM_ARGS, EXECUTED, KitLabServer, LabPage, LabServer, code_cells_to_run, copy_course,
    copy_for_launcher, find_chromium, launcher_install_is_current,
    first_exercise, has_widget_output, image_outputs, missing_requirements,
)

REPO = Path(__file__).resolve().parent.parent
LESSONS = sorted(path.name for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_TIMEOUT = float(os.environ.get("CNNKIT_BROWSER_TIMEOUT", "900"))
WIDGET_LESSONS = ("01_",)  # lessons whose ipywidgets explorer must render and respond
WIDGET_UPDATE_TIMEOUT = 90  # seconds for the explorer to redraw after a slider step
SKIP_REASON = missing_requirements()

pytestmark = [pytest.mark.browser, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]


# --------------------------------------------------------------------------- summary


class BrowserSummary:
    """Collects one row per notebook into ``ARTIFACTS/timings.json``.

    The repository's conftest.py prints them at the end of the pytest run, also when the
    test ran in a worker process of pytest-xdist (``./kit test`` runs two).
    """

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(self.rows, indent=1))


@pytest.fixture(scope="module")
def summary(request):
    plugins = request.config.pluginmanager
    found = plugins.get_plugin("cnnkit-browser-summary")
    if found is None:
        found = BrowserSummary()
        plugins.register(found, "cnnkit-browser-summary")
    return found


# --------------------------------------------------------------------------- server and browser


def server_environment() -> dict:
    """This process's environment, in fast mode, with the dataset conftest.py chose."""
    env = dict(os.environ)
    env["CNNKIT_FAST"] = "1"
    if not env.get("CNNKIT_DATASET"):
        from cnnkit.data import find_cifar10
        env["CNNKIT_DATASET"] = "cifar10" if find_cifar10() is not None else "offline"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@dataclass
class Course:
    snapshot: Path      # notebooks/, exercises/, solutions/ as they were when the module started
    server: LabServer   # serving a copy of snapshot's notebooks/ and exercises/, outputs cleared


@pytest.fixture(scope="module")
def course():
    """JupyterLab on a temporary copy of the course; stopped and removed whatever happens."""
    scratch = Path(tempfile.mkdtemp(prefix="cnnkit-browser-"))
    try:
        served = scratch / "course"
        served.mkdir()
        copy_course(REPO, scratch / "snapshot", served)
        server = LabServer(root=served, env=server_environment(), log_path=ARTIFACTS / "jupyter-server.log")
        try:
            server.start(scratch / "jupyter")
            yield Course(scratch / "snapshot", server)
        finally:
            server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    try:
        browser = driver.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        driver.stop()


@pytest.fixture
def lab(chromium, course):
    """A fresh page (own browser context and JupyterLab workspace); kernels shut down afterwards."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    try:
        yield LabPage(context.new_page(), course.server)
    finally:
        context.close()
        course.server.shutdown_kernels()


# --------------------------------------------------------------------------- the README's ./kit lab

COURSE_MAP = "notebooks/00_start_here.ipynb"
MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+\.ipynb)\)")
OPEN_ERROR_WORDS = ("error", "cannot", "could not", "not found", "404")


@dataclass
class Link:
    label: str   # the link's text in the rendered Markdown
    path: str    # the notebook it points to, relative to the repository root
    title: str   # that notebook's first level-1 heading


def notebook_title(path: Path) -> str:
    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.splitlines() if cell.cell_type == "markdown" else ():
            if line.startswith("# "):
                return line[2:].strip()
    raise LookupError(f"{path} has no level-1 heading")


def course_map_links(root: Path) -> tuple[Link, Link]:
    """The course map's first link to a lesson and its first link to an exercise.

    Each is the first link in the map that carries its label, so clicking the first link
    with that text on the page follows it.
    """
    links = []
    for cell in nbformat.read(root / COURSE_MAP, as_version=4).cells:
        if cell.cell_type == "markdown":
            for label, href in MARKDOWN_LINK.findall(cell.source):
                if "://" not in href:
                    links.append((label, posixpath.normpath(posixpath.join(posixpath.dirname(COURSE_MAP), href))))
    first = {}
    for label, path in links:
        first.setdefault(label, path)
    chosen = []
    for folder in ("notebooks/", "exercises/"):
        label, path = next(((label, path) for label, path in first.items()
                            if path.startswith(folder) and path != COURSE_MAP), (None, None))
        assert label is not None, f"the course map links to no notebook in {folder}"
        assert (root / path).exists(), f"the course map's link {label!r} points to {path}, which does not exist"
        chosen.append(Link(label, path, notebook_title(root / path)))
    return chosen[0], chosen[1]


def wait_opened(lab: LabPage, server: LabServer, link: Link, timeout: float = 90) -> None:
    """Wait until the notebook ``link`` points to is the one shown, and its kernel session is on the server.

    Fails at once when JupyterLab shows an error dialog (a dead link opens one).
    """
    deadline = time.monotonic() + timeout
    title = session = None
    while time.monotonic() < deadline:
        failed = [text for text in lab.open_dialogs() if any(w in text.lower() for w in OPEN_ERROR_WORDS)]
        assert not failed, f"following {link.label!r} ({link.path}) shows an error: {failed}"
        lab.dismiss_dialogs()
        try:
            title = lab.notebook_title()
        except Exception:  # the new panel is still being built
            title = None
        sessions = server.api("GET", "/api/sessions") or []
        session = next((s for s in sessions if s.get("path") == link.path), None)
        if title == link.title and session is not None:
            return
        time.sleep(0.5)
    raise AssertionError(f"following {link.label!r} did not open {link.path}: the page shows the notebook "
                         f"titled {title!r} (expected {link.title!r}); sessions on the server: "
                         f"{[s.get('path') for s in server.api('GET', '/api/sessions') or []]}")


def server_processes(server: LabServer) -> list:
    """The server's process and every process it started (kernels included), as psutil processes."""
    import psutil

    try:
        top = psutil.Process(server.process.pid)
        return [top, *top.children(recursive=True)]
    except (psutil.Error, AttributeError):
        return []


def test_course_map_links_open_through_kit_lab(chromium, summary):
    """``./kit lab`` (the README's command) serves the repository: the course map's links open.

    The launcher runs in a temporary copy of the course, with this test's virtual
    environment (``CNNKIT_VENV``); it must not install anything: its own check finds the
    venv current, or, where pyproject.toml changed since the venv was set up,
    ``CNNKIT_NO_INSTALL=1`` says so, and pip is in dry-run, no-index mode in any case.
    """
    import psutil

    row = {"notebook": "./kit lab: course map -> lesson, exercise", "ok": False}
    scratch = Path(tempfile.mkdtemp(prefix="cnnkit-kit-lab-"))
    server, lab, started = None, None, []
    shot = ARTIFACTS / "kit-lab-links.png"
    try:
        kit = copy_for_launcher(REPO, scratch / "course")
        lesson, exercise = course_map_links(kit.parent)
        venv = Path(sys.prefix)
        env = {**server_environment(), "CNNKIT_VENV": str(venv), "PYTHON": sys.executable,
               "PIP_DRY_RUN": "1", "PIP_NO_INDEX": "1"}
        if not launcher_install_is_current(venv, kit.parent / "pyproject.toml"):
            env["CNNKIT_NO_INSTALL"] = "1"
        row["launcher_installs"] = "never" if "CNNKIT_NO_INSTALL" in env else "when its stamp is stale"
        server = KitLabServer(root=kit.parent, env=env, log_path=ARTIFACTS / "kit-lab.log", launcher=kit)
        start = time.monotonic()
        server.start(scratch / "jupyter")
        row["kernel_ready_s"] = round(time.monotonic() - start, 1)
        log = server.log_tail(400)
        assert "installing" not in log, f"./kit lab reinstalled the kit:\n{log}"
        assert f"local directory: {os.path.realpath(kit.parent)}" in log, f"./kit lab serves another folder:\n{log}"

        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        try:
            lab = LabPage(context.new_page(), server)
            landed = lab.open_landing_page()
            assert landed.split("?")[0].endswith(f"/lab/tree/{COURSE_MAP}"), f"the landing page is {landed}"
            assert lab.notebook_title() == notebook_title(kit.parent / COURSE_MAP)
            for link in (lesson, exercise):
                lab.activate_tab(Path(COURSE_MAP).name)
                lab.click_link(link.label)
                wait_opened(lab, server, link)
                assert server.api("GET", f"/api/contents/{link.path}?content=0")["type"] == "notebook"
                print(f"\n./kit lab: {COURSE_MAP} -> {link.label!r} opened {link.path} ({link.title!r})")
            row["open_to_idle_s"] = round(time.monotonic() - start, 1)
            row["ok"] = True
        finally:
            try:
                row["screenshots"] = [str(p) for p in lab.screenshot(shot)] if lab else []
            except Exception as exc:  # the page may be gone; the test's own error matters more
                print(f"no screenshot ({exc})")
            context.close()
            started = server_processes(server)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        summary.add(row)
    _, alive = psutil.wait_procs(started, timeout=10)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes of ./kit lab still running after stop: {[p.pid for p in alive]}"
    assert len(started) >= 3, f"expected the server and the kernels of the opened notebooks, saw {started}"


# --------------------------------------------------------------------------- checks


def shown_errors(report: dict) -> list[str]:
    """Error outputs, and stderr outputs carrying a traceback, as 'cell N: text' (warnings pass)."""
    found = []
    for index, cell in enumerate(report["cells"]):
        for out in cell["outputs"]:
            mime, text = out["mime"], out["text"]
            if mime == "application/vnd.jupyter.error" or (
                    mime == "application/vnd.jupyter.stderr" and "Traceback (most recent call last)" in text):
                found.append(f"cell {index}: {text[-1500:]}")
    return found


def lesson_timeout(name: str) -> float:
    return RUN_TIMEOUT * (2 if "capstone" in name else 1)


def check_widget_explorer(lab: LabPage, report: dict) -> tuple[str, list[str]]:
    """The first cell with a slider: its widgets render, and its output changes when the slider moves.

    The redrawn figure must still show something: one step of a slider should not wipe
    a figure out, so a figure that comes back with under half the drawn (non-white)
    pixels it had before is reported as (nearly) empty.
    """
    cells = [i for i, c in enumerate(report["cells"]) if c["sliders"]]
    if not cells:
        return "no slider", ["no ipywidgets slider is shown (an explorer that does not render?)"]
    index = cells[0]
    lab.cell(index).scroll_into_view_if_needed()
    before, ink_before = lab.widget_view(index), lab.image_ink(index)
    moved = lab.move_first_slider(index)
    deadline = time.monotonic() + WIDGET_UPDATE_TIMEOUT
    while lab.widget_view(index) == before:
        if time.monotonic() > deadline:
            return (f"cell {index}: slider {moved}, no update",
                    [f"cell {index}: the slider moved ({moved}) but the explorer's output did not change "
                     f"within {WIDGET_UPDATE_TIMEOUT} s; browser errors: {lab.console_errors[-5:]}"])
        time.sleep(0.5)
    lab.settle()
    ink_after = lab.image_ink(index)
    status = f"cell {index}: slider {moved}, updated"
    if ink_before and not ink_after:
        return status + ", figure gone", [
            f"cell {index}: after the slider moved ({moved}) the explorer shows no figure "
            f"(it showed {len(ink_before)} before)"]
    if ink_before and max(ink_after) < 0.5 * max(ink_before):
        return status + ", figure nearly empty", [
            f"cell {index}: after the slider moved ({moved}) the explorer's figure is nearly empty: "
            f"{max(ink_after):.1%} of its pixels drawn, against {max(ink_before):.1%} before"]
    return status, []


@pytest.mark.parametrize("name", LESSONS or [pytest.param(None, marks=pytest.mark.skip(
    reason="no lesson notebooks (notebooks/NN_*.ipynb) yet"))])
def test_lesson_in_jupyterlab(name, lab, course, summary):
    rel = f"notebooks/{name}"
    committed = nbformat.read(course.snapshot / rel, as_version=4)
    to_run = code_cells_to_run(committed)
    row = {"notebook": rel, "ok": False}
    problems: list[str] = []
    shot = ARTIFACTS / f"{Path(name).stem}.png"
    try:
        lab.open_lab(Path(name).stem)
        start = time.monotonic()
        lab.open_from_file_browser(rel)
        if to_run:
            lab.wait_kernel_idle(rel)
            row["kernel_ready_s"] = round(time.monotonic() - start, 1)
            lab.run_all()
            report = lab.wait_run_finished(lesson_timeout(name))
        else:  # e.g. 00_start_here: text only, nothing to run
            report = lab.report()
        row["open_to_idle_s"] = round(time.monotonic() - start, 1)
        print(f"\n{rel}: open -> kernel idle {row['open_to_idle_s']:.1f} s")

        lab.settle()
        report = lab.report()
        cells = report["cells"]
        assert len(cells) == len(committed.cells), (
            f"the page shows {len(cells)} cells, the notebook has {len(committed.cells)}")
        problems += shown_errors(report)
        problems += [f"cell {i} did not run (prompt {cells[i]['prompt']!r})"
                     for i in to_run if not EXECUTED.match(cells[i]["prompt"])]
        problems += lab.latex_errors()

        # figures: what the kernel produced (the saved notebook) against what the page shows
        if to_run:
            saved = lab.save(course.server.root / rel)
            produced = [image_outputs(cell) for cell in saved.cells]
            committed_images = [image_outputs(cell) for cell in committed.cells]
            row["images_produced"] = sum(produced)
            row["images_shown"] = sum(c["imagesLoaded"] for c in cells)
            for i, cell in enumerate(cells):
                if cell["imagesLoaded"] < produced[i]:
                    problems.append(f"cell {i}: the kernel produced {produced[i]} image(s), the page shows "
                                    f"{cell['imagesLoaded']} loaded <img> ({cell['images']} in the DOM)")
                if committed_images[i] and not produced[i]:
                    problems.append(f"cell {i}: draws {committed_images[i]} figure(s) in the committed "
                                    f"notebook but none in the browser run")
            if sum(committed_images) and not row["images_produced"]:
                problems.append("the lesson draws figures, but no image was rendered")
            if name.startswith(WIDGET_LESSONS) or has_widget_output(saved) or has_widget_output(committed):
                row["widget"], found = check_widget_explorer(lab, lab.report())
                problems += found
        row["ok"] = not problems
    finally:
        if lab.dialogs:
            row["dialogs"] = lab.dialogs
        try:
            row["screenshots"] = [str(p) for p in lab.screenshot(shot)]
            print(f"{rel}: screenshot(s) {', '.join(row['screenshots'])}")
        except Exception as exc:  # the page may be gone; the test's own error matters more
            print(f"{rel}: no screenshot ({exc})")
        summary.add(row)
    assert not problems, f"{rel} in JupyterLab (screenshot {shot}):\n" + "\n".join(problems)


# --------------------------------------------------------------------------- an exercise


def exercise_to_try(snapshot: Path) -> str | None:
    """exercises/01_convolution.ipynb, else the first exercise that has a solution."""
    names = [path.name for path in sorted((snapshot / "exercises").glob("[0-9][0-9]_*.ipynb"))
             if (snapshot / "solutions" / path.name).exists()]
    return "01_convolution.ipynb" if "01_convolution.ipynb" in names else next(iter(names), None)


def test_exercise_answer_typed_in_jupyterlab(lab, course, summary):
    name = exercise_to_try(course.snapshot)
    if name is None:
        pytest.skip("no exercise notebook with a solution (exercises/NN_*.ipynb) yet")
    rel = f"exercises/{name}"
    exercise = first_exercise(nbformat.read(course.snapshot / rel, as_version=4),
                              nbformat.read(course.snapshot / "solutions" / name, as_version=4))
    row = {"notebook": f"{rel} (answer {exercise.grade_id!r} typed)", "ok": False}
    shot = ARTIFACTS / f"exercise-{Path(name).stem}.png"
    try:
        lab.open_lab("exercise-" + Path(name).stem)
        start = time.monotonic()
        lab.open_from_file_browser(rel)
        lab.wait_kernel_idle(rel)
        row["kernel_ready_s"] = round(time.monotonic() - start, 1)

        typed = lab.type_answer(exercise.answer_index, exercise)
        strip = lambda text: [line.rstrip() for line in text.strip("\n").splitlines()]  # noqa: E731
        assert strip(typed) == strip(exercise.expected_source), (
            "the answer cell does not read as typed:\n" + typed)

        lab.run_all()
        report = lab.wait_run_finished(RUN_TIMEOUT)
        row["open_to_idle_s"] = round(time.monotonic() - start, 1)
        answer = report["cells"][exercise.answer_index]
        check = report["cells"][exercise.check_index]
        failures = shown_errors({"cells": [answer]})
        assert not failures, f"the typed answer fails: {failures}"
        check_text = "\n".join(out["text"] for out in check["outputs"])
        assert "Passed:" in check_text, (
            f"check cell {exercise.check_index} (prompt {check['prompt']!r}) does not print 'Passed:'; "
            f"it shows:\n{check_text}")
        row["ok"] = True
        print(f"\n{rel}: typed answer {exercise.grade_id!r}, check says: {check_text.strip()}")
    finally:
        try:
            row["screenshots"] = [str(p) for p in lab.screenshot(shot)]
            print(f"{rel}: screenshot(s) {', '.join(row['screenshots'])}")
        except Exception as exc:
            print(f"{rel}: no screenshot ({exc})")
        summary.add(row)
