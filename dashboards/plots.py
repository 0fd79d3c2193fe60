"""Plotly figures of the Offline-vs-online, Operations and Inspector pages. Every name a user
chose passes through :func:`dashboards.figures.plain` (plotly reads a few tags in labels)."""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.figures import COLORS, empty, plain
from evaluation.candidate_facts import shown_names

GAP_SCALE = 0.25  # the heatmap's colours saturate at a 25-point accuracy gap


def gap_heatmap(slices: list[dict[str, Any]]) -> go.Figure:
    """Online accuracy bound minus offline exact match, per candidate version (rows: the name,
    or ``name vX`` where two versions of it ran) and slice (columns); the hover shows both with
    the online interval. ``customdata`` carries the raw slice name, which a click hands to the
    drill-down."""
    rows = [r for r in slices if r["gap"] is not None]
    if not rows:
        return empty("no candidate has both offline results and online traffic")
    shown = shown_names(rows)
    cands = list(shown)
    names = sorted({r["slice"] for r in rows}, key=lambda s: (s != "all", s))
    cell = {(r["candidate"], r.get("version"), r["slice"]): r for r in rows}
    z, text, custom = [], [], []
    for cand in cands:
        zr, tr, cr = [], [], []
        for s in names:
            r = cell.get((*cand, s))
            zr.append(None if r is None else r["gap"])
            tr.append("" if r is None else _cell_text(r))
            cr.append(s)
        z.append(zr)
        text.append(tr)
        custom.append(cr)
    figure = go.Figure(go.Heatmap(
        z=z, x=[plain(s) for s in names], y=[plain(shown[c]) for c in cands], text=text,
        customdata=custom, texttemplate="%{z:+.1%}", colorscale="RdBu", zmid=0,
        zmin=-GAP_SCALE, zmax=GAP_SCALE, colorbar={"title": "gap", "tickformat": "+.0%"},
        hovertemplate="%{y} on %{x}<br>%{text}<extra></extra>"))
    figure.update_layout(height=140 + 48 * len(cands), margin={"t": 30, "l": 120, "r": 20,
                                                              "b": 60},
                         title="online accuracy bound − offline exact match (click a cell)")
    return figure


def _cell_text(r: dict[str, Any]) -> str:
    on, off = r["online"], r["offline"]
    low, high = on["accuracy_ci"] or (None, None)
    interval = f" [{low:.1%}, {high:.1%}]" if low is not None else ""
    p = "" if r["p_value"] is None else f"<br>p = {r['p_value']:.3g}"
    flag = "<br>flagged" if r["flagged"] else ""
    return (f"offline {off['exact_match']:.1%} (n = {off['n'] or 0})<br>online "
            f"{on['accuracy_bound']:.1%}{interval} (n = {on['n']}){p}{flag}")


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


OPS_PANELS = (("requests_per_s", "requests / s"), ("error_rate", "error rate"),
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
                name=plain(cand), legendgroup=cand, showlegend=j == 0,
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
