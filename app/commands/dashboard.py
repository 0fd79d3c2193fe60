"""`abvoc dashboard`: the Dash dashboard served on its own, over the configured store."""

from __future__ import annotations

import click

from app.cli import (
    Context,
    check_out_folder,
    configure_logging,
    emit,
    json_option,
    open_db,
    pass_ctx,
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (granian).")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Request threads per worker.")
@click.option("--dev", is_flag=True, help="Werkzeug's development server, for debugging.")
@pass_ctx
def dashboard(ctx: Context, host: str, port: int, workers: int, threads: int,
              dev: bool) -> None:
    """Serve the dashboard alone; log in at /dashboard/login with an admin API key.

    The service (`abvoc serve`, `abvoc up`) serves the same pages at /dashboard/."""

    from app.runner import serve_dashboard
    from app.supervisor import check_port_free
    from core.settings import ensure_secret_key
    from core.startup import connect

    check_port_free(host, port)
    # A store that is not there is a mistyped data folder or URL: a new empty one (and a new
    # secret key) would serve a dashboard none of the operator's keys can log in to.
    with open_db(ctx, migrated=False):
        pass
    settings = ensure_secret_key(ctx.settings)
    connect(settings).close()  # fail here, naming the variable, if the store is unreachable
    configure_logging(settings.log_level)
    click.echo(f"abvoc dashboard: http://{host}:{port}/dashboard/ (log in with an admin key: "
               "`abvoc keys create --scopes admin`)")
    serve_dashboard(settings, host, port, workers=workers, threads=threads, dev=dev)


def _not_empty(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An empty --week or --out is a mistake, not the default (the last week, the data folder)."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty: give a value or leave the option out for the "
                                 "default", param=param)
    return value


@click.command()
@click.option("--week", default=None, metavar="YYYY-Www", callback=_not_empty,
              help="ISO week, e.g. 2026-W48 (default: the last full week, UTC).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              callback=_not_empty,
              help="Folder to write to (default: <data_dir>/reports).")
@click.option("--force", is_flag=True, help="Write the week again even if it is there.")
@click.option("--to-date", is_flag=True,
              help="The current week so far, up to the end of this hour (written again at each "
                   "run; replaced by the whole week's report once it ends).")
@json_option
@pass_ctx
def report(ctx: Context, week: str | None, out_dir: str | None, force: bool, to_date: bool,
           as_json: bool) -> None:
    """Write the weekly evaluation report: a self-contained HTML file and its PDF."""
    from pathlib import Path

    from app.commands.models import ProgressLine
    from dashboards.report import reports_dir, write_report

    folder = Path(out_dir) if out_dir else reports_dir(ctx.settings.data_dir)
    check_out_folder(folder, "--out" if out_dir else "ABVOC_DATA_DIR")
    with open_db(ctx) as db:
        done = write_report(db, folder, week, force=force, to_date=to_date,
                            progress=ProgressLine("weekly report: experiments"))
    state = "already written (use --force to redo)" if done.skipped else "written"
    emit({"week": done.week, "to_date": done.to_date, "html": str(done.html),
          "pdf": str(done.pdf), "skipped": done.skipped}, as_json,
         f"report {done.week}{' so far' if done.to_date else ''} {state}:\n  {done.html}\n"
         f"  {done.pdf}")


COMMANDS = [dashboard, report]
