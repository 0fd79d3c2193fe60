"""Plotly figures of the pages. Names that users chose (arms, candidates, slices) pass through
:func:`plain` first: plotly reads a few HTML tags in its labels, and those must show as text."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.colors import COLORS
from dashboards.report.labels import shorten

COLUMNS = 3
TICK_CHARS = 16  # an arm's tick in a third of the page's width
UPRIGHT_AFTER = 4  # more arms than this: their ticks stand upright
TICK_PX = 7  # about a tick character's width, in pixels
ROW_PX = 240  # a row of panels, without its ticks
TITLE_PX = 40  # room for the next row's panel titles


def plain(text: Any) -> str:
    """Text for a plotly label, shown exactly as written (its tags escaped)."""
    return html.escape(str(text), quote=False)


def metric_intervals(rows: list[dict[str, Any]]) -> go.Figure:
    """One panel per metric: each variant's mean with its interval as error bars, ticked with
    shortened arm names (the hover names the arm in full)."""
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_metric[row["metric"]].append(row)
    names = list(by_metric)
    if not names:
        return _empty("no data in this slice and time window")
    rows_n = math.ceil(len(names) / COLUMNS)
    variants = sorted({r["variant"] for r in rows}, key=[r["variant"] for r in rows].index)
    # Many arms' ticks do not fit across a panel and stand upright: each row keeps room below
    # it for the longest (20 arms' ticks ran over the next row's panels and titles).
    upright = len(variants) > UPRIGHT_AFTER
    ticks_px = (TICK_PX * max(len(shorten(v, TICK_CHARS)) for v in variants) + 10
                if upright else 20)
    gap_px = ticks_px + TITLE_PX  # a row's ticks, then the next row's titles
    plot_px = ROW_PX * rows_n + gap_px * (rows_n - 1)
    bottom = 30 + (ticks_px if upright else 0)  # the last row's ticks
    figure = make_subplots(rows=rows_n, cols=COLUMNS, subplot_titles=[plain(n) for n in names],
                           vertical_spacing=gap_px / plot_px if rows_n > 1 else 0.2)
    for i, name in enumerate(names):
        points = by_metric[name]
        figure.add_trace(go.Scatter(
            x=[plain(p["variant"]) for p in points], y=[p["mean"] for p in points],
            mode="markers", marker={"size": 10, "color": [
                COLORS[variants.index(p["variant"]) % len(COLORS)] for p in points]},
            error_y={"type": "data", "symmetric": False,
                     "array": [_above(p) for p in points],
                     "arrayminus": [_below(p) for p in points]},
            customdata=[[p["n"]] for p in points], showlegend=False,
            hovertemplate="%{x}: %{y:.4g} (n = %{customdata[0]})<extra></extra>",
        ), row=i // COLUMNS + 1, col=i % COLUMNS + 1)
        flat = _flat_range(points)
        if flat is not None:
            figure.update_yaxes(range=flat, row=i // COLUMNS + 1, col=i % COLUMNS + 1)
        # A tick is a shortened name (a 100-letter arm runs across the next panel otherwise);
        # the point's hover keeps the whole one.
        figure.update_xaxes(tickvals=[plain(p["variant"]) for p in points],
                            ticktext=[plain(shorten(p["variant"], TICK_CHARS)) for p in points],
                            tickangle=-90 if upright else None,
                            row=i // COLUMNS + 1, col=i % COLUMNS + 1)
    figure.update_layout(height=plot_px + 40 + bottom,
                         margin={"t": 40, "l": 40, "r": 20, "b": bottom})
    return figure


def _flat_range(points: list[dict[str, Any]]) -> list[float] | None:
    """A readable y range for a panel whose values and intervals all but coincide (every arm
    with the same constant value): autoscaling would zoom into floating-point rounding and
    label ticks like 0.2000000005. None where the values really spread."""
    values = [v for p in points for v in (p["mean"], p.get("low"), p.get("high"))
              if v is not None and math.isfinite(v)]
    if not values:
        return None
    low, high = min(values), max(values)
    if high - low > 1e-6 * max(1.0, abs(low), abs(high)):
        return None
    pad = max(abs(high) * 0.1, 0.05)
    return [low - pad, high + pad]


def sequential(series: list[dict[str, Any]], metric: str) -> go.Figure:
    """Each treatment's difference from control over time with its always-valid interval."""
    if not series:
        return _empty("no comparison yet")
    figure = go.Figure()
    treatments = list(dict.fromkeys(r["treatment"] for r in series))
    for i, name in enumerate(treatments):
        rows = [r for r in series if r["treatment"] == name]
        color = COLORS[(i + 1) % len(COLORS)]
        x = [r["until"] for r in rows]
        figure.add_trace(go.Scatter(
            x=x, y=[r["difference"] for r in rows], mode="lines+markers", name=plain(name),
            line={"color": color},
            error_y={"type": "data", "symmetric": False,
                     "array": [_gap(r["high"], r["difference"]) for r in rows],
                     "arrayminus": [_gap(r["difference"], r["low"]) for r in rows]}))
    figure.add_hline(y=0, line={"color": "#888", "dash": "dot"})
    figure.update_layout(height=320, margin={"t": 40, "l": 50, "r": 20, "b": 40},
                         title=f"{plain(metric)}: treatment − control, always-valid interval",
                         xaxis_title="data up to (UTC)", yaxis_title="difference")
    return figure


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a - b, 0.0)


def _above(p: dict[str, Any]) -> float | None:
    return _gap(p["high"], p["mean"])


def _below(p: dict[str, Any]) -> float | None:
    return _gap(p["mean"], p["low"])


def empty(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    return _empty(message)


def _empty(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=plain(message), showarrow=False, x=0.5, y=0.5, xref="paper",
                          yref="paper")
    figure.update_layout(height=160, xaxis={"visible": False}, yaxis={"visible": False})
    return figure
