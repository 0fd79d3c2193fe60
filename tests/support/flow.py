"""Helpers that drive events through outbox → bus → store in tests and benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import func, select

from core import events, receipts
from core.outbox import add_events
from core.store.db import Database
from core.store.models import Prediction
from core.stream import StreamConsumer


def prediction_event(i: int, run: str = "r") -> dict:
    """A realistic PredictionMade event (about 230 bytes of JSON)."""
    return events.make_event(
        events.PREDICTION_MADE,
        prediction_id=f"{run}-{i}",
        experiment_id=1,
        arm="treatment",
        candidate="small-mixed",
        unit_id=f"user-{i % 997}",
        slice="handwritten/middle",
        input_hash=f"{i:016x}",
        output="\\frac{x^{2}}{3}",
        confidence=0.87,
        latency_ms=11.5,
    )


SECRET = "flow-test-secret"
"""The key the corrections' receipts are signed with: give it to the worker that applies them."""


def correction_event(i: int, run: str = "r") -> dict:
    """A CorrectionSubmitted event for prediction `i` of `run` (keyed like it, so after it)."""
    return events.make_event(
        events.CORRECTION_SUBMITTED,
        correction_id=f"{run}-c{i}",
        prediction_id=f"{run}-{i}",
        receipt=receipts.sign(SECRET, f"{run}-{i}"),
        corrected_output="\\frac{x^{2}}{4}",
        rating=2,
    )


CORRECTION_LAG = 60
"""A correction follows its prediction this many predictions later (another transaction)."""


def corrected(n: int, correct_every: int, start: int = 0) -> list[int]:
    """Which of predictions start..start+n-1 `write_outbox` corrects."""
    if not correct_every:
        return []
    return [j for j in range(start, start + n - CORRECTION_LAG) if j % correct_every == 0]


def stream_events(lo: int, hi: int, run: str = "r", correct_every: int = 0,
                  start: int = 0) -> list[dict]:
    """Predictions lo..hi-1, each after the correction of prediction i - CORRECTION_LAG when
    that one is corrected (every `correct_every`-th from `start`)."""
    out = []
    for i in range(lo, hi):
        j = i - CORRECTION_LAG
        if correct_every and j >= start and j % correct_every == 0:
            out.append(correction_event(j, run))
        out.append(prediction_event(i, run))
    return out


def outbox_batches(n: int, run: str = "r", *, batch: int = 100, start: int = 0,
                   correct_every: int = 0) -> Iterator[list[dict]]:
    """The events `write_outbox` writes, one list per transaction, each made when asked for
    (``list()`` them to make them all ahead)."""
    for lo in range(start, start + n, batch):
        yield stream_events(lo, min(lo + batch, start + n), run, correct_every, start)


def write_batches(db: Database, batches: Iterable[list[dict]], prefix: str,
                  pause_s: float = 0.0) -> None:
    """Accept each batch of events (made by :func:`make_event`, so checked once, as the API's
    are) in one transaction, the way the API does."""
    for batch in batches:
        with db.session() as s:
            add_events(s, batch, prefix, validated=True)
        if pause_s:
            time.sleep(pause_s)


def write_outbox(
    db: Database,
    n: int,
    prefix: str,
    *,
    run: str = "r",
    batch: int = 100,
    start: int = 0,
    pause_s: float = 0.0,
    correct_every: int = 0,
) -> None:
    """Accept `n` predictions the way the API does, each batch in one transaction; with
    `correct_every`, every so many predictions also get a correction a little later (see
    :func:`corrected`)."""
    write_batches(db, outbox_batches(n, run, batch=batch, start=start,
                                     correct_every=correct_every), prefix, pause_s)


def count_predictions(db: Database) -> tuple[int, int]:
    """(rows, distinct prediction ids) in the evaluation store."""
    with db.session() as s:
        rows = s.scalar(select(func.count()).select_from(Prediction)) or 0
        distinct = s.scalar(select(func.count(func.distinct(Prediction.prediction_id)))) or 0
    return rows, distinct


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def joined(threads: Iterable[threading.Thread], timeout_s: float = 60) -> None:
    """Join the threads of a loop that was told to stop, failing instead of hanging when one
    has not ended within `timeout_s` (a stop that never returned once held a CI run until its
    limit). Start them as daemons, so that one left running cannot hold the process either."""
    threads = list(threads)
    deadline = time.monotonic() + timeout_s
    for t in threads:
        if t.ident is not None:
            t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"still running {timeout_s:.0f}s after the stop: {alive}"


def swap_loaded(pool, name: str, wrap: Callable) -> None:  # noqa: ANN001 - a CandidatePool
    """Load candidate `name` (its newest version) and serve it wrapped: `wrap(candidate)` takes
    the loaded Servable and returns one that behaves differently (slow, stuck, ...)."""
    candidate = pool.get(name)
    key = next(k for k, v in pool._loaded.items() if v is candidate)
    pool._loaded[key] = wrap(candidate)


def drain_worker(worker: StreamConsumer) -> None:
    """Step a worker until a poll brings nothing more, then close it."""
    try:
        while worker.step(timeout_ms=100):
            pass
    finally:
        worker.close()
