"""Events per second through the evaluation worker into the online aggregates, on SQLite and on
PostgreSQL, beside the same stream applied by an insert-only handler in the same run.

The records are encoded events held in memory and applied through the stream's exactly-once path
(decode, validate, event-id dedupe, apply, record the ids) in batches of one poll's records
(core.stream.POLL_RECORDS), one transaction each, as the worker does after a poll; the bus
itself is measured by bench_bus.py. The traffic: 3 arms, 20 slices, 4 hours, a confidence and
latency on every prediction, one correction for every tenth (some arriving before their
prediction). Each run also gives this process's CPU time per event: on a shared machine it moves
less with the neighbours' load than events/s does (on PostgreSQL the server's CPU is not in it).

    python benchmarks/bench_worker.py [--events 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session  # noqa: E402

from benchmarks.counts import positive_int  # noqa: E402
from core import events  # noqa: E402
from core.bus.base import Record  # noqa: E402
from core.store import schema  # noqa: E402
from core.store.db import Database  # noqa: E402
from core.store.models import Correction, Prediction  # noqa: E402
from core.store.upsert import insert_rows  # noqa: E402
from core.stream import POLL_RECORDS, apply_records  # noqa: E402
from evaluation.worker import _correction_row, _prediction_row, apply_events  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

BATCH = POLL_RECORDS
T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)


def insert_only(session: Session, batch: list[dict]) -> None:
    """The anchor: store the rows, no aggregates (the worker before it kept any), through the
    same insert path as the worker's (the driver's cursor on SQLite, arrays on PostgreSQL)."""
    preds = [_prediction_row(e) for e in batch if e["event_type"] == events.PREDICTION_MADE]
    corrs = [_correction_row(e) for e in batch if e["event_type"] == events.CORRECTION_SUBMITTED]
    insert_rows(session, Prediction.__table__, preds, ["prediction_id"])
    insert_rows(session, Correction.__table__, corrs, ["correction_id"])


def traffic(n: int, run: str) -> list[Record]:
    out = []
    arms = ("control", "t1", "t2")
    for i in range(n):
        pid = f"{run}-{i}"
        e = events.make_event(
            events.PREDICTION_MADE, prediction_id=pid, experiment_id=1, arm=arms[i % 3],
            candidate=f"cand-{i % 3}", unit_id=f"user-{i % 5000}", slice=f"slice/{i % 20}",
            input_hash=f"{i:016x}", output="\\frac{x^{2}}{3}", confidence=(i % 100) / 100,
            latency_ms=5.0 + (i * 7919 % 1000) / 10)
        e["occurred_at"] = (T0 + timedelta(seconds=i * 14400 // n)).isoformat()
        if i % 10 == 0:
            c = events.make_event(events.CORRECTION_SUBMITTED, correction_id=f"c{pid}",
                                  prediction_id=pid, corrected_output="\\frac{x_{2}}{3}")
            pair = [c, e] if i % 20 == 0 else [e, c]  # half the corrections come first
        else:
            pair = [e]
        out += [Record("bench", 0, len(out) + k, pid, events.encode(x))
                for k, x in enumerate(pair)]
    return out


def run(url: str, handler, records: list[Record]) -> tuple[float, float]:  # noqa: ANN001
    """(events/s, this process's CPU µs per event): the CPU figure moves less with the load of
    a shared machine; on PostgreSQL the server's own CPU is not in it."""
    db = Database(url)
    schema.upgrade(db)
    start, cpu = time.perf_counter(), time.process_time()
    for lo in range(0, len(records), BATCH):
        apply_records(db, "evaluation", records[lo: lo + BATCH], handler)
    rate = len(records) / (time.perf_counter() - start)
    cpu_us = (time.process_time() - cpu) * 1e6 / len(records)
    db.dispose()
    return rate, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive_int, default=20000)
    parser.add_argument("--repeats", type=positive_int, default=3)
    args = parser.parse_args()
    pg = PostgresServer().start()
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(args.repeats):
                records = traffic(args.events, f"r{rep}")
                for store in ("sqlite", "postgresql"):
                    for name, handler in (("insert-only", insert_only), ("worker", apply_events)):
                        url = (f"sqlite:///{tmp}/{store}-{name}-{rep}.db" if store == "sqlite"
                               else pg.create_database())
                        rate, cpu_us = run(url, handler, records)
                        results.setdefault(f"{store:10s} {name}", []).append((rate, cpu_us))
                        print(f"run {rep}: {store:10s} {name:11s} {rate:10,.0f} events/s "
                              f"{cpu_us:7.1f} µs CPU/event", flush=True)
    finally:
        pg.stop()
    print(f"\nmedians of {args.repeats} runs ({len(records):,} events each):")
    for store in ("sqlite", "postgresql"):
        anchor, anchor_cpu = (statistics.median(x) for x in zip(
            *results[f"{store:10s} insert-only"], strict=True))
        worker, worker_cpu = (statistics.median(x) for x in zip(
            *results[f"{store:10s} worker"], strict=True))
        print(f"  {store:10s} worker with aggregates {worker:10,.0f} events/s   insert-only "
              f"{anchor:10,.0f} events/s   ratio {worker / anchor:.2f}   this process's CPU "
              f"per event: worker {worker_cpu:.1f} µs, insert-only {anchor_cpu:.1f} µs")


if __name__ == "__main__":
    main()
