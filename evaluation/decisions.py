"""Ship, keep running, or stop: the decision on an experiment, with the reasons.

Read from a results dict of :func:`evaluation.results.experiment_results`, in this order:

0. **No traffic** on any arm yet: keep running, saying so (there is nothing to compare).
1. **Sample ratio mismatch** overall: stop. The split or the logging is broken, so no comparison
   can be trusted; fix it and restart. A mismatch within some slices only (Holm-adjusted across
   the slices large enough to test, see :mod:`evaluation.srm_check`) is a warning among the
   reasons: those slices' figures are suspect, the experiment's are not.
2. A treatment arm breaches a **guardrail** (p99 latency above its limit over at least
   ``MIN_GUARDRAIL_N`` predictions; an error or correction rate, or an outcome metric's per-unit
   mean, whose always-valid confidence sequence lies wholly on the bad side of its limit, see
   :mod:`evaluation.stats.confidence_sequence`): stop that arm.
3. **Significant harm** on the primary metric (the always-valid mSPRT interval lies wholly on the
   bad side of 0), a number candidate's absolute error significantly worse, or an error rate
   significantly above control's, guardrail or not (a failed request gives nobody an answer to
   correct, so an arm that fails more can look better on corrections): stop that arm.
4. **Significant win** on the primary metric (always-valid interval wholly on the good side),
   with guardrails holding and no SRM: ship the arm with the best estimate among the winners.
5. Otherwise keep running, saying how many more units per arm the target effect needs (a paused
   arm or one with weight 0 takes no traffic, so it is told that instead).

A stopped or killed experiment that would keep running is inconclusive (neither gathers data
for its results); a paused one says first that it gathers no data until it is resumed, a draft
that it gathers none until it is started.

The always-valid interval is used throughout because people look at results every hour; the
fixed-horizon p-values would overstate certainty under that peeking. Each arm's mSPRT interval
is at alpha / K for K treatment arms (:mod:`evaluation.stats.sequential_arms`), so the chance of
shipping or stopping any arm when none differs stays below alpha. Shadow candidates are never
shipped by this rule: they served nobody, so their traffic cannot show harm to users.
"""

from __future__ import annotations

from typing import Any

from core.text import quoted
from evaluation.guardrail_counts import FIGURE
from evaluation.online import ALL
from evaluation.stats.confidence_sequence import mean_beyond_limit, rate_beyond_limit

SHIP, KEEP_RUNNING, STOP = "ship", "keep_running", "stop"
# A stopped experiment gathers no more data: where a running one would keep running, its
# decision is that the evidence was not enough.
INCONCLUSIVE = "inconclusive"
MIN_GUARDRAIL_N = 100
ERROR_METRIC = "absolute_error"  # compared only where the candidates answer numbers
FAILURES = "error_rate"
KILLED_REMEDY = "resume it to gather more, or stop it"
"""What a killed experiment's reader can do (it serves only its control until resumed)."""


