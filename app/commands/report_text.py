"""The results and divergence reports as a few lines a person reads in a terminal.

`abvoc experiment results|divergence ID` print these; `--json` prints the whole report, the same
object the API returns. Only the figures that decide something are shown: the decision and its
reasons, the sample-ratio check, each arm's traffic and headline metrics, the comparisons on the
`all` slice, and the ranked findings.
"""

from __future__ import annotations

from typing import Any

from app.cli import columns
from evaluation.candidate_facts import shown_names


def _num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _interval(low: Any, high: Any, spec: str = ".3f") -> str:
    return "" if low is None or high is None else f" [{low:{spec}}, {high:{spec}}]"


def _number_candidates(rows: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    """The candidate versions that answer numbers: an MAE on any of their rows, offline or
    online."""
    return {(r["candidate"], r.get("version")) for r in rows
            if r["offline"].get("mae") is not None or r["online"].get("mae") is not None}


def results_text(report: dict[str, Any]) -> str:
    """The results report: decision, trust, arms and the comparisons on slice `all`."""
    exp, decision = report["experiment"], report["decision"]
    lines = [f"#{exp['id']} {exp['name']} [{exp['status']}] primary metric "
             f"{exp['primary_metric']}: decision {decision['action']}"
             + (f" ({decision['arm']})" if decision.get("arm") else "")]
    lines += [f"  {reason}" for reason in decision["reasons"]]
    srm = report["srm"]
    if srm.get("error"):
        lines.append(f"  sample-ratio check: {srm['error']}")
    else:
        verdict = "MISMATCH: results are not trustworthy" if srm["flagged"] else "ok"
        lines.append(f"  sample-ratio check: {verdict} (p = {_num(srm['p_value'], '.3g')})")
    per_unit = (report.get("analysis_unit") or {}).get("per_unit")
    lines += [f"  tested per unit (delta method; n counts units): {', '.join(per_unit)}"] \
        if per_unit else []
    lines += [f"  note: {report['analysis_unit_note']}"] if report.get("analysis_unit_note") \
        else []
    lines += _slices_left_out(report.get("slice_choice"))
    lines.append("")
    names = shown_names(report["variants"])  # `name vX` where two arms run two versions
    rows = []
    for v in report["variants"]:
        m = (report["metrics"].get(v["name"]) or {}).get("all") or {}
        rows.append([v["name"], names[(v["candidate"], v.get("version"))],
                     str(m.get("predictions", 0)), str(m.get("units", 0)),
                     _num(m.get("correction_rate")), _num(m.get("error_rate")),
                     _num(m.get("accuracy_bound")), _num(m.get("latency_p99_ms"), ".1f")])
    lines.append(columns(["variant", "candidate", "predictions", "units", "corr. rate", "errors",
                          "accuracy<=", "p99 ms"], rows, right=set(range(2, 8))))
    comparisons = [c for c in report["comparisons"] if c.get("slice", "all") == "all"]
    if comparisons:
        lines += ["", "comparisons (treatment - control, slice all):"]
    width = max((len(c["metric"]) for c in comparisons), default=0)
    for c in comparisons:
        head = f"  {c['metric']:<{width}} {c['treatment']} vs {c['control']}: "
        if c.get("error"):
            lines.append(head + c["error"])
            continue
        lines.append(
            head + f"{c['difference']:+.4g}{_interval(c['ci_low'], c['ci_high'], '+.4g')}, "
            f"p {_num(c['p_value'], '.3g')} (Holm {_num(c['p_holm'], '.3g')}), always-valid p "
            f"{_num(c['sequential_p_value'], '.3g')}: {c.get('verdict') or '-'}"
            + (f"; {c['note']}" if c.get("note") else ""))
    return "\n".join(lines)


def _slices_left_out(choice: dict[str, Any] | None) -> list[str]:
    """A line saying which slices the per-slice figures leave out (none when none are)."""
    if not choice or not choice["left_out"]:
        return []
    return [f"  slices: the {choice['shown']} busiest shown; {choice['left_out']} more "
            f"({choice['left_out_predictions']} predictions) count only in 'all' "
            "(--max-slices to show more)"]


def divergence_text(report: dict[str, Any]) -> str:
    """The divergence report: ranked findings, the accuracy per candidate and slice (a number
    candidate's MAE, online against offline, in a table of its own: an exact match means
    nothing for numbers), and the stage each candidate's errors are blamed on."""
    lines = [f"experiment #{report['experiment_id']}: online against offline "
             f"(tolerance {report['tolerance']:.0%}, alpha {report['alpha']})"]
    findings = report["findings"]
    if not report["slices"]:
        return "\n".join([*lines, "  no online predictions to hold against an offline test yet"])
    lines += [f"  {f['rank']}. [{f['kind']}] {f['explanation']}" for f in findings] or [
        "  no findings: online holds up against the offline tests"]
    lines += _slices_left_out(report.get("slice_choice"))
    names = shown_names(report["slices"])  # `name vX` where two versions of a name ran
    numbers = _number_candidates(report["slices"])
    accuracy, errors = [], []
    for r in report["slices"]:
        off, on, gap = r["offline"], r["online"], r.get("mae_gap") or {}
        ref = (r["candidate"], r.get("version"))
        if ref in numbers:  # a number candidate: its MAE, not hits
            errors.append([names[ref], r["slice"], _num(off.get("mae"), ".4g"),
                           _num(on.get("mae"), ".4g"), str(on["n"]),
                           _num(gap.get("relative"), "+.1%"),
                           "yes" if gap.get("flagged") else "no"])
        else:
            accuracy.append([names[ref], r["slice"], _num(off.get("exact_match")),
                             _num(on.get("accuracy_bound")), str(on["n"]),
                             _num(r.get("gap"), "+.3f"), "yes" if r["flagged"] else "no"])
    if accuracy:
        lines += ["", columns(["candidate", "slice", "offline", "online<=", "n", "gap",
                               "flagged"], accuracy, right={2, 3, 4, 5})]
    if errors:
        lines += ["", "number candidates: mean absolute error, online (over corrected answers; "
                      "n: answers) against offline; gap relative",
                  columns(["candidate", "slice", "offline MAE", "online MAE", "n", "gap",
                           "flagged"], errors, right={2, 3, 4, 5})]
    blamed = [r for r in report["stage_attribution"]["rows"] if r["slice"] == "all"]
    if blamed:
        lines += ["", "errors by stage (slice all):"]
    blamed_names = shown_names(blamed)
    for r in blamed:
        shares = ", ".join(f"{s} {_num(r['shares'][s], '.0%')}" for s in r["stages"])
        cand = blamed_names[(r["candidate"], r.get("version"))]
        lines.append(f"  {cand}: {r['errors']} of {r['with_truth']} with a truth "
                     f"wrong; {shares}")
    return "\n".join(lines)
