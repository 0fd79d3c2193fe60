"""Divergence findings: one ranked list, each with a sentence a person can act on.

Severity is the share of online predictions a finding touches (see
:mod:`evaluation.divergence`). The order is decided by rules, never by which of two nearly equal
floats happens to be larger:

1. **Causes before symptoms.** A cause that explains at least half of its candidate's overall
   accuracy gap takes the gap's severity (exactly, so the two tie by construction) and ranks
   ahead of it: a prediction shift (over-predicting one class), or a traffic-mix shift whose
   Kitagawa decomposition puts the drop on the mix. The gap finding then says what explains it,
   and advises relabeling only when the drop lies within slices.
2. **Then severity**, compared at :data:`SEVERITY_DIGITS` decimals (a hundredth of a percentage
   point), so sampling noise below that cannot reorder findings.
3. **Then kind** (prediction shift, traffic mix, accuracy gap, error gap), candidate, slice and
   label.

Per output type: a label candidate's shift against its offline label shares gives one finding
per class it significantly over-predicts (severity: the excess share; each class's own
Holm-adjusted p), else one per class it significantly under-predicts (severity: the missing
share), else, where only the whole table is significant, one finding about the distribution as a
whole with the table's p and no class named (severity: the share of answers that would have to
change class, half the sum of the absolute differences); and against the online
labels its corrections give, one finding for the over-predicted class of largest excess whose
McNemar p, Holm-adjusted over the classes tested, is below alpha; a number candidate whose
online MAE is significantly above its offline MAE gives an ``error_gap`` finding, whose severity
is the share of the online MAE the offline test did not show, ``(online - offline) / online``.

A candidate whose online traffic is a single slice has one accuracy finding, not two: the
overall row and the slice row are the same predictions.

A candidate is its name and version (two arms may run two versions of one name): each finding
carries both, and its sentence names the version where the report holds two of the name.
"""

from __future__ import annotations

from typing import Any

from core.text import quoted
from evaluation.candidate_facts import Ref, shown_names

SEVERITY_DIGITS = 4
EXPLAINS = 0.5  # a cause explains a gap when it accounts for at least this share of it
FINDING_FIELDS = ("kind", "candidate", "version", "slice", "label", "severity", "p_value",
                  "p_value_unadjusted", "classes_tested", "explained_by", "explains_gap",
                  "explanation")
"""Every field a finding may carry (each kind sets some), in the order a table shows them."""
_KIND_ORDER = {"prediction_shift": 0, "traffic_mix": 1, "accuracy_gap": 2, "error_gap": 3}


def _ref(r: dict[str, Any]) -> Ref:
    """The candidate version a row or finding is about."""
    return r["candidate"], r.get("version")


def _single_slices(slices: list[dict[str, Any]]) -> dict[Ref, str]:
    """Candidates whose online traffic is one slice, and that slice."""
    seen: dict[Ref, list[str]] = {}
    for r in slices:
        if r["slice"] != "all":
            seen.setdefault(_ref(r), []).append(r["slice"])
    return {ref: names[0] for ref, names in seen.items() if len(names) == 1}


def _mix_explains(mix: dict[str, Any] | None, gap: float | None) -> bool:
    """Whether the mix accounts for at least half of a (negative) overall gap."""
    if mix is None or mix["decomposition"] is None or gap is None or gap >= 0:
        return False
    effect = mix["decomposition"]["mix_effect"]
    return bool(mix["shifted"] and effect < 0 and effect <= EXPLAINS * gap)


