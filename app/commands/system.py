"""Commands that run and look after abvoc itself: config, db, serve, worker, relay, up."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
from datetime import timedelta

import click

from app.cli import (
    EXPERIMENT_ID,
    Context,
    Finite,
    configure_logging,
    emit,
    json_option,
    open_db,
    pass_ctx,
)
from app.orphans import stop_when_orphaned
from app.supervisor import (
    PROMETHEUS_DIR_VAR,
    check_port_free,
    check_prometheus_dir,
    use_prometheus_dir,
)
from core.bus import BusUnavailable
from core.settings import MAX_RETENTION_DAYS, Settings, ensure_secret_key
from core.startup import connect
from core.store import schema
from core.store.db import Database
from core.store.retention import prune as prune_store
from core.store.retention import prune_inputs

WEEK_S = 7 * 86400
"""The longest period `up` takes between prunes or report checks: a weekly task runs weekly."""


def _logging(ctx: Context) -> None:
    configure_logging(ctx.settings.log_level)


@click.command()
@json_option
@pass_ctx
def config(ctx: Context, as_json: bool) -> None:
    """Print the effective configuration (secrets masked)."""
    described = ctx.settings.describe()
    human = "\n".join(f"{k} = {_shown_setting(v)}" for k, v in sorted(described.items()))
    emit(described, as_json, human)


def _shown_setting(value: object) -> str:
    """A setting as `abvoc config` prints it: unset as (unset), not Python's None; a list as
    a config file writes it, not a Python tuple."""
    if value is None:
        return "(unset)"
    return json.dumps(value) if isinstance(value, list) else str(value)


@click.group()
def db() -> None:
    """Migrate the SQL store (Alembic), prune it, rebuild derived sums."""


# A relative step (-1, -2) is a revision, not an unknown option (click refused `-1`, the
# step `abvoc db downgrade` takes by default and its messages suggest).
STEPS = {"ignore_unknown_options": True}


@db.command(context_settings=STEPS)
@click.argument("revision", default="head")
@pass_ctx
def upgrade(ctx: Context, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    with open_db(ctx, migrated=False, create=True) as database:
        schema.upgrade(database, revision)
        click.echo(f"database at revision {schema.current(database) or 'base'}")


@db.command(context_settings=STEPS)
@click.argument("revision", default="-1")
@pass_ctx
def downgrade(ctx: Context, revision: str) -> None:
    """Downgrade the schema to REVISION (default: one step; 'base' removes every table)."""
    with open_db(ctx, migrated=False) as database:
        schema.downgrade(database, revision)
        click.echo(f"database at revision {schema.current(database) or 'base'}")


@db.command()
@json_option
@pass_ctx
def current(ctx: Context, as_json: bool) -> None:
    """Show the schema's current and head revisions."""
    with open_db(ctx, migrated=False) as database:
        data = {"current": schema.current(database), "head": schema.head(database)}
    emit(data, as_json, f"current {data['current'] or 'base'}, head {data['head']}")


@db.command()
@click.option("--retention-days", type=Finite(0, MAX_RETENTION_DAYS, min_open=True),
              default=None, help="Keep this many days (default: ABVOC_RETENTION_DAYS, 7).")
@json_option
@pass_ctx
def prune(ctx: Context, retention_days: float | None, as_json: bool) -> None:
    """Delete sent outbox rows, consumed bus-log records and event ids no replay can bring back,
    and served inputs past ABVOC_INPUT_RETENTION_HOURS.

    `abvoc up` runs this every hour; a deployment without it (`abvoc serve` and `abvoc worker`)
    schedules it. See core/store/retention.py for what is kept and why."""
    days = retention_days or ctx.settings.retention_days
    hours = ctx.settings.input_retention_hours
    embedded = ctx.settings.bus.kind == "embedded"
    with open_db(ctx) as database:
        pruned = prune_store(database, timedelta(days=days), embedded=embedded).as_dict()
        pruned["kept_inputs"] = prune_inputs(database, hours, embedded=embedded)
    emit(pruned, as_json, f"pruned {pruned['outbox']} outbox rows, {pruned['bus_log']} bus-log "
         f"records, {pruned['processed_events']} processed event ids (kept {days:g} days), "
         f"{pruned['kept_inputs']} served inputs (kept {hours:g} hours)")


@db.command("backfill-unit-sums")
@click.option("--experiment", "experiment_id", type=EXPERIMENT_ID, default=None,
              help="Only this experiment (default: every one whose unit sums do not hold all "
                   "its predictions).")
