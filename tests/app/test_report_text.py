"""The terminal renderings of the results and divergence reports: columns as wide as their
widest cell (a 40-letter name keeps every row aligned), and a number candidate's MAE, online
against offline, where an exact match would mean nothing."""

from __future__ import annotations

from typing import Any

from app.cli import columns, shown_width
from app.commands.report_text import divergence_text, results_text

LONG = "iris-variant-with-an-extraordinarily-long-name"


def _results() -> dict[str, Any]:
    variants = [{"name": n, "candidate": c, "version": "1"}
                for n, c in (("control", "iris-onnx"), ("a-very-long-treatment-arm-name", LONG))]
    figures = {"predictions": 1249, "units": 153, "correction_rate": 0.703, "error_rate": 0.0,
               "accuracy_bound": 0.925, "latency_p99_ms": 39.8}
    return {"experiment": {"id": 2, "name": "flowers", "status": "running",
                           "primary_metric": "correction_rate"},
            "decision": {"action": "keep_running", "reasons": []},
            "srm": {"flagged": False, "p_value": 0.6},
            "variants": variants, "metrics": {v["name"]: {"all": figures} for v in variants},
            "comparisons": []}


def test_results_columns_fit_their_longest_name() -> None:
    lines = results_text(_results()).splitlines()
    header = next(line for line in lines if line.startswith("variant"))
    rows = [line for line in lines if line.startswith(("control", "a-very-long"))]
    assert len(rows) == 2
    end = header.index("predictions") + len("predictions")  # right-aligned figures
    assert all(row[end - 4:end] == "1249" for row in rows), rows
    start = header.index("candidate")
    assert [row[start:].split()[0] for row in rows] == ["iris-onnx", LONG]


def _slice(cand: str, slice_: str, **rest: Any) -> dict[str, Any]:
    return {"candidate": cand, "version": "1", "slice": slice_, "gap": None, "p_value": None,
            "flagged": False, "mae_gap": None, **rest}


def test_divergence_shows_a_number_candidates_mae_and_aligns_long_names() -> None:
    gap = {"online_mae": 9.873, "offline_mae": 9.974, "online_n": 261, "offline_n": 100,
           "relative": -0.0102, "p_value": 0.8, "flagged": False}
    slices = [
        _slice(LONG, "all", gap=0.025, offline={"n": 30, "exact_match": 0.9},
               online={"n": 1249, "accuracy_bound": 0.925}),
        _slice("iris-onnx", "a-slice-with-a-long-name-too", gap=0.1,
               offline={"n": 30, "exact_match": 0.8}, online={"n": 12, "accuracy_bound": 0.9}),
        _slice("price-1", "all", mae_gap=gap, offline={"n": 100, "exact_match": None,
                                                       "mae": 9.974},
               online={"n": 523, "accuracy_bound": 0.501, "mae": 9.873}),
        _slice("price-1", "store #12", offline={"n": None, "exact_match": None},
               online={"n": 5, "accuracy_bound": 0.6, "mae": 12.54})]
    report = {"experiment_id": 3, "tolerance": 0.02, "alpha": 0.05, "findings": [],
              "slices": slices, "stage_attribution": {"rows": []}}
    lines = divergence_text(report).splitlines()
    header = next(line for line in lines if line.startswith("candidate") and "offline" in line)
    end = header.index("online<=") + len("online<=")
    rows = [line for line in lines if line.startswith((LONG, "iris-onnx"))]
    assert [row[end - 5:end] for row in rows] == ["0.925", "0.900"], rows
    price = [line for line in lines if line.startswith("price-1")]
    assert len(price) == 2 and "0.501" not in "".join(price)  # no accuracy for numbers
    assert "9.974" in price[0] and "9.873" in price[0] and "-1.0%" in price[0]
    assert "12.54" in price[1]
    assert any("offline MAE" in line and "online MAE" in line for line in lines)


def test_wide_characters_keep_columns_aligned_on_a_terminal() -> None:
    table = columns(["slice", "n", "flagged"], [["地域-0001-ñandú", "12", "no"],
                                                ["plain", "3", "yes"],
                                                ["e\u0301te\u0301", "1", "no"]], right={1})
    header, *rows = table.splitlines()
    # Where the terminal shows each row's last column: CJK counts two, a combining mark none.
    starts = {shown_width(line[:line.rindex(" ") + 1]) for line in rows}
    assert starts == {shown_width(header[:header.index("flagged")])}, table
    assert shown_width("地域") == 4 and shown_width("e\u0301") == 1


def test_results_say_what_the_figures_leave_out() -> None:
    report = {**_results(), "analysis_unit_note": "units sent up to 8.2 predictions each: ...",
              "slice_choice": {"shown": 50, "left_out": 1950, "left_out_predictions": 3900,
                               "max_slices": 50}}
    text = results_text(report)
    assert "  note: units sent up to 8.2 predictions each" in text
    assert "the 50 busiest shown; 1950 more (3900 predictions) count only in 'all'" in text
    plain = results_text({**_results(), "analysis_unit_note": None, "slice_choice": {
        "shown": 3, "left_out": 0, "left_out_predictions": 0, "max_slices": 50}})
    assert "note:" not in plain and "busiest shown" not in plain
    assert "tested per unit" not in plain
    per_unit = results_text({**_results(), "analysis_unit": {
        "per_unit": ["correction_rate", "exact_match"], "per_prediction": {}}})
    assert "  tested per unit (delta method; n counts units): correction_rate, exact_match" \
        in per_unit
