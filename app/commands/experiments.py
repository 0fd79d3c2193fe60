"""`abvoc experiment …` and `abvoc keys …`: thin commands over serving.experiments and app.auth."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from app.api.experiments import STATUSES
from app.auth import SCOPES, create_key, list_keys, revoke_key
from app.cli import (
    EXPERIMENT_ID,
    Context,
    Finite,
    columns,
    emit,
    json_error,
    json_option,
    open_db,
    pass_ctx,
)
from app.commands.report_text import divergence_text, results_text
from core.builtin_metrics import DEFAULT_PRIMARY, PRIMARY_METRICS
from core.errors import AbvocError
from core.store.service_models import ApiKey
from core.text import percent, text_problem
from evaluation.divergence import divergence_report, divergence_with_stages
from evaluation.results import experiment_results
from evaluation.results_csv import DIVERGENCE_TABLES, comparisons_csv, divergence_csv
from evaluation.slices import DEFAULT_MAX_SLICES, MAX_SLICES_LIMIT
from serving.experiments import MAX_REASON, OPERATOR_PAUSE, Experiments, check_reason


def _arm(text: str, control: bool) -> dict[str, Any]:
    name, sep, rest = text.partition("=")
    candidate, _, weight = rest.partition(":")
    if not sep or not name or not candidate:
        raise AbvocError(f"--arm {text!r}: write NAME=CANDIDATE[:WEIGHT]")
    value = _number(weight, f"--arm {text!r}: the weight") if weight else 1.0
    return {"name": name, "candidate": candidate, "weight": value, "control": control}


def _number(text: str, what: str) -> float:
    """A finite number written on the command line; `what` names it in the error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise AbvocError(f"{what} must be a number, got {text!r}")
    return value


def _canary(text: str, advance_after_s: float | None) -> dict[str, Any]:
    arm, sep, steps = text.partition(":")
    if not sep or not arm or not steps:
        raise AbvocError(f"--canary {text!r}: write ARM:STEP,STEP,... e.g. big:0.01,0.05,0.5")
    parts = steps.split(",")
    if "" in parts:  # '0.1,,0.2' or a trailing comma: a step left out, which one unknown
        raise AbvocError(f"--canary {text!r}: a step is empty; write each step between commas, "
                         "e.g. big:0.01,0.05,0.5")
    return {"treatment": arm, "advance_after_s": advance_after_s,
            "steps": [_number(x, f"--canary {text!r}: each step") for x in parts]}


