"""Plotly figures of the Offline-vs-online, Operations and Inspector pages. Every name a user
chose passes through :func:`dashboards.figures.plain` (plotly reads a few tags in labels)."""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.colors import COLORS
from dashboards.figures import empty, plain
from dashboards.report.labels import shorten
from dashboards.report.render import number_candidates
from evaluation.candidate_facts import shown_names

GAP_SCALE = 0.25  # the heatmap's colours saturate at a 25-point accuracy gap
MAE_SCALE = 0.5  # and at an online MAE 50% above (or below) the offline one


@dataclass(frozen=True)
class _Panel:
    """One heatmap of the page: which rows, the figure a cell shows and how it is coloured."""

    rows: list[dict[str, Any]]
    value: Callable[[dict[str, Any]], float | None]
    hover: Callable[[dict[str, Any]], str]
    title: str
    scale: float
    colors: str


def _short(label: str) -> str:
    """A tick of a plain (escaped) name, shortened as it reads: ``&amp;`` is one letter."""
    return plain(shorten(html.unescape(label)))


def _ref(r: dict[str, Any]) -> tuple[str, Any]:
    return r["candidate"], r.get("version")


def _mae_relative(r: dict[str, Any]) -> float | None:
    return (r.get("mae_gap") or {}).get("relative")


def gap_heatmap(slices: list[dict[str, Any]],
                names: dict[tuple[str, Any], str] | None = None) -> go.Figure:
    """The gap per candidate version (rows: the name, or ``name vX`` where two versions of it
    ran: `names`, the page's, else those of all `slices`, never of the cells a panel keeps,
    where a version without offline results would leave its twin bare) and slice (columns):
    online accuracy bound minus offline exact match for label and
    text candidates; for number candidates, whose answers are never an exact match, the online
    MAE against the offline MAE (relative; red: worse online). The hover shows both sides with
    the online interval. ``customdata`` carries the raw slice name, which a click hands to the
    drill-down."""
    numbers = number_candidates(slices)
    panels = [p for p in (
        _Panel([r for r in slices if r["gap"] is not None and _ref(r) not in numbers],
               lambda r: r["gap"], _cell_text,
               "accuracy: online bound − offline exact match", GAP_SCALE, "RdBu"),
        _Panel([r for r in slices if _ref(r) in numbers and _mae_relative(r) is not None],
               _mae_relative, _mae_text, "numbers: online MAE ÷ offline MAE − 1", MAE_SCALE,
               "RdBu_r")) if p.rows]
    if not panels:
        return empty("no candidate has both offline results and online traffic")
    shown = names or shown_names(slices)
    heights = [len({_ref(r) for r in p.rows}) for p in panels]
    figure = make_subplots(rows=len(panels), cols=1, row_heights=heights,
                           vertical_spacing=0.3 / len(panels) if len(panels) > 1 else 0,
                           subplot_titles=[p.title for p in panels] if len(panels) > 1 else None)
    top = 1.0
    for i, (panel, rows_n) in enumerate(zip(panels, heights, strict=True)):
        share = rows_n / sum(heights)
        trace = _heatmap(panel, shown, y=top - share / 2, length=share)
        figure.add_trace(trace, row=i + 1, col=1)
        # Ticks are shortened names (a 100-letter one takes half the width otherwise); the
        # hover names the candidate and the slice in full.
        figure.update_yaxes(tickvals=list(trace.y), ticktext=[_short(y) for y in trace.y],
                            row=i + 1, col=1)
        figure.update_xaxes(tickvals=list(trace.x), ticktext=[_short(x) for x in trace.x],
                            row=i + 1, col=1)
        top -= share
    figure.update_layout(height=140 + 48 * sum(heights) + 60 * (len(panels) - 1),
                         margin={"t": 40, "l": 120, "r": 20, "b": 60},
                         title=(panels[0].title if len(panels) == 1 else "online − offline")
                         + " (click a cell)")
    return figure


def _heatmap(panel: _Panel, shown: dict[tuple[str, Any], str], y: float,
             length: float) -> go.Heatmap:
    cands = list(dict.fromkeys(_ref(r) for r in panel.rows))
    names = sorted({r["slice"] for r in panel.rows}, key=lambda s: (s != "all", s))
    cell = {(r["candidate"], r.get("version"), r["slice"]): r for r in panel.rows}
    z, text, custom = [], [], []
    for cand in cands:
        zr, tr, cr = [], [], []
        for s in names:
            r = cell.get((*cand, s))
            zr.append(None if r is None else panel.value(r))
            tr.append("" if r is None else panel.hover(r))
            cr.append(s)
        z.append(zr)
        text.append(tr)
        custom.append(cr)
    return go.Heatmap(
        z=z, x=[plain(s) for s in names], y=[plain(shown[c]) for c in cands], text=text,
        customdata=custom, texttemplate="%{z:+.1%}", colorscale=panel.colors, zmid=0,
        zmin=-panel.scale, zmax=panel.scale,
        colorbar={"title": "gap", "tickformat": "+.0%", "y": y, "len": length * 0.9},
        hovertemplate="%{y} on %{x}<br>%{text}<extra></extra>")


