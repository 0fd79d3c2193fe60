"""`abvoc events ...`: what the consumers parked, and replaying it once the cause is fixed.

Parked events were otherwise visible only in their table: a worker with the wrong secret key
could park every correction while /readyz stayed ready."""

from __future__ import annotations

from typing import Any

import click

from app.cli import Context, emit, json_option, open_db, pass_ctx
from core.errors import AbvocError
from core.ids import MAX_ROW_ID
from core.text import shown
from core.times import utc_iso


@click.group()
def events() -> None:
    """Parked events: list them, replay them through the worker's apply path."""


@events.command()
@click.option("--limit", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="How many of the newest parked events to list.")
@json_option
@pass_ctx
def parked(ctx: Context, limit: int, as_json: bool) -> None:
    """Counts of parked events by topic and reason, and the newest with their reasons."""
    from core.parking import newest_parked, parked_counts

    with open_db(ctx) as db:
        out: dict[str, Any] = {"counts": parked_counts(db), "newest": newest_parked(db, limit)}
    total = sum(c["count"] for c in out["counts"])
    lines = [f"{total} parked event{'s' if total != 1 else ''}"]
    lines += [f"  {c['count']:>7}  {c['topic']}  {c['reason']}  (group {c['group_id']})"
              for c in out["counts"]]
    if out["newest"]:
        lines.append("newest:")
    lines += [f"  #{e['id']} {e['created_at']:%Y-%m-%d %H:%M:%S} {e['topic']}[{e['partition']}]"
              f"@{e['offset']}{' event ' + e['event_id'] if e['event_id'] else ''}: "
              f"{e['reason']}" for e in out["newest"]]
    out["newest"] = [{**e, "created_at": utc_iso(e["created_at"])} for e in out["newest"]]
    emit(out, as_json, "\n".join(lines))


@events.command()
@click.option("--topic", default=None, help="Only events parked from this topic.")
@click.option("--reason-contains", default=None, metavar="TEXT",
              help="Only events whose reason contains TEXT (e.g. receipt).")
@click.option("--id", "parked_id", type=click.IntRange(1, MAX_ROW_ID), default=None,
              help="Only the parked event with this id (see `abvoc events parked`).")
@json_option
@pass_ctx
def replay(ctx: Context, topic: str | None, reason_contains: str | None,
           parked_id: int | None, as_json: bool) -> None:
    """Apply parked events again, as the worker does, with this process's settings (its
    ABVOC_SECRET_KEY verifies receipts); applied ones leave the parked list, failing ones stay
    with their new reason. Replaying twice never applies an event twice."""
    from core.bus.factory import open_bus
    from core.parking import parked_counts
    from core.replay import replay_parked
    from core.settings import ensure_secret_key
    from evaluation.worker import make_worker

    with open_db(ctx) as db:  # before the key: a data folder with no store gets none either
        settings = ensure_secret_key(ctx.settings)
        topics = sorted({c["topic"] for c in parked_counts(db)})
        if topic is not None and topic not in topics:  # a typo would otherwise "replay 0"
            raise AbvocError(f"no parked event is from topic {shown(topic)}; "
                             + (f"parked events are from {', '.join(topics)}" if topics
                                else "nothing is parked") + " (see `abvoc events parked`)")
        consumer = make_worker(db, open_bus(settings, db), settings.topic_prefix,
                               secret=settings.secret_key)
        out = replay_parked(db, consumer, topic=topic, reason_contains=reason_contains,
                            parked_id=parked_id)
    if parked_id is not None and not out["replayed"] and not out["truncated"]:
        raise AbvocError(f"no parked event has id {parked_id}; `abvoc events parked` lists them")
    if reason_contains is not None and not out["replayed"] and not out["truncated"]:
        # A mistyped filter must not read as a replay that found nothing to do.
        raise AbvocError(f"no parked event's reason contains {shown(reason_contains)}"
                         + (f" (topic {shown(topic)})" if topic else "")
                         + "; `abvoc events parked` lists the reasons")
    emit(out, as_json, f"replayed {out['replayed']}: applied {out['applied']}, already "
                       f"applied {out['already_applied']}, still parked {out['still_parked']}"
                       + (f", {out['truncated']} left (payload cut)" if out["truncated"] else ""))
    left = out["still_parked"] + out["truncated"]
    if left:  # a script must see that the cause is not fixed yet
        raise AbvocError(f"{left} {'events stay' if left != 1 else 'event stays'} parked: "
                         "`abvoc events parked` shows why; fix the cause, then replay again")


COMMANDS = [events]
