"""Commands that run and look after abvoc itself: config, db, serve, worker, relay, up."""

from __future__ import annotations

import logging
from datetime import timedelta

import click

from app.cli import Context, emit, json_option, open_db, pass_ctx
from core.startup import connect
from core.store import schema
from core.store.db import Database
from core.store.retention import prune as prune_store


def _logging(ctx: Context) -> None:
    logging.basicConfig(
        level=ctx.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@click.command()
@json_option
@pass_ctx
def config(ctx: Context, as_json: bool) -> None:
    """Print the effective configuration (secrets masked)."""
    described = ctx.settings.describe()
    human = "\n".join(f"{k} = {v}" for k, v in sorted(described.items()))
    emit(described, as_json, human)


@click.group()
def db() -> None:
    """Migrate the SQL store (Alembic)."""


@db.command()
@click.argument("revision", default="head")
@pass_ctx
def upgrade(ctx: Context, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    with open_db(ctx) as database:
        schema.upgrade(database, revision)
        click.echo(f"database at revision {schema.current(database)}")


@db.command()
@click.argument("revision", default="-1")
@pass_ctx
def downgrade(ctx: Context, revision: str) -> None:
    """Downgrade the schema to REVISION (default: one step; 'base' removes every table)."""
    with open_db(ctx) as database:
        schema.downgrade(database, revision)
        click.echo(f"database at revision {schema.current(database) or 'base'}")


@db.command()
@json_option
@pass_ctx
def current(ctx: Context, as_json: bool) -> None:
    """Show the schema's current and head revisions."""
    with open_db(ctx) as database:
        data = {"current": schema.current(database), "head": schema.head(database)}
    emit(data, as_json, f"current {data['current'] or 'base'}, head {data['head']}")


@db.command()
@click.option("--retention-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Keep this many days (default: ABVOC_RETENTION_DAYS, 7).")
@json_option
@pass_ctx
def prune(ctx: Context, retention_days: float | None, as_json: bool) -> None:
    """Delete sent outbox rows, consumed bus-log records and event ids no replay can bring back.

    `abvoc up` runs this every hour; see core/store/retention.py for what is kept and why."""
    days = retention_days or ctx.settings.retention_days
    with open_db(ctx) as database:
        pruned = prune_store(database, timedelta(days=days),
                             embedded=ctx.settings.bus.kind == "embedded").as_dict()
    emit(pruned, as_json, f"pruned {pruned['outbox']} outbox rows, {pruned['bus_log']} bus-log "
         f"records, {pruned['processed_events']} processed event ids (kept {days:g} days)")


def _run(ctx: Context, **parts: object) -> None:
    from app.runner import run_processes, stop_on_signals

    _logging(ctx)
    services = connect(ctx.settings)
    run_processes(services, stop_on_signals(), **parts)  # type: ignore[arg-type]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve the HTTP API in one process (use gunicorn for several, see README)."""
    _run(ctx, api=(host, port))


@click.command()
@click.option(
    "--relay/--no-relay",
    default=True,
    show_default=True,
    help="Also relay the outbox to the bus from this process.",
)
@pass_ctx
def worker(ctx: Context, relay: bool) -> None:
    """Consume events into the evaluation store (one member of the consumer group)."""
    _run(ctx, worker=True, relay=relay)


@click.command()
@pass_ctx
def relay(ctx: Context) -> None:
    """Publish outbox events to the bus until stopped."""
    _run(ctx, relay=True)


def ensure_candidates(ctx: Context) -> None:
    """On a fresh store, train and offline-test the reference candidates (about a minute)."""
    from serving.ocr.candidates import candidate_names
    from serving.ocr.workflow import offline_test_and_store, train_and_register
    from serving.registry import Registry

    with Database(ctx.settings.database_url) as database:
        schema.upgrade(database)
        if Registry(database).list():
            return
    names = candidate_names()
    click.echo(f"no candidates registered: training {', '.join(names)} (once, about a minute)")
    train_and_register(ctx.settings, names, progress=click.echo)
    for name in names:
        offline_test_and_store(ctx.settings, name, progress=click.echo)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--train/--no-train", default=True, show_default=True,
              help="Train the reference candidates first if none is registered.")
@pass_ctx
def up(ctx: Context, host: str, port: int, train: bool) -> None:
    """Run everything on one machine: API, outbox relay and evaluation worker."""
    if train:
        ensure_candidates(ctx)
    _run(ctx, api=(host, port), relay=True, worker=True)


SYSTEM_COMMANDS = [config, db, serve, worker, relay, up]
