"""The fault campaign: predictions and corrections under load while the parts fail.

4 API processes (`abvoc serve --workers 4`, granian) and 2 workers (`abvoc worker`, each with its
outbox relay) run on PostgreSQL and a Kafka broker (3 partitions). Locust (headless) drives
customers at 8, 32 and 128 users, each level taking a third of the events; every customer
predicts and corrects a share of the answers with their receipts. While the load runs, the Kafka
broker is killed (SIGKILL) and restarted, a worker is killed with `kill -9` and started again,
and PostgreSQL is restarted, at 15%, 45% and 70% of the events at the earliest, each only once
the service has recovered from the one before, and each checked to have done what it claims
(benchmarks/campaign_faults.py). Then the campaign waits for the stream to drain and compares,
as sets, the accepted event ids (outbox rows and the ids the API answered with) with the applied
ones (processed_events and the evaluation tables); see benchmarks/campaign_audit.py. It prints
accepted, applied, replayed, lost and duplicated events, each fault's check, and per user level
the successful requests/s with their p50/p99 apart from the failed requests (a 503 answered at
once is no served request; Locust's own rate counts both).

    python benchmarks/bench_campaign.py [--events 100000] [--max-minutes 60] [--users 8,32,128]
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from benchmarks.campaign_audit import audit, install_claims_log, pending  # noqa: E402
from benchmarks.campaign_faults import Faults  # noqa: E402
from core import events  # noqa: E402
from core.bus.kafka import KafkaBus  # noqa: E402
from core.store import schema  # noqa: E402
from core.store.db import Database  # noqa: E402
from tests.support.kafka import KafkaBroker  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

BIN = Path(sys.executable).parent
ARMS = (("control", "ocr-small-printed"), ("mixed", "ocr-small-mixed"))
LINE_BYTES = 35  # "p <32 hex>\n": every ledger line has this length
FAULTS = ("broker", "worker", "postgres")
_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


def prepare_models(folder: Path, db: Database) -> None:
    """Train the arms' candidates small (seconds each) unless `folder` has them; register them."""
    from serving.registry import Registry
    from workloads.ocr.bundle import register_trained
    from workloads.ocr.candidates import train_candidate

    for _, name in ARMS:
        if not (folder / name / "candidate.toml").exists():
            say(f"training {name} (small, for the campaign only)")
            train_candidate(name, folder, n_train=300, epochs=3, seed=0)
        register_trained(Registry(db), folder, folder / name)


def write_inputs(folder: Path, db: Database, n_images: int = 64) -> dict[str, str]:
    from app.auth import create_key
    from serving.images import encode_png
    from workloads.ocr.dataset import ONLINE_MIX, sample_requests

    images = [base64.b64encode(encode_png(s.image)).decode()
              for s in sample_requests(n_images, ONLINE_MIX, seed=7)]
    (folder / "images.json").write_text(json.dumps(images))
    keys = {scope: create_key(db, [scope], name=f"campaign-{scope}")["key"]
            for scope in ("predict", "correct", "admin")}
    (folder / "keys.json").write_text(json.dumps(keys))
    return keys


