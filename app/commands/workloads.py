"""Commands for the reference workloads that build their candidates as any team would:
`abvoc workloads gameplay build` and `abvoc workloads gameplay play`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import urllib3

from app.cli import (
    EPOCHS,
    SEED,
    Finite,
    Folder,
    check_out_folder,
    check_store,
    emit,
    json_option,
    open_db,
    pass_ctx,
    progress_to,
)
from app.commands.models import ProgressLine
from core.errors import AbvocError
from core.folders import check_writable

MAX_MATCHES = 100_000
"""The most matches a build logs or plays: their logs are held in memory, so a mistyped 10^10
ran on towards running out of memory instead of being refused."""


@click.group("workloads")
def workloads_group() -> None:
    """The reference workloads: build their bundles, play them."""


@workloads_group.group("gameplay")
def gameplay_group() -> None:
    """The 1v1 game player: idle-heavy logs, two policy candidates, scripted opponents."""


@gameplay_group.command("build")
@click.option("--out", type=Folder(), required=True,
              help="Folder for the bundles, the held-out JSONL log and summary.json.")
@click.option("--train-matches", type=click.IntRange(min=10, max=MAX_MATCHES),
              default=400, show_default=True,
              help="Logged matches to train each candidate on.")
@click.option("--heldout-matches", type=click.IntRange(min=1, max=MAX_MATCHES),
              default=100, show_default=True,
              help="Matches in each held-out offline-test log (idle-heavy, and play).")
@click.option("--eval-matches", type=click.IntRange(min=0, max=MAX_MATCHES),
              default=200, show_default=True,
              help="Matches each bundle plays against the scripted opponents (0: none).")
@click.option("--epochs", type=EPOCHS, default=30, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--register", is_flag=True,
              help="Register both bundles and store their offline tests on the held-out log.")
@json_option
@pass_ctx
def build_cmd(ctx, out, train_matches, heldout_matches, eval_matches, epochs, seed,  # noqa: ANN001
              register, as_json) -> None:
    """Log play, train the candidates, export them as label bundles into OUT and play them."""
    import torch

    from workloads.gameplay.build import BuildConfig, build, register_and_test

    if register:
        check_store(ctx)
        check_writable(ctx.settings.models_dir)  # now, not after the training
    check_out_folder(out)
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    say = progress_to(as_json)
    config = BuildConfig(train_matches, heldout_matches, eval_matches, epochs, seed)
    summary = build(out, config, say, epoch_progress=ProgressLine)
    if register:
        from serving.registry import Registry

        with open_db(ctx) as db:
            summary["registered"] = register_and_test(Registry(db), ctx.settings.models_dir,
                                                      out, say, progress=ProgressLine)
    emit(summary, as_json, f"built {', '.join(summary['candidates'])} into {out}")


@gameplay_group.command("play")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--matches", type=click.IntRange(min=1, max=MAX_MATCHES), default=200,
              show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@json_option
def play_cmd(bundle, matches, seed, as_json) -> None:  # noqa: ANN001
    """Play the policy bundle at BUNDLE against the scripted opponents, evenly spread, and
    print win/loss/draw, idle share and match length by opponent."""
    from workloads.gameplay.bundle import bundle_bot
    from workloads.gameplay.matches import play_matches, schedule, summarize

    with bundle_bot(bundle) as bot:
        summary = summarize(play_matches(bot, schedule(matches, seed)))
    lines = [f"{'opponent':<12}{'matches':>8}{'win':>5}{'loss':>5}{'draw':>5}{'win rate':>10}"
             f"{'95% interval':>16}{'idle':>7}{'length':>8}"]
    for name, row in [*summary["by_opponent"].items(), ("overall", summary["overall"])]:
        low, high = row["win_rate_ci95"]
        lines.append(f"{name:<12}{row['matches']:>8}{row['wins']:>5}{row['losses']:>5}"
                     f"{row['draws']:>5}{row['win_rate']:>10.3f}{f'{low:.3f}-{high:.3f}':>16}"
                     f"{row['idle_share']:>7.3f}{row['mean_length']:>8.1f}")
    emit(summary, as_json, "\n".join(lines))


@click.group("simulate")
def simulate_group() -> None:
    """Simulated customers against a running abvoc, through its public API only."""


@simulate_group.command("gameplay")
@click.option("--url", envvar="ABVOC_URL", default="http://127.0.0.1:8080", show_default=True,
              help="The running service (env ABVOC_URL).")
@click.option("--key", envvar="ABVOC_API_KEY", required=True,
              help="An admin API key (env ABVOC_API_KEY): it sets up the experiment, plays, "
                   "reports outcomes and corrections.")
@click.option("--matches", type=click.IntRange(min=1), default=120, show_default=True,
              help="Matches in all, spread over the players (at least one each).")
@click.option("--players", type=click.IntRange(min=2), default=40, show_default=True)
@click.option("--scope", default="gameplay", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1, max=64), default=8, show_default=True)
@click.option("--run", "run", default=None, callback=lambda _c, _p, v: _run_option(v),
              help="The league's run name in its player ids (default: the seed and 64 random "
                   "bits, new players every run). Name one to replay a league's players "
                   "exactly: on an experiment that counted them already, its outcomes repeat.")
@click.option("--wait", "wait_s", type=Finite(0, 86400), default=120, show_default=True,
              help="Seconds to wait for the worker to count the outcomes before printing "
                   "abvoc's verdict (0: do not wait, print the players' view only).")
@json_option
def simulate_gameplay_cmd(url, key, matches, players, scope, seed, threads,  # noqa: ANN001
                          run, wait_s, as_json) -> None:
    """Play a league: every bot move is one /v2 infer call on SCOPE's experiment
    (gameplay-play-logs vs gameplay-idle-logs, created and started when none runs; register
    them first with `abvoc workloads gameplay build --register`); outcomes go to /v1/outcomes
    and players' complaints to /v1/corrections."""
    from urllib.parse import urlsplit

    from core.masking import hide_userinfo, mask_url
    from workloads.client import ServiceClient, ServiceError
    from workloads.gameplay.league import league_size_problem

    if matches < players:
        raise click.BadParameter(league_size_problem(matches, players), param_hint="--matches")
    if not scope.strip():  # else refused by the service as the name made of it
        raise click.BadParameter("give the traffic scope the league plays on, such as "
                                 "'gameplay'", param_hint="--scope")
    shown_url = hide_userinfo(mask_url(url))  # what messages name: no credentials, no token
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed host such as "[::1"
        usable = False
    if not usable:
        raise click.BadParameter(f"{shown_url!r} is not an http(s) URL such as "
                                 "http://127.0.0.1:8080", param_hint="--url")
    client = ServiceClient(url, key, threads=threads)
    try:
        summary, seen, experiment = _league(client, matches, players, scope, seed, threads,
                                            wait_s, run)
    except ServiceError as exc:
        raise AbvocError(f"the service at {shown_url} refused: {exc}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise AbvocError(f"the service at {shown_url} cannot be reached ({type(exc).__name__}): "
                         "check --url and that abvoc is running") from None
    except ValueError as exc:  # an answer that is not JSON: not an abvoc service
        raise AbvocError(f"the service at {shown_url} did not answer as abvoc does: "
                         f"{str(exc)[:200]}") from None
    finally:
        client.close()
    overall = summary["overall"]
    lines = [f"played {overall['matches']} matches in experiment {experiment['id']} "
             f"(league run {summary['run']}): "
             f"{overall['wins']}W {overall['losses']}L {overall['draws']}D, idle share "
             f"{overall['idle_share']:.3f}"]
    later = f"see GET /v1/experiments/{experiment['id']}/results once the worker has counted them"
    if seen:
        lines += verdict_lines(seen)
    else:
        lines.append(f"this league's outcomes were not counted within {wait_s:g} s: {later}"
                     if wait_s else later)
    emit({"experiment_id": experiment["id"], **summary, "verdict": seen}, as_json,
         "\n".join(lines))


