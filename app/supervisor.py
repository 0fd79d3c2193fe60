"""`abvoc up`'s process supervisor: the API (granian), the outbox relay and the evaluation
worker each run as a child process; one that dies is restarted with backoff and logged.

A child's backoff doubles on each quick death (1 s, 2 s, 4 s … 30 s) and starts again at 1 s
once it has run a minute. SIGTERM or SIGINT stops the children with SIGTERM (each shuts down
cleanly: granian finishes its requests, the worker commits nothing it has not applied), waits,
then kills what is left. Retention pruning runs here too, on a schedule.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.orphans import SUPERVISOR_PID_VAR
from core.errors import ConfigError
from core.text import quoted

log = logging.getLogger("abvoc.supervisor")

def check_port_free(host: str, port: int) -> None:
    """Fail now, not in a restart loop of the API child, when the port is taken or the host is
    no IP address (the HTTP server takes addresses only: `localhost` made it raise at start,
    and `abvoc up` restart its API child forever)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"--host must be an IP address to listen on (127.0.0.1, ::1, 0.0.0.0), "
                          f"got {quoted(host[:100])}") from None
    with socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except (OSError, OverflowError) as exc:  # a host that is no address: OSError too
            raise ConfigError(f"cannot listen on {host}:{port} "
                              f"({getattr(exc, 'strerror', None) or exc}); choose another "
                              "--host or --port") from None


PROMETHEUS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"


def check_prometheus_dir() -> None:
    """Refuse at start a PROMETHEUS_MULTIPROC_DIR that is no folder this process can write:
    prometheus_client only finds out at its first sample, so a mistyped one made `abvoc serve`'s
    workers crash with a traceback on start and `abvoc worker` restart its loop for ever."""
    folder = os.environ.get(PROMETHEUS_DIR_VAR)
    if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
        raise ConfigError(f"{PROMETHEUS_DIR_VAR}={quoted(folder[:200])} is not a folder this "
                          "process can write: make it (empty, before the first process that "
                          "shares it starts), or unset it")


SHARED_MEMORY = Path("/dev/shm")
"""Where the metrics folders go where the machine has it (Linux); otherwise the temp folder."""


def metrics_folder(data_dir: Path) -> Path:
    """The Prometheus folder of the instance serving `data_dir`: in shared memory, off the data
    disk. prometheus_client maps its files sparse and grows them by truncating, so its first
    write to a new page on a full filesystem is a SIGBUS, not an OSError: a full data disk
    killed the relay, the worker and `abvoc up` itself. One folder per user and data folder (a
    hash of its path): instances on other data folders keep apart, and a restart finds its own
    folder to empty."""
    base = SHARED_MEMORY if os.access(SHARED_MEMORY, os.W_OK | os.X_OK) \
        else Path(tempfile.gettempdir())
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return base / f"abvoc-{os.getuid()}-{digest}-prometheus"


def use_prometheus_dir(data_dir: Path) -> str:
    """Send this process's (and its children's) Prometheus samples to
    :func:`metrics_folder`, emptied first as prometheus_client requires of a new set of
    processes, and made by this user alone (mode 0700: a shared folder's name can be taken).

    prometheus_client reads the variable once, when it is first imported, so this must run
    before anything in the process imports it (app.runner does, through the loops)."""
    folder = metrics_folder(data_dir)
    _sweep_orphans(folder.parent)
    if (owner := _live_owner(folder)) is not None:
        # Emptying it deleted a running instance's samples, and its exit removed the folder
        # under that instance: its /metrics answered 500 until restarted.
        raise ConfigError(f"another abvoc (pid {owner}) is running on data folder {data_dir} "
                          f"and keeps its metrics in {folder}: stop it first, or run this one "
                          "on another data folder")
    try:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        folder.mkdir(mode=0o700)  # fails on a name another user took (or a link left there)
        (folder / OWNER_FILE).write_text(str(os.getpid()))  # not *.db: Prometheus skips it
    except OSError as exc:  # a full or read-only shared memory: one line, not a traceback
        raise ConfigError(f"cannot prepare {folder} for the processes' metrics "
                          f"({exc.strerror or type(exc).__name__}): set {PROMETHEUS_DIR_VAR} "
                          "to an empty folder abvoc can write, off the data disk") from None
    os.environ[PROMETHEUS_DIR_VAR] = str(folder)
    atexit.register(_remove_at_exit, folder, os.getpid())
    return str(folder)


OWNER_FILE = "owner.pid"


