"""The weekly report's charts stay readable at a real service's scale: thousands of slices,
several candidates, 100-letter names. Each chart is read off the matplotlib figure the report
would render (its tick labels, its legend), not off the PNG."""

from __future__ import annotations

from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from dashboards.report import plots, render

LONG = "iris-variant-with-an-extraordinarily-long-candidate-name-to-test-layout-of-pages-x"
CANDIDATES = ("iris-onnx", "iris-b", "iris-c", LONG)


def _read(fig: Figure) -> dict[str, Any]:
    """What a reader sees of a figure: its title, its name labels, whether the legend and the
    labels fit, and where the value axis starts."""
    fig.tight_layout()
    fig.canvas.draw()
    ax = fig.axes[0]
    upright = isinstance(ax.xaxis.get_major_locator(), FixedLocator)  # names along x
    names = ax.get_xticklabels() if upright else ax.get_yticklabels()
    boxes = sorted((t.get_window_extent() for t in names if t.get_text()), key=lambda b: b.y0)
    legend = ax.get_legend()
    inside = legend is None or fig.bbox.contains(*legend.get_window_extent().p0) and \
        fig.bbox.contains(*legend.get_window_extent().p1)
    return {"title": ax.get_title(), "labels": [t.get_text() for t in names],
            "legend_inside": inside,
            "overlap": any(a.overlaps(b) for a, b in zip(boxes, boxes[1:], strict=False)),
            "low": min(ax.get_ylim() if upright else ax.get_xlim())}


@pytest.fixture
def charts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every chart the report renders from here on, as :func:`_read` sees it."""
    seen: list[dict[str, Any]] = []

    def capture(fig: Figure) -> str:
        seen.append(_read(fig))
        return "data:image/svg+xml;base64,"

    monkeypatch.setattr(plots, "_uri", capture)
    return seen


def _slice_row(cand: str, slice_: str, n: int) -> dict[str, Any]:
    return {"candidate": cand, "version": "1", "slice": slice_, "gap": 0.01, "p_value": None,
            "flagged": False, "mae_gap": None,
            "offline": {"n": 100, "exact_match": 0.9 if slice_ == "all" else None},
            "online": {"n": n, "accuracy_bound": 0.91, "accuracy_ci": [0.8, 0.95]}}


def _experiment(slices: int) -> dict[str, Any]:
    """A four-arm experiment whose every candidate has `slices` one-answer slices."""
    arms = ("control", "β-treatment", "biased-c", "ärm-mit-einem-sehr-langen-Namen-" + "ü" * 60)
    rows = []
    for cand in CANDIDATES:
        rows.append(_slice_row(cand, "all", 900))
        rows += [_slice_row(cand, f"région-{i:04d}-ñandú-ñandú-ñandú", 1 + i % 3)
                 for i in range(slices)]
    figure = {"value": 0.3, "low": 0.2, "high": 0.4}
    return {"id": 2, "primary_metric": "correction_rate", "primary_interval": "Wilson interval",
            "outcome_metrics": [],
            "figures": {a: {"correction_rate": 0.3, "correction_rate_ci": [0.2, 0.4]}
                        for a in arms},
            "primary": {a: figure for a in arms}, "divergence_slices": rows,
            "trends": [{"variant": a, "metric": "correction_rate", "previous": 0.2,
                        "current": 0.3, "change": 0.1, "primary": True} for a in arms]}


def _data(experiments: list[dict[str, Any]], by_slice: dict[str, int]) -> dict[str, Any]:
    days = [{"day": f"2026-11-{d}", "queued": 0, "labeled": 0} for d in range(23, 30)]
    return {"experiments": experiments, "relabel": {"days": days},
            "voc": {"by_candidate": {c: 10 for c in CANDIDATES}, "by_slice": by_slice}}


def test_corrections_by_slice_keeps_the_top_slices_and_counts_the_rest(
        charts: list[dict[str, Any]]) -> None:
    by_slice = {f"slice-{i:04d}": 2200 - i for i in range(2200)}
    render.build_plots(_data([], by_slice))
    (chart,) = [c for c in charts if "corrections by slice" in c["title"]]
    assert len(chart["labels"]) == 16  # 15 slices and one bar for the rest
    assert chart["labels"][:2] == ["slice-0000", "slice-0001"]  # the most corrected first
    assert chart["labels"][-1] == "2,185 other slices"
    assert not chart["overlap"]


def test_offline_online_shows_every_candidate_with_its_busiest_slices(
        charts: list[dict[str, Any]]) -> None:
    render.build_plots(_data([_experiment(500)], {}))
    (chart,) = [c for c in charts if c["title"].startswith("offline vs online")]
    for cand in CANDIDATES:
        assert any(label.startswith(cand[:10]) for label in chart["labels"]), cand
    assert len(chart["labels"]) <= len(CANDIDATES) * 5  # `all` and a few slices each
    assert all("\n" not in label and len(label) <= 50 for label in chart["labels"])
    assert chart["legend_inside"] and not chart["overlap"]


def test_long_names_are_shortened_with_an_ellipsis(charts: list[dict[str, Any]]) -> None:
    render.build_plots(_data([_experiment(3)], {LONG: 3, "a": 1}))
    results = next(c for c in charts if "this week" in c["title"]
                   and "week over week" not in c["title"])
    long_arm = [label for label in results["labels"] if label.startswith("ärm")]
    assert long_arm and all(len(label) <= 24 and "…" in label for label in long_arm)
    candidates = next(c for c in charts if c["title"] == "corrections by candidate")
    assert any("…" in label and len(label) <= 24 for label in candidates["labels"])
    assert all(not c["overlap"] and c["legend_inside"] for c in charts)


def test_plots_of_counts_start_at_zero(charts: list[dict[str, Any]]) -> None:
    week = _data([], {})
    render.build_plots(week)  # no relabeling this week: every count is 0, no chart drawn
    assert "relabel items per day" not in [c["title"] for c in charts]
    week["relabel"]["days"][3]["labeled"] = 1
    render.build_plots(week)
    relabel = next(c for c in charts if c["title"] == "relabel items per day")
    assert relabel["low"] == 0
    plots.bars(["control", "treatment"], [0.0, 0.0], "correction rate")
    assert charts[-1]["low"] == 0


def test_the_primary_chart_says_which_variants_it_has_no_bar_for_and_why() -> None:
    # The chart drew nothing for a variant without a figure, and an exact match of 0 (every
    # truth a correction) with no word on what it is taken over.
    e = _experiment(0)
    e["primary_metric"] = "exact_match"
    e["primary"] = {"control": {"value": 0.0, "low": 0.0, "high": 0.2},
                    "β-treatment": {"value": None, "low": None, "high": None},
                    "biased-c": {"value": None, "low": None, "high": None}}
    e["figures"]["biased-c"] = {"predictions": 0}
    e["figures"]["β-treatment"] = {"predictions": 12}
    notes = render.primary_notes(e)
    assert notes[0] == "No bar for biased-c: no predictions this week."
    assert notes[1].startswith("No bar for β-treatment: no exact_match this week (it needs "
                               "predictions with a known truth")
    assert "0 by construction where every truth is a correction" in notes[2]
    assert render.build_plots(_data([e], {}))["notes"][e["id"]] == notes
    assert "{% for n in plots.notes[e.id] %}" in render.TEMPLATE
    e["primary_metric"], e["outcome_metrics"] = "basket_value", ["basket_value"]
    assert render.primary_notes(e)[1].endswith("(it needs outcomes reported for its units).")