def _run_option(value: str | None) -> str | None:
    """--run: a name that fits in a player id (letters, digits, '.', '_', '-'; 1 to 40)."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", value):
        raise click.BadParameter("give 1 to 40 letters, digits, '.', '_' or '-'",
                                 param_hint="--run")
    return value


def _league(client: Any, matches: int, players: int, scope: str, seed: int, threads: int,
            wait_s: float, run: str | None = None) -> tuple[dict, dict | None, dict]:
    """Set up the experiment, play the league and (unless `wait_s` is 0) read the verdict."""
    import threading

    from workloads.gameplay.league import (
        LeagueConfig,
        ensure_experiment,
        player_ids,
        run_league,
        run_name,
        verdict,
        wait_counted,
    )

    experiment = ensure_experiment(client, scope)
    config = LeagueConfig(players, seed=seed, threads=threads, scope=scope, matches=matches,
                          run=run or run_name(seed))
    total, done, lock = config.total, [0], threading.Lock()
    bar = ProgressLine(f"league on {scope} (experiment {experiment['id']})")

    def one_more() -> None:
        with lock:
            done[0] += 1
            bar(done[0], total)

    summary = {**run_league(client, experiment["id"], config, one_more), "run": config.run}
    seen = None
    if wait_s and wait_counted(client, experiment["id"], player_ids(config), wait_s):
        seen = verdict(client, experiment["id"])
    return summary, seen, experiment


def verdict_lines(seen: dict) -> list[str]:  # noqa: ANN001
    """abvoc's verdict on the league as a few lines a person reads."""
    lines = []
    for arm, row in ((seen.get("outcomes") or {}).get("won") or {}).get("arms", {}).items():
        low, high = row.get("interval") or (None, None)
        shown = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        rate = "-" if row.get("mean") is None else f"{row['mean']:.3f}"
        lines.append(f"  {arm:<10} players {row['units']:>4}  win rate {rate} {shown}")
    for arm, idle in (seen.get("answers") or {}).items():
        if idle:
            lines.append(f"  {arm:<10} answers idle {idle['online_share']:.3f} online against "
                         f"{idle['offline_share']:.3f} of its offline labels")
    won = seen.get("won")
    if won and won.get("difference") is not None and won.get("sequential_p_value") is not None:
        lines.append(f"  won: treatment - control {won['difference']:+.3f}, always-valid p "
                     f"{won['sequential_p_value']:.3g}, verdict {won['verdict']}")
    elif won:  # untestable (every player of both arms won, or none did): the reason instead
        lines.append(f"  won: not tested ({won.get('error') or 'no difference to test'}), "
                     f"verdict {won.get('verdict')}")
    first = seen.get("first_finding")
    if first:
        lines.append(f"  first finding: {first['explanation']}")
    decision = seen["decision"]
    lines.append(f"  decision: {decision['action']} ({'; '.join(decision['reasons'])})")
    return lines


COMMANDS = [workloads_group, simulate_group]
