"""Helpers for the end-to-end browser test (tests/test_browser.py).

Three parts, each usable on its own:

* :func:`find_chromium`, :func:`missing_requirements` say whether the test can run here;
* :class:`LabServer` starts JupyterLab from this Python environment on a free loopback
  port with a random token, rooted in a temporary directory, with isolated Jupyter
  configuration/settings (no news pop-up, no update check, every cell attached to the
  DOM), and always stops it: SIGTERM to its process group, then SIGKILL to whatever is
  left of it and of its kernels (which run in sessions of their own);
  :class:`KitLabServer` starts it the same way through the README's ``./kit lab``, in a
  copy of the course made by :func:`copy_for_launcher`;
* :class:`LabPage` drives one JupyterLab page the way a student does: the file
  browser, the Run menu, the keyboard; and reads back what the page shows
  (prompts, outputs, errors, images, widgets).

Nothing here reaches the network: the browser is Debian's chromium launched
through Playwright with background networking disabled.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ENABLE_HINT = ("to enable it: `apt-get install chromium` (Debian's package; or set "
               "CNNKIT_CHROMIUM=/path/to/chromium) and `pip install -e .[test]` (Playwright for Python)")

# Debian's chromium cannot talk to Google's services from here: without the
# background-networking flags it refuses connections at start-up.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# MIME types of outputs a browser shows as an <img> (matplotlib's inline backend writes image/png).
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
WIDGET_MIME_TYPE = "application/vnd.jupyter.widget-view+json"
PLACEHOLDER = "raise NotImplementedError()"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"

# Screenshots and the timings of one run (timings.json): never in the repository.
ARTIFACTS = Path(os.environ.get("CNNKIT_BROWSER_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "cnnkit-browser")


def summary_lines(rows: list[dict]) -> list[str]:
    """One line per notebook the browser ran (open to idle, kernel ready, images shown/produced, verdict)."""
    lines = [f"{row['notebook']:<34} open->idle {row.get('open_to_idle_s', float('nan')):7.1f} s  "
             f"(kernel ready {row.get('kernel_ready_s', float('nan')):5.1f} s)  "
             f"images {row.get('images_shown', 0)}/{row.get('images_produced', 0)}  "
             f"{row.get('widget', '')}  {'ok' if row.get('ok') else 'FAILED'}" for row in rows]
    return lines + [f"screenshots and timings: {ARTIFACTS}"]


# JupyterLab user settings written into a temporary JUPYTERLAB_SETTINGS_DIR.
LAB_SETTINGS = {
    # no "official Jupyter news?" toast, no request to jupyter.org
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # attach every cell to the DOM, so outputs far below the fold can be inspected
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


# --------------------------------------------------------------------------- prerequisites


def find_chromium() -> str | None:
    """Path of a Chromium executable: ``$CNNKIT_CHROMIUM``, else chromium on PATH, else None."""
    explicit = os.environ.get("CNNKIT_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_requirements() -> str | None:
    """None when the browser test can run here, else a message saying what is missing and how to fix it."""
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("Playwright for Python is not installed")
    if find_chromium() is None:
        problems.append("no chromium executable found")
    if not problems:
        return None
    return "browser test skipped: " + "; ".join(problems) + "; " + ENABLE_HINT


# --------------------------------------------------------------------------- notebooks on disk


def code_cells_to_run(nb) -> list[int]:
    """Indices of code cells with non-blank source (JupyterLab gives blank cells no execution count)."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]


def image_outputs(cell) -> int:
    """Number of outputs of ``cell`` that carry an image (display_data / execute_result)."""
    return sum(1 for out in cell.get("outputs", [])
               if any(mime in out.get("data", {}) for mime in IMAGE_MIME_TYPES))


def has_widget_output(nb) -> bool:
    return any(WIDGET_MIME_TYPE in out.get("data", {})
               for c in nb.cells if c.cell_type == "code" for out in c.get("outputs", []))


