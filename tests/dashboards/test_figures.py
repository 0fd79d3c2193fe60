"""The metric panels stay readable when every arm has the same constant value."""

from __future__ import annotations

from dashboards.figures import metric_intervals


def _row(metric: str, variant: str, mean: float, low: float, high: float) -> dict:
    return {"metric": metric, "variant": variant, "mean": mean, "low": low, "high": high, "n": 9}


def test_a_flat_panel_gets_a_readable_range_and_a_spread_one_keeps_autoscale() -> None:
    # Same value in both arms, intervals of floating-point rounding (seen as ticks like
    # 0.2000000005 on the Experiments page).
    flat = [_row("ted", "control", 0.2, 0.2 - 1e-9, 0.2 + 1e-9),
            _row("ted", "treatment", 0.2, 0.2 - 1.2e-9, 0.2 + 1.2e-9),
            _row("rate", "control", 0.25, 0.19, 0.31),
            _row("rate", "treatment", 0.08, 0.05, 0.13)]
    figure = metric_intervals(flat)
    ted, rate = figure.layout.yaxis, figure.layout.yaxis2
    low, high = ted.range
    assert low < 0.2 - 0.01 and high > 0.2 + 0.01  # a span a reader can see, around the value
    assert rate.range is None  # real spread: plotly scales it


def test_a_long_arm_name_is_shortened_on_its_tick_and_whole_in_its_hover() -> None:
    # A 100-letter arm ran diagonally across the neighbouring panels.
    long = "ärm-mit-einem-sehr-langen-Namen-" + "ü" * 68
    figure = metric_intervals([_row(m, v, 0.2, 0.1, 0.3) for m in ("a", "b")
                               for v in ("control", long)])
    for axis in (figure.layout.xaxis, figure.layout.xaxis2):
        shown = dict(zip(axis.tickvals, axis.ticktext, strict=True))
        assert shown["control"] == "control"
        assert len(shown[long]) <= 16 and "…" in shown[long]
    assert list(figure.data[0].x) == ["control", long]  # the hover's %{x}: the whole name


def test_twenty_arms_upright_ticks_have_room_above_the_next_row() -> None:
    # 20 arms' rotated ticks ran over the second row's panels and their titles.
    arms = ["control", *(f"arm-{i:02d}-x-long-name" for i in range(1, 20))]
    figure = metric_intervals([_row(m, v, 0.2, 0.1, 0.3)
                               for m in ("m1", "m2", "m3", "m4", "m5") for v in arms])
    layout = figure.layout
    assert layout.xaxis.tickangle == -90
    plot_px = layout.height - layout.margin.t - layout.margin.b
    gap_px = (layout.yaxis.domain[0] - layout.yaxis4.domain[1]) * plot_px
    assert gap_px >= 7 * 16 + 30  # the longest tick (16 characters) and the next row's title
    assert layout.margin.b >= 7 * 16  # the last row's ticks too


def test_stage_names_reach_the_stage_plot_escaped_and_never_as_hover_template() -> None:
    from dashboards.plots import stage_errors

    hostile = "<img src=x onerror=alert(1)>%{x}"
    rows = [{"candidate": "c", "version": "1", "slice": "all", "stages": [hostile, "head"],
             "with_truth": 4, "errors": 3, "counts": {hostile: 2, "head": 1},
             "shares": {hostile: 2 / 3, "head": 1 / 3}},
            {"candidate": "right", "version": None, "slice": "all", "stages": ["head"],
             "with_truth": 2, "errors": 0, "counts": {"head": 0}, "shares": {"head": None}}]
    figure = stage_errors(rows, {("c", "1"): "c v1"})
    assert [b.name for b in figure.data] == ["&lt;img src=x onerror=alert(1)&gt;%{x}", "head"]
    assert all("img" not in b.hovertemplate for b in figure.data)
    assert list(figure.data[0].y) == ["c v1"]  # a version with nothing wrong: no bar
    assert list(figure.data[0].customdata[0]) == [2, 3]
    assert stage_errors(rows[1:], {}).layout.annotations  # nothing wrong: said in words
