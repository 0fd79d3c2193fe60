"""A store's refusal is parked with the driver's reason on one line.

Found listing parked events on PostgreSQL: an experiment id past BIGINT was parked with
SQLAlchemy's whole error text, the INSERT statement and its parameters over several lines, so
`abvoc events parked`, one line per event, printed a dozen lines of SQL for it.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from core.bus.base import Record
from core.store.db import Database
from core.store.models import ParkedEvent
from core.stream import apply_records
from evaluation.worker import GROUP_ID, apply_events, prepare_events
from tests.support.flow import prediction_event

WHY = {"postgresql": 'NumericValueOutOfRange: value "9223372036854775808" is out of range for '
                     "type bigint",
       "sqlite": "OverflowError: Python int too large to convert to SQLite INTEGER"}


def test_a_store_refusal_is_parked_on_one_line(db: Database, cli: CliRunner) -> None:
    too_big = json.dumps({**prediction_event(1), "experiment_id": 2**63}).encode()
    apply_records(db, GROUP_ID, [Record("t.predictions", 0, 0, "k", too_big)], apply_events,
                  prepare=prepare_events)
    with db.reading() as s:
        (reason,) = s.scalars(select(ParkedEvent.reason))
    assert reason == f"cannot apply: {WHY[db.dialect]}"
    from app.cli import main

    listed = cli.invoke(main, ["events", "parked"])
    lines = listed.output.splitlines()
    assert listed.exit_code == 0 and len(lines) == 4, listed.output  # the count, its kind, newest
    assert lines[-1].endswith(f": {reason}")