def clear_outputs(path: Path) -> None:
    """Strip outputs, execution counts and saved widget state from the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def copy_course(repo: Path, snapshot: Path, served: Path,
                folders=("notebooks", "exercises", "solutions"), serve=("notebooks", "exercises")) -> None:
    """Snapshot ``folders`` of the repository into ``snapshot`` as they are, and ``serve`` of them into
    ``served`` with every notebook's outputs cleared.

    The test reads its expectations (committed figures, answers) from the snapshot, so a
    notebook edited in the repository while the test runs cannot disagree with the served copy.
    """
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in folders:
        if (repo / folder).is_dir():
            shutil.copytree(repo / folder, snapshot / folder, ignore=ignore)
    for folder in serve:
        if (snapshot / folder).is_dir():
            shutil.copytree(snapshot / folder, served / folder, ignore=ignore)
            for path in (served / folder).rglob("*.ipynb"):
                clear_outputs(path)


def nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


@dataclass
class Exercise:
    """The first answer of an exercise notebook, and the check cell that grades it."""
    answer_index: int          # index of the answer cell in the notebook
    check_index: int           # index of the first graded cell after it
    grade_id: str
    placeholder_line: int      # 0-based line of `raise NotImplementedError()` in the answer cell
    answer_lines: list[str]    # the solution's lines between BEGIN and END SOLUTION
    expected_source: str       # the answer cell once the answer is typed in


def first_exercise(exercise_nb, solution_nb) -> Exercise:
    """Locate the first answer cell of ``exercise_nb`` and its answer in ``solution_nb`` (same grade id)."""
    cells = exercise_nb.cells
    answer = next((i for i, c in enumerate(cells)
                   if c.cell_type == "code" and nbgrader(c).get("solution")), None)
    if answer is None:
        raise LookupError("the exercise notebook has no answer cell (nbgrader solution: true)")
    grade_id = nbgrader(cells[answer]).get("grade_id")
    check = next((i for i in range(answer + 1, len(cells))
                  if cells[i].cell_type == "code" and nbgrader(cells[i]).get("grade")), None)
    if check is None:
        raise LookupError(f"no graded check cell follows the answer cell {grade_id!r}")
    solved = next((c for c in solution_nb.cells if nbgrader(c).get("grade_id") == grade_id), None)
    if solved is None:
        raise LookupError(f"the solution has no cell with grade id {grade_id!r}")
    lines = solved.source.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.strip().startswith(BEGIN_SOLUTION))
    end = next(i for i in range(begin, len(lines)) if lines[i].strip().startswith(END_SOLUTION))
    answer_lines = lines[begin + 1:end]
    blank = cells[answer].source.splitlines()
    where = next(i for i, line in enumerate(blank) if line.strip() == PLACEHOLDER)
    expected = "\n".join(blank[:where] + answer_lines + blank[where + 1:])
    return Exercise(answer, check, grade_id, where, answer_lines, expected)


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list:
    try:
        import psutil
        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing, or the process is already gone
        return []


@dataclass
class LabServer:
    """JupyterLab serving ``root`` on 127.0.0.1 with a random token; ``stop()`` is idempotent."""
    root: Path
    env: dict
    log_path: Path
    token: str = field(default_factory=lambda: __import__("secrets").token_hex(24))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self, state: Path) -> list[str]:
        """jupyter lab options: no browser, loopback, this port and token, nothing fetched from the network."""
        return [
            "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={state / 'workspaces'}",
            "--FileContentsManager.delete_to_trash=False",
        ]

    def command(self, state: Path) -> list[str]:
        return ([sys.executable, "-m", "jupyterlab", *self.options(state), f"--ServerApp.root_dir={self.root}"]
                + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []))  # CI containers

    def start(self, state: Path, timeout: float = 120) -> None:
        """Start the server; Jupyter's own dirs go under ``state``; wait until it answers."""
        env = dict(self.env)
        for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                          ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                          ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                          ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")):
            (state / sub).mkdir(parents=True, exist_ok=True)
            env[name] = str(state / sub)
        for plugin, values in LAB_SETTINGS.items():
            target = state / "lab-settings" / f"{plugin}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        env.pop("MPLBACKEND", None)  # the kernel must use the inline backend, not Agg
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(self.command(state), cwd=self.root, env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with status {self.process.returncode} "
                                   f"before answering:\n{self.log_tail()}")
            try:
                status = self.api("GET", "/api/status", timeout=5)
                if isinstance(status, dict):
                    break
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not answer on {self.url} within {timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.5)
        # the lab page itself (static assets, settings) must load too
        with urllib.request.urlopen(f"{self.url}/lab?token={self.token}", timeout=30) as answer:
            answer.read()

    def api(self, method: str, path: str, timeout: float = 10):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Delete every session (which shuts its kernel down), to free memory between lessons."""
        try:
            for session in self.api("GET", "/api/sessions") or []:
                self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
        except (OSError, urllib.error.URLError, ValueError):
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the server's process group (it shuts its kernels down); SIGKILL whatever remains."""
        process, self.process = self.process, None
        if process is None:
            return
        children = _descendants(process.pid)  # kernels live in sessions of their own
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(10)
        for child in children:
            try:
                if child.is_running():
                    child.kill()
            except Exception:
                pass


