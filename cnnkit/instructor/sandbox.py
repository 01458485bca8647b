"""The sandboxed grading kernel: an unprivileged user, its own folder, resource limits, nothing left running.

Each grading job slot has its own system user (``cnnkit-grade-0``, ...). The
student's kernel is started through a Jupyter kernel spec whose command is
``python -m cnnkit.instructor.sandbox launch ...``; that launcher (still the
grader's user) copies the connection file into the submission's work folder,
sets resource limits, and replaces itself with

    setpriv (drop to the slot's user, no new privileges)
      -> bwrap (read-only view of the system, the solutions, submissions and
         outputs hidden under empty folders, its own /tmp and process
         namespace: the kernel's children die with it)
        -> python -m ipykernel_launcher

``setpriv`` (util-linux) and ``bwrap`` (bubblewrap) are the isolation tools;
without bubblewrap the kernel still runs as the unprivileged user, and the
grader refuses to run unless the folders it must not read are closed to other
users. Memory is watched by the grader (:class:`MemoryWatch`: the resident
memory of all the slot user's processes); when a submission is done every
process of its user is killed.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

USER_PREFIX = "cnnkit-grade-"
KERNEL_NAME = "cnnkit-sandbox"


class IsolationError(RuntimeError):
    """The grader cannot isolate the student's kernel on this machine."""


@dataclass
class Limits:
    memory_bytes: int = 2 * 10**9
    cpu_seconds: int = 1800
    processes: int = 1024        # tasks (threads count) of the slot's user
    file_bytes: int = 512 * 2**20


@dataclass
class Isolation:
    """What the grader can do on this machine, and which folders the kernel must not see."""

    hidden: list[Path] = field(default_factory=list)
    use_bwrap: bool = True

    @staticmethod
    def available() -> tuple[bool, str]:
        """(True, how) when a kernel can run as another user here; (False, why) otherwise."""
        if os.geteuid() != 0:
            return False, "the grader is not running as root, so it cannot start the kernel as another user"
        if not shutil.which("setpriv"):
            return False, "setpriv (util-linux) is not installed"
        if not shutil.which("useradd"):
            return False, "useradd is not installed, so no unprivileged user can be made"
        how = "an unprivileged user per job (setpriv)"
        if shutil.which("bwrap"):
            how += " inside bubblewrap (read-only system, hidden solutions and submissions, own /tmp and PIDs)"
        return True, how


MAX_SLOTS = 64
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())


def lock_slot(slot: int) -> int | None:
    """Lock job slot ``slot`` without waiting: its lock file's descriptor, or None if a grader holds it."""
    fd = os.open(LOCK_DIR / f"cnnkit-grade-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def claim_slot(claimed: dict[int, int]) -> int:
    """Lock a job slot no other grader on this machine holds (its user's processes are ours to kill)."""
    for slot in range(MAX_SLOTS):
        if slot in claimed:
            continue
        fd = lock_slot(slot)
        if fd is None:
            continue
        claimed[slot] = fd
        kill_all(slot_user(slot).pw_uid)   # whatever a crashed grader left behind
        return slot
    raise IsolationError(f"all {MAX_SLOTS} grading slots of this machine are in use")


def release_slots(claimed: dict[int, int]) -> None:
    for fd in claimed.values():
        if fd >= 0:
            os.close(fd)
    claimed.clear()


def slot_user(slot: int) -> pwd.struct_passwd:
    """The system user of job slot ``slot``, created on first use."""
    name = f"{USER_PREFIX}{slot}"
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)


def readable_by_others(path: Path) -> bool:
    """True when a user outside the owner and group can list or read ``path`` (every parent must let them pass)."""
    path = path.resolve()
    for parent in list(reversed(path.parents)):
        if not os.stat(parent).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


def write_kernel_spec(folder: Path, user: pwd.struct_passwd, work: Path, limits: Limits, isolation: Isolation) -> Path:
    """A Jupyter data folder holding the ``cnnkit-sandbox`` kernel spec for this slot; returns the folder."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "cnnkit.instructor.sandbox", "launch", "--user", user.pw_name,
            "--work", str(work), "--memory", str(limits.memory_bytes), "--cpu", str(limits.cpu_seconds),
            "--nproc", str(limits.processes), "--fsize", str(limits.file_bytes)]
    if isolation.use_bwrap and shutil.which("bwrap"):
        argv.append("--bwrap")
    for hidden in isolation.hidden:
        argv += ["--hide", str(hidden)]
    argv += ["-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "cnnkit grading sandbox", "language": "python",
            "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


def prepare_work(work: Path, user: pwd.struct_passwd) -> Path:
    """The kernel's own folder (owned by the slot user); results land in ``work/out``."""
    for sub in ("", "out", "tmp", "home"):
        (work / sub).mkdir(parents=True, exist_ok=True)
        os.chown(work / sub, user.pw_uid, user.pw_gid)
        os.chmod(work / sub, 0o700)
    return work / "out"


def processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def kill_all(uid: int, rounds: int = 20) -> int:
    """SIGKILL every process of ``uid`` until none is left; return how many were killed."""
    if uid == 0:
        raise ValueError("refusing to kill the processes of root")
    killed = 0
    for _ in range(rounds):
        pids = processes_of(uid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.05)
    return killed


def resident_bytes(uid: int) -> int:
    total = 0
    for pid in processes_of(uid):
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


