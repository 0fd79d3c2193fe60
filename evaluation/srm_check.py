"""The results' sample-ratio check against the allocation in force, not the configured weights.

A canary step or a paused arm changes the split traffic follows, so units stop following the
configured weights without anything being wrong. Each unit is compared with the allocation it
was assigned under: the check runs over the units first seen (first prediction in the
experiment, any slice) under the current allocation only, with that allocation's weights (the
normalised weights of the stored allocation table; a paused arm has weight 0 there). The start
of the current allocation is ``allocation.since`` (written by serving at every reallocation),
else the canary's ``step_started_at`` once it left its first step. ``first_seen`` is kept per
hour, so the check starts at the first whole hour after the change: the hour the allocation
changed in mixes two splits and is left out. The result says so: ``since`` and ``weights``.
An arm paused by a version that did not date pauses is taken as paused from the first whole
hour after its last new unit (``since_inferred``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.models import Experiment, ExperimentUnit
from core.times import utc_iso
from evaluation import aggregation as agg
from evaluation.online import (
    ALL,
    Cell,
    Cells,
    Variant,
    first_seen_units,
    hour_window,
    units_by_arm,
)
from evaluation.stats import sample_ratio_mismatch
from evaluation.stats.multiple import holm
from evaluation.stats.srm import MIN_EXPECTED, srm_arrays, srm_testable


def allocation_in_force(experiment: Experiment) -> tuple[dict[str, float], datetime | None,
                                                         bool]:
    """The weights by arm traffic follows now, when they took effect (None: from the start),
    and whether an arm is paused since a time the experiment did not record (an older
    version did not date pauses)."""
    arms = experiment.arms or []
    doc = experiment.allocation or {}
    try:
        weights = [float(w) for w in json.loads(doc["table"])["weights"]]
        if len(weights) != len(arms):
            raise ValueError("one weight per arm")
    except (KeyError, TypeError, ValueError):
        weights = [float(a.get("weight", 0.0)) for a in arms]
    by_arm = {a["name"]: w for a, w in zip(arms, weights, strict=True)}
    canary = experiment.canary or {}
    since = doc.get("since")
    if since is None and canary.get("step", 0) > 0:
        since = canary.get("step_started_at")
    if since is not None:
        at = datetime.fromisoformat(since)
        return by_arm, hour_window(None, at)[1], False
    return by_arm, None, any(a.get("paused") for a in arms)


def _units_since(session: Session, experiment_id: int, start: datetime | None,
                 end: datetime | None) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Units first seen in the experiment in ``[start, end)``: distinct units per arm, and per
    slice and arm."""
    u = ExperimentUnit
    rows = session.execute(
        select(u.slice, u.arm, u.unit_id).where(
            u.experiment_id == experiment_id,
            u.unit_id.in_(first_seen_units(experiment_id, start, end))))
    overall: dict[str, set[str]] = defaultdict(set)
    per_slice: dict[tuple[str, str], int] = defaultdict(int)
    for slice_, arm, unit in rows:
        overall[arm].add(unit)
        per_slice[(slice_, arm)] += 1
    return {a: len(v) for a, v in overall.items()}, dict(per_slice)


def srm_check(session: Session, experiment: Experiment, cells: Cells, arms: list[Variant],
              slices: list[str], threshold: float,
              window: tuple[datetime | None, datetime | None] = (None, None)) -> dict[str, Any]:
    """Sample-ratio check: overall on each unit once per arm (its first prediction in the
    window, whatever slices its requests carried), per slice on the units of that slice; both
    under the allocation in force (see the module). The overall check alone sets ``flagged``
    (untrustworthy); slices are tested only when large enough and Holm-adjusted across the
    tested ones, and a slice's mismatch is a warning (``mismatched_slices``,
    ``slice_warning``), since a few hundred slice strings would otherwise raise false alarms."""
    by_arm, since, inferred = allocation_in_force(experiment)
    if inferred:  # paused before pauses were dated (an older version): date it from the data
        since = _after_paused_arms_last_unit(session, experiment)
    weights = [by_arm.get(a.arm, 0.0) for a in arms]
    names = [a.arm for a in arms]
    start, end = window
    if since is not None:
        start = max(start, since) if start is not None else since
        if end is not None and start > end:
            start = end
        overall_units, slice_units = _units_since(session, experiment.id, start, end)
        counts = [overall_units.get(n, 0) for n in names]
        per_slice = np.array([[slice_units.get((s, n), 0) for n in names] for s in slices[1:]])
    else:
        rows = units_by_arm(session, experiment.id, *window)
        counts = [rows.get(n, 0) for n in names]
        per_slice = np.array([[cells.get((a, s), Cell()).get(agg.UNITS)[0] for a in arms]
                              for s in slices[1:]])
    per_slice = per_slice.reshape(len(slices) - 1, len(arms))
    overall = sample_ratio_mismatch(counts, weights, threshold)
    slice_p, adjusted, tested = _slice_checks(per_slice, weights, threshold)
    slice_names = slices[1:]
    flagged = [s for s, v in zip(slice_names, adjusted, strict=True) if v < threshold]
    return {
        "units": dict(zip(names, overall.observed, strict=True)),
        "expected": dict(zip(names, overall.expected, strict=True)),
        "weights": dict(zip(names, weights, strict=True)),
        "since": since.isoformat() if since is not None else None,
        "since_inferred": inferred,
        "statistic": None if math.isnan(overall.statistic) else overall.statistic,
        "p_value": None if math.isnan(overall.p_value) else overall.p_value,
        "method": overall.method,
        "threshold": threshold,
        "mismatch": overall.mismatch,
        "slice_p_values": _by_slice(slice_names, slice_p),
        "slice_p_adjusted": _by_slice(slice_names, adjusted),
        "slices_tested": int(tested.sum()),
        "slices_too_small": int((~tested).sum()),
        "min_expected": MIN_EXPECTED,
        "mismatched_slices": flagged,
        "slice_warning": _slice_warning(flagged, int(tested.sum()), threshold),
        # Only the overall check makes the results untrustworthy: a slice's mismatch is a
        # warning about that slice's figures.
        "flagged": overall.mismatch,
        "error": _error(overall.error, counts, since),
    }


