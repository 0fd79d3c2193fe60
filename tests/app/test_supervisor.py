"""The supervisor restarts a dying part with growing backoff and stops every part on request;
a process whose loop dies exits non-zero so that it is restarted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app import supervisor
from app.runner import run_processes
from app.supervisor import Child, Supervisor
from core.startup import connect


def test_a_dying_part_is_restarted_with_growing_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "FIRST_BACKOFF_S", 0.2)
    monkeypatch.setattr(supervisor, "PIDS_KEPT", 2)
    crashing = Child("crashing", [sys.executable, "-c", "raise SystemExit(3)"])
    steady = Child("steady", [sys.executable, "-c", "import time; time.sleep(600)"])
    restarted: list[str] = []
    ticks: list[float] = []
    stop = threading.Event()
    sup = Supervisor([crashing, steady], os.environ, on_restart=restarted.append,
                     periodic=[(0.3, lambda: ticks.append(time.monotonic()))],
                     stop_timeout_s=10)
    runner = threading.Thread(target=sup.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 30
    while crashing.restarts < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    runner.join(timeout=30)
    assert crashing.restarts >= 3 and set(restarted) == {"crashing"}
    # 0.2 s, 0.4 s, 0.8 s ...: each quick death doubles the wait.
    assert crashing.backoff_s >= 1.6
    assert "crashing (pid" in caplog.text and "exited with code 3; restarting" in caplog.text
    assert steady.restarts == 0 and len(steady.history) == 1
    # Its last pids only: a part in a crash loop for months kept one per restart.
    assert len(crashing.history) == 2 and crashing.history[-1] == crashing.process.pid
    assert steady.process.poll() is not None  # stopped with the supervisor
    assert ticks  # the periodic task (retention prune in `abvoc up`) ran


def test_a_dead_loop_makes_its_process_exit_non_zero(settings, monkeypatch) -> None:  # noqa: ANN001
    import app.runner as runner

    def broken(*_args: object) -> None:
        raise RuntimeError("the relay loop died")

    monkeypatch.setattr(runner, "run_relay", broken)
    services = connect(settings)
    stop = threading.Event()
    assert run_processes(services, stop, relay=True) == 1
    assert stop.is_set()


def test_the_loops_start_with_the_start_up_heap_frozen(settings, monkeypatch) -> None:  # noqa: ANN001
    """run_processes moves what start-up allocated out of the collector's full passes before the
    loops start (core.supervision.freeze_startup_heap): the worker's batches trigger many."""
    import gc

    import app.runner as runner

    frozen: list[int] = []

    def relay(*_args: object) -> None:
        frozen.append(gc.get_freeze_count())
        raise RuntimeError("enough: the loop has started")

    monkeypatch.setattr(runner, "run_relay", relay)
    gc.unfreeze()
    services = connect(settings)
    try:
        assert run_processes(services, threading.Event(), relay=True) == 1
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
    assert frozen and frozen[0] > 10_000


def test_the_command_line_does_not_import_prometheus_client() -> None:
    """prometheus_client picks its multiprocess mode when first imported, so `abvoc up` and
    `abvoc serve --workers N` must set the folder before anything imports it."""
    import subprocess
    from pathlib import Path

    probe = "import sys, app.cli; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_a_periodic_task_slower_than_its_period_never_overlaps_itself() -> None:
    """`abvoc up`'s weekly report takes longer than its check period on a slow machine; a
    second run started meanwhile would find the report not yet there and write it again."""
    running, most, runs = [0], [0], [0]
    lock = threading.Lock()

    def slow() -> None:
        with lock:
            running[0] += 1
            runs[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.5)
        with lock:
            running[0] -= 1

    stop = threading.Event()
    sup = Supervisor([], os.environ, periodic=[(0.1, slow)], stop_timeout_s=5)
    runner = threading.Thread(target=sup.run, args=(stop,))
    runner.start()
    time.sleep(2.0)
    stop.set()
    runner.join(timeout=10)
    assert runs[0] >= 2  # it runs again once the previous run has ended
    assert most[0] == 1


# A stop signal landing while the handler of the one before is inside `stop.set()` (it holds
# the event's lock): the Python handler is called as Python calls a nested one, then two more
# signals come the ordinary way.
_TWO_SIGNALS = """
import os, signal
from app.runner import stop_on_signals
stop = stop_on_signals()
with stop._cond:
    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
os.kill(os.getpid(), signal.SIGTERM)
os.kill(os.getpid(), signal.SIGINT)
print("stopped" if stop.wait(10) else "not stopped", flush=True)
"""