@json_option
@pass_ctx
def backfill_unit_sums(ctx: Context, experiment_id: int | None, as_json: bool) -> None:
    """Rebuild the per-unit sums of experiments whose predictions were stored before the
    worker kept them (schema 0021), so their built-in metrics are tested per unit.

    Safe while the worker runs; see evaluation/unit_backfill.py for what it reads and why."""
    from app.commands.models import ProgressLine
    from evaluation.unit_backfill import rebuild, stale_experiments, stored_predictions

    with open_db(ctx) as database:
        with database.reading() as s:
            chosen = [experiment_id] if experiment_id else stale_experiments(s)
            sizes = {e: stored_predictions(s, e) for e in chosen}
        done = []
        for eid in chosen:
            line = ProgressLine(f"experiment {eid}")
            done.append(rebuild(database, eid, lambda n, e=eid, line=line:
                                line(min(n, sizes[e]), sizes[e])).as_dict())
    human = "\n".join(f"experiment {d['experiment_id']}: {d['predictions']} predictions, "
                      f"{d['unit_rows']} unit rows rebuilt" for d in done)
    emit(done, as_json, human or "every experiment's unit sums hold its predictions")


@db.command("backfill-blame")
@json_option
@pass_ctx
def backfill_blame(ctx: Context, as_json: bool) -> None:
    """Store the stage each truth counted before schema 0032 blames, so the divergence report
    counts them in SQL instead of judging each in Python at every read.

    Safe while the worker runs (it stores the same verdict of the truths it joins); short
    transactions of a thousand truths; run it again after an interruption."""
    from sqlalchemy import func, select

    from app.commands.models import ProgressLine
    from core.store.models import PredictionTruth
    from evaluation.stage_blame import judge_stored

    with open_db(ctx) as database:
        with database.reading() as s:
            total = s.scalar(select(func.count()).select_from(PredictionTruth)
                             .where(PredictionTruth.blame.is_(None))) or 0
        line, done, after = ProgressLine("truths judged"), 0, ""
        while True:
            with database.session() as s:
                n, after = judge_stored(s, after)
            if not n:
                break
            done += n
            line(min(done, total), max(total, done))
    emit({"judged": done}, as_json, f"{done} truths judged" if done
         else "every truth's verdict is stored")


def _run(ctx: Context, *, check_bus: bool = True, **parts: object) -> None:
    from app.runner import run_processes, stop_on_signals

    check_prometheus_dir()
    _logging(ctx)
    services = connect(ctx.settings, check_bus=check_bus)
    status = run_processes(services, stop_on_signals(), **parts)  # type: ignore[arg-type]
    if status:
        sys.exit(status)


def _ready_settings(ctx: Context, *, bus_required: bool = True) -> Settings:
    """Settings with the secret key settled, after checking the store and the bus (and
    migrating the store) once, so a broken setup fails here and not in every child. The API
    alone (not `bus_required`) starts while the bus is down: it never calls the bus (events wait
    in the outbox), so a restart during a broker's maintenance must not keep it down."""
    settings = ensure_secret_key(ctx.settings)
    services = connect(settings, check_bus=bus_required)
    try:
        if not bus_required:
            try:
                services.bus.check()
            except BusUnavailable as exc:
                click.echo(f"warning: ABVOC_BUS_URL={settings.bus} is unreachable ({exc}); "
                           "serving anyway: events wait in the outbox for the relay, and "
                           "/readyz says the bus is down", err=True)
    finally:
        services.close()
    return settings


def default_workers() -> int:
    return max(2, min(4, os.cpu_count() or 1))


workers_option = click.option(
    "--workers", type=click.IntRange(1, 64), default=None,
    help="API worker processes (default: 1 for serve; 2-4 by CPU count for up).")
threads_option = click.option("--threads", type=click.IntRange(1, 256), default=8,
                              show_default=True, help="Request threads per API worker.")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@workers_option