@dataclass
class KitLabServer(LabServer):
    """JupyterLab started the way the README says, ``./kit lab``, from a copy of the course in ``root``.

    The launcher chooses the served folder and the landing page itself; only the options
    of :meth:`LabServer.options` (port, token, no browser, no network) are added.
    """
    launcher: Path = Path("kit")

    def command(self, state: Path) -> list[str]:
        return [str(self.launcher), "lab", *self.options(state)]


def copy_for_launcher(repo: Path, dest: Path, folders=("notebooks", "exercises")) -> Path:
    """Copy what ``./kit lab`` needs (the launcher, pyproject.toml, ``folders``) into ``dest``; return its kit."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("kit", "pyproject.toml"):
        shutil.copy2(repo / name, dest / name)
    for folder in folders:
        shutil.copytree(repo / folder, dest / folder, ignore=ignore)
    return dest / "kit"


def launcher_install_is_current(venv: Path, pyproject: Path) -> bool:
    """Whether ``./kit lab`` would use ``venv`` as it is: a stamp of its holds pyproject.toml's sha256."""
    import hashlib

    want = hashlib.sha256(pyproject.read_bytes()).hexdigest()
    for stamp in (".cnnkit-installed", ".cnnkit-installed[test]"):
        try:
            if (venv / stamp).read_text().strip() == want:
                return True
        except OSError:
            continue
    return False


# --------------------------------------------------------------------------- the page

# Read what the notebook shows, cell by cell. Arguments: the notebook panel element.
CELL_REPORT_JS = r"""
(panel) => {
  const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell')];
  const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return {
    status: status ? status.getAttribute('data-status') : null,
    cells: cells.map((cell) => {
      const prompt = cell.querySelector('.jp-InputArea-prompt');
      const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
      const imgs = [...cell.querySelectorAll('.jp-OutputArea-output img')];
      return {
        code: cell.classList.contains('jp-CodeCell'),
        prompt: prompt ? prompt.textContent.trim() : '',
        outputs: outputs.map((o) => ({mime: o.getAttribute('data-mime-type') || '',
                                      text: (o.innerText || '').slice(0, 4000)})),
        images: imgs.length,
        imagesLoaded: imgs.filter((i) => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length,
        widgets: cell.querySelectorAll('.jupyter-widgets').length,
        sliders: cell.querySelectorAll('.widget-slider').length,
      };
    }),
  };
}
"""

# A fingerprint of what a widget explorer shows, leaving out its own controls (slider, readout).
WIDGET_VIEW_JS = r"""
(cell) => {
  const area = cell.querySelector('.jp-Cell-outputArea') || cell;
  const copy = area.cloneNode(true);
  copy.querySelectorAll('.widget-readout, .widget-slider, input, select, button').forEach((n) => n.remove());
  const images = [...area.querySelectorAll('img')].map((i) => i.src);
  return copy.textContent + '\u0000' + images.join('\u0000');
}
"""

# For each image in a cell's output: the fraction of its pixels that are drawn (not white or transparent).
IMAGE_INK_JS = r"""
(cell) => [...cell.querySelectorAll('.jp-Cell-outputArea img')].filter((i) => i.naturalWidth > 0).map((img) => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let k = 0; k < pixels.length; k += 4) {
    if (pixels[k + 3] > 32 && pixels[k] + pixels[k + 1] + pixels[k + 2] < 3 * 235) ink += 1;
  }
  return ink / (pixels.length / 4);
})
"""

EXECUTED = re.compile(r"^\[\d+\]:?$")
RUNNING = "[*]"


class LabError(AssertionError):
    """The page did not reach the state the test waited for; the message says what it showed."""