def test_a_second_stop_signal_during_the_first_cannot_hang_the_process() -> None:
    """`abvoc up` and a kill of the process group may each send a part SIGTERM; the handler
    of the second must not wait for a lock the first holds (a relay hung so)."""
    import subprocess
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", _TWO_SIGNALS], capture_output=True, text=True,
                          timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_what_a_killed_part_started_goes_with_it(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A part that forks (the API's server forks its workers): when it is killed, what it
    started must not live on (a worker kept the API's port and every restart failed), and the
    supervisor's stop ends the whole group."""
    monkeypatch.setattr(supervisor, "FIRST_BACKOFF_S", 0.2)
    pids = tmp_path / "pids"
    forking = Child("forking", [sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}} {{kid.pid}}\\n')\n"
        "time.sleep(600)\n")])
    stop = threading.Event()
    sup = Supervisor([forking], os.environ, stop_timeout_s=10)
    runner = threading.Thread(target=sup.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not pids.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        parent, kid = map(int, pids.read_text().split())
        os.kill(parent, 9)
        while forking.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert forking.restarts == 1
        time.sleep(0.3)
        assert not _alive(kid), "the killed part's child outlived it"
        while len(pids.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        _, second_kid = map(int, pids.read_text().splitlines()[1].split())
    finally:
        stop.set()
        runner.join(timeout=30)
    time.sleep(0.3)
    assert not _alive(second_kid), "stopping the supervisor left a part's child running"


def test_the_metrics_folder_is_off_the_data_disk_and_apart_per_data_folder(
        tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """prometheus_client's files are sparse maps: kept in <data_dir>/prometheus, a full data
    disk made their next write a SIGBUS, which killed the relay, the worker and `abvoc up`."""
    monkeypatch.delenv(supervisor.PROMETHEUS_DIR_VAR, raising=False)
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    folder = Path(supervisor.use_prometheus_dir(data))
    assert os.environ[supervisor.PROMETHEUS_DIR_VAR] == str(folder)
    assert not folder.resolve().is_relative_to(data.resolve())
    if os.access("/dev/shm", os.W_OK):  # Linux: memory, not a disk
        assert folder.parent == Path("/dev/shm")
    assert folder.stat().st_mode & 0o777 == 0o700
    (folder / "counter_1.db").write_bytes(b"old")
    assert supervisor.use_prometheus_dir(data) == str(folder)  # the same instance: emptied
    assert [p.name for p in folder.iterdir()] == [supervisor.OWNER_FILE]
    elsewhere = supervisor.use_prometheus_dir(other)  # another instance: apart
    assert elsewhere != str(folder) and folder.is_dir()
    # A folder whose maker was killed (no exit hook ran) goes at the next start of any.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (folder / supervisor.OWNER_FILE).write_text(gone)
    supervisor.use_prometheus_dir(other)
    assert not folder.exists()
    shutil.rmtree(elsewhere)


def test_a_metrics_folder_that_cannot_be_made_is_one_line_naming_the_setting(
        tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """In production an unwritable folder ended `abvoc up` in a 36-line traceback."""
    from core.errors import ConfigError

    monkeypatch.delenv(supervisor.PROMETHEUS_DIR_VAR, raising=False)
    monkeypatch.setattr(supervisor, "SHARED_MEMORY", tmp_path)
    supervisor.metrics_folder(tmp_path / "data").write_text("a file took its name")
    with pytest.raises(ConfigError, match=r"cannot prepare .*prometheus for the processes' "
                                          r"metrics \(File exists\): set "
                                          r"PROMETHEUS_MULTIPROC_DIR to an empty folder"):
        supervisor.use_prometheus_dir(tmp_path / "data")
    assert supervisor.PROMETHEUS_DIR_VAR not in os.environ


def test_a_second_instance_on_a_running_data_folder_is_refused_and_leaves_its_metrics(
        tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A second `abvoc up` (or `serve --workers 2`) on the data folder of a running one
    emptied that one's metrics folder as it started and removed it as it exited: the running
    instance's /metrics then answered 500 (PROMETHEUS_MULTIPROC_DIR not a directory)."""
    from core.errors import ConfigError

    monkeypatch.delenv(supervisor.PROMETHEUS_DIR_VAR, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    code = ("import sys, time; from pathlib import Path; from app import supervisor; "
            "supervisor.use_prometheus_dir(Path(sys.argv[1])); print('ready', flush=True); "
            "time.sleep(600)")
    first = subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        folder = supervisor.metrics_folder(data)
        (folder / "counter_1.db").write_bytes(b"running")
        with pytest.raises(ConfigError, match=rf"another abvoc \(pid {first.pid}\) is running "
                                              r"on data folder .*: stop it first"):
            supervisor.use_prometheus_dir(data)
        assert (folder / "counter_1.db").read_bytes() == b"running"
        assert supervisor.PROMETHEUS_DIR_VAR not in os.environ
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
    assert supervisor.use_prometheus_dir(data) == str(folder)  # its owner gone: taken over
    shutil.rmtree(folder)
