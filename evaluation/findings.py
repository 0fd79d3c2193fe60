"""Divergence findings: one ranked list, each with a sentence a person can act on.

Severity is the share of online predictions a finding touches (see
:mod:`evaluation.divergence`); ties go to causes before symptoms (prediction shift, then traffic
mix, then accuracy gap).
"""

from __future__ import annotations

from typing import Any

_KIND_ORDER = {"prediction_shift": 0, "traffic_mix": 1, "accuracy_gap": 2}


def _gap_findings(slices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    totals = {r["candidate"]: r["online"]["n"] for r in slices if r["slice"] == "all"}
    for r in slices:
        if not r["flagged"]:
            continue
        share = 1.0 if r["slice"] == "all" else r["online"]["n"] / max(totals[r["candidate"]], 1)
        low, high = r["online"]["accuracy_ci"]
        where = "overall" if r["slice"] == "all" else f"on slice {r['slice']!r}"
        out.append({
            "kind": "accuracy_gap", "candidate": r["candidate"], "slice": r["slice"],
            "severity": -r["gap"] * share, "p_value": r["p_value"],
            "explanation": (
                f"{r['candidate']} {where} is right at most {r['online']['accuracy_bound']:.1%} "
                f"of the time online (95% CI {low:.1%}-{high:.1%}, from its correction rate) "
                f"against {r['offline']['exact_match']:.1%} offline: relabel this slice's "
                "corrected predictions and add them to the training and offline-test data."),
        })
    return out


def _mix_findings(mixes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in mixes:
        if not m["shifted"]:
            continue
        diff = {s: m["online_shares"][s] - m["offline_shares"][s] for s in m["slices"]}
        top = max(diff, key=lambda s: abs(diff[s]))
        d = m["decomposition"]
        tail = ""
        severity = 0.0
        if d is not None:
            severity = abs(d["mix_effect"])
            tail = (f"; the mix accounts for {d['mix_effect']:+.1%} of the accuracy change and "
                    f"drops within slices for {d['within_slices']:+.1%}")
        out.append({
            "kind": "traffic_mix", "candidate": m["candidate"], "slice": top,
            "severity": severity, "p_value": m["p_value"],
            "explanation": (
                f"Online traffic for {m['candidate']} is not its offline test's mix (PSI "
                f"{m['psi']:.2f}): {top!r} is {m['online_shares'][top]:.0%} of online requests "
                f"but {m['offline_shares'][top]:.0%} offline{tail}; reweight or extend the "
                "offline test to the online mix."),
        })
    return out


def _shift_findings(shifts: list[dict[str, Any]], gaps: dict[str, float],
                    alpha: float) -> list[dict[str, Any]]:
    out = []
    for s in shifts:
        cand = s["candidate"]
        top = s["online_labels"][0] if s["online_labels"] else None
        if top is not None and top["excess"] > 0 and top["p_value"] < alpha:
            gap = gaps.get(cand, 0.0)
            severity = max(top["excess"], gap) if top["excess"] >= 0.5 * gap else top["excess"]
            out.append({
                "kind": "prediction_shift", "candidate": cand, "slice": "all",
                "label": top["label"], "severity": severity, "p_value": top["p_value"],
                "explanation": (
                    f"{cand} answers {top['label']!r} on {top['output_share']:.0%} of online "
                    f"requests, but corrections put the true share of {top['label']!r} at about "
                    f"{top['label_share']:.0%}: it over-predicts {top['label']!r} on online "
                    f"inputs, so relabel its {top['label']!r} answers and retrain on online-like "
                    "data."),
            })
        off = s.get("offline_labels")
        if off and off["shifted"] and off["excess"] > 0:
            lb = off["top_label"]
            out.append({
                "kind": "prediction_shift", "candidate": cand, "slice": "all", "label": lb,
                "severity": off["excess"], "p_value": off["p_value"],
                "explanation": (
                    f"{cand} answers {lb!r} on {s['output_shares'].get(lb, 0):.0%} of online "
                    f"requests while {lb!r} is {off['label_shares'].get(lb, 0):.0%} of its "
                    f"offline labels (PSI {off['psi']:.2f}): online inputs differ from the "
                    "offline test; sample them for relabeling and add them to the test set."),
            })
    return out


def rank_findings(slices: list[dict[str, Any]], mixes: list[dict[str, Any]],
                  shifts: list[dict[str, Any]], alpha: float) -> list[dict[str, Any]]:
    """Every finding, most severe first."""
    gaps = {r["candidate"]: -r["gap"] for r in slices
            if r["slice"] == "all" and r["flagged"] and r["gap"] is not None}
    findings = _gap_findings(slices) + _mix_findings(mixes) + _shift_findings(shifts, gaps, alpha)
    findings.sort(key=lambda f: (-f["severity"], _KIND_ORDER[f["kind"]]))
    for rank, f in enumerate(findings, 1):
        f["rank"] = rank
    return findings
