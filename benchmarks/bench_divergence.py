"""Benchmark of the divergence report on the path the service runs, beside Evidently.

A store holds the reference (the candidate's offline test: 1M predictions summed into its
``offline_results``, as a team registers them) and 1M online predictions with their corrections,
applied by the evaluation worker's exactly-once path (``apply_records`` + ``apply_events``, in
batches of 1,000, as the worker does after a poll). Then ``GET /v1/experiments/{id}/divergence``
is timed through the Flask app with an admin key: aggregation in SQL, the statistics, the ranked
findings and the JSON. The worker's time is reported apart: it is paid once, as events arrive,
while the report is what a person waits for.

The online side has a real shift: two slices grow, one label is over-predicted (the idle-bot
case), three slices lose accuracy, confidence drops and latency grows. The anchor is Evidently
0.7.23 ``DataDriftPreset`` on the same five raw columns (slice, output, correct, confidence,
latency); Evidently needs pandas < 3 and the project has pandas 3, so it runs in its own virtual
environment, ``~/.cache/abvoc/venv-evidently`` (made on first use; if that fails the anchor is
reported missing). The anchor reads raw arrays while ours reads the store, so the ratio says how
long each takes to answer from what it keeps, not the same computation.

Run: ``python benchmarks/bench_divergence.py [--rows N] [--repeats R] [--no-anchor] [--stages]
[--postgres]``; the default 1M rows per side takes a few minutes on 2 cores, mostly the worker.
``--stages``: every prediction records a bundle's stage answers, so the report's stage
attribution has a verdict for each corrected one; ``--postgres``: the store on a PostgreSQL
server of its own (scripts/install-system.sh installs it) instead of SQLite.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_VENV = Path.home() / ".cache" / "abvoc" / "venv-evidently"
ANCHOR_PINS = ["evidently==0.7.23", "pandas<3"]
COLUMNS = ("slice", "output", "correct", "confidence", "latency_ms")
SLICES = tuple(f"{family}/{kind}" for family in ("printed", "handwritten", "screen", "photo")
               for kind in ("small", "middle", "large", "noisy", "rotated"))
LABELS = ("idle", "move", "attack", "jump", "crouch", "reload", "use", "chat")
CANDIDATE = "bench"
BATCH = 1000
T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)


def say(text: str) -> None:
    print(text, flush=True)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _side(rng: np.random.Generator, n: int, online: bool) -> dict[str, np.ndarray]:
    """One side's columns (plus the truth); ``online`` applies the shift."""
    mix = np.linspace(1.0, 2.0, len(SLICES))
    if online:
        mix[[5, 6]] *= 4  # handwritten/small and handwritten/middle grow
    slice_ = rng.choice(len(SLICES), n, p=mix / mix.sum()).astype(np.int16)
    truth = rng.choice(len(LABELS), n, p=[0.4, 0.2, 0.12, 0.1, 0.08, 0.05, 0.03, 0.02])
    accuracy = np.linspace(0.99, 0.93, len(SLICES))
    if online:
        accuracy[[5, 6, 17]] -= 0.12
    right = rng.random(n) < accuracy[slice_]
    output = np.where(right, truth, rng.integers(0, len(LABELS), n))
    if online:  # answers 'idle' on a third of the inputs, whatever they are
        output = np.where(rng.random(n) < 0.35, 0, output)
    output = output.astype(np.int16)
    correct = (output == truth).astype(np.int8)
    if online:  # customers correct 90 % of the wrong answers; other truths stay unknown
        correct = np.where((correct == 0) & (rng.random(n) < 0.9), 0, -1).astype(np.int8)
    confidence = rng.beta(8 if not online else 5, 1.5, n)
    latency = rng.lognormal(3.0 if not online else 3.15, 0.5, n)
    return {"slice": slice_, "output": output, "correct": correct, "confidence": confidence,
            "latency_ms": latency, "truth": truth.astype(np.int16)}