def _cell_text(r: dict[str, Any]) -> str:
    on, off = r["online"], r["offline"]
    low, high = on["accuracy_ci"] or (None, None)
    interval = f" [{low:.1%}, {high:.1%}]" if low is not None else ""
    p = "" if r["p_value"] is None else f"<br>p = {r['p_value']:.3g}"
    flag = "<br>flagged" if r["flagged"] else ""
    return (f"offline {off['exact_match']:.1%} (n = {off['n'] or 0})<br>online "
            f"{on['accuracy_bound']:.1%}{interval} (n = {on['n']}){p}{flag}")


def _mae_text(r: dict[str, Any]) -> str:
    gap, on = r["mae_gap"], r["online"]
    low, high = on.get("mae_interval") or (None, None)
    interval = f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else ""
    p = "" if gap["p_value"] is None else f"<br>p (Welch) = {gap['p_value']:.3g}"
    flag = "<br>flagged" if gap["flagged"] else ""
    units = f", {gap['online_units']} units" if gap.get("online_units") else ""
    return (f"offline MAE {gap['offline_mae']:.4g} (n = {gap['offline_n']})<br>online MAE "
            f"{gap['online_mae']:.4g}{interval} (n = {gap['online_n']} corrected{units})"
            f"{p}{flag}")


def shares(shift: dict[str, Any], name: str | None = None) -> go.Figure:
    """A candidate's online output shares beside the offline label shares (or, without them,
    the online label shares its corrections imply); `name` is how the page names it (with its
    version where two versions of the name ran)."""
    outputs = shift["output_shares"]
    offline = (shift.get("offline_labels") or {}).get("label_shares")
    other = offline if offline else {r["label"]: r["label_share"]
                                     for r in shift.get("online_labels", [])}
    labels = sorted(set(outputs) | set(other))
    figure = go.Figure([
        go.Bar(name="online outputs", x=[plain(x) for x in labels],
               y=[outputs.get(x, 0) for x in labels], marker_color=COLORS[0]),
        go.Bar(name="offline labels" if offline else "online labels (from corrections)",
               x=[plain(x) for x in labels], y=[other.get(x, 0) for x in labels],
               marker_color=COLORS[1])])
    figure.update_layout(barmode="group", height=260, yaxis_tickformat=".0%",
                         title=f"{plain(name or shift['candidate'])}: prediction distribution",
                         margin={"t": 40, "l": 50, "r": 20, "b": 40})
    return figure


def mix(m: dict[str, Any], name: str | None = None) -> go.Figure:
    """A candidate's traffic mix: slice shares offline and online (`name`: as for shares)."""
    names = m["slices"]
    figure = go.Figure([
        go.Bar(name=name, x=[plain(s) for s in names], y=[m[key].get(s, 0) for s in names],
               marker_color=COLORS[i])
        for i, (name, key) in enumerate((("offline", "offline_shares"),
                                         ("online", "online_shares")))])
    psi = f", PSI {m['psi']:.3g}" if m.get("psi") is not None else ""
    figure.update_layout(barmode="group", height=260, yaxis_tickformat=".0%",
                         title=f"{plain(name or m['candidate'])}: traffic mix{psi}",
                         margin={"t": 40, "l": 50, "r": 20, "b": 40})
    return figure


def stage_errors(rows: list[dict[str, Any]], names: dict[tuple[str, Any], str]) -> go.Figure:
    """Each candidate version's wrong answers by the stage blamed, as shares stacked to 100 %
    (its ``all`` row of the stage attribution; the counts in the hover)."""
    rows = [r for r in rows if r["slice"] == "all" and r["errors"]]
    if not rows:
        return empty("no wrong answer with a truth has a stage to blame yet")
    stages = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    ticks = [_short(plain(names.get(_ref(r)) or r["candidate"])) for r in rows]
    figure = go.Figure([
        go.Bar(name=plain(stage), orientation="h", y=ticks,
               x=[r["shares"].get(stage) or 0 for r in rows],
               customdata=[[r["counts"].get(stage, 0), r["errors"]] for r in rows],
               # The stage's name reaches the hover as data, never as template text.
               hovertemplate="%{y}: %{fullData.name} %{x:.0%} "
                             "(%{customdata[0]} of %{customdata[1]})<extra></extra>",
               marker_color=COLORS[i % len(COLORS)])
        for i, stage in enumerate(stages)])
    figure.update_layout(barmode="stack", height=140 + 40 * len(rows), xaxis_tickformat=".0%",
                         title="wrong answers by the stage blamed",
                         legend_traceorder="normal",  # the pipeline's order, top to bottom
                         margin={"t": 40, "l": 160, "r": 20, "b": 40})
    return figure