class Campaign:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.pg = PostgresServer().start()
        self.broker = KafkaBroker().start()
        self.db = Database(self.pg.create_database())
        schema.upgrade(self.db)
        install_claims_log(self.db)
        self.prefix = "campaign"
        self.topics = events.topics(self.prefix)
        KafkaBus([self.broker.bootstrap]).ensure_topics(self.topics)
        models = Path(args.models) if args.models else folder / "models"
        prepare_models(models, self.db)
        self.keys = write_inputs(folder, self.db)
        metrics = folder / "prometheus"
        metrics.mkdir()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                    "ABVOC_DATABASE_URL": self.db.url, "ABVOC_BUS_URL": self.broker.url,
                    "ABVOC_TOPIC_PREFIX": self.prefix, "ABVOC_DATA_DIR": str(folder / "data"),
                    "ABVOC_MODEL_STORE": str(models), "ABVOC_SECRET_KEY": "campaign-secret",
                    "ABVOC_LOG_LEVEL": "INFO", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.faults = Faults(self, say)
        self.supervised = 0
        self.done = threading.Event()
        self.stop = threading.Event()

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen:
        with open(self.folder / log_name, "ab") as log:
            return subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        self.api = self._spawn([sys.executable, "-m", "app", "serve", "--host", "127.0.0.1",
                                "--port", str(self.port), "--workers", "4", "--threads",
                                str(self.args.threads)], "api.log")
        self.workers = [self.spawn_worker(i) for i in range(2)]
        wait_for_port(self.port, 120, self.api)
        self._wait_ready(300)
        admin = {"Authorization": f"Bearer {self.keys['admin']}"}
        arms = [{"name": a, "candidate": c, "weight": 0.5, "control": i == 0}
                for i, (a, c) in enumerate(ARMS)]
        exp = requests.post(f"{self.base}/v1/experiments", headers=admin, timeout=120,
                            json={"name": "campaign", "arms": arms})
        exp.raise_for_status()
        requests.post(f"{self.base}/v1/experiments/{exp.json()['id']}/start", headers=admin,
                      timeout=120).raise_for_status()
        time.sleep(1.5)  # every API process reloads its router within a second
        self._warm_up()

    def _wait_ready(self, timeout_s: float) -> None:
        """Until the API answers /readyz (the server binds before its workers have imported)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/readyz", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"the API was not ready after {timeout_s:.0f}s; see api.log")

    def _warm_up(self, n: int = 16) -> None:
        """A few predictions so each API process has loaded its candidates (ids kept too)."""
        images = json.loads((self.folder / "images.json").read_text())
        headers = {"Authorization": f"Bearer {self.keys['predict']}"}
        with open(self.folder / "accepted-warmup.txt", "w") as ledger:
            for i in range(n):
                r = requests.post(f"{self.base}/v1/predict", headers=headers, timeout=120,
                                  json={"image_base64": images[i % len(images)],
                                        "unit_id": f"warm-{i}"})
                r.raise_for_status()
                ledger.write(f"p {r.json()['prediction_id']}\n")

    def progress(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("accepted-*.txt")) // LINE_BYTES

    def spawn_worker(self, i: int) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "app", "worker"], f"worker-{i}.log")

    def supervise(self) -> None:
        """Start again a worker process that exited (as systemd or `abvoc up` would): a worker
        started while the broker is down exits at its start-up check."""
        while not self.done.wait(2.0):
            for i, proc in enumerate(self.workers):
                if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                    say(f"worker pid {proc.pid} exited with {proc.returncode}; starting it again")
                    self.workers[i] = self.spawn_worker(i)
                    self.supervised += 1

    # -- load and drain --------------------------------------------------------------------

    def load(self, users: int, quota: int, seconds: int) -> dict[str, float]:
        prefix = self.folder / f"level-{users}"
        env = {**self.env, "ABVOC_CAMPAIGN_DIR": str(self.folder),
               "ABVOC_CAMPAIGN_LEDGER": f"accepted-{users}.txt",
               "ABVOC_CAMPAIGN_OK": f"ok-ms-{users}.txt",
               "ABVOC_CAMPAIGN_QUOTA": str(quota),
               "ABVOC_CAMPAIGN_CORRECTION_RATE": str(self.args.correction_rate)}
        cmd = [str(BIN / "locust"), "-f", str(ROOT / "benchmarks" / "locustfile_campaign.py"),
               "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
               "-H", self.base, "--csv", str(prefix), "--only-summary", "--stop-timeout", "5",
               "--exit-code-on-error", "0", "--loglevel", "WARNING"]
        with open(self.folder / "locust.log", "ab") as log:
            subprocess.run(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                           timeout=seconds + 120, check=True)
        with open(f"{prefix}_stats.csv") as f:
            row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
        with open(f"{prefix}_failures.csv") as f:  # what the failed requests were answered
            kinds = {f"{r['Name']}: {r['Error']}"[:160]: int(r["Occurrences"])
                     for r in csv.DictReader(f)}
        requests_, failures = int(row["Request Count"]), int(row["Failure Count"])
        ok_ms = sorted(float(line) for line in
                       (self.folder / f"ok-ms-{users}.txt").read_text().split())
        attempts_rps = float(row["Requests/s"])
        return {"attempts_rps": attempts_rps, "requests": requests_, "failures": failures,
                "ok_rps": attempts_rps * (requests_ - failures) / max(requests_, 1),
                "ok_p50": _quantile(ok_ms, 0.50), "ok_p99": _quantile(ok_ms, 0.99),
                "failed": kinds}

    def drain(self, timeout_s: float) -> bool:
        """Wait until every accepted event is applied (twice in a row, a second apart)."""
        deadline = time.monotonic() + timeout_s
        settled = 0
        while time.monotonic() < deadline:
            try:
                unsent, unapplied = pending(self.db)
            except OperationalError:
                unsent = unapplied = -1
            settled = settled + 1 if (unsent, unapplied) == (0, 0) else 0
            if settled >= 2:
                return True
            time.sleep(1.0)
        say(f"gave up waiting: {unsent} outbox rows unsent, {unapplied} events unapplied")
        return False

    def log_counts(self) -> dict[str, int]:
        """What the API and worker logs say about the faults (lines per kind)."""
        # The supervisor logs "<part> failed (restart n, ...): <error type>: ..." (core.supervision)
        kinds = {"BusUnavailable:": "bus unavailable", "Traceback": "Traceback",
                 "parked": "parked", "OperationalError": "OperationalError",
                 "Exception in thread": "threads died"}
        counts = dict.fromkeys(kinds.values(), 0)
        for path in [*self.folder.glob("worker-*.log"), self.folder / "api.log"]:
            text = path.read_text(errors="replace")
            for needle, kind in kinds.items():
                counts[kind] += text.count(needle)
        return counts

    def close(self) -> None:
        self.stop.set()
        self.done.set()
        for proc in [*self.workers, self.api]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.db.dispose()
        self.broker.discard()
        self.pg.stop()


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank); NaN for none."""
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000,
                        help="predictions and corrections to accept in all")
    parser.add_argument("--max-minutes", type=float, default=60.0,
                        help="bound on the load phases; the drain gets what is left (>= 3 min)")
    parser.add_argument("--users", default="8,32,128", help="Locust user levels, in order")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"some of {FAULTS}")
    parser.add_argument("--correction-rate", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=4, help="threads per API worker process")
    parser.add_argument("--broker-down-s", type=float, default=15.0)
    parser.add_argument("--postgres-down-s", type=float, default=3.0)
    parser.add_argument("--models", default=None, help="a folder to keep the trained candidates")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    levels = [int(u) for u in args.users.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="abvoc-campaign-"))
    say(f"campaign folder {folder}; starting PostgreSQL, Kafka, training candidates")
    campaign = Campaign(args, folder)
    figures: dict[int, dict[str, float]] = {}
    try:
        campaign.start()
        say(f"4 API processes on {campaign.base}, 2 workers; faults: {args.faults}")
        injector = threading.Thread(target=campaign.faults.run, daemon=True)
        injector.start()
        threading.Thread(target=campaign.supervise, daemon=True).start()
        for i, users in enumerate(levels):
            left = campaign.deadline - time.monotonic()
            quota = args.events * (i + 1) // len(levels) - campaign.progress()
            if left < 10 or quota <= 0:
                say(f"skipping {users} users: {left:.0f}s left, quota {quota}")
                continue
            seconds = int(left / (len(levels) - i))
            say(f"Locust: {users} users until {quota} more events or {seconds}s")
            figures[users] = campaign.load(users, quota, seconds)
            say(f"{users} users: {figures[users]}")
        campaign.stop.set()
        injector.join()
        say(f"load done at {campaign.progress()} events; faults fired: "
            f"{campaign.faults.fired}, not fired: {campaign.faults.not_fired}")
        drain_start = time.monotonic()
        drained = campaign.drain(max(180.0, campaign.deadline - time.monotonic()))
        drain_s = time.monotonic() - drain_start
        result = audit(campaign.db, folder, campaign.broker.bootstrap, campaign.topics)
        logs = campaign.log_counts()
    finally:
        campaign.close()
    faults = campaign.faults
    print(f"\nfault campaign: {args.events} events asked, faults fired {faults.fired} (not "
          f"fired: {faults.not_fired or 'none'}); the stream "
          f"{'drained' if drained else 'did not drain'} {drain_s:.0f}s after the load ended")
    for report in faults.reports:
        print(f"  fault {report.line()}")
    for line in result.lines():
        print("  " + line)
    print(f"  worker processes started again after exiting: {campaign.supervised}")
    print("  log lines (API + workers): " + ", ".join(f"{k} {v}" for k, v in logs.items()))
    print("  Locust, per user level (faults included where they fell; successful requests "
          "apart from failed ones):")
    for users, f in figures.items():
        print(f"    {users:4d} users: {f['ok_rps']:7.1f} successful req/s  p50 "
              f"{f['ok_p50']:6.0f} ms  p99 {f['ok_p99']:6.0f} ms of successes; "
              f"{f['failures']} of {f['requests']} requests failed "
              f"({f['attempts_rps']:.1f} attempts/s)")
        for kind, count in sorted(f["failed"].items(), key=lambda kv: -kv[1]):
            print(f"          {count:6d} × {kind}")
    exact = result.lost == 0 and result.unstored == 0 and result.duplicated == 0
    print(f"  applied set == accepted set: {exact}")
    if args.keep:
        print(f"  logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(0 if exact and drained else 1)


if __name__ == "__main__":
    main()