def generate(n: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {"reference": _side(rng, n, False), "online": _side(rng, n, True)}


def save(data: dict[str, dict[str, np.ndarray]], folder: Path) -> None:
    for side, columns in data.items():
        for name in COLUMNS:
            np.save(folder / f"{side}_{name}.npy", columns[name])


def load(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    return {side: {name: np.load(folder / f"{side}_{name}.npy") for name in COLUMNS}
            for side in ("reference", "online")}


def evidently_report(frames: list[Any]) -> Any:
    """Evidently's drift report on the two frames, rendered to a dict (its results)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(categorical_columns=["slice", "output", "correct"],
                                numerical_columns=["confidence", "latency_ms"])
    reference, online = (Dataset.from_pandas(f, data_definition=definition) for f in frames)
    snapshot = Report([DataDriftPreset()]).run(current_data=online, reference_data=reference)
    return snapshot.dict()


def offline_results(ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """What a team registers from its offline test: n and exact match overall and per slice,
    and the label shares."""
    n = np.bincount(ref["slice"], minlength=len(SLICES))
    hits = np.bincount(ref["slice"], weights=ref["correct"], minlength=len(SLICES))
    shares = np.bincount(ref["truth"], minlength=len(LABELS)) / ref["truth"].size
    return {
        "overall": {"n": int(n.sum()), "exact_match": float(hits.sum() / n.sum())},
        "slices": {name: {"n": int(n[i]), "exact_match": float(hits[i] / n[i])}
                   for i, name in enumerate(SLICES) if n[i]},
        "label_shares": {label: float(shares[i]) for i, label in enumerate(LABELS)},
    }


def online_records(on: dict[str, np.ndarray], experiment_id: int, stages: bool = False
                   ) -> list[Any]:
    """The online predictions (and a correction per known wrong answer) as bus records.

    ``stages``: each prediction records a two-stage bundle's answers (an encoder's, then the
    head's, the output), so the stage attribution blames every corrected one: the encoder's
    answer is the truth in a third of them (the head is blamed where those are wrong).

    One event of each type is made (and validated) by ``make_event``; the rest copy it with
    their own fields, which keeps encoding a million events to seconds. The worker validates
    every event again as it decodes it, as it does in the service.
    """
    from core import events
    from core.bus.base import Record
    from core.output_types import STAGE_ANSWERS

    pred = events.make_event(
        events.PREDICTION_MADE, prediction_id="p", experiment_id=experiment_id, arm="control",
        candidate=CANDIDATE, shadow=False, unit_id="u", slice=SLICES[0], input_hash="0" * 16,
        output=LABELS[0], confidence=0.5, latency_ms=1.0, error=None, stages={})
    corr = events.make_event(events.CORRECTION_SUBMITTED, correction_id="c", prediction_id="p",
                             corrected_output=LABELS[0])
    out: list[Any] = []
    n = on["slice"].size
    step = 4 * 3600 / max(n, 1)  # spread over four hours
    slices, outputs, truths = (on[k].tolist() for k in ("slice", "output", "truth"))
    confidence, latency, correct = (on[k].tolist() for k in ("confidence", "latency_ms",
                                                             "correct"))
    for i in range(n):
        pid = f"p{i}"
        moment = T0 + timedelta(seconds=i * step)
        e = {**pred, "event_id": f"{2 * i:032x}", "prediction_id": pid, "unit_id": f"u{i % 50_000}",
             "slice": SLICES[slices[i]], "input_hash": f"{i:016x}", "output": LABELS[outputs[i]],
             "confidence": confidence[i], "latency_ms": latency[i],
             "occurred_at": moment.isoformat()}
        if stages:
            first = LABELS[truths[i]] if i % 3 == 0 else LABELS[outputs[i]]
            e["stages"] = {STAGE_ANSWERS: [{"stage": "encoder", "answer": first},
                                           {"stage": "head", "answer": LABELS[outputs[i]]}]}
        out.append(Record("bench", 0, len(out), pid, events.encode(e)))
        if correct[i] == 0:
            c = {**corr, "event_id": f"{2 * i + 1:032x}", "correction_id": f"c{i}",
                 "prediction_id": pid, "corrected_output": LABELS[truths[i]],
                 "occurred_at": (moment + timedelta(seconds=1)).isoformat()}
            out.append(Record("bench", 0, len(out), pid, events.encode(c)))
    return out


def build_store(tmp: Path, data: dict[str, dict[str, np.ndarray]], stages: bool = False,
                database_url: str | None = None) -> tuple[Any, int, float, int]:
    """A store (SQLite, or the PostgreSQL database at ``database_url``) with the candidate,
    the experiment and the applied online events.

    Returns the settings, the experiment id, the worker's seconds and the events applied.
    """
    sys.path.insert(0, str(ROOT))
    from core.settings import load_settings
    from core.store import schema
    from core.store.db import Database
    from core.store.models import Candidate, Experiment
    from core.stream import apply_records
    from evaluation.worker import GROUP_ID, apply_events

    settings = load_settings(env={"ABVOC_DATA_DIR": str(tmp / "data"),
                                  "ABVOC_DATABASE_URL": database_url
                                  or f"sqlite:///{tmp}/bench.db",
                                  "ABVOC_SECRET_KEY": "bench-secret"})
    db = Database(settings.database_url)
    schema.upgrade(db)
    with db.session() as s:
        s.add(Candidate(name=CANDIDATE, version="1",
                        offline_results=offline_results(data["reference"]),
                        created_at=T0, updated_at=T0))
        exp = Experiment(name="bench", salt="s", status="running",
                         arms=[{"name": "control", "candidate": CANDIDATE, "weight": 1.0,
                                "control": True}],
                         shadows=[], guardrails={}, primary_metric="correction_rate",
                         created_at=T0, started_at=T0)
        s.add(exp)
        s.flush()
        experiment_id = int(exp.id)
    say("  encoding the online events ...")
    records = online_records(data["online"], experiment_id, stages)
    say(f"  the worker applies {len(records):,} events in batches of {BATCH:,} ...")
    start = time.perf_counter()
    for lo in range(0, len(records), BATCH):
        apply_records(db, GROUP_ID, records[lo: lo + BATCH], apply_events)
    worker_s = time.perf_counter() - start
    db.dispose()
    return settings, experiment_id, worker_s, len(records)


def time_endpoint(settings: Any, experiment_id: int, repeats: int) -> dict[str, Any]:
    """Median seconds of the divergence endpoint (after a warm-up), its allocation peak and
    the first finding."""
    from app import close_app, create_app
    from app.auth import create_key

    app = create_app(settings, test_config={"TESTING": True})
    try:
        key = create_key(app.extensions["abvoc"].db, ["admin"], name="bench")["key"]
        client = app.test_client()
        url = f"/v1/experiments/{experiment_id}/divergence"
        headers = {"Authorization": f"Bearer {key}"}
        first = client.get(url, headers=headers)
        if first.status_code != 200:
            raise SystemExit(f"{url} answered {first.status_code}: {first.get_data(True)[:300]}")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            response = client.get(url, headers=headers)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200
        tracemalloc.start()
        client.get(url, headers=headers)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        report = first.get_json()
    finally:
        close_app(app)
    top = report["findings"][0] if report["findings"] else None
    kinds = sorted({f["kind"] for f in report["findings"]})
    summary = (f"{len(report['findings'])} findings ({', '.join(kinds)}); first: {top['kind']} "
               f"{top.get('label') or top['slice']!r}" if top else "no findings")
    return {"times": times, "traced_mib": traced, "summary": summary,
            "bytes": len(first.get_data())}


def child(folder: Path, repeats: int) -> None:
    """Run the Evidently anchor ``repeats`` times on the saved data; print JSON."""
    import evidently.presets  # noqa: F401  (imports before the baseline RSS)
    import pandas as pd

    data = load(folder)
    frames = [pd.DataFrame(data[side]) for side in ("reference", "online")]
    before = peak_rss_mib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = evidently_report(frames)
        times.append(time.perf_counter() - start)
        print(f"  evidently run {len(times)}: {times[-1]:.3f} s", file=sys.stderr, flush=True)
    print(json.dumps({"times": times, "rss_before_mib": before, "peak_rss_mib": peak_rss_mib(),
                      "summary": f"{len(result.get('metrics', []))} metric results"}))


def anchor_python() -> tuple[str | None, str]:
    """The anchor venv's python (made on first use), or None and why it is unavailable."""
    python = ANCHOR_VENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently, pandas; print(evidently.__version__, "
             "pandas.__version__)"]
    if python.exists():
        ok = subprocess.run(probe, capture_output=True, text=True)
        if ok.returncode == 0 and ok.stdout.startswith("0.7.23 "):
            return str(python), ok.stdout.strip()
    say(f"anchor: creating {ANCHOR_VENV} with {' '.join(ANCHOR_PINS)} (once, a few minutes)")
    made = subprocess.run(["python3", "-m", "venv", str(ANCHOR_VENV)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        return None, f"python3 -m venv failed: {made.stderr.strip()[-300:]}"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PINS],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        return None, f"pip install {' '.join(ANCHOR_PINS)} refused: {pip.stderr.strip()[-300:]}"
    ok = subprocess.run(probe, capture_output=True, text=True)
    if ok.returncode != 0:
        return None, f"evidently does not import: {ok.stderr.strip()[-300:]}"
    return str(python), ok.stdout.strip()


def run_anchor(folder: Path, repeats: int) -> dict[str, Any] | str:
    python, why = anchor_python()
    if python is None:
        return why
    say(f"anchor: evidently, pandas {why}: DataDriftPreset on {len(COLUMNS)} columns ...")
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--child", "--data",
                           str(folder), "--repeats", str(repeats)],
                          stdout=subprocess.PIPE, stderr=None, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return f"evidently child exited {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextmanager
def _postgres(wanted: bool) -> Iterator[str | None]:
    """A PostgreSQL server of the benchmark's own (the tests' helper) and its URL, or None."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.url()
    finally:
        server.stop()


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.counts import positive_int

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=positive_int, default=1_000_000, help="predictions per side")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--postgres", action="store_true",
                        help="the store on a PostgreSQL server of its own (default SQLite)")
    parser.add_argument("--stages", action="store_true",
                        help="predictions record a two-stage bundle's answers, so the stage "
                             "attribution blames every corrected one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.data, args.repeats)
        return

    say(f"generating {args.rows:,} reference + {args.rows:,} online predictions "
        f"({len(SLICES)} slices, {len(LABELS)} labels) ...")
    data = generate(args.rows)
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-div-") as tmp, \
            _postgres(args.postgres) as database_url:
        folder = Path(tmp)
        say(f"  store: {'PostgreSQL' if database_url else 'SQLite'}")
        settings, experiment_id, worker_s, applied = build_store(folder, data, args.stages,
                                                                 database_url)
        say(f"  worker: {worker_s:.1f} s for {applied:,} events ({applied / worker_s:,.0f}/s)")
        say(f"GET /v1/experiments/{experiment_id}/divergence (median of {args.repeats}) ...")
        ours = time_endpoint(settings, experiment_id, args.repeats)
        our_t = statistics.median(ours["times"])
        runs = ", ".join(f"{t * 1000:.0f}" for t in ours["times"])
        say(f"  runs {runs} ms; {ours['bytes']:,} bytes of JSON; {ours['summary']}")
        anchor: dict[str, Any] | str = "skipped (--no-anchor)"
        if not args.no_anchor:
            save(data, folder)
            anchor = run_anchor(folder, args.repeats)
    say("")
    say(f"worker: {worker_s:8.1f} s  applying {applied:,} events ({args.rows:,} predictions "
        "and their corrections), paid once as they arrive")
    say(f"ours:   {our_t * 1000:8.0f} ms  the divergence endpoint over the store "
        f"(tracemalloc peak {ours['traced_mib']:.0f} MiB)")
    if isinstance(anchor, str):
        say(f"anchor: unavailable: {anchor}")
        return
    anchor_t = statistics.median(anchor["times"])
    say(f"anchor: {anchor_t * 1000:8.0f} ms  peak RSS {anchor['peak_rss_mib']:6.0f} MiB "
        "[evidently 0.7.23 DataDriftPreset on the raw arrays]")
    say(f"ratio:  {anchor_t / our_t:.1f}x (report only; the worker's time is not in it)")


if __name__ == "__main__":
    main()
