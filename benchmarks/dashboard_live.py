"""bench_dashboard's ``--live`` write: the pages timed while the worker applies new predictions,
as they are in service. Its own module so bench_dashboard stays under the 400-line limit."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

from core.store.db import Database

_LIVE = itertools.count()


def live_write(db: Database, experiment_id: int, slices: Sequence[str]) -> None:
    """One new prediction of a seeded unit (in one of `slices`), applied by the worker's own
    handler (a real event, decoded, checked and deduplicated as on the bus)."""
    from core import events
    from core.bus.base import Record
    from core.stream import apply_records
    from evaluation.worker import apply_events

    i = next(_LIVE)
    event = events.make_event(
        events.PREDICTION_MADE, prediction_id=f"live-{time.time_ns()}-{i}",
        experiment_id=experiment_id, arm="control", candidate="ocr-small", unit_id=f"live-{i}",
        slice=slices[i % len(slices)], input_hash=f"{i:064x}", output="x^{2}",
        confidence=0.9, latency_ms=12.5)
    apply_records(db, "evaluation", [Record("bench", 0, i, event["prediction_id"],
                                            events.encode(event))], apply_events)
