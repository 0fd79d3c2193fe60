"""The Experiments page's notes beside its figures: what a metric is taken over, where outcome
metrics show and which of their outcomes wait uncounted, and which metrics were tested per unit.
"""

from __future__ import annotations

from typing import Any

from dash import html
from dash.development.base_component import Component

from dashboards.tables import truth_note
from evaluation.online import ALL


def truth(per_arm: list[dict[str, Any]]) -> list[Component]:
    """Exact match and calibration are taken over the predictions whose truth is known, mostly
    corrections of wrong answers: an arm plotted at exact match 0 is not an arm that is never
    right, and a reader must be told so beside the plot (the results carry it as a note)."""
    note = truth_note({r["metric"] for r in per_arm})
    return [html.P(note, id="exp-truth-note")] if note else []


def outcomes(res: dict[str, Any], slice_: str) -> list[Component]:
    """Why outcome metrics show in slice ``all`` only, and which units a time window holds:
    customers report them per unit, not per prediction, and a window keeps each unit's outcomes
    in the hour the unit was first seen (as the results API does)."""
    names = ", ".join(res.get("outcomes") or {})
    if not names:
        return []
    if slice_ != ALL:
        said = (f"Outcome metrics ({names}) are reported per unit and cannot be split by slice: "
                "choose slice all to see them per arm and in the comparisons.")
    else:
        said = (f"Outcome metrics ({names}) are reported per unit: a time window counts the "
                "outcomes of the units first seen in it, whenever the outcomes came.")
    notes = [html.P(said, id="exp-outcomes-note")]
    waiting = {m: f["waiting"] for m, f in res["outcomes"].items() if f["waiting"]["outcomes"]}
    if waiting:
        oldest = min(w["oldest_observed_at"] for w in waiting.values())
        counts = ", ".join(f"{m} {w['outcomes']:,}" for m, w in waiting.items())
        notes.append(html.P(
            f"Outcomes not counted yet ({counts}; the oldest from {oldest[:16]}Z): their "
            "prediction or unit has not reached the service. Ones that stay are for ids it "
            "never served: check the unit and prediction ids the product sends.",
            id="exp-outcomes-waiting"))
    said_of = [f"{m}: {f['note']}." for m, f in res["outcomes"].items() if f.get("note")]
    if said_of:  # a metric of one value in every arm, averaged over its reporting units
        notes.append(html.P(" ".join(said_of), id="exp-outcomes-one-value"))
    moved = (res.get("units_in_several_arms") or {}).get("note")
    if moved:
        notes.append(html.P(f"Note: {moved}.", id="exp-outcomes-several-arms"))
    return notes


def analysis_unit(res: dict[str, Any]) -> list[Component]:
    """Which built-in metrics were tested per unit (units sent several requests each), and the
    results' warning where some could not be."""
    per_unit = (res.get("analysis_unit") or {}).get("per_unit") or []
    said = [f"Tested per unit, the unit of randomization (delta method over each unit's sums; "
            f"n counts units): {', '.join(per_unit)}."] if per_unit else []
    if res.get("analysis_unit_note"):
        said.append(f"Note: {res['analysis_unit_note']}.")
    return [html.P(" ".join(said), id="exp-analysis-unit")] if said else []
