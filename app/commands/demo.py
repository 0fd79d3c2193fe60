"""`abvoc demo`: the whole product on one machine in a few minutes, on embedded defaults.

It trains the reference candidates when the store has none (the three OCR candidates, the two
game players), makes an admin key and prints the dashboard's address with it, runs the service
as `abvoc up` does, and meanwhile plays simulated customers against it through the public API:
OCR customers whose formulas differ from the offline test (and who correct wrong answers) on a
three-arm experiment with a shadow, and a game league on the game-player experiment.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import click

from app.cli import Context, pass_ctx
from app.commands.system import (
    _logging,
    _ready_settings,
    default_workers,
    ensure_candidates,
    threads_option,
    workers_option,
)
from app.supervisor import check_port_free, use_prometheus_dir
from core.settings import ensure_secret_key
from core.store import schema
from core.store.db import Database

GAMEPLAY_BUILD = {"train_matches": 150, "heldout_matches": 60, "eval_matches": 0, "epochs": 12}


def ensure_gameplay(ctx: Context) -> None:
    """Build and register the two game-player candidates unless they are registered."""
    from serving.registry import Registry
    from workloads.gameplay.build import CANDIDATES, BuildConfig, build, register_and_test

    with Database(ctx.settings.database_url) as db:
        known = {c.name for c in Registry(db).list()}
    if set(CANDIDATES) <= known:
        return
    out = ctx.settings.data_dir / "gameplay"
    click.echo("building the game-player candidates (once, under a minute)")
    build(out, BuildConfig(**GAMEPLAY_BUILD), click.echo)
    with Database(ctx.settings.database_url) as db:
        register_and_test(Registry(db), ctx.settings.models_dir, out, click.echo)


def _wait_ready(base: str, timeout_s: float) -> bool:
    """Poll /readyz quietly (a refused connection while the server starts is expected, not a
    warning for the newcomer's terminal)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return True
        except (OSError, ValueError):  # refused, reset, 503 (HTTPError): not ready yet
            pass
        time.sleep(1)
    return False


def simulate(base: str, key: str, requests: int, matches: int, players: int) -> None:
    """Wait for the service, then play the OCR customers and the game league against it."""
    from workloads.client import ServiceClient
    from workloads.gameplay import league
    from workloads.ocr import customers

    if not _wait_ready(base, 600):
        click.echo("demo: the service did not come up; no customers sent", err=True)
        return
    click.echo(f"demo: the service is up; dashboard: {base}/dashboard/  (log in with the key "
               f"{key})")
    client = ServiceClient(base, key)
    try:
        ocr = customers.ensure_experiment(client)
        click.echo(f"demo: OCR customers on experiment {ocr['id']} ({requests} formulas)")
        sent = customers.run_customers(client, customers.Customers(requests=requests))
        click.echo(f"demo: {sent['requests']} formulas read, {sent['wrong']} wrong, "
                   f"{sent['corrections']} corrected")
        game = league.ensure_experiment(client)
        click.echo(f"demo: game league on experiment {game['id']} ({matches} matches)")
        played = league.run_league(client, game["id"], league.LeagueConfig(
            players, matches=matches, run=league.run_name(0)))
        overall = played["overall"]
        click.echo(f"demo: {overall['matches']} matches played; open the dashboard at "
                   f"{base}/dashboard/ (log in with the key {key}) to see the arms, the "
                   "divergence and the relabel queues; the service keeps running until Ctrl-C")
    except Exception as exc:  # the service keeps running; say what stopped the customers
        click.echo(f"demo: the simulated customers stopped: {exc}", err=True)
    finally:
        client.close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--requests", "ocr_requests", type=click.IntRange(min=1), default=600,
              show_default=True, help="Formulas the OCR customers send.")
@click.option("--matches", type=click.IntRange(min=1), default=160, show_default=True)
@click.option("--players", type=click.IntRange(min=2), default=80, show_default=True)
@workers_option
@threads_option
@pass_ctx
def demo(ctx: Context, host: str, port: int, ocr_requests: int, matches: int, players: int,
         workers: int | None, threads: int) -> None:
    """Train the reference candidates if needed, serve everything, and play simulated
    customers against it; prints the dashboard's address and a login key."""
    from workloads.gameplay.league import league_size_problem

    if matches < players:  # before anything is trained or served
        raise click.BadParameter(league_size_problem(matches, players), param_hint="--matches")
    ensure_secret_key(ctx.settings)
    check_port_free(host, port)
    use_prometheus_dir(ctx.settings.data_dir)  # before prometheus_client is imported
    from app.auth import create_key
    from app.runner import run_up

    _logging(ctx)
    # Said before the training (minutes on a fresh machine), as the README promises.
    with Database(ctx.settings.database_url) as db:
        schema.upgrade(db)
        key = create_key(db, ["admin"], name="demo")["key"]
    base = f"http://{host}:{port}"
    click.echo(f"dashboard: {base}/dashboard/  (log in with the key {key})")
    ensure_candidates(ctx)
    ensure_gameplay(ctx)
    threading.Thread(target=simulate, args=(base, key, ocr_requests, matches, players),
                     name="demo-customers", daemon=True).start()
    run_up(_ready_settings(ctx), host, port, workers=workers or default_workers(),
           threads=threads, config_file=ctx.config_file)


COMMANDS = [demo]