def _gap_findings(slices: list[dict[str, Any]], mixes: dict[Ref, dict[str, Any]],
                  names: dict[Ref, str]) -> list[dict[str, Any]]:
    out = []
    totals = {_ref(r): r["online"]["n"] for r in slices if r["slice"] == "all"}
    single = _single_slices(slices)
    overall_flagged = {_ref(r) for r in slices if r["slice"] == "all" and r["flagged"]}
    for r in slices:
        cand = _ref(r)
        if not r["flagged"] or (r["slice"] != "all" and single.get(cand) == r["slice"]
                                and cand in overall_flagged):
            continue  # one slice: the overall finding already covers these predictions
        share = 1.0 if r["slice"] == "all" else r["online"]["n"] / max(totals[cand], 1)
        low, high = r["online"]["accuracy_ci"]
        if r["slice"] != "all":
            where = f"on slice {quoted(r['slice'])}"
        elif cand in single:
            where = f"overall (all its online traffic is slice {quoted(single[cand])})"
        else:
            where = "overall"
        head = (f"{names[cand]} {where} is right at most "
                f"{r['online']['accuracy_bound']:.1%} of the time online (95% CI "
                f"{low:.1%}-{high:.1%}, answers not known wrong counted right) against "
                f"{r['offline']['exact_match']:.1%} offline")
        mix = mixes.get(cand)
        explained = r["slice"] == "all" and _mix_explains(mix, r["gap"])
        failures = "" if explained else _failures_explain(r)
        if explained and mix is not None:
            d = mix["decomposition"]
            scope = _scope(d)
            advice = (f": the traffic mix explains{', ' + scope + ',' if scope else ''} "
                      f"{d['mix_effect']:+.1%} of this "
                      f"{r['gap']:+.1%} and the slices themselves change by "
                      f"{d['within_slices']:+.1%}, so the model holds up slice by slice; "
                      "reweight the offline test to the online mix before relabeling anything.")
        elif failures:
            advice = failures
        else:
            advice = (": relabel this slice's corrected predictions and add them to the "
                      "training and offline-test data.")
        out.append({
            "kind": "accuracy_gap", "candidate": cand[0], "version": cand[1], "slice": r["slice"],
            "severity": -r["gap"] * share, "p_value": r["p_value"],
            "explained_by": "traffic_mix" if explained else "failures" if failures else None,
            "explanation": head + advice,
        })
    return out


def _failures_explain(row: dict[str, Any]) -> str:
    """The advice where failed predictions (no answer: counted wrong) make at least half of
    the gap: an outage or a broken candidate, which relabeling would not mend ('' if not)."""
    n, failed = row["online"]["n"], row["online"].get("failed") or 0
    if not n or not failed or failed / n < -row["gap"] / 2:
        return ""
    answered = n - failed
    right = row["online"]["accuracy_bound"] * n / answered if answered else 0.0
    return (f": {failed:,} of its {n:,} predictions failed (no answer, counted wrong), "
            f"{failed / n:.1%} of this {row['gap']:+.1%}; on the answers it gave it is right at "
            f"most {right:.1%}. Find why it failed (its server, timeouts, its logs) before "
            "relabeling anything.")


def _mix_findings(mixes: list[dict[str, Any]], gaps: dict[Ref, float],
                  names: dict[Ref, str]) -> list[dict[str, Any]]:
    out = []
    for m in mixes:
        if not m["shifted"]:
            continue
        diff = {s: m["online_shares"][s] - m["offline_shares"][s] for s in m["slices"]}
        top = max(sorted(diff), key=lambda s: abs(diff[s]))
        d = m["decomposition"]
        tail = ""
        severity = 0.0
        if d is not None:
            severity = abs(d["mix_effect"])
            scope = _scope(d)
            tail = (f"; {scope + ', ' if scope else ''}the mix accounts for "
                    f"{d['mix_effect']:+.1%} of the accuracy change and drops within slices "
                    f"for {d['within_slices']:+.1%}")
        only = m.get("offline_only") or {}
        if only.get("slices"):
            tail += (f"; offline slice(s) {', '.join(quoted(s) for s in only['slices'])} "
                     f"({only['share']:.0%} of the offline mix) get no online traffic")
        gap = gaps.get(_ref(m))
        explains = _mix_explains(m, -gap if gap is not None else None)
        if explains and gap is not None:
            severity = max(severity, gap)
            tail += ", so the mix, not the model, explains most of the overall gap"
        out.append({
            "kind": "traffic_mix", "candidate": m["candidate"], "version": m.get("version"),
            "slice": top,
            "severity": severity, "p_value": m["p_value"], "explains_gap": explains,
            "explanation": (
                f"Online traffic for {names[_ref(m)]} is not its offline test's mix (PSI "
                f"{m['psi']:.2f}): {quoted(top)} is {m['online_shares'][top]:.0%} of online "
                f"requests but {m['offline_shares'][top]:.0%} offline{tail}; reweight or extend "
                "the offline test to the online mix."),
        })
    return out


