"""`abvoc metrics define|list`: thin commands over evaluation.metric_definitions."""

from __future__ import annotations

from typing import Any

import click

from app.cli import EXPERIMENT_ID, Context, Finite, emit, json_option, open_db, pass_ctx
from core.outcome_metrics import COMBINES, DIRECTIONS, KINDS, MAX_ABS_VALUE, MISSING, ZERO_MISSING
from evaluation.metric_definitions import define_metric, list_metrics


def _line(m: dict[str, Any]) -> str:
    what = f"{m['numerator']}/{m['denominator']}" if m["kind"] == "ratio" else m["combine"]
    line = f"{m['name']}: {m['kind']} ({what}), {m['direction']} is better"
    if m["guardrail"] is not None:
        line += f", guardrail {m['guardrail']:g}"
    if m["missing"] == ZERO_MISSING:
        line += ", an exposed unit without one counts 0"
    return line + (" [primary]" if m["primary"] else "")


@click.group()
def metrics() -> None:
    """Outcome metrics of an experiment (what POST /v1/outcomes may report)."""


@metrics.command()
@click.argument("experiment_id", type=EXPERIMENT_ID)
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice(KINDS), required=True)
@click.option("--direction", type=click.Choice(DIRECTIONS), required=True,
              help="Whether a higher or a lower value is better.")
@click.option("--combine", type=click.Choice(COMBINES), default=None,
              help="How a unit's outcomes combine (default: first for proportions, mean for "
                   "means, sum for ratios).")
@click.option("--numerator", default=None, help="Ratio metrics: the metric summed on top.")
@click.option("--denominator", default=None, help="Ratio metrics: the metric summed below.")
@click.option("--guardrail", default=None,
              type=Finite(-MAX_ABS_VALUE, MAX_ABS_VALUE, said="-2^53<=x<=2^53"),
              help="An arm whose per-unit mean is significantly on the bad side of this fails.")
@click.option("--primary", is_flag=True, help="Decide the experiment on this metric.")
@click.option("--missing", type=click.Choice(MISSING), default=None,
              help="What an exposed unit that reported none counts as: skip (default: the "
                   "mean is over the units that reported it) or zero.")
@json_option
@pass_ctx
def define(ctx: Context, experiment_id: int, name: str, kind: str, direction: str,
           combine: str | None, numerator: str | None, denominator: str | None,
           guardrail: float | None, primary: bool, missing: str | None,
           as_json: bool) -> None:
    """Define an outcome metric of an experiment, or define it again: the new definition
    replaces the old one whole, so options left out take their defaults (give --guardrail and
    --primary again to keep them)."""
    body: dict[str, Any] = {"name": name, "kind": kind, "direction": direction,
                            "guardrail": guardrail, "primary": primary}
    for key, value in (("combine", combine), ("numerator", numerator),
                       ("denominator", denominator), ("missing", missing)):
        if value is not None:
            body[key] = value
    with open_db(ctx) as db:
        defined, _ = define_metric(db, experiment_id, body)
    emit(defined, as_json, _line(defined))


@metrics.command(name="list")
@click.argument("experiment_id", type=EXPERIMENT_ID)
@json_option
@pass_ctx
def list_(ctx: Context, experiment_id: int, as_json: bool) -> None:
    """List an experiment's outcome metrics."""
    with open_db(ctx) as db:
        rows = list_metrics(db, experiment_id)
    emit(rows, as_json, "\n".join(_line(m) for m in rows) or "no outcome metrics")


COMMANDS = [metrics]