def _guardrails(items: tuple[str, ...]) -> dict[str, int | float]:
    """The limits as the JSON spec would hold them: a whole number stays an int, since
    min_samples takes only whole numbers. A limit given twice is refused: the last one won
    silently, whichever the operator meant."""
    rails: dict[str, int | float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AbvocError(f"--guardrail {item!r}: write NAME=LIMIT, e.g. p99_latency_ms=200")
        if key in rails:
            raise AbvocError(f"--guardrail {key} is given twice ({rails[key]:g} and "
                             f"{value!r}): give each limit once")
        try:
            rails[key] = int(value)
        except ValueError:
            rails[key] = _number(value, f"--guardrail {item!r}: the limit")
    return rails


def _spec(raw: bytes) -> Any:
    """The experiment of a --spec file: UTF-8 JSON, or a one-line error saying what is wrong."""
    if not raw.strip():
        raise AbvocError("--spec is empty: give the experiment as a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AbvocError(f"--spec is not UTF-8 text (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise AbvocError(f"--spec cannot be read as JSON: {json_error(exc)}") from None


def _pinned(ref: dict[str, Any]) -> str:
    """An arm's or shadow's candidate with the version it runs: two arms of one candidate
    (v1 against v5) read alike without it (experiments from before pinning have none)."""
    version = ref.get("version")
    return ref["candidate"] + (f" v{version}" if version is not None else "")


def _summary(exp: dict[str, Any]) -> str:
    arms = ", ".join(
        f"{a['name']}={_pinned(a)} {percent(w, 1)}" + (" (control)" if a["control"] else "")
        + (f" [paused: {a['paused']}]" if a.get("paused") else "")
        for a, w in zip(exp["arms"], exp["weights"], strict=True)
    )
    line = f"#{exp['id']} {exp['name']} [{exp['status']}] scope={exp['scope']}: {arms}"
    if exp["shadows"]:
        line += " shadows=" + ",".join(_pinned(s) for s in exp["shadows"])
    since = f" (since {exp['status_since']})" if exp.get("status_since") else ""
    return line + (f"\n    {exp['status_reason']}{since}" if exp["status_reason"] else "")


@click.group()
def experiment() -> None:
    """Create, list and steer experiments."""


@experiment.command()
@click.option("--spec", type=click.File("rb"),
              help="The whole experiment as JSON (- for stdin); no other option with it.")
@click.option("--name")
@click.option("--scope", default="default", show_default=True)
@click.option("--unit", type=click.Choice(["user", "session", "request"]), default="user",
              show_default=True)
@click.option("--arm", "arms", multiple=True, metavar="NAME=CANDIDATE[:WEIGHT]",
              help="An arm; the first one is the control. Repeat for each arm.")
@click.option("--shadow", "shadows", multiple=True, metavar="CANDIDATE")
@click.option("--canary", metavar="ARM:STEP,STEP,...", help="e.g. big:0.01,0.05,0.25,0.5")
@click.option("--advance-after-s", type=Finite(0, min_open=True),
              help="With --canary: seconds between automatic steps.")
@click.option("--guardrail", "guardrails", multiple=True, metavar="NAME=LIMIT",
              help="p99_latency_ms, error_rate, correction_rate or min_samples")
@click.option("--expected-sample", type=int, metavar="N",
              help="Units per arm expected by the end: the always-valid test is tightest "
                   "there (default 5,000).")
@click.option("--primary-metric", type=click.Choice(PRIMARY_METRICS),
              default=DEFAULT_PRIMARY, show_default=True,
              help="The built-in metric the decision rests on (one the arms' answers give).")
@json_option
@pass_ctx
def create(ctx: Context, spec: Any, name: str | None, scope: str, unit: str,
           arms: tuple[str, ...], shadows: tuple[str, ...], canary: str | None,
           advance_after_s: float | None, guardrails: tuple[str, ...],
           expected_sample: int | None, primary_metric: str, as_json: bool) -> None:
    """Create an experiment (as a draft; `start` it to take traffic)."""
    if advance_after_s is not None and canary is None:
        raise click.UsageError("--advance-after-s paces a canary: give --canary too")
    if spec is not None:
        here = click.get_current_context()
        given = [p.opts[0] for p in here.command.params
                 if p.name not in ("spec", "as_json") and here.get_parameter_source(p.name)
                 != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError("--spec holds the whole experiment: leave out "
                                   + ", ".join(given))
        body = _spec(spec.read())
    else:
        body = {"name": name, "scope": scope, "unit": unit,
                "arms": [_arm(a, i == 0) for i, a in enumerate(arms)],
                "shadows": [{"candidate": c} for c in shadows],
                "guardrails": _guardrails(guardrails),
                "expected_sample_per_arm": expected_sample, "primary_metric": primary_metric}
        if canary:
            body["canary"] = _canary(canary, advance_after_s)
        if len(arms) < 2:  # the API's words ('arms' must be a list ...) name no option
            raise click.UsageError(f"give --arm at least twice (got {len(arms)}): the first is "
                                   "the control, e.g. --arm control=iris --arm new=iris-v2")
    with open_db(ctx) as db:
        exp = Experiments(db).create(body)
    emit(exp, as_json, _summary(exp))


WITH_REASON = ("pause", "kill")
"""The actions that record a reason in the experiment (the others take none)."""


def _reason(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """The API's check (a blank reason was stored, where the API refuses it)."""
    try:
        check_reason(value)
    except AbvocError as exc:
        size = (f" (this one has {len(value or '')} characters)"
                if len(value or "") > MAX_REASON or not (value or "").strip() else "")
        raise click.BadParameter(exc.message + size) from None
    return value


_reason_option = click.option("--reason", default=None, callback=_reason,
                              help=f"Why, kept in the experiment (at most {MAX_REASON} "
                                   "characters).")


def _action(verb: str, doc: str) -> click.Command:
    @click.command(name=verb, help=doc)
    @click.argument("experiment_id", type=EXPERIMENT_ID)
    @json_option
    @pass_ctx
    def command(ctx: Context, experiment_id: int, as_json: bool, reason: str | None = None
                ) -> None:
        with open_db(ctx) as db:
            method = getattr(Experiments(db), verb)
            exp = method(experiment_id, reason) if reason else method(experiment_id)
        emit(exp, as_json, _summary(exp))

    if verb in WITH_REASON:
        command = _reason_option(command)
    return command


for _verb, _doc in (("start", "Start: the experiment takes its traffic scope."),
                    ("pause", "Pause: all its traffic goes to control until resumed."),
                    ("resume", "Resume after a pause or the kill switch."),
                    ("kill", "Kill switch: all traffic to control at once."),
                    ("stop", "Stop for good."),
                    ("advance", "Advance the canary ramp one step.")):
    experiment.add_command(_action(_verb, _doc))


@experiment.command(name="pause-arm")
@click.argument("experiment_id", type=EXPERIMENT_ID)
@click.argument("arm")
@_reason_option
@json_option
@pass_ctx
def pause_arm(ctx: Context, experiment_id: int, arm: str, reason: str | None,
              as_json: bool) -> None:
    """Pause one treatment arm: its traffic goes to control until resumed
    (POST /v1/experiments/ID/arms/ARM/pause)."""
    with open_db(ctx) as db:
        exp = Experiments(db).pause_arm(experiment_id, arm, reason or OPERATOR_PAUSE)
    emit(exp, as_json, _summary(exp))


@experiment.command(name="resume-arm")
@click.argument("experiment_id", type=EXPERIMENT_ID)
@click.argument("arm")
@json_option
@pass_ctx
def resume_arm(ctx: Context, experiment_id: int, arm: str, as_json: bool) -> None:
    """Give a paused arm its traffic back (POST /v1/experiments/ID/arms/ARM/resume)."""
    with open_db(ctx) as db:
        exp = Experiments(db).resume_arm(experiment_id, arm)
    emit(exp, as_json, _summary(exp))


@experiment.command(name="list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@json_option
@pass_ctx
def list_(ctx: Context, status: str | None, as_json: bool) -> None:
    """List experiments."""
    with open_db(ctx) as db:
        rows = Experiments(db).list(status)
    emit(rows, as_json, "\n".join(_summary(e) for e in rows) or "no experiments")


@experiment.command()
@click.argument("experiment_id", type=EXPERIMENT_ID)
@json_option
@pass_ctx
def show(ctx: Context, experiment_id: int, as_json: bool) -> None:
    """Show one experiment."""
    with open_db(ctx) as db:
        exp = Experiments(db).get(experiment_id)
    emit(exp, as_json, _summary(exp))


_SHARE = Finite(0, 1, min_open=True, max_open=True)
# A tolerance of 0 forgives no gap between offline and online.
_TOLERANCE = Finite(0, 1, max_open=True)


_max_slices = click.option(
    "--max-slices", type=click.IntRange(0, MAX_SLICES_LIMIT), default=DEFAULT_MAX_SLICES,
    show_default=True, help="Per-slice figures for at most this many slices (the busiest) "
                            "besides 'all'.")


@experiment.command()
@click.argument("experiment_id", type=EXPERIMENT_ID)
@_max_slices
@json_option
@click.option("--csv", "as_csv", is_flag=True,
              help="The comparisons as CSV, one row each (GET /v1/experiments/ID/results.csv).")
@pass_ctx
def results(ctx: Context, experiment_id: int, max_slices: int, as_json: bool,
            as_csv: bool) -> None:
    """The decision, the arms and the tests (GET /v1/experiments/ID/results)."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    with open_db(ctx) as db, db.reading() as s:
        report = experiment_results(s, experiment_id, max_slices=max_slices)
    if as_csv:
        click.echo(comparisons_csv(report), nl=False)
        return
    emit(report, as_json, results_text(report))


@experiment.command()
@click.argument("experiment_id", type=EXPERIMENT_ID)
@click.option("--alpha", type=_SHARE, default=0.05, show_default=True)
@click.option("--tolerance", type=_TOLERANCE, default=0.02, show_default=True,
              help="How much worse than offline online may be before it is flagged "
                   "(0: any gap).")
@_max_slices
@json_option
@click.option("--csv", "as_csv", is_flag=True,
              help="One table as CSV (GET /v1/experiments/ID/divergence.csv).")
@click.option("--table", type=click.Choice(DIVERGENCE_TABLES), default=None,
              help="With --csv: the slice rows, offline beside online (the default), or the "
                   "ranked findings.")
@pass_ctx
def divergence(ctx: Context, experiment_id: int, alpha: float, tolerance: float,
               max_slices: int, as_json: bool, as_csv: bool, table: str | None) -> None:
    """Online against offline, with the ranked findings and the stage attribution
    (GET /v1/experiments/ID/divergence)."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    if table and not as_csv:
        raise click.UsageError("--table chooses the table of --csv; give --csv too")
    with open_db(ctx) as db, db.reading() as s:
        report = (divergence_report if as_csv else divergence_with_stages)(
            s, experiment_id, alpha=alpha, tolerance=tolerance, max_slices=max_slices)
    if as_csv:
        click.echo(divergence_csv(report, table or DIVERGENCE_TABLES[0]), nl=False)
        return
    emit(report, as_json, divergence_text(report))


@click.group()
def keys() -> None:
    """API keys with scopes."""


MAX_KEY_NAME: int = ApiKey.__table__.c.name.type.length
"""What the api_keys.name column holds."""


def _key_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if len(value) > MAX_KEY_NAME:
        raise click.BadParameter(f"at most {MAX_KEY_NAME} characters (this one has {len(value)})")
    if problem := text_problem(value, controls=True):
        raise click.BadParameter(problem)
    if value and not value.strip():  # its labels read "   :<prefix>", a blank annotator
        raise click.BadParameter("is blank: give the key a name, or leave the option out")
    return value


@keys.command(name="create")
@click.option("--scopes", required=True, help=f"Comma-separated, of {', '.join(SCOPES)}.")
@click.option("--name", default="", callback=_key_name,
              help=f"A label for `keys list` (at most {MAX_KEY_NAME} characters).")
@json_option
@pass_ctx
def create_key_command(ctx: Context, scopes: str, name: str, as_json: bool) -> None:
    """Create a key; its secret is printed this once."""
    with open_db(ctx) as db:
        key = create_key(db, [s.strip() for s in scopes.split(",") if s.strip()], name)
    emit(key, as_json, f"{key['key']}\n(scopes: {', '.join(key['scopes'])}; shown only once)")


@keys.command(name="list")
@json_option
@pass_ctx
def list_keys_command(ctx: Context, as_json: bool) -> None:
    """List keys (never their secrets)."""
    with open_db(ctx) as db:
        rows = list_keys(db)
    table = [[k["prefix"], k["name"] or "-", ",".join(k["scopes"])
              + (" (revoked)" if k["revoked_at"] else "")] for k in rows]
    emit(rows, as_json, columns(["prefix", "name", "scopes"], table) if rows else "no keys")


@keys.command()
@click.argument("key")
@pass_ctx
def revoke(ctx: Context, key: str) -> None:
    """Revoke a key, named by its prefix (`abvoc keys list`) or given whole."""
    with open_db(ctx) as db:
        done = revoke_key(db, key)
    click.echo(f"{done['prefix']} was already revoked at {done['revoked_at']}"
               if done["already"] else f"revoked {done['prefix']}")


COMMANDS = [experiment, keys]