def _guardrail_breaches(arm: str, figures: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    out = []
    p99_limit = limits.get("p99_latency_ms")
    p99 = figures.get("latency_p99_ms")
    if p99_limit is not None and p99 is not None and figures["predictions"] >= MIN_GUARDRAIL_N \
            and p99 > p99_limit:
        out.append(f"arm {quoted(arm)}: p99 latency {p99:.1f} ms is above the guardrail "
                   f"{p99_limit:g} ms")
    for metric, limit_key in (("error_rate", "error_rate"), ("correction_rate", "correction_rate")):
        limit, rate = limits.get(limit_key), figures.get(metric)
        # Units that send several requests: the predictions counted as independent ones.
        n = (figures.get(FIGURE) or {}).get(metric) or figures.get("predictions") or 0
        if limit is not None and rate is not None and n and rate_beyond_limit(rate, n, limit):
            out.append(f"arm {quoted(arm)}: {metric.replace('_', ' ')} {rate:.2%} is "
                       f"significantly above the guardrail {limit:.2%} (always-valid)")
    return out


def _outcome_breaches(arm: str, outcomes: dict[str, Any]) -> list[str]:
    """Outcome guardrails: the arm's always-valid confidence sequence of the metric's per-unit
    mean lies wholly below the limit of a higher-is-better metric, or above that of a
    lower-is-better one. A fixed interval re-checked hourly would declare false breaches; a
    mean's sequence is as wide as its units' spread about the limit, so a few units that all
    read 0 are not a breach."""
    out = []
    for name, metric in outcomes.items():
        limit = metric.get("guardrail")
        figures = metric["arms"].get(arm)
        if limit is None or not figures or figures.get("mean") is None:
            continue
        mean, n = figures["mean"], figures.get("units") or 0
        side = "below" if metric["direction"] == "higher" else "above"
        if metric.get("kind") == "proportion":
            breach = rate_beyond_limit(mean, n, limit, side)
        else:
            variance = figures.get("variance")
            breach = variance is not None and mean_beyond_limit(mean, n, variance, limit, side)
        if breach:
            out.append(f"arm {quoted(arm)}: {name} {mean:.4g} per unit is significantly {side} "
                       f"the guardrail {limit:g} (always-valid)")
    return out


def decide(results: dict[str, Any]) -> dict[str, Any]:
    """``{"action", "arm", "reasons", "arms": {arm: verdict}}`` for a results dict."""
    decision = _decide(results)
    status = results["experiment"].get("status")
    if decision["action"] == KEEP_RUNNING and status in ("stopped", "killed"):
        # A killed experiment can be resumed; a stopped one cannot.
        why, remedy = (("is stopped", "run a new experiment to gather more")
                       if status == "stopped" else
                       ("was killed (all its traffic goes to control, outside its results)",
                        KILLED_REMEDY))
        decision = {**decision, "action": INCONCLUSIVE, "reasons": [
            f"the experiment {why}, so it gathers no more data: the evidence below was not "
            f"enough for a decision; {remedy}", *decision["reasons"]]}
    elif decision["action"] == KEEP_RUNNING and status == "draft":
        decision = {**decision, "reasons": [
            "the experiment is a draft, so it gathers no data until it is started (`abvoc "
            "experiment start ID`, POST /v1/experiments/{id}/start)", *decision["reasons"]]}
    elif decision["action"] == KEEP_RUNNING and status == "paused":
        decision = {**decision, "reasons": [
            "the experiment is paused, so it gathers no data until it is resumed: the evidence "
            "below is not enough for a decision; resume it to gather more",
            *decision["reasons"]]}
    warning = (results.get("srm") or {}).get("slice_warning")
    if warning and not results["srm"].get("flagged"):
        decision = {**decision, "reasons": [*decision["reasons"], f"warning: {warning}"]}
    return decision


def _no_traffic(results: dict[str, Any]) -> bool:
    """No arm has a prediction yet: no figures for slice ``all`` and no unit compared there."""
    figures = any((results.get("metrics") or {}).get(v["name"], {}).get(ALL)
                  for v in results["variants"])
    compared = any((r.get("n_control") or 0) + (r.get("n_treatment") or 0) > 0
                   for r in results.get("comparisons") or [] if r.get("slice") == ALL)
    return not figures and not compared


def _weights(results: dict[str, Any]) -> dict[str, float | None]:
    return {v["name"]: v.get("weight") for v in results["variants"] if not v["shadow"]}


def _paused(results: dict[str, Any]) -> dict[str, str]:
    """The paused arms and why (a guardrail's breach or an operator)."""
    return {v["name"]: v["paused"] for v in results["variants"] if v.get("paused")}


def _decide(results: dict[str, Any]) -> dict[str, Any]:
    reasons: list[str] = []
    if results.get("error"):
        return {"action": KEEP_RUNNING, "arm": None, "reasons": [results["error"]], "arms": {}}
    srm = results.get("srm")
    if srm and srm["flagged"]:
        where = "overall" if srm["mismatch"] else "in " + ", ".join(srm["mismatched_slices"])
        return {"action": STOP, "arm": None, "arms": {}, "reasons": [
            f"sample ratio mismatch {where} (p < {srm['threshold']:g}): units do not follow the "
            "configured weights, so the results are untrustworthy; fix assignment or logging "
            "and restart"]}
    primary = results["experiment"]["primary_metric"]
    limits = results["experiment"].get("guardrails") or {}
    arms = [v["name"] for v in results["variants"][1:] if not v["shadow"]]
    if _no_traffic(results):
        return {"action": KEEP_RUNNING, "arm": None, "arms": dict.fromkeys(arms, KEEP_RUNNING),
                "reasons": ["no traffic yet: no arm has served a prediction, so there is "
                            "nothing to compare"]}
    weights, paused = _weights(results), _paused(results)
    verdicts: dict[str, str] = {}
    winners: list[tuple[float, str]] = []
    for arm in arms:
        figures = results["metrics"].get(arm, {}).get(ALL)
        breaches = _guardrail_breaches(arm, figures, limits) if figures else []
        breaches += _outcome_breaches(arm, results.get("outcomes") or {})
        rec = _record(results, arm, primary)
        error = _record(results, arm, ERROR_METRIC) if primary != ERROR_METRIC else None
        failing = _record(results, arm, FAILURES) if primary != FAILURES else None
        if breaches:
            verdicts[arm] = STOP
            reasons += breaches
        elif failing is not None and failing["verdict"] == "worse":
            # Whatever the primary metric says: a failed request reaches nobody to correct it,
            # so an arm that fails more can look better on corrections by failing.
            verdicts[arm] = STOP
            reasons.append(f"arm {quoted(arm)} fails significantly more often than control: error "
                           f"rate {_lift(failing)} (always-valid p = "
                           f"{failing['sequential_p_value']:.3g})")
        elif error is not None and error["verdict"] == "worse":
            verdicts[arm] = STOP
            reasons.append(f"arm {quoted(arm)} answers significantly further from the truth: mean "
                           f"absolute error {_lift(error)} (Welch; always-valid p = "
                           f"{error['sequential_p_value']:.3g})")
        elif rec is not None and rec["verdict"] == "worse":
            verdicts[arm] = STOP
            reasons.append(f"arm {quoted(arm)} is significantly worse on {primary} "
                           f"({_lift(rec)}; always-valid p = {rec['sequential_p_value']:.3g})")
        elif rec is not None and rec["verdict"] == "better":
            verdicts[arm] = SHIP
            gain = -rec["difference"] if rec["lower_is_better"] else rec["difference"]
            winners.append((gain, arm))
            reasons.append(f"arm {quoted(arm)} is significantly better on {primary} "
                           f"({_lift(rec)}; always-valid p = {rec['sequential_p_value']:.3g}) "
                           "and its guardrails hold")
        else:
            verdicts[arm] = KEEP_RUNNING
            power = results.get("power", {}).get(arm, {})
            need = power.get("still_needed")
            # An arm with nothing observed has no difference to speak of, significant or not.
            so_far = (f"no significant difference on {primary} so far"
                      if rec is not None and rec.get("n_treatment") else
                      f"nothing on {primary} to compare yet")
            if arm in paused:
                reasons.append(f"arm {quoted(arm)} is paused ({paused[arm]}), so it takes no "
                               f"traffic and gathers no more data: {so_far}; resume it to go "
                               "on testing it")
            elif weights.get(arm) == 0:
                reasons.append(f"arm {quoted(arm)} has weight 0, so it takes no traffic and "
                               f"gathers no more data: {so_far}; give it a weight to test it")
            elif need:
                per = _counted(results, rec, primary)
                reasons.append(f"arm {quoted(arm)}: not enough data on {primary} yet; about {need} "
                               f"more {per} per arm for the always-valid test to detect a "
                               f"{power['target_relative_effect']:.0%} change")
            else:
                said = (f"no significant difference on {primary} yet"
                        if rec is not None and rec.get("n_treatment") else
                        f"nothing on {primary} to compare yet")
                reasons.append(f"arm {quoted(arm)}: {said}"
                               + (f" ({power['error']})" if power.get("error") else ""))
    if winners:
        best = max(winners)[1]
        return {"action": SHIP, "arm": best, "reasons": reasons, "arms": verdicts}
    if arms and all(v == STOP for v in verdicts.values()):
        return {"action": STOP, "arm": None, "reasons": reasons, "arms": verdicts}
    return {"action": KEEP_RUNNING, "arm": None, "reasons": reasons, "arms": verdicts}


def _record(results: dict[str, Any], arm: str, metric: str) -> dict[str, Any] | None:
    return next((r for r in results["comparisons"] if r["treatment"] == arm
                 and r["metric"] == metric and r["slice"] == ALL), None)


def _counted(results: dict[str, Any], rec: dict[str, Any] | None, primary: str) -> str:
    """What the primary metric's test counts, so that "N more ... per arm" names it: the
    comparison's ``analysis_unit`` (built-in metrics are tested per unit wherever units sent
    several requests, and the sample still needed then counts units too); without a record,
    units for an outcome metric and predictions otherwise."""
    unit = (rec or {}).get("analysis_unit")
    if unit is None:
        unit = "unit" if primary in (results.get("outcomes") or {}) else "prediction"
    return "units" if unit == "unit" else "predictions"


def _lift(rec: dict[str, Any]) -> str:
    if rec.get("relative_lift") is None:
        return f"difference {rec['difference']:+.4g}"
    return f"{rec['relative_lift']:+.1%} relative to control"