class MemoryWatch(threading.Thread):
    """Kill every process of ``uid`` when together they hold more than ``limit`` bytes of memory."""

    def __init__(self, uid: int, limit: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.uid, self.limit, self.every = uid, limit, every
        self.stopped = threading.Event()
        self.peak = 0
        self.exceeded = False

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            used = resident_bytes(self.uid)
            self.peak = max(self.peak, used)
            if used > self.limit:
                self.exceeded = True
                kill_all(self.uid)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=2)


# --------------------------------------------------------------------------- the launcher


def _kernel_env(work: Path) -> dict:
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "CNNKIT_DATASET", "CNNKIT_FAST", "CNNKIT_DATA_DIR",
            "TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MPLBACKEND")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(work / "home"), TMPDIR=str(work / "tmp"), IPYTHONDIR=str(work / "home" / ".ipython"),
               MPLCONFIGDIR=str(work / "home" / ".matplotlib"), KERAS_HOME=str(work / "home" / ".keras"),
               JUPYTER_RUNTIME_DIR=str(work / "home" / "runtime"), CNNKIT_PROBE_OUT=str(work / "out"),
               MALLOC_ARENA_MAX="2", PYTHONDONTWRITEBYTECODE="1")
    return env


def _mounts(work: Path, hide: list[Path]) -> list[str]:
    """bubblewrap mount options: an empty /tmp, folders closed to others emptied, hidden paths covered.

    What the kernel must read (:func:`_needed_paths`) is bound back, read-only, into
    every folder that is emptied; the work folder is bound writable; hidden folders and
    files are covered last, so that no bind can show them again.
    """
    needed = _needed_paths()
    masks = {Path("/tmp")} | {c for c in (_closed_ancestor(n) for n in needed) if c is not None}
    masks = {m for m in masks if not any(o in m.parents for o in masks)}   # the outermost ones
    options: list[str] = []
    for mask in sorted(masks):
        options += ["--tmpfs", str(mask)]
        for path in sorted(n for n in needed if mask in n.parents):
            options += [*_passable_parents(path, mask), "--ro-bind", str(path), str(path)]
    for mask in sorted(masks):
        if mask in work.parents:
            options += [*_passable_parents(work, mask)]
    options += ["--bind", str(work), str(work)]
    for hidden in hide:
        if hidden.is_dir() and not any(n == hidden or hidden in n.parents for n in [*needed, work]):
            options += ["--tmpfs", str(hidden)]
        elif hidden.is_file():
            options += ["--ro-bind", "/dev/null", str(hidden)]
    return options


def _needed_paths() -> list[Path]:
    """What the kernel must read: the environment, the Python it is based on, the kit, PYTHONPATH's folders."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parents[1]]
    paths += [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    resolved = {p.resolve() for p in paths if p.exists()}
    return sorted(p for p in resolved if not any(q in p.parents for q in resolved))


def _closed_ancestor(path: Path) -> Path | None:
    """The highest folder above ``path`` that other users cannot pass through, if any."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def _passable_parents(path: Path, top: Path) -> list[str]:
    """bubblewrap options that create the folders between ``top`` and ``path`` passable by everyone (0711)."""
    if top not in path.parents:
        return []
    options = []
    for parent in reversed(path.parents):
        if top in parent.parents:
            options += ["--perms", "0711", "--dir", str(parent)]
    return options


def launch(argv: list[str] | None = None) -> None:
    """Kernel spec command: drop to the slot user (and into bubblewrap) and exec the IPython kernel."""
    parser = argparse.ArgumentParser(prog="python -m cnnkit.instructor.sandbox launch")
    parser.add_argument("--user", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("--cpu", type=int, required=True)
    parser.add_argument("--nproc", type=int, required=True)
    parser.add_argument("--fsize", type=int, required=True)
    parser.add_argument("--bwrap", action="store_true")
    parser.add_argument("--hide", type=Path, action="append", default=[])
    parser.add_argument("-f", dest="connection_file", type=Path, required=True)
    args = parser.parse_args(argv)
    user = pwd.getpwnam(args.user)
    if not user.pw_name.startswith(USER_PREFIX) or user.pw_uid == 0:
        raise SystemExit(f"refusing to run a kernel as {user.pw_name}")
    work = args.work
    connection = work / "home" / "connection.json"
    shutil.copyfile(args.connection_file, connection)
    os.chown(connection, user.pw_uid, user.pw_gid)
    os.chmod(connection, 0o600)
    for sub in (".ipython", ".matplotlib", ".keras", "runtime"):
        (work / "home" / sub).mkdir(exist_ok=True)
        os.chown(work / "home" / sub, user.pw_uid, user.pw_gid)
    resource.setrlimit(resource.RLIMIT_CPU, (args.cpu, args.cpu))
    resource.setrlimit(resource.RLIMIT_NPROC, (args.nproc, args.nproc))
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection)]
    drop = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--no-new-privs", "--"]
    if not args.bwrap:
        command = drop
    else:
        # bubblewrap runs as the grader's user (it mounts), setpriv inside it drops to the slot user
        command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_mounts(work, args.hide),
                   "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--cap-add", "CAP_SETUID",
                   "--cap-add", "CAP_SETGID", "--chdir", str(work / "home"), "--", *drop]
    os.chdir(work / "home")
    os.execvpe(command[0], command + kernel, _kernel_env(work))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "launch":
        launch(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m cnnkit.instructor.sandbox launch ...")