def _scope(d: dict[str, Any]) -> str:
    """Where the decomposition covers only some slices, which, and its offline figure there:
    a sentence must not pass a few slices' accuracy off as the offline test's."""
    if d.get("offline_share", 1.0) >= 1 - 1e-12 and d.get("online_share", 1.0) >= 1 - 1e-12:
        return ""
    names = ", ".join(quoted(s) for s in d.get("slices", []))
    return (f"over the slice(s) both sides have ({names}: {d['offline_share']:.0%} of the "
            f"offline mix, {d['online_share']:.0%} of online requests, offline accuracy "
            f"{d['offline']:.1%} there)")


def _online_top(shift: dict[str, Any], alpha: float, tolerance: float) -> dict[str, Any] | None:
    """The over-predicted class of largest excess among those whose McNemar p, Holm-adjusted
    over the classes tested, is below alpha: the class is picked after looking at all of them,
    so its raw p alone would flag a shift that is not there far more often than alpha. An
    excess within `tolerance` is forgiven, as a gap is: on many predictions a 0.4-point excess
    was significant, and it says more about which answers customers correct than about the
    model."""
    return next((r for r in shift["online_labels"] or []
                 if r["excess"] > tolerance and r["p_value_holm"] < alpha), None)


def _shift_findings(shifts: list[dict[str, Any]], gaps: dict[Ref, float],
                    alpha: float, tolerance: float,
                    names: dict[Ref, str]) -> list[dict[str, Any]]:
    out = []
    for s in shifts:
        cand = _ref(s)
        top = _online_top(s, alpha, tolerance)
        if top is not None:
            gap = gaps.get(cand, 0.0)
            explains = top["excess"] >= EXPLAINS * gap
            shown = distinct_percents(top["output_share"], top["label_share"])
            k = s["online_classes_tested"]
            label = quoted(top["label"])
            out.append({
                "kind": "prediction_shift", "candidate": cand[0], "version": cand[1],
                "slice": "all",
                "label": top["label"], "severity": max(top["excess"], gap) if explains
                else top["excess"], "p_value": top["p_value_holm"],
                "p_value_unadjusted": top["p_value"], "classes_tested": k,
                "explanation": (
                    f"{names[cand]} answers {label} on {shown[0]} of online requests, but "
                    f"corrections put the true share of {label} at about {shown[1]} (McNemar "
                    f"p = {top['p_value_holm']:.2g}, Holm-adjusted over the {k} classes "
                    f"tested): it over-predicts {label} on online inputs, so relabel its "
                    f"{label} answers and retrain on "
                    "online-like data."),
            })
        out += _offline_shift_findings(cand, names[cand], s.get("offline_labels"), tolerance)
    return out


def _offline_shift_findings(cand: Ref, name: str, off: dict[str, Any] | None,
                            tolerance: float = 0.0) -> list[dict[str, Any]]:
    """Findings of a shift against the offline labels, naming only classes whose own
    Holm-adjusted test is significant: one per class significantly over-predicted (its sentence
    naming the significantly under-predicted ones, their other side); else one per class
    significantly under-predicted; else, the whole table being significant but no class on its
    own, one finding about the distribution as a whole with the table's p and no class, since
    the class of largest excess would be one picked after looking and not itself shown. A
    class's difference, or the share of answers that would change class, within `tolerance`
    is forgiven."""
    if not off or not off["shifted"]:
        return []
    tested = [r for r in off.get("classes", []) if r.get("p_value_holm") is not None]
    over = [r for r in tested if r["shifted"] and r["difference"] > tolerance]
    under = [r for r in tested if r["shifted"] and r["difference"] < -tolerance]
    k = len(tested)
    if not over and not under:
        moved = sum(max(r["difference"], 0.0) for r in tested)
        if moved <= tolerance or any(r["shifted"] for r in tested):
            return []  # within tolerance, or each significant class's difference forgiven
        return [{
            "kind": "prediction_shift", "candidate": cand[0], "version": cand[1],
            "slice": "all", "severity": moved,
            "p_value": off["p_value"], "classes_tested": k,
            "explanation": (
                f"{name}'s answers online are not distributed as its offline labels are "
                f"({_table_test(off)} p = {off['p_value']:.2g}, PSI {off['psi']:.2f}), though "
                "no single "
                f"class's share differs significantly (Holm-adjusted over the {k} classes): "
                "online inputs differ from the offline test as a whole; sample them for "
                "relabeling and add them to the test set."),
        }]
    also = "".join(f"; it answers {quoted(r['label'])} less often, {_shares(r)}" for r in under)
    return [{
        "kind": "prediction_shift", "candidate": cand[0], "version": cand[1], "slice": "all",
        "label": r["label"], "severity": abs(r["difference"]), "p_value": r["p_value_holm"],
        "p_value_unadjusted": r["p_value"], "classes_tested": k,
        "explanation": (
            f"{name} answers {quoted(r['label'])} on {_shares(r, k)}, PSI {off['psi']:.2f}: it "
            f"{'over' if r['difference'] > 0 else 'under'}-predicts {quoted(r['label'])} on online "
            f"inputs{also if over else ''}; online inputs differ from the offline test, so "
            "sample them for relabeling and add them to the test set."),
    } for r in over or under]


