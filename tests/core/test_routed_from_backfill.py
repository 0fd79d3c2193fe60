"""Migration 0036 names the source of the stage copies route_label made before it: a stage item
done when it was made, with no label rows of its own, is the copy of its input's done item
outside the stage queues; a stage item the rules queued and an annotator labeled is not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from core.store import schema
from core.store.db import Database, utcnow

ITEM = ("INSERT INTO relabel_items (id, queue, prediction_id, reason, priority, status, label,"
        " created_at, labeled_at, input_hash, reasons, labels_needed)"
        " VALUES (:id, :queue, :pid, '', 0, 'done', 'y', :created, :labeled, :hash, '[]', 1)")


def test_copies_made_before_the_column_name_their_source(db: Database) -> None:
    schema.downgrade(db, "0035")
    t0 = utcnow()
    rows = [(1, "verification", "p1", t0, t0, "h1"),        # the source, labeled
            (2, "stage:recognizer", "p1", t0 + timedelta(seconds=1), t0, "h1"),  # its copy
            (3, "verification", "p2", t0, t0, "h2"),
            (4, "stage:recognizer", "p2", t0 - timedelta(hours=1), t0, "h2")]  # queued first
    with db.engine.begin() as conn:
        for item_id, queue, pid, created, labeled, digest in rows:
            conn.execute(text(ITEM), {"id": item_id, "queue": queue, "pid": pid,
                                      "created": created, "labeled": labeled, "hash": digest})
        conn.execute(text("INSERT INTO relabel_labels (item_id, annotator, action, label,"
                          " created_at) VALUES (1, 'ann', 'label', 'y', :t),"
                          " (3, 'ann', 'label', 'y', :t)"), {"t": t0})
    schema.upgrade(db)
    with db.engine.connect() as conn:
        got = dict(conn.execute(text("SELECT id, routed_from FROM relabel_items")).all())
    assert got == {1: None, 2: 1, 3: None, 4: None}
