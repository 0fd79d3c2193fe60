"""Experiment results from the online aggregates: the Python API behind
``GET /v1/experiments/{id}/results``.

The comparisons are every treatment (the other arms, then shadow candidates) against the control
arm, for each metric in :data:`METRICS` and each slice (``all`` first), computed by
:func:`evaluation.stats.analyze` in one pass: z / Welch tests with absolute and relative
intervals, Beta-Binomial chance to win, mSPRT always-valid p-values and intervals, MDE, and Holm
and Benjamini-Hochberg within each slice (its treatments x metrics). Beside them: sample ratio
mismatch of the arms' units against the allocation in force when they were assigned
(:mod:`evaluation.srm_check`; the overall check's flag makes the results untrustworthy, slices
expecting at least 5 units per arm are tested too, Holm-adjusted, and only warn), Mann-Whitney U
on the latency
histograms, the sample still needed for the primary metric with the power the arms have now and
the relative MDE, and the decision of :mod:`evaluation.decisions`.

The output type of each variant's candidate adds its own figures: a ``number`` candidate's MAE
and RMSE with intervals in its metrics, and its absolute and squared errors as two more compared
metrics (:data:`NUMBER_METRICS`, Welch's t, lower is better) whenever a variant answers numbers
or the primary metric is one of them (and where every variant declares its type, the matching
metrics none of them is judged by are left out: :mod:`evaluation.compared_metrics`); a
``label`` candidate's confusion counts and prediction
shift against its offline label shares, per slice, under ``label_metrics``, tested over units
where its units sent several answers (:mod:`evaluation.label_results`). ``online_accuracy``
holds the accuracy from verified labels: the unbiased audit figure beside the correction
bound (:mod:`evaluation.label_accuracy`).

Where units sent several requests each, the built-in metrics are tested per unit (n counts them).

Shadow candidates answer the same requests as the arms, so they are compared but never count as
an arm's traffic, and they take no part in the SRM check.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.builtin_metrics import ALL_METRICS, DEFAULT_PRIMARY, METRICS, MetricSpec
from core.errors import NotFound
from core.outcome_metrics import PROPORTION, RATIO
from core.store.models import Experiment
from core.times import utc_iso
from evaluation import aggregation as agg
from evaluation import decisions
from evaluation.candidate_facts import UNKNOWN, facts_by_version, variant_version
from evaluation.compared_metrics import add_caveats, facing, metrics_compared
from evaluation.guardrail_counts import unit_figures
from evaluation.label_accuracy import online_accuracy
from evaluation.label_results import label_metrics
from evaluation.label_truths import LabelTruths
from evaluation.number_metrics import number_errors
from evaluation.online import (
    ALL,
    Cell,
    Cells,
    Variant,
    hour_window,
    load_cells,
    metric_stats,
    metrics,
    window_read,
)
from evaluation.outcome_results import OutcomeAggregates, load_outcomes, with_outcomes
from evaluation.slices import DEFAULT_MAX_SLICES, choose_slices
from evaluation.srm_check import srm_check, srm_columns
from evaluation.stats import (
    AnalysisConfig,
    ExperimentAggregates,
    analyze,
    mann_whitney_histograms,
    mde_relative,
)
from evaluation.stats.full_results import RECORD_COLUMNS
from evaluation.stats.share_bounds import bound_share_intervals
from evaluation.unit_moments import (
    PER_PREDICTION,
    Recounts,
    UnitAnalysis,
    describe,
    unit_analysis,
    units_with_predictions,
)

METRIC_BY_NAME = {m.name: m for m in ALL_METRICS}
# Metrics that exist only where a customer saw the answer: never observed for a shadow.
CUSTOMER_METRICS = frozenset({"correction_rate"})
# What experiments created before the expected sample was written at creation (the column
# null) were tuned for: fixed here, apart from the creation default, so they keep it.
UNRECORDED_EXPECTED_SAMPLE = 5000.0
# A comparison's fields: the statistics', then what experiment_results adds to each.
COMPARISON_COLUMNS = (*RECORD_COLUMNS, "analysis_unit", "lower_is_better", "verdict", "caveat")


def variants_of(experiment: Experiment) -> tuple[list[Variant], list[float]]:
    """Control arm first, then the other arms, then the shadows; weights of the arms."""
    arms = sorted(experiment.arms or [], key=lambda a: not a.get("control"))
    variants = [Variant(a["name"], a["candidate"], False) for a in arms]
    variants += [Variant("", s["candidate"], True) for s in experiment.shadows or []]
    return variants, [float(a.get("weight", 0.0)) for a in arms]


def build_aggregates(cells: Cells, variants: list[Variant], slices: list[str],
                     specs: tuple[MetricSpec, ...] = METRICS,
                     units: UnitAnalysis | None = None) -> ExperimentAggregates:
    """The :class:`ExperimentAggregates` (variants x specs x slices) of an experiment; the
    metrics ``units`` takes per unit are its linearised per-unit means (mean metrics)."""
    shape = (len(variants), len(specs), len(slices))
    n, sums, squares, shift = (np.zeros(shape) for _ in range(4))
    per_unit = units.per_unit if units is not None else frozenset()
    empty = Cell()
    for i, variant in enumerate(variants):
        for k, slice_ in enumerate(slices):
            cell = cells.get((variant, slice_), empty)
            for j, spec in enumerate(specs):
                if variant.shadow and spec.name in CUSTOMER_METRICS:
                    continue  # nobody sees a shadow's answer: left at n = 0, "no data"
                if units is not None and spec.name in per_unit:
                    n[i, j, k], shift[i, j, k], sums[i, j, k], squares[i, j, k] = \
                        units.stats(variant, slice_, spec.name).stats()
                else:
                    n[i, j, k], sums[i, j, k], squares[i, j, k] = metric_stats(cell, spec.name)
    return ExperimentAggregates(
        n, sums, squares, [m.is_proportion and m.name not in per_unit for m in specs],
        tuple(v.name for v in variants), tuple(m.name for m in specs), tuple(slices), shift)


def _sample_needed(record: dict[str, Any], spec: MetricSpec,
                   control: tuple[float, float, float], target_relative_effect: float,
                   alpha: float, power: float, *, per_unit: bool = False,
                   tuning_n: float = AnalysisConfig.sequential_tuning_n) -> dict[str, Any]:
    """Per-arm sample for the target relative effect on the primary metric and what is left,
    and the power the current arms have against it, for the always-valid test the decision uses
    (at the record's per-arm level and mixture, :mod:`evaluation.stats.sequential_power`); the
    fixed-horizon one would promise a decision at half the n the mSPRT needs. The relative MDE
    (delta method) is the fixed-horizon one, the size of a change the way the metric improves.
    `control`: the control arm's ``(n, sum, sum_squares)`` of the metric (``per_unit``: of its
    linearised per-unit values, a mean whatever the metric's kind)."""
    from evaluation.stats.sequential import optimal_mixture_ratio
    from evaluation.stats.sequential_power import always_valid_power, always_valid_sample_size

    n, s, ss = control
    baseline = s / n if n else math.nan
    blank = {"target_relative_effect": target_relative_effect, "per_arm": None,
             "still_needed": None, "power_at_target": None, "mde_relative": None,
             "test": "always-valid"}
    if not n or math.isnan(baseline):
        return {**blank, "error": "no baseline yet on the control arm"}
    if baseline == 0:
        return {**blank, "error": "the control arm's mean is 0 so far, so a relative change of "
                "it is 0 too: no sample size can be given for it yet"}
    change = -target_relative_effect if spec.lower_is_better else target_relative_effect
    n_c, n_t = float(record["n_control"]), float(record["n_treatment"])
    proportion = spec.is_proportion and not per_unit
    if proportion:
        target = baseline * (1 + change)
        if not 0 <= target <= 1:  # a rate at 100 % can only fall (at 0 % it was refused above)
            target = baseline * (1 - change)
        var_c, var_t = baseline * (1 - baseline), target * (1 - target)
        variance = var_c
    else:
        target = baseline * (1 + change)
        variance = max(ss / n - baseline * baseline, 0.0) * n / max(n - 1, 1)
        if variance <= 0:
            return {**blank, "error": "the control arm shows no variance yet"}
        var_c = var_t = variance
    seq_alpha = record.get("sequential_alpha") or alpha
    tau2 = record.get("sequential_mixture_variance") or (
        optimal_mixture_ratio(seq_alpha) * (var_c + var_t) / tuning_n)
    delta = target - baseline
    size = always_valid_sample_size(delta, var_c, var_t, tau2, seq_alpha, power)
    if math.isinf(size):
        return {**blank, "error": "no sample size detects this effect"}
    now = always_valid_power(delta, var_c, n_c, var_t, n_t, tau2, seq_alpha)
    relative = mde_relative(baseline, variance, n_c, None, n_t, alpha, power,
                            is_proportion=proportion, downward=spec.lower_is_better)
    have = min(record["n_control"], record["n_treatment"])
    return {**blank, "per_arm": int(size), "still_needed": max(int(size) - int(have), 0),
            "power_at_target": _num(now), "mde_relative": _num(abs(relative.relative)),
            "error": None}


def _verdict(record: dict[str, Any], spec: MetricSpec) -> str:
    """From the always-valid interval: better / worse / inconclusive for the treatment."""
    low, high = record["sequential_ci_low"], record["sequential_ci_high"]
    if low is None or high is None:
        return "inconclusive"
    if low > 0:
        return "worse" if spec.lower_is_better else "better"
    if high < 0:
        return "better" if spec.lower_is_better else "worse"
    return "inconclusive"


def experiment_results(session: Session, experiment_id: int, *,
                       config: AnalysisConfig | None = None,
                       target_relative_effect: float = 0.1, since: datetime | None = None,
                       until: datetime | None = None, max_slices: int = DEFAULT_MAX_SLICES,
                       per_unit: bool = True, units_out: list[UnitAnalysis] | None = None,
                       recounts: Recounts | None = None, latency_sketches: bool = True,
                       labels: LabelTruths | None = None) -> dict[str, Any]:
    """Everything the results endpoint returns, JSON-ready. Raises NotFound for an unknown id.

    ``since``/``until`` restrict it to a time window (whole hours, see
    :func:`evaluation.online.hour_window`); the SRM check then counts, once per arm, the units
    whose first prediction in the experiment fell in the window (per slice: in that slice), and
    the outcome metrics keep the units first seen in the window, with all their outcomes
    whenever they arrived (:func:`evaluation.online.outcome_units_in_window`). Per-slice figures
    and tests cover slice ``all`` and the `max_slices` slices with the most predictions
    (:mod:`evaluation.slices`); ``slice_choice`` says what was left out. ``per_unit`` False
    tests every built-in metric per prediction (looks that must compare with each other);
    ``units_out`` receives the unit analysis (the dashboard's arms show more of it). A window
    is tested per prediction, or per unit given ``recounts`` (see
    :func:`evaluation.unit_moments.unit_analysis`). ``latency_sketches`` False skips the latency
    histograms (no percentiles, no rank test: the always-valid series reads neither), and
    ``labels`` gives the verified labels read once for many reads (a page's).
    """
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    if config is None:  # the always-valid test tuned for the experiment's expected sample
        config = AnalysisConfig(sequential_tuning_n=float(
            experiment.expected_sample_per_arm or UNRECORDED_EXPECTED_SAMPLE))
    variants, weights = variants_of(experiment)
    paused = {a["name"]: a.get("paused") or None for a in experiment.arms or []}
    arms = variants[: len(weights)]
    relabelled: list[agg.Accumulator] = []
    chosen_slices = choose_slices(load_cells(session, experiment_id, since=since, until=until,
                                             relabelled=relabelled if per_unit else None,
                                             labels=labels,
                                             latency_sketches=latency_sketches), max_slices)
    cells, slices = chosen_slices.cells, chosen_slices.shown
    units = unit_analysis(session, experiment_id, cells, relabelled, since=since,
                          until=until, recounts=recounts) if per_unit else PER_PREDICTION
    if units_out is not None:
        units_out.append(units)
    outcomes = load_outcomes(session, experiment_id, [a.arm for a in arms], config.alpha,
                             hour_window(since, until))
    specs = {**METRIC_BY_NAME, **_outcome_specs(outcomes)}
    chosen = outcomes.primary
    primary, primary_note = _primary(experiment, specs, chosen)
    # Each variant's facts from the version its own arm runs: two arms may run two versions of
    # one name, with other classes and offline results.
    versions = {v: variant_version(experiment, v.arm, v.candidate, v.shadow) for v in variants}
    by_ref = facts_by_version(session, [(v.candidate, versions[v]) for v in variants])
    facts = {v: by_ref.get((v.candidate, versions[v]), UNKNOWN) for v in variants}
    compared = metrics_compared(cells, primary.name, facts)
    out: dict[str, Any] = {
        "experiment": {"id": experiment.id, "name": experiment.name, "status": experiment.status,
                       "status_since": utc_iso(experiment.status_since),
                       "primary_metric": primary.name, "primary_metric_note": primary_note,
                       "guardrails": experiment.guardrails or {},
                       "sequential_tuned_for": config.sequential_tuning_n},
        "alpha": config.alpha,
        "window": window_read(since, until),
        "slice_choice": chosen_slices.as_dict(),
        "variants": [{"name": v.name, "arm": v.arm or None, "candidate": v.candidate,
                      "version": versions[v], "shadow": v.shadow,
                      "weight": weights[i] if i < len(weights) else None,
                      # Why a paused arm gets no traffic (its weight is what it will get back).
                      "paused": paused.get(v.name) if not v.shadow else None,
                      "output_type": facts[v].output_type}
                     for i, v in enumerate(variants)],
        "metrics": {v.name: {s: {**metrics(cells[(v, s)], config.alpha, shadow=v.shadow,
                                           output_type=facts[v].output_type),
                                 **number_errors(cells[(v, s)], config.alpha)}
                             for s in slices if (v, s) in cells} for v in variants},
        "label_metrics": label_metrics(session, experiment, cells, variants, slices, facts,
                                       versions, config.alpha, units, since, until),
        "outcomes": outcomes.figures,
        "units_in_several_arms": outcomes.several_arms,  # left out of the outcome metrics
    }
    units_with_predictions(units, out["metrics"], variants)
    out["analysis_unit"], out["analysis_unit_note"] = describe(
        units, out["metrics"], [m.name for m in compared])
    unit_figures(units, out["metrics"], variants, config.alpha)
    out["online_accuracy"] = online_accuracy(
        session, experiment_id, variants, cells, out["metrics"], config.alpha,
        lambda v: variant_version(experiment, v.arm, v.candidate, v.shadow), labels)
    if len(arms) < 1 or len(variants) < 2:
        out.update(trustworthy=False, srm=None, comparisons=[], latency=[], power={},
                   error="an experiment needs a control and at least one other arm or shadow")
        out["decision"] = decisions.decide(out)
        return out
    srm = srm_check(session, experiment, cells, arms, slices, config.srm_threshold,
                    hour_window(since, until)) if len(arms) >= 2 else None
    # The family the always-valid intervals share alpha over: the treatment arms the decision
    # acts on, not the shadows beside them.
    family = config.sequential_family or max(len(arms) - 1, 1)
    full = analyze(with_outcomes(build_aggregates(cells, variants, slices, compared, units),
                                 outcomes,
                                 list(range(len(arms)))),
                   dataclasses.replace(config, sequential_family=family))
    records = _outcome_records_kept(full.to_records(), outcomes, {a.name for a in arms})
    for r in records:
        r.update(srm_columns(srm, r["slice"]))
        r["analysis_unit"] = "prediction" if r["metric"] in METRIC_BY_NAME \
            and r["metric"] not in units.per_unit else "unit"
        facing(r, specs[r["metric"]])
        if specs[r["metric"]].is_proportion:
            bound_share_intervals(r)
        r["verdict"] = _verdict(r, specs[r["metric"]])
    add_caveats(records)
    per_unit = chosen is None and primary.name in units.per_unit
    control = outcomes.control_sums(primary.name) if chosen is not None \
        else units.stats(variants[0], ALL, primary.name).plain() if per_unit \
        else metric_stats(cells.get((variants[0], ALL), Cell()), primary.name)
    latency, power = [], {}
    for v in variants[1:]:
        for s in slices:
            c, t = cells.get((variants[0], s)), cells.get((v, s))
            if c is None or t is None:
                continue
            mw = mann_whitney_histograms(c.latency, t.latency)
            latency.append({"treatment": v.name, "slice": s, "u": _num(mw.statistic),
                            "p_value": _num(mw.p_value),
                            "probability_of_superiority": _num(mw.probability_of_superiority),
                            "max_statistic_error": mw.max_statistic_error, "error": mw.error})
        rec = next((r for r in records if r["treatment"] == v.name
                    and r["metric"] == primary.name and r["slice"] == ALL), None)
        if rec is None:  # a shadow has no outcomes
            continue
        power[v.name] = {"mde": rec["mde"], **_sample_needed(
            rec, primary, control, target_relative_effect, config.alpha, config.power,
            per_unit=per_unit, tuning_n=config.sequential_tuning_n)}
    out.update(trustworthy=not (srm and srm["flagged"]), srm=srm, comparisons=records,
               latency=latency, power=power, error=None)
    out["decision"] = decisions.decide(out)
    return out


def _primary(experiment: Experiment, specs: Mapping[str, MetricSpec],
             chosen: Any) -> tuple[MetricSpec, str | None]:
    """The metric that decides, and why it is not the stored one when it is not: an outcome
    metric defined as primary wins; a stored name the results do not test (accepted before the
    spec was checked against them) falls back to the default, said out loud, never silently."""
    stored = experiment.primary_metric
    if chosen is not None:
        return specs[chosen.name], None
    if stored in METRIC_BY_NAME:
        return METRIC_BY_NAME[stored], None
    return METRIC_BY_NAME[DEFAULT_PRIMARY], (
        f"the stored primary metric {stored!r} is not one the results test "
        f"({', '.join(METRIC_BY_NAME)}); {DEFAULT_PRIMARY!r} decides instead")


def _outcome_specs(outcomes: OutcomeAggregates) -> dict[str, MetricSpec]:
    return {d.name: MetricSpec(d.name, d.kind == PROPORTION, d.direction == "lower")
            for d in outcomes.definitions}


def _outcome_records_kept(records: list[dict[str, Any]], outcomes: OutcomeAggregates,
                          arm_names: set[str]) -> list[dict[str, Any]]:
    """Outcome metrics are compared between arms in slice ``all`` only (they have no slices,
    and shadows served nobody, so nobody reported outcomes of them); a ratio says so."""
    ratios = {d.name for d in outcomes.definitions if d.kind == RATIO}
    kept = []
    for r in records:
        if r["metric"] in METRIC_BY_NAME:
            kept.append(r)
        elif r["slice"] == ALL and r["treatment"] in arm_names:
            kept.append({**r, "kind": "ratio"} if r["metric"] in ratios else r)
    return kept


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