class LabPage:
    """One JupyterLab browser page, driven as a student would drive it."""

    def __init__(self, page, server: LabServer):
        self.page = page
        self.server = server
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []  # the text of every dialog that was answered
        page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))

    # ---------------------------------------------------------------- navigation

    def open_lab(self, workspace: str, timeout: float = 120) -> None:
        """Load JupyterLab in a fresh workspace and wait for the file browser."""
        name = re.sub(r"[^A-Za-z0-9_-]", "-", workspace)
        self.page.goto(f"{self.server.url}/lab/workspaces/{name}?reset&token={self.server.token}",
                       timeout=timeout * 1000)
        self.page.locator(".jp-DirListing-content").wait_for(state="visible", timeout=timeout * 1000)
        self.page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=timeout * 1000)

    def file_entry(self, name: str):
        text = self.page.locator(".jp-DirListing-itemText").filter(
            has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))
        return self.page.locator(".jp-DirListing-item").filter(has=text)

    def open_from_file_browser(self, relpath: str, timeout: float = 60) -> None:
        """Double-click through the file browser's folders to the notebook ``relpath`` and open it."""
        self.page.locator(".jp-BreadCrumbs-home").first.click()
        parts = Path(relpath).parts
        for folder in parts[:-1]:
            entry = self.file_entry(folder)
            entry.wait_for(state="visible", timeout=timeout * 1000)
            entry.dblclick()
            self.page.locator(".jp-BreadCrumbs").filter(has_text=folder).wait_for(timeout=timeout * 1000)
        entry = self.file_entry(parts[-1])
        entry.wait_for(state="visible", timeout=timeout * 1000)
        entry.dblclick()
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=timeout * 1000)

    @property
    def panel(self):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first

    def cell(self, index: int):
        return self.panel.locator(".jp-Notebook .jp-Cell").nth(index)

    def dismiss_dialogs(self) -> list[str]:
        """Accept any open dialog (e.g. 'Select Kernel': its default is the notebook's Python 3)."""
        seen = []
        dialogs = self.page.locator(".jp-Dialog")
        if not dialogs.count():
            return seen
        while dialogs.count():
            dialog = dialogs.first
            seen.append(dialog.inner_text()[:200])
            accept = dialog.locator(".jp-Dialog-button.jp-mod-accept")
            if accept.count():
                accept.first.click()
            else:
                self.page.keyboard.press("Escape")
            dialog.wait_for(state="detached", timeout=10_000)
        self.dialogs += seen
        return seen

    def open_landing_page(self, timeout: float = 120) -> str:
        """Load the server's root URL (with the token) and wait for the notebook it lands on; return the URL."""
        self.page.goto(f"{self.server.url}/?token={self.server.token}", timeout=timeout * 1000)
        self.page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=timeout * 1000)
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=timeout * 1000)
        return self.page.url

    def notebook_title(self) -> str:
        """The text of the first level-1 heading of the notebook shown, without JupyterLab's anchor mark."""
        heading = self.panel.locator(".jp-RenderedMarkdown h1").first
        heading.wait_for(state="visible", timeout=30_000)
        return heading.inner_text().replace("\u00b6", "").strip()

    def click_link(self, text: str) -> None:
        """Click the first link reading ``text`` in the rendered Markdown of the notebook shown."""
        link = self.panel.locator(".jp-RenderedMarkdown a").filter(
            has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).first
        link.scroll_into_view_if_needed()
        link.click()

    def activate_tab(self, label: str) -> None:
        """Bring the main-area tab titled ``label`` to the front."""
        self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(
            has=self.page.locator(".lm-TabBar-tabLabel").filter(
                has_text=re.compile(rf"^{re.escape(label)}$"))).first.click()

    def open_dialogs(self) -> list[str]:
        """The text of every dialog on the page now (an error opening a file shows as one)."""
        return [d.inner_text()[:300] for d in self.page.locator(".jp-Dialog").all()]

    # ---------------------------------------------------------------- kernel and execution

    def report(self) -> dict:
        return self.panel.evaluate(CELL_REPORT_JS)

    def kernel_state(self, relpath: str) -> str | None:
        """The server's view of the kernel of the notebook at ``relpath``: 'idle', 'busy', ... or None."""
        try:
            sessions = self.server.api("GET", "/api/sessions")
        except (OSError, ValueError):
            return None
        for session in sessions or []:
            if session.get("path") == relpath and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def wait_kernel_idle(self, relpath: str, timeout: float = 180) -> None:
        """Wait until the notebook has a started kernel that is idle, on the page and on the server.

        Answers kernel dialogs meanwhile ('Select Kernel': the default is the notebook's Python 3).
        """
        deadline = time.monotonic() + timeout
        while True:
            self.dismiss_dialogs()
            status = self.report()["status"]
            server = self.kernel_state(relpath)
            if status == "idle" and server == "idle":
                return
            if time.monotonic() > deadline:
                raise LabError(f"the kernel did not become idle within {timeout:.0f} s "
                               f"(page says {status!r}, server says {server!r})")
            time.sleep(0.5)

    def menu(self, top: str, item: str) -> None:
        """Click ``top`` in the main menu bar, then its entry ``item``."""
        self.page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").filter(
            has_text=re.compile(rf"^{re.escape(top)}$")).click()
        entry = self.page.locator(".lm-Menu-content .lm-Menu-item:not(.lm-mod-disabled)").filter(
            has=self.page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(rf"^{re.escape(item)}$")))
        entry.first.click()

    def run_all(self, timeout: float = 60) -> None:
        """Run > Run All Cells, with the notebook in command mode; wait until a cell is queued or has run."""
        for attempt in range(2):
            self.panel.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
            self.page.keyboard.press("Escape")
            self.menu("Run", "Run All Cells")
            deadline = time.monotonic() + timeout / 2
            while time.monotonic() < deadline:
                self.dismiss_dialogs()
                prompts = [c["prompt"] for c in self.report()["cells"]]
                if any(p.startswith(RUNNING) or EXECUTED.match(p) for p in prompts):
                    return
                time.sleep(0.2)
        raise LabError(f"Run > Run All Cells did not start any cell within {timeout:.0f} s")

    def wait_run_finished(self, timeout: float, poll: float = 0.5) -> dict:
        """Wait until the kernel is idle and no cell shows ``[*]``, three polls in a row; return the report.

        A cell that raises stops Run All: JupyterLab clears the queue, so this does not
        wait for cells that will never run (the caller checks that every cell ran).
        """
        deadline = time.monotonic() + timeout
        calm = 0
        while True:
            report = self.report()
            prompts = [c["prompt"] for c in report["cells"]]
            running = [i for i, p in enumerate(prompts) if p.startswith(RUNNING)]
            if report["status"] == "idle" and not running:
                calm += 1
                if calm >= 3:
                    return report
            else:
                calm = 0
            if time.monotonic() > deadline:
                raise LabError(f"the run did not finish within {timeout:.0f} s: kernel {report['status']!r}, "
                               f"cells still queued or running: {running}")
            self.dismiss_dialogs()
            time.sleep(poll)

    def settle(self, timeout: float = 20, poll: float = 0.5) -> None:
        """Wait until typeset formulas and loaded images stop changing (MathJax and images load asynchronously)."""
        probe = ("(p) => [p.querySelectorAll('mjx-container').length, "
                 "[...p.querySelectorAll('img')].filter((i) => i.complete).length, "
                 "p.querySelectorAll('img').length].join(',')")
        deadline = time.monotonic() + timeout
        last, calm = None, 0
        while time.monotonic() < deadline and calm < 3:
            now = self.panel.evaluate(probe)
            calm = calm + 1 if now == last else 0
            last = now
            time.sleep(poll)

    def latex_errors(self) -> list[str]:
        """Formulas MathJax could not typeset: syntax errors (merror) and undefined macros (shown in red)."""
        return self.panel.evaluate(r"""(p) => [
            ...[...p.querySelectorAll('mjx-merror')].map((e) =>
                'LaTeX error: ' + (e.getAttribute('data-mjx-error') || e.textContent)),
            ...[...p.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"], mjx-assistive-mml merror')].map(
                (e) => 'LaTeX not understood: ' + e.textContent),
        ]""")

    # ---------------------------------------------------------------- saving

    def save(self, path: Path, timeout: float = 60):
        """Save with Ctrl+S; return the notebook at ``path`` once the file changed and the tab is clean."""
        before = path.stat().st_mtime_ns if path.exists() else 0
        self.panel.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        dirty = self.page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
        deadline = time.monotonic() + timeout
        while True:
            self.dismiss_dialogs()
            if path.exists() and path.stat().st_mtime_ns != before and not dirty.count():
                try:
                    return nbformat.read(path, as_version=4)
                except Exception:  # caught half-written: try again
                    pass
            if time.monotonic() > deadline:
                raise LabError(f"{path.name} was not saved within {timeout:.0f} s")
            time.sleep(0.5)

    # ---------------------------------------------------------------- editing

    def type_answer(self, index: int, exercise: Exercise) -> str:
        """Put the cursor on the placeholder line of cell ``index`` and type the answer over it.

        The editor indents new lines by itself; each typed line therefore first selects
        that automatic indentation (Shift+Home) so that the line's own indentation replaces it.
        Returns the cell's text as the editor shows it afterwards.
        """
        editor = self.cell(index).locator(".cm-content")
        editor.click()
        keyboard = self.page.keyboard
        keyboard.press("Control+Home")
        for _ in range(exercise.placeholder_line):
            keyboard.press("ArrowDown")
        # select the whole placeholder line: End, then Shift+Home twice (the first stops
        # after the indentation, the second reaches column 0; both stop at 0 when unindented)
        keyboard.press("End")
        keyboard.press("Shift+Home")
        keyboard.press("Shift+Home")
        for number, line in enumerate(exercise.answer_lines):
            if number:
                keyboard.press("Enter")
                keyboard.press("Shift+Home")
            if line:  # a blank line keeps its selected indentation: the next Enter replaces it
                keyboard.type(line)
        keyboard.press("Escape")
        return self.editor_text(index)

    def editor_text(self, index: int) -> str:
        lines = self.cell(index).locator(".cm-content .cm-line").all_inner_texts()
        # an empty line holds a <br>, whose text is a newline of its own
        return "\n".join(line.replace("\n", "").replace("\u00a0", " ") for line in lines)

    # ---------------------------------------------------------------- widgets

    def widget_view(self, index: int) -> str:
        return self.cell(index).evaluate(WIDGET_VIEW_JS)

    def image_ink(self, index: int) -> list[float]:
        """Fraction of drawn pixels of each loaded image in the output of cell ``index``."""
        return self.cell(index).evaluate(IMAGE_INK_JS)

    def move_first_slider(self, index: int) -> str:
        """Move the first slider of cell ``index`` one step with the keyboard; return how it moved."""
        slider = self.cell(index).locator(".widget-slider").first
        readout = slider.locator(".widget-readout")
        before = readout.inner_text() if readout.count() else ""
        handle = slider.locator(".noUi-handle").first
        for key in ("ArrowRight", "ArrowLeft", "ArrowLeft"):
            handle.focus()
            handle.press(key)
            try:
                self.page.wait_for_function(
                    "([el, old]) => el.innerText !== old", arg=[readout.element_handle(), before], timeout=3000)
                return f"{before} -> {readout.inner_text()} ({key})"
            except Exception:
                continue
        # keyboard did nothing (slider at an end and one step wide?): drag the handle instead
        box = handle.bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        self.page.mouse.down()
        self.page.mouse.move(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2, steps=5)
        self.page.mouse.up()
        return f"{before} -> {readout.inner_text() if readout.count() else '?'} (dragged)"

    # ---------------------------------------------------------------- pictures

    def screenshot(self, path: Path, page_height: int = 6000) -> list[Path]:
        """Save the whole notebook as ``path`` (and ``path-2.png``, ... when it is taller than one page).

        The viewport is stretched to the notebook's height (at most ``page_height``) and the
        notebook scrolled page by page; the viewport is restored afterwards.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{path.stem}-*{path.suffix}"):  # pages of an earlier run
            old.unlink()
        size = self.page.viewport_size
        scroller = ("(p) => p.querySelector('.jp-WindowedPanel-outer') || "
                    "p.querySelector('.jp-Notebook')")
        total = self.panel.evaluate(f"(p) => ({scroller})(p).scrollHeight")
        height = int(min(page_height, max(size["height"], total + 250)))
        shots = []
        try:
            self.page.set_viewport_size({"width": size["width"], "height": height})
            visible = self.panel.evaluate(f"(p) => ({scroller})(p).clientHeight") or height
            for number in range(max(1, -(-total // visible))):
                self.panel.evaluate(f"(p) => {{ ({scroller})(p).scrollTop = {number * visible}; }}")
                self.page.wait_for_timeout(400)
                target = path if number == 0 else path.with_name(f"{path.stem}-{number + 1}{path.suffix}")
                self.page.screenshot(path=str(target), full_page=True)
                shots.append(target)
        finally:
            self.page.set_viewport_size(size)
        return shots
