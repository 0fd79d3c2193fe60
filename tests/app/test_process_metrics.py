"""A process that has exited leaves no live gauge in the shared Prometheus folder: /metrics
showed a stopped worker's consumer lag for ever (a clean SIGTERM included), since only the API's
server workers were marked dead. `abvoc worker`/`relay` now mark themselves on their way out and
the supervisor marks a child it finds dead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SET_LAG = ("import os\nfrom core.consumer_lag import RECORDS_BEHIND\n"
           "RECORDS_BEHIND.labels('g', 't', '0').set(42)\nprint(os.getpid())\n")
READ = ("from prometheus_client import CollectorRegistry, generate_latest, multiprocess\n"
        "r = CollectorRegistry(); multiprocess.MultiProcessCollector(r)\n"
        "print(generate_latest(r).decode())\n")
FORGET = "import sys\nfrom app.supervisor import forget_process_metrics\n" \
         "forget_process_metrics(int(sys.argv[1]))\n"


def _python(code: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_exited_process_s_lag_leaves_metrics_once_it_is_forgotten(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    pid = _python(SET_LAG, env).strip()
    assert 'abvoc_consumer_lag_records{group="g",partition="0",topic="t"} 42.0' \
        in _python(READ, env)
    _python(FORGET, env, pid)
    assert "abvoc_consumer_lag_records{" not in _python(READ, env)
