"""Operations: a long candidate name is shortened in the legend, as the other figures shorten
names, so it cannot squeeze the panels; the hover still names it whole."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboards import plots
from dashboards.report.labels import shorten

LONG = "zlong-name-" * 8 + "abcdefghijkl"  # 100 characters, the name limit


def test_a_long_candidate_name_is_short_in_the_legend() -> None:
    hour = datetime(2026, 11, 20, 10, tzinfo=UTC)
    rows = [{"candidate": name, "hour": hour, "predictions": 10, "requests_per_s": 0.1,
             "error_rate": 0.0, "latency_p50_ms": 5.0, "latency_p95_ms": 9.0,
             "latency_p99_ms": 9.5} for name in (LONG, "iris-b")]
    figure = plots.operations(rows)
    names = {t.name for t in figure.data if t.showlegend}
    assert names == {shorten(LONG), "iris-b"} and len(shorten(LONG)) < len(LONG)
    assert any(t.hovertemplate.startswith(LONG) for t in figure.data)


def test_series_have_colours_of_their_own() -> None:
    """Seven colours gave two of nine serving candidates one on Operations; an experiment has up
    to 20 arms. The report draws with the same colours."""
    from dashboards import colors
    from dashboards.report import plots as report_plots

    assert len(set(colors.COLORS)) == len(colors.COLORS) >= 20
    assert colors.COLORS[:7] == ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2")
    assert report_plots.COLORS is colors.COLORS
