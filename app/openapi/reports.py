"""Schemas of the two evaluation reports, /results and /divergence: the figures each output type
adds (a label candidate's confusion counts and prediction shift, a number candidate's error
comparisons and MAE against offline) are spelled out; the rest stays an open object."""

from __future__ import annotations

from typing import Any

NUM = {"type": "number"}
NUM_OR_NULL = {"type": ["number", "null"]}
INT = {"type": "integer"}
STR = {"type": "string"}
STR_OR_NULL = {"type": ["string", "null"]}
OPEN = {"type": "object"}
VERSION = {"type": ["string", "null"],
           "description": "the candidate version these figures are of (the one its experiment "
                          "arm pinned; null for traffic from before versions were pinned): two "
                          "arms may run two versions of one name, each held against its own "
                          "offline results"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None,
            description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "required": list(required),
                           "properties": {**required, **(optional or {})}}
    if description:
        out["description"] = description
    return out


_MATRIX = {"type": "array", "items": {"type": "array", "items": INT}}

CONFUSION = _object({
    "classes": {"type": "array", "items": STR},
    "counts": {**_MATRIX, "description": "rows: predicted class; columns: true class"},
    "with_truth": {**_MATRIX, "description": "predictions with a truth only"},
    "uncorrected": {"type": ["object", "null"], "additionalProperties": INT},
    "uncorrected_counted_as": {"enum": ["right", None]},
    "assumption": STR, "predictions": INT, "truths": INT, "truths_outside_table": INT,
    "accuracy": NUM_OR_NULL, "accuracy_with_truth": NUM_OR_NULL,
}, description="a label candidate's confusion counts; uncorrected served answers count as "
               "right, as accuracy_bound does (null for shadows)")

SHIFT_CLASS = _object({
    "label": STR, "online_count": INT, "online_share": NUM, "offline_share": NUM,
    "difference": NUM,
    "difference_ci": {"type": ["array", "null"], "items": NUM, "minItems": 2, "maxItems": 2},
    "residual": NUM_OR_NULL, "p_value": NUM_OR_NULL, "p_value_holm": NUM_OR_NULL,
    "shifted": {"type": "boolean"},
})

PREDICTION_SHIFT = _object({
    "test": STR, "online_n": INT, "offline_n": {"type": ["integer", "null"]},
    "chi_square": NUM_OR_NULL, "dof": {"type": ["integer", "null"]}, "p_value": NUM_OR_NULL,
    "psi": NUM, "shifted": {"type": "boolean"}, "error": STR_OR_NULL,
    "classes": {"type": "array", "items": _ref("ShiftClass")},
}, {"analysis_unit": {"enum": ["unit", "prediction"], "description": "what the test takes as "
                      "one independent observation: 'unit' (a Wald test over the units' class "
                      "counts, where some unit gave several answers) or each answer"},
    "online_units": {"type": ["integer", "null"]},
    "unit_note": {"type": ["string", "null"], "description": "why a test that units' several "
                  "answers call for stayed per answer"}},
    description="online predicted-class shares against the offline label shares: chi-square "
                "test of homogeneity, PSI, per-class differences with Holm-adjusted residuals")

LABEL_VARIANT = _object({
    "candidate": STR, "version": VERSION, "classes": {"type": "array", "items": STR},
    "slices": {"type": "object", "additionalProperties": _object({
        "confusion": _ref("Confusion"),
        "prediction_shift": {"oneOf": [_ref("PredictionShift"), {"type": "null"}]},
        "answer_shift": {"oneOf": [_ref("PredictionShift"), {"type": "null"}]}})},
})

COMPARISON = _object({
    "control": STR, "treatment": STR, "metric": STR,
    "kind": {"enum": ["proportion", "mean", "ratio"], "description": "the test's kind: a rate "
             "tested per unit is a mean of its units' linearised values"},
    "analysis_unit": {"enum": ["unit", "prediction"], "description": "what the test takes as "
                      "one independent observation (n_control and n_treatment count them)"},
    "slice": STR, "difference": NUM_OR_NULL, "ci_low": NUM_OR_NULL, "ci_high": NUM_OR_NULL,
    "p_value": NUM_OR_NULL, "lower_is_better": {"type": "boolean"},
    "verdict": {"enum": ["better", "worse", "inconclusive"]},
}, {"caveat": {"type": ["string", "null"], "description": "what the figures cannot say "
               "alone: a latency lower than control's while the arm fails more often (failed "
               "requests count in latency)"}},
    description="one treatment x metric x slice against the control; number candidates add "
               "absolute_error and squared_error (Welch, lower is better)")