def _live_owner(folder: Path) -> int | None:
    """The pid of another running process that made `folder`, if one does (None: no owner
    written, this process, or one gone without its exit hook)."""
    try:
        owner = int((folder / OWNER_FILE).read_text())
        if owner == os.getpid():
            return None
        os.kill(owner, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's: its folder would not be this user's name
        return owner
    except (OSError, ValueError):
        return None
    return owner


def _sweep_orphans(base: Path) -> None:
    """Remove this user's metrics folders whose maker is gone without its exit hook (killed),
    so memory is not held for instances on data folders that are never started again."""
    for folder in base.glob(f"abvoc-{os.getuid()}-*-prometheus"):
        try:
            os.kill(int((folder / OWNER_FILE).read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):  # no owner written (yet), or another user's process
            continue


def _remove_at_exit(folder: Path, owner: int) -> None:
    """Give the folder's memory back when the process that made it exits (a process forked
    from it inherits this hook, and must leave the folder to the others)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def forget_process_metrics(pid: int) -> None:
    """Drop a process's live gauges (consumer lag, in-flight counts) from the shared Prometheus
    folder once it has exited: otherwise /metrics showed a stopped worker's last lag for ever."""
    if os.environ.get(PROMETHEUS_DIR_VAR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0
PIDS_KEPT = 20


@dataclass
class Child:
    """One supervised command and its current process."""

    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None
    # its last pids (the newest last): a part in a crash loop for months added one each 30 s
    history: deque[int] = field(default_factory=lambda: deque(maxlen=PIDS_KEPT))


class Supervisor:
    def __init__(self, children: Sequence[Child], env: Mapping[str, str], *,
                 on_restart: Callable[[str], None] | None = None,
                 periodic: Sequence[tuple[float, Callable[[], None]]] = (),
                 stop_timeout_s: float = 30.0) -> None:
        self.children = list(children)
        self.env = dict(env)
        self.on_restart = on_restart
        self.periodic = [(every, task, time.monotonic() + every) for every, task in periodic]
        self._running: dict[int, threading.Thread] = {}  # each periodic task's last run
        self.stop_timeout_s = stop_timeout_s

    def _start(self, child: Child) -> None:
        # A process group of its own: the API's server forks workers, which outlived a killed
        # parent, kept its port and made every restart fail; its group is signalled whole.
        child.process = subprocess.Popen(child.argv, env=self.env, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None
        child.history.append(child.process.pid)
        log.info("%s started (pid %d)", child.name, child.process.pid)

    def _check(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                if self.on_restart is not None:
                    self.on_restart(child.name)
            return
        code = child.process.poll() if child.process else None
        if code is None:
            return
        _signal_group(child.process, signal.SIGKILL)  # what it left behind, before a restart
        forget_process_metrics(child.process.pid)
        if now - child.started_at >= STABLE_AFTER_S:
            child.backoff_s = FIRST_BACKOFF_S
        log.error("%s (pid %d) exited with %s; restarting in %.0f s (restart %d)", child.name,
                  child.process.pid, _describe(code), child.backoff_s, child.restarts + 1)
        child.restart_at = now + child.backoff_s
        child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)

    def _run_due(self, now: float) -> None:
        """Start each task that is due, unless its previous run is still going: a report or a
        prune slower than its period would otherwise run twice at once (and write twice)."""
        for i, (every, task, due) in enumerate(self.periodic):
            if now >= due:
                self.periodic[i] = (every, task, now + every)
                previous = self._running.get(i)
                if previous is not None and previous.is_alive():
                    log.info("periodic task %s still running; this turn is skipped",
                             getattr(task, "__name__", "task"))
                    continue
                self._running[i] = thread = threading.Thread(
                    target=_logged(task), name="periodic", daemon=True)
                thread.start()

    def run(self, stop: threading.Event) -> None:
        """Start every child, keep them running until `stop` is set, then stop them."""
        for child in self.children:
            self._start(child)
        while not stop.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
            self._run_due(now)
        self.stop()

    def stop(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("pid %d did not stop in %.0f s; killing it", process.pid,
                          self.stop_timeout_s)
                process.kill()
                process.wait()
        for child in self.children:  # anything a part left running (its server's workers)
            if child.process is not None:
                _signal_group(child.process, signal.SIGKILL)
        log.info("all parts stopped")


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process group a child leads (the child and what it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(process.pid, sig)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _logged(task: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            task()
        except Exception:  # a failed periodic task must not stop the supervisor; next time
            log.exception("periodic task failed")
    return run


def child_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment children get: this one, plus what `up` set up for them."""
    env = dict(base)
    env.update(extra)
    env[SUPERVISOR_PID_VAR] = str(os.getpid())  # each child stops once this process is gone
    env.setdefault("PYTHONUNBUFFERED", "1")
    return {k: v for k, v in env.items() if v is not None}