def _table_test(off: dict[str, Any]) -> str:
    """The whole table's test by name: Pearson's, or the Wald test over units."""
    return "test over units" if off.get("analysis_unit") == "unit" else "chi-square"


def _shares(r: dict[str, Any], k: int | None = None) -> str:
    """A class's online share against its offline-label share, with its own adjusted p."""
    shown = distinct_percents(r["online_share"], r["offline_share"])
    over = f" over the {k} classes" if k is not None else ""
    return (f"{shown[0]} of online requests while {quoted(r['label'])} is {shown[1]} of its "
            f"offline labels (p = {r['p_value_holm']:.2g}, Holm-adjusted{over})")


def _error_findings(slices: list[dict[str, Any]],
                    names: dict[Ref, str]) -> list[dict[str, Any]]:
    """Number candidates whose online MAE is significantly above the offline one."""
    single = _single_slices(slices)
    flagged = {_ref(r) for r in slices if r["slice"] == "all"
               and (r.get("mae_gap") or {}).get("flagged")}
    out = []
    for r in slices:
        gap, cand = r.get("mae_gap"), _ref(r)
        if not gap or not gap["flagged"] or (r["slice"] != "all" and cand in flagged
                                            and single.get(cand) == r["slice"]):
            continue
        where = "overall" if r["slice"] == "all" else f"on slice {quoted(r['slice'])}"
        out.append({
            "kind": "error_gap", "candidate": cand[0], "version": cand[1], "slice": r["slice"],
            "severity": max(gap["difference"], 0.0) / gap["online_mae"],
            "p_value": gap["p_value"],
            "explanation": (
                f"{names[cand]} {where} is off by {gap['online_mae']:.4g} on average online "
                f"(mean absolute error over {gap['online_n']} corrected answers) against "
                f"{gap['offline_mae']:.4g} offline: relabel this slice's corrected predictions "
                "and add them to the training and offline-test data."),
        })
    return out


def _order(f: dict[str, Any]) -> tuple[Any, ...]:
    return (-round(f["severity"], SEVERITY_DIGITS), _KIND_ORDER[f["kind"]], f["candidate"],
            f.get("version") or "", f["slice"], f.get("label") or "")


def rank_findings(slices: list[dict[str, Any]], mixes: list[dict[str, Any]],
                  shifts: list[dict[str, Any]], alpha: float,
                  tolerance: float = 0.0) -> list[dict[str, Any]]:
    """Every finding, in the order of the rules in the module docstring; shares that move by
    no more than `tolerance` (the report's, which forgives accuracy gaps as small) are not
    findings."""
    gaps = {_ref(r): -r["gap"] for r in slices
            if r["slice"] == "all" and r["flagged"] and r["gap"] is not None}
    by_cand = {_ref(m): m for m in mixes}
    names = shown_names([*slices, *mixes, *shifts])
    findings = (_gap_findings(slices, by_cand, names) + _mix_findings(mixes, gaps, names)
                + _shift_findings(shifts, gaps, alpha, tolerance, names)
                + _error_findings(slices, names))
    findings.sort(key=_order)
    for rank, f in enumerate(findings, 1):
        f["rank"] = rank
    return findings


def distinct_percents(a: float, b: float) -> tuple[str, str]:
    """Two shares as percentages with just enough decimals to tell them apart (98.4% against
    98.0%, not 98% against 98%), so a sentence never contradicts itself."""
    for digits in range(4):
        shown = (f"{a:.{digits}%}", f"{b:.{digits}%}")
        if shown[0] != shown[1]:
            return shown
    return shown