VARIANT = _object({
    "name": STR, "arm": STR_OR_NULL, "candidate": STR, "version": VERSION,
    "shadow": {"type": "boolean"},
    "weight": NUM_OR_NULL,
    "output_type": {"enum": ["label", "text", "latex", "number", "json", None]},
})

SLICE_CHOICE = _object({
    "shown": INT, "left_out": INT, "left_out_predictions": INT, "max_slices": INT},
    description="per-slice figures cover slice 'all' and the max_slices slices with the most "
                "predictions; the slices and predictions left out still count in 'all'")
WINDOW = {"type": ["object", "null"], "properties": {"since": STR_OR_NULL, "until": STR_OR_NULL},
          "description": "the whole UTC hours the figures cover (since/until widened to the "
                         "aggregates' grain); null without since or until"}
RESULTS = _object({
    "experiment": OPEN, "alpha": NUM, "slice_choice": SLICE_CHOICE, "window": WINDOW,
    "analysis_unit": _object({
        "per_unit": {"type": "array", "items": STR},
        "per_prediction": {"type": "object", "additionalProperties": STR}},
        description="the built-in metrics tested per unit (some unit sent several requests: "
                    "the delta method over each unit's sums) and those tested per prediction, "
                    "with why (a time window; predictions stored before per-unit sums)"),
    "analysis_unit_note": {**STR_OR_NULL, "description": "set where units send several "
                           "requests each yet a built-in metric counts predictions"},
    "variants": {"type": "array", "items": _ref("ResultsVariant")},
    "metrics": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": OPEN}},
    "label_metrics": {"type": "object", "additionalProperties": _ref("LabelVariantMetrics")},
    "trustworthy": {"type": "boolean"}, "srm": {"type": ["object", "null"]},
    "comparisons": {"type": "array", "items": _ref("Comparison")},
    "latency": {"type": "array"}, "power": {
        "type": "object", "additionalProperties": _object({
            "mde": {**NUM_OR_NULL, "description": "the smallest absolute difference of the "
                    "primary metric the arms detect now, fixed-horizon (negative: only a fall "
                    "is detectable)"},
            "target_relative_effect": NUM, "per_arm": {"type": ["integer", "null"]},
            "still_needed": {"type": ["integer", "null"]}, "power_at_target": NUM_OR_NULL,
            "mde_relative": {**NUM_OR_NULL, "description": "the size of the smallest relative "
                             "change the current arms detect, the way the primary metric "
                             "improves (a fall for a lower-is-better one), fixed-horizon"},
            "test": STR, "error": STR_OR_NULL},
            description="per treatment arm: the sample per arm the always-valid test needs "
                        "for the target relative effect on the primary metric, what is left, "
                        "and the power the arms have now")},
    "error": STR_OR_NULL,
    "decision": _object({"action": {"enum": ["ship", "keep_running", "stop", "inconclusive"]},
                         "arm": STR_OR_NULL, "reasons": {"type": "array", "items": STR},
                         "arms": {"type": "object", "additionalProperties": STR}}),
})
RESULTS["properties"]["online_accuracy"] = _object(
    {"note": STR,
     "conflicts": {**INT, "minimum": 0,
                   "description": "the experiment's labeled inputs whose verified labels "
                                  "disagree: no truth, left out of the audit and labeled "
                                  "figures (and of dataset exports), until relabeled"},
     "variants": {"type": "object", "additionalProperties": OPEN},
     "candidates": {"type": "object", "additionalProperties": OPEN,
                    "description": "audit figures per candidate, summed over its arms: keyed "
                                   "by the candidate's name, or by 'name vVERSION' for each "
                                   "version where the arms run two versions of one name"}},
    description="accuracy from verified labels per variant and slice: the unbiased audit "
                "figure (Wilson interval), all labels (biased low), and the correction bound; "
                "each names its sample and bias")
_DIFFERENCE = _object({"difference": NUM_OR_NULL, "interval": {"type": "array"},
                       "p": NUM_OR_NULL, "p_holm": NUM_OR_NULL, "error": STR_OR_NULL})