def _error(error: str | None, counts: list[int], since: datetime | None) -> str | None:
    """Why no check: after a pause, a resume or a canary step, units are counted only from the
    next whole hour (the allocation changed), so none yet is not "none assigned"."""
    if error is None or sum(counts) or since is None:
        return error
    return (f"no unit has arrived since {utc_iso(since)}: the split changed (a pause, a resume "
            "or a canary step), and the check counts only units that arrived under the new one, "
            "from the next whole hour after the change")


def _after_paused_arms_last_unit(session: Session, experiment: Experiment) -> datetime | None:
    """When an undated pause had surely begun: the first whole hour after the paused arms'
    last new unit (a paused arm takes none); None (from the start) if they never had one."""
    paused = [a["name"] for a in experiment.arms or [] if a.get("paused")]
    u = ExperimentUnit
    last = session.scalar(select(func.max(u.first_seen)).where(
        u.experiment_id == experiment.id, u.arm.in_(paused)))
    return None if last is None else agg.hour_of(last) + timedelta(hours=1)


def _slice_checks(per_slice: np.ndarray, weights: list[float],
                  threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw and Holm-adjusted p-values per slice (NaN where not tested) and which were tested.

    Only slices expecting :data:`MIN_EXPECTED` units in every live arm are tested, and the
    p-values are Holm-adjusted over those: with 200 slices at p < 0.001 one false alarm in
    five experiments would otherwise stop a healthy one."""
    rows = per_slice.shape[0]
    if rows == 0:
        empty = np.full(rows, np.nan)
        return empty, empty, np.zeros(rows, dtype=bool)
    tested = srm_testable(per_slice, weights)
    p = np.where(tested, srm_arrays(per_slice, weights)[1], np.nan)
    tested &= ~np.isnan(p)
    return p, holm(p, threshold).p_adjusted, tested


def srm_columns(srm: dict[str, Any] | None, slice_name: str) -> dict[str, Any]:
    """A comparison row's `srm_p_value` and `srm_mismatch`, from the report's own check
    (:func:`srm_check`): the experiment's for slice `all`, else its slice's, a slice's mismatch
    judged on its Holm-adjusted p-value (`mismatched_slices`). Empty where there is no figure:
    no check (one arm), a slice too small to test, a check that could not run."""
    if srm is None:
        return {"srm_p_value": None, "srm_mismatch": None}
    if slice_name == ALL:
        p_value = srm["p_value"]
        mismatch = srm["mismatch"]
    else:
        p_value = srm["slice_p_values"].get(slice_name)
        mismatch = slice_name in srm["mismatched_slices"]
    return {"srm_p_value": p_value, "srm_mismatch": None if p_value is None else bool(mismatch)}


def _by_slice(slices: list[str], values: np.ndarray) -> dict[str, float | None]:
    return {s: (None if math.isnan(v) else float(v)) for s, v in zip(slices, values, strict=True)}


def _slice_warning(flagged: list[str], tested: int, threshold: float) -> str | None:
    """What a per-slice mismatch means, for the decision and the pages to say."""
    if not flagged:
        return None
    return (f"sample ratio mismatch within slice{'s' if len(flagged) > 1 else ''} "
            f"{', '.join(flagged)} (Holm-adjusted over {tested} tested slices, p < "
            f"{threshold:g}): the units of {'these slices' if len(flagged) > 1 else 'this slice'}"
            " do not follow the weights, so their figures are suspect; the overall split holds")