@threads_option
@click.option("--dev", is_flag=True,
              help="Werkzeug's development server in this one process, for debugging.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int | None, threads: int,
          dev: bool) -> None:
    """Serve the HTTP API under granian (add --workers for several processes)."""
    check_port_free(host, port)  # granian reuses ports: another abvoc would share this one
    check_prometheus_dir()
    if dev:  # the API alone too: it starts while the bus is down (see _ready_settings)
        _logging(ctx)  # first, as below: a store it migrates is said in its log
        _ready_settings(ctx, bus_required=False)
        _run(ctx, check_bus=False, api=(host, port))
        return
    _logging(ctx)  # first: a node that migrates the store says so in its log
    settings = _ready_settings(ctx, bus_required=False)
    if (workers or 1) > 1 and not os.environ.get(PROMETHEUS_DIR_VAR):
        use_prometheus_dir(settings.data_dir)  # before prometheus_client is imported
    from app.runner import serve_api

    serve_api(settings, host, port, workers=workers or 1, threads=threads)


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
    """On a fresh store, train and offline-test the reference candidates (about a minute), in
    a child process: torch and onnxruntime, once imported, stayed in the process that then
    supervises the service for its whole life (0.8-1.3 GB where it needs a quarter of one)."""
    from serving.registry import Registry

    with Database(ctx.settings.database_url) as database:
        schema.upgrade(database)
        if Registry(database).list():
            return
    child = multiprocessing.get_context("spawn").Process(
        target=train_reference_candidates, args=(ctx.settings, os.getpid()), name="abvoc-train")
    child.start()
    # Ctrl-C (SIGINT) stops the training with `up`, as it stops `up`'s parts later
    # (runner.stop_on_signals), though `up` was started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        child.join()
    finally:  # interrupted (SIGINT): the training must not go on alone
        if child.is_alive():
            child.terminate()
            child.join()
    if child.exitcode != 0:
        raise click.ClickException(f"training the reference candidates failed (exit code "
                                   f"{child.exitcode}); the lines above say why")


def train_reference_candidates(settings: Settings, parent_pid: int | None = None) -> None:
    """Train, register and offline-test the reference OCR candidates (a child process's work).

    It stops once `parent_pid` (the `abvoc up` that waits for it) is gone: an `up` stopped with
    SIGTERM or killed while training left it training on alone for minutes, and the next `up`,
    finding no candidate registered yet, started a second training beside it."""
    if parent_pid is not None:
        stop_when_orphaned(parent_pid, grace_s=2)
    from workloads.ocr.candidates import candidate_names
    from workloads.ocr.workflow import offline_test_and_store, train_and_register

    names = candidate_names()
    click.echo(f"no candidates registered: training {', '.join(names)} (once: about a minute "
               "on two idle cores, longer on a busy host)")
    train_and_register(settings, names, progress=click.echo)
    for name in names:
        offline_test_and_store(settings, name,
                               progress=lambda m, name=name: click.echo(f"[{name}] offline {m}"))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@workers_option
@threads_option
@click.option("--train/--no-train", default=True, show_default=True,
              help="Train the reference candidates first if none is registered.")
@click.option("--prune-every", "prune_every_s", type=Finite(1, WEEK_S), default=3600,
              show_default=True, help="Seconds between retention prunes (see `db prune`).")
@click.option("--report-every", "report_every_s", type=Finite(1, WEEK_S), default=3600,
              show_default=True,
              help="Seconds between checks for a weekly report due, and for the current week's "
                   "so far older than ABVOC_REPORT_TO_DATE_HOURS (see `abvoc report`).")
@pass_ctx
def up(ctx: Context, host: str, port: int, workers: int | None, threads: int, train: bool,
       prune_every_s: float, report_every_s: float) -> None:
    """Run everything on one machine: the API under granian, the outbox relay and the
    evaluation worker as supervised processes (restarted if they die), retention, and the
    weekly report (last week's, written once from Monday 06:00 UTC into <data_dir>/reports)."""
    ensure_secret_key(ctx.settings)  # fail before training when production lacks a key
    check_port_free(host, port)
    use_prometheus_dir(ctx.settings.data_dir)  # before prometheus_client is imported
    from app.runner import run_up

    _logging(ctx)
    # As `serve`: the API starts while the broker is down (the relay and the worker wait for it,
    # restarted with backoff), so a restart during a broker outage is no API outage. Checked
    # before training: an unreachable store is one line naming the variable, and a mistyped
    # SQLite path a refusal, not a new empty store minutes of training go into.
    settings = _ready_settings(ctx, bus_required=False)
    if train:
        ensure_candidates(ctx)
    run_up(settings, host, port, workers=workers or default_workers(), threads=threads,
           config_file=ctx.config_file, prune_every_s=prune_every_s,
           report_every_s=report_every_s)


COMMANDS = [config, db, serve, worker, relay, up]