RESULTS["properties"]["units_in_several_arms"] = {
    "type": ["object", "null"], "required": ["units", "share", "note"],
    "properties": {"units": {**INT, "minimum": 0}, "share": NUM, "note": STR_OR_NULL,
                   "first_arm": {"type": "array", "items": _object({
                       "metric": STR, "primary": {"type": "boolean"},
                       "arms": {"type": "object", "additionalProperties": OPEN},
                       "comparisons": {"type": "array", "items": _object({
                           "arm": STR, "left_out": _DIFFERENCE, "first_arm": _DIFFERENCE})}}),
                       "description": "where units moved: each outcome metric with them "
                                      "counted in their first arm (all their outcomes), beside "
                                      "the same test with them left out; `p` unadjusted, "
                                      "`p_holm` Holm-adjusted over that side's comparisons "
                                      "(every metric and treatment)"}},
    "description": "units served in more than one arm (moved by a canary step or new weights), "
                   "left out of every arm's outcome metrics; null without outcome metrics"}

MAE_GAP = _object({
    "online_mae": NUM, "offline_mae": NUM, "online_n": INT, "offline_n": INT,
    "difference": NUM, "relative": NUM_OR_NULL, "tolerance": NUM, "t": NUM_OR_NULL,
    "df": NUM_OR_NULL, "p_value": NUM_OR_NULL, "flagged": {"type": "boolean"},
    "error": STR_OR_NULL, "analysis_unit": {"enum": ["prediction", "unit"]},
    "online_units": {"type": ["integer", "null"]},
}, description="a number candidate's online MAE against (1 + tolerance) x its offline MAE: "
               "Welch's one-sided t test, over units where units sent several requests")

FINDING = _object({
    "kind": {"enum": ["prediction_shift", "traffic_mix", "accuracy_gap", "error_gap"]},
    "candidate": STR, "version": VERSION, "slice": STR, "severity": NUM,
    "p_value": NUM_OR_NULL, "explanation": STR, "rank": INT,
}, {"label": STR, "p_value_unadjusted": NUM_OR_NULL, "classes_tested": INT,
    "explained_by": {"enum": ["traffic_mix", "failures", None]},
    "explains_gap": {"type": "boolean"}},
    description="its explanation names the candidate as 'name vVERSION' where the report "
                "holds two versions of the name")

DIVERGENCE = _object({
    "experiment_id": INT, "alpha": NUM, "tolerance": NUM, "window": WINDOW,
    "slice_choice": SLICE_CHOICE,
    "slices": {"type": "array", "items": _object({
        "candidate": STR, "version": VERSION, "slice": STR, "offline": OPEN, "online": OPEN,
        "gap": NUM_OR_NULL, "p_value": NUM_OR_NULL, "flagged": {"type": "boolean"},
        "mae_gap": {"oneOf": [_ref("MaeGap"), {"type": "null"}]}})},
    "traffic_mix": {"type": "array", "items": _object({"candidate": STR, "version": VERSION})},
    "prediction_shift": {"type": "array", "items": _object(
        {"candidate": STR, "version": VERSION, "output_shares": OPEN,
         "online_labels": {"type": "array", "items": OPEN}},
        {"offline_labels": {"allOf": [_ref("PredictionShift"), _object({
            "label_shares": OPEN, "top_label": STR, "excess": NUM})]},
         "online_analysis_unit": {"enum": ["unit", "prediction"], "description": "the online "
                                  "McNemar tests' observation: 'unit' (Durkalski's test over "
                                  "units) where units sent several answers, else each answer"}})},
    "label_metrics": {"type": "array", "items": _object({
        "candidate": STR, "version": VERSION,
        "confusion": {"type": "object", "additionalProperties": _ref("Confusion")}})},
    "findings": {"type": "array", "items": _ref("Finding")},
    "stage_attribution": _object({
        "experiment_id": {"type": ["integer", "null"]},
        "stages": {"type": "array", "items": STR},
        "rows": {"type": "array", "items": _object({
            "candidate": STR, "version": VERSION, "slice": STR,
            "stages": {"type": "array", "items": STR},
            "with_truth": INT, "errors": INT, "counts": OPEN, "shares": OPEN,
            "top_stage": {"type": ["string", "null"]}})}}),
})

REPORT_SCHEMAS: dict[str, Any] = {
    "Confusion": CONFUSION, "ShiftClass": SHIFT_CLASS, "PredictionShift": PREDICTION_SHIFT,
    "LabelVariantMetrics": LABEL_VARIANT, "Comparison": COMPARISON, "ResultsVariant": VARIANT,
    "ResultsReport": RESULTS, "MaeGap": MAE_GAP, "Finding": FINDING,
    "DivergenceReport": DIVERGENCE,
}