# The rate's title says what it divides by: the ledger table's rate divides by other seconds.
OPS_PANELS = (("requests_per_s", "requests / s (over the hour's served seconds)"),
              ("error_rate", "error rate"),
              ("latency_p50_ms", "latency p50 (ms)"), ("latency_p99_ms", "latency p99 (ms)"))


HALF_HOUR = timedelta(minutes=30)


def operations(rows: list[dict[str, Any]]) -> go.Figure:
    """Four panels over the hours: requests per second, error rate, latency p50 and p99, one
    line per candidate."""
    if not rows:
        return empty("no online traffic yet")
    by_cand: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_cand[r["candidate"]].append(r)
    figure = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in OPS_PANELS],
                           vertical_spacing=0.16)
    for i, (cand, points) in enumerate(by_cand.items()):
        for j, (key, _) in enumerate(OPS_PANELS):
            figure.add_trace(go.Scatter(
                x=[p["hour"] for p in points], y=[p[key] for p in points], mode="lines+markers",
                # The legend shortens a long name (a 100-character one squeezed the panels into
                # half the figure); the hover keeps it whole.
                name=_short(plain(cand)), legendgroup=cand, showlegend=j == 0,
                hovertemplate=f"{plain(cand)}<br>%{{x}}: %{{y}}<extra></extra>",
                line={"color": COLORS[i % len(COLORS)]}), row=j // 2 + 1, col=j % 2 + 1)
    # Half an hour either side: one hour of data (a young service) gets readable clock ticks
    # instead of Plotly's millisecond ones around a single point.
    hours = [r["hour"] for r in rows]
    figure.update_xaxes(range=[min(hours) - HALF_HOUR, max(hours) + HALF_HOUR])
    figure.update_layout(height=560, margin={"t": 40, "l": 50, "r": 20, "b": 40})
    return figure


def detections(stages: dict[str, Any], image_png: bytes | None = None,
               size: tuple[int, int] | None = None) -> go.Figure:
    """The detector's boxes, each labelled with the recognizer's class and score, drawn on the
    input image when it is still kept (`image_png`, `size` = (width, height)), else on an empty
    canvas of their extent; y grows downwards as in the image."""
    boxes = (stages.get("detector") or {}).get("boxes") or []
    if not boxes and image_png is None:
        return empty("the detector found no symbol")
    rec = stages.get("recognizer") or {}
    classes, scores = rec.get("classes") or [], rec.get("scores") or []
    figure = go.Figure()
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        label = f"{i}: {classes[i] if i < len(classes) else '?'}"
        score = f" ({scores[i]:.2f})" if i < len(scores) else ""
        figure.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1,
                         line={"color": COLORS[i % len(COLORS)], "width": 2})
        figure.add_annotation(x=(x0 + x1) / 2, y=y0, text=plain(label + score),
                              showarrow=False, yshift=10, font={"size": 11})
    if image_png is not None and size is not None:
        width, height = size
        source = "data:image/png;base64," + base64.b64encode(image_png).decode()
        figure.add_layout_image(source=source, x=0, y=0, sizex=width, sizey=height, xref="x",
                                yref="y", sizing="stretch", layer="below")
        figure.update_xaxes(range=[0, width], title="x (pixels)")
        figure.update_yaxes(range=[height, 0], title="y (pixels)", scaleanchor="x")
        title = "the input with the detector's boxes"
    else:
        xs = [v for b in boxes for v in (b[0], b[2])]
        ys = [v for b in boxes for v in (b[1], b[3])]
        pad = 0.08 * max(max(xs) - min(xs), max(ys) - min(ys), 1)
        figure.update_xaxes(range=[min(xs) - pad, max(xs) + pad], title="x (pixels)")
        figure.update_yaxes(range=[max(ys) + pad, min(ys) - 2 * pad], title="y (pixels)",
                            scaleanchor="x")
        title = "detector boxes (the input is no longer kept)"
    figure.update_layout(height=360, margin={"t": 30, "l": 50, "r": 20, "b": 40},
                         plot_bgcolor="#fff", title=title)
    return figure
