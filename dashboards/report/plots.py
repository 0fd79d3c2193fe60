"""The report's plots as base64 PNG data URIs, so the HTML needs no file beside it.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, not pyplot: no
global state, safe in the scheduler's thread. Names (arms, candidates, slices) are drawn with
``parse_math=False``: a ``$`` in a name is text, not a mathtext formula that could fail.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evaluation.candidate_facts import shown_names

WIDTH, HEIGHT, DPI = 7.0, 2.8, 110
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


def _png(fig: Figure) -> str:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")


def bars(labels: Sequence[str], values: Sequence[float], title: str, *,
         low: Sequence[float | None] | None = None, high: Sequence[float | None] | None = None,
         ylabel: str = "") -> str:
    """One bar per label, with interval whiskers where ``low``/``high`` are given."""
    fig = Figure(figsize=(WIDTH, HEIGHT))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x, values, color=[COLORS[i % len(COLORS)] for i in range(len(labels))])
    if low is not None and high is not None:
        for i, (v, lo, hi) in enumerate(zip(values, low, high, strict=True)):
            if lo is not None and hi is not None:
                # An interval is drawn as whiskers from the bar: one that ends a rounding
                # error inside the bar's value gets none on that side, not an error.
                ax.errorbar(i, v, yerr=[[max(v - lo, 0.0)], [max(hi - v, 0.0)]],
                            color="black", capsize=4)
    ax.set_xticks(x, [str(s) for s in labels], rotation=15 if len(labels) > 4 else 0,
                  parse_math=False)
    ax.set_title(title, parse_math=False)
    ax.set_ylabel(ylabel)
    if not labels:
        _empty(ax, "no data this week")
    return _png(fig)


def grouped(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, *,
            ylabel: str = "") -> str:
    """Bars side by side: one group per label, one bar per series (e.g. last week, this week)."""
    fig = Figure(figsize=(WIDTH, HEIGHT))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name,
               color=COLORS[i % len(COLORS)])
    ax.set_xticks(x, [str(s) for s in labels], rotation=15 if len(labels) > 4 else 0,
                  parse_math=False)
    ax.set_title(title, parse_math=False)
    ax.set_ylabel(ylabel)
    if labels:
        ax.legend(fontsize="small")
    else:
        _empty(ax, "no data this week")
    return _png(fig)


def offline_online(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Offline exact match against the online accuracy bound (with its interval) per
    candidate x slice (a candidate named with its version where two versions of it ran)."""
    names = shown_names(rows)
    labels = [f"{names[(r['candidate'], r.get('version'))]}\n{r['slice']}" for r in rows]
    fig = Figure(figsize=(WIDTH, HEIGHT + 0.4))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    online = [r["online"]["accuracy_bound"] or 0.0 for r in rows]
    offline = [r["offline"]["exact_match"] for r in rows]
    ax.barh(y + 0.2, online, 0.4, label="online (upper bound)", color=COLORS[0])
    for i, r in enumerate(rows):
        ci = r["online"]["accuracy_ci"]
        if ci:
            ax.errorbar(online[i], i + 0.2, xerr=[[online[i] - ci[0]], [ci[1] - online[i]]],
                        color="black", capsize=3)
    ax.barh(y - 0.2, [v if v is not None else 0.0 for v in offline], 0.4,
            label="offline exact match", color=COLORS[1])
    ax.set_yticks(y, labels, fontsize="small", parse_math=False)
    ax.set_xlim(0, 1)
    ax.set_title(title, parse_math=False)
    if rows:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        _empty(ax, "no online traffic")
    return _png(fig)
