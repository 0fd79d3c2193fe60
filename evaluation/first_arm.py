"""The outcome metrics with the units seen in several arms counted in their first arm: a
sensitivity figure beside the results, which leave those units out (evaluation.several_arms).

Leaving a moved unit out compares the units that stayed; but the units that move are the ones
that came back after the split changed, so those left may differ between the arms. Counting
each moved unit, with all its outcomes, in the arm it was first assigned to (intention to treat)
keeps every unit where the assignment first put it, at the price of some of the later arm's
effect in its outcomes (which pulls the arms' difference towards zero). Neither is right for
every move: where the two agree, the moves do not change the conclusion; where they differ,
the moved units matter, and a time window from the change (``since=``) compares the units
that came after it. Both differences come from the same test the results use for the metric's
kind (Welch's t, the two-proportion z); each side's p is also given Holm-adjusted
(``p_holm``) over that side's comparisons, every outcome metric and treatment together, since
a reader looking for any difference that changes looks at all of them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from core.outcome_metrics import PROPORTION
from core.store.models import ExperimentUnit, OutcomeUnitValue
from core.store.upsert import in_values
from evaluation.aggregation import in_window
from evaluation.stats import MeanStats
from evaluation.stats.frequentist import ComparisonResult, two_proportion_ztest, welch_ttest
from evaluation.stats.multiple import holm
from evaluation.stats.sufficient import ProportionStats


def first_arms(session: Session, experiment_id: int, units: Collection[str],
               start: datetime | None = None, end: datetime | None = None) -> dict[str, str]:
    """The arm each of `units` was first served in (its earliest ``experiment_units`` row, any
    slice), for those first seen in ``[start, end)`` (open ends: all)."""
    if not units:
        return {}
    u = ExperimentUnit
    first = (select(u.unit_id, func.min(u.first_seen).label("first"))
             .where(u.experiment_id == experiment_id,
                    in_values(session, u.unit_id, sorted(units)))
             .group_by(u.unit_id))
    if start is not None or end is not None:
        first = first.having(and_(*in_window(func.min(u.first_seen), start, end)))
    seen = first.subquery()
    rows = session.execute(
        select(u.unit_id, u.arm).join(seen, and_(u.unit_id == seen.c.unit_id,
                                                 u.first_seen == seen.c.first))
        .where(u.experiment_id == experiment_id).order_by(u.unit_id, u.arm))
    out: dict[str, str] = {}
    for unit, arm in rows:  # two slices' rows at one moment: the first arm by name
        out.setdefault(unit, arm)
    return out


def moved_values(session: Session, experiment_id: int, metric: str, combine: str,
                 where: Iterable[ColumnElement[bool]], first_arm: Mapping[str, str]
                 ) -> list[tuple[str, float]]:
    """Each moved unit's value of `metric` under `combine`, its outcomes from every arm taken
    together, with the arm it is counted in (its first)."""
    if not first_arm:
        return []
    t = OutcomeUnitValue
    merged: dict[str, list[Any]] = {}
    for unit, n, total, maximum, first_at, first_id, first_value in session.execute(
            select(t.unit_id, t.n, t.total, t.maximum, t.first_at, t.first_id, t.first_value)
            .where(t.experiment_id == experiment_id, t.metric == metric,
                   in_values(session, t.unit_id, sorted(first_arm)), *where)):
        first = (first_at, first_id, float(first_value))
        m = merged.get(unit)
        if m is None:
            merged[unit] = [int(n), float(total), float(maximum), first]
        else:
            m[0] += int(n)
            m[1] += float(total)
            m[2] = max(m[2], float(maximum))
            m[3] = min(m[3], first)
    return [(first_arm[u], _combined(combine, *m)) for u, m in merged.items()]


def _combined(combine: str, n: int, total: float, maximum: float,
              first: tuple[Any, str, float]) -> float:
    """A unit's value under the combine rule, from its rows' sums (as ``_unit_column`` reads
    one row)."""
    return {"first": first[2], "sum": total, "mean": total / n if n else math.nan,
            "max": maximum}[combine]


def compared(kind: str, arms: Sequence[str], stats: Sequence[MeanStats],
             alpha: float) -> dict[str, ComparisonResult]:
    """Each arm after the first (the control) against it, by the metric kind's test."""
    control = stats[0]
    out = {}
    for arm, stat in zip(arms[1:], stats[1:], strict=True):
        if kind == PROPORTION:
            out[arm] = two_proportion_ztest(_successes(control), _successes(stat), alpha)
        else:
            out[arm] = welch_ttest(control, stat, alpha)
    return out


def _successes(stat: MeanStats) -> ProportionStats:
    n = int(stat.n)
    return ProportionStats(n, round(stat.mean * n) if n else 0)


def _difference(result: ComparisonResult) -> dict[str, Any]:
    if result.error is not None or math.isnan(result.difference):
        return {"difference": None, "interval": [None, None], "p": None, "p_holm": None,
                "error": result.error}
    return {"difference": result.difference, "interval": [result.ci_low, result.ci_high],
            "p": result.p_value, "p_holm": None, "error": None}


def adjust(figures: Sequence[dict[str, Any]]) -> None:
    """Fill each difference's ``p_holm``: Holm over its side's (left out, first arm) tested
    comparisons, every metric and treatment of `figures` together."""
    for side in ("left_out", "first_arm"):
        tested = [c[side] for f in figures for c in f["comparisons"] if c[side]["p"] is not None]
        if tested:
            adjusted = holm([d["p"] for d in tested]).p_adjusted
            for d, p in zip(tested, adjusted, strict=True):
                d["p_holm"] = float(p)


def sensitivity(metric: str, arms: Sequence[str], left_out: Sequence[MeanStats],
                first: Sequence[MeanStats], kind: str, alpha: float) -> dict[str, Any]:
    """One outcome metric two ways: its moved units left out (as the results count it) and
    counted in their first arm; per arm the units and mean, per treatment the difference."""
    without, within = compared(kind, arms, left_out, alpha), compared(kind, arms, first, alpha)
    return {"metric": metric,
            "arms": {a: {"units_left_out": int(lo.n), "units_first_arm": int(fa.n),
                         "mean_left_out": _mean(lo), "mean_first_arm": _mean(fa)}
                     for a, lo, fa in zip(arms, left_out, first, strict=True)},
            "comparisons": [{"arm": a, "left_out": _difference(without[a]),
                             "first_arm": _difference(within[a])} for a in arms[1:]]}


def _mean(stat: MeanStats) -> float | None:
    return float(stat.mean) if stat.n and not math.isnan(stat.mean) else None


def sensitivity_sentence(figure: dict[str, Any], control: str) -> str | None:
    """What the note adds: each treatment's difference both ways, where both were tested."""
    parts = []
    for c in figure["comparisons"]:
        lo, fa = c["left_out"], c["first_arm"]
        if lo["difference"] is None or fa["difference"] is None:
            continue
        parts.append(f"{c['arm']} - {control} {_shown(fa)} counted in their first arm, "
                     f"{_shown(lo)} left out")
    if not parts:
        return None
    return f"{figure['metric']!r}: " + "; ".join(parts)


def _shown(d: dict[str, Any]) -> str:
    low, high = d["interval"]
    return (f"{d['difference']:+.4g} [{low:+.4g}, {high:+.4g}] (p {d['p']:.3g}, Holm "
            f"{d['p_holm']:.3g})")
