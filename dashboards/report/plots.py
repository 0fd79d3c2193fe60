"""The report's plots as base64 SVG data URIs, so the HTML needs no file beside it.

The SVG keeps every piece of text as text (``svg.fonttype`` "none"), not as matplotlib's glyph
outlines: the browser that shows the HTML, and the headless Chromium that prints the PDF, shape
it. Matplotlib lays glyphs out one by one, unshaped, so a name in a script that joins or
reorders its letters (Arabic, Devanagari) would read wrongly as a drawing; as text it reads as
in the tables, and it is in the PDF's text layer (found by search, copied whole). Matplotlib
still measures the text with its own fonts to lay the figure out.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, not pyplot: no
global state, safe in the scheduler's thread. Names (arms, candidates, slices) are drawn with
``parse_math=False``: a ``$`` in a name is text, not a mathtext formula that could fail; and
shortened (:func:`dashboards.report.labels.shorten`): the tables beside a plot give them whole.
Many names (thousands of slices) are the caller's to cut to a top few
(:func:`dashboards.report.labels.top_with_rest`): a plot draws what it is given.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from dashboards.colors import COLORS
from dashboards.report.labels import shorten
from evaluation.candidate_facts import shown_names

CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK JP", "Noto Sans CJK SC")
"""Fonts that draw Chinese, Japanese and Korean (scripts/install-browser.sh installs the first)."""
SCRIPT_FONTS = tuple(f"Noto Sans {script}" for script in (
    "Thai", "Devanagari", "Bengali", "Tamil", "Telugu", "Gujarati", "Gurmukhi", "Kannada",
    "Malayalam", "Sinhala", "Khmer", "Lao", "Myanmar", "Ethiopic"))
"""Fonts for scripts DejaVu Sans has no glyphs for (fonts-noto-core): matplotlib measures the
text with them; the browser draws it with the same fonts, shaped."""


def _font_family() -> list[str]:
    """DejaVu Sans, then the CJK and other script fonts this machine has: matplotlib falls back
    glyph by glyph along the list, so a name in Chinese, Thai or Hindi is drawn in its own
    letters, not as empty boxes, and Latin text is drawn as before. A font installed after
    matplotlib built its font cache is not in it: added here."""
    wanted = (*CJK_FONTS, *SCRIPT_FONTS)
    known = {f.name for f in font_manager.fontManager.ttflist}
    if not known.issuperset(wanted):
        files = {name.replace(" ", "").lower() for name in wanted if name not in known}
        for path in font_manager.findSystemFonts():
            stem = Path(path).stem.lower()
            if "wqy" in stem or "notosanscjk" in stem or stem.split("-")[0] in files:
                font_manager.fontManager.addfont(path)
        known = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in wanted if name in known)]


# Set once, at import, to the same value every time: the figures' text reads it as it is made.
matplotlib.rcParams["font.family"] = _font_family()
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: the browser shapes it
matplotlib.rcParams["svg.hashsalt"] = "abvoc"  # the same ids in every run: reports diff cleanly

WIDTH, HEIGHT = 7.0, 2.8  # inches; the page scales the SVG to its width (at most 770 px)
ROW_INCHES = 0.26  # a horizontal bar's share of a figure's height: labels never overlap
UPRIGHT = 6  # vertical bars up to this many short labels; more or longer ones lie down
UPRIGHT_CHARS = 14


def _uri(fig: Figure) -> str:
    fig.tight_layout()
    buffer = io.BytesIO()
    # "tight": the saved image grows to hold everything drawn (a legend, a long tick label)
    # instead of cutting it at the figure's edge.
    fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.05,
                metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_ylim(0, 1)  # an empty plot of counts reads from 0, not from -0.04
    ax.set_xticks([])


def _legend(ax: Any, title: str) -> None:
    """The legend in one row between the title and the axes: beside them it would take the
    plot's width, inside it would hide bars."""
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4,
              frameon=False)
    ax.set_title(title, parse_math=False, pad=20)


def _height(rows: int) -> float:
    return max(HEIGHT, 0.9 + ROW_INCHES * rows)


def _upright(labels: Sequence[str]) -> bool:
    return len(labels) <= UPRIGHT and all(len(str(s)) <= UPRIGHT_CHARS for s in labels)


def _from_zero(values: Sequence[float | None], ax: Any, *, upright: bool) -> None:
    """Counts and rates never go below 0: their axis starts there (matplotlib pads below); a
    week of zeros reads 0 to 1, and counts get whole-number ticks (no 0.01 items)."""
    known = [float(v) for v in values if v is not None]
    if any(v < 0 for v in known):
        return
    top = 1.0 if not any(known) else None
    axis = ax.yaxis if upright else ax.xaxis
    if upright:
        ax.set_ylim(bottom=0, top=top)
    else:
        ax.set_xlim(left=0, right=top)
    if all(v.is_integer() for v in known):
        axis.set_major_locator(MaxNLocator(integer=True))


def bars(labels: Sequence[str], values: Sequence[float], title: str, *,
         low: Sequence[float | None] | None = None, high: Sequence[float | None] | None = None,
         ylabel: str = "") -> str:
    """One bar per label, with interval whiskers where ``low``/``high`` are given: upright for
    a few short labels, lying down (one row each, first at the top) otherwise."""
    shown = [shorten(s) for s in labels]
    upright = _upright(shown)
    fig = Figure(figsize=(WIDTH, HEIGHT if upright else _height(len(labels))))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    colors = [COLORS[i % len(COLORS)] for i in range(len(labels))]
    (ax.bar if upright else ax.barh)(x, values, color=colors)
    if low is not None and high is not None:
        for i, (v, lo, hi) in enumerate(zip(values, low, high, strict=True)):
            if lo is not None and hi is not None:
                # An interval is drawn as whiskers from the bar: one that ends a rounding
                # error inside the bar's value gets none on that side, not an error.
                span = [[max(v - lo, 0.0)], [max(hi - v, 0.0)]]
                ax.errorbar(*((i, v) if upright else (v, i)), color="black", capsize=4,
                            **({"yerr": span} if upright else {"xerr": span}))
    ax.set_title(title, parse_math=False)
    if not labels:
        _empty(ax, "no data this week")
    else:
        _label_axes(ax, x, shown, values, ylabel, upright)
    return _uri(fig)


def _label_axes(ax: Any, x: np.ndarray, shown: Sequence[str], values: Sequence[float],
                ylabel: str, upright: bool) -> None:
    """Names on the bars' axis (top to bottom where they lie down), the unit on the other, and
    that axis from 0."""
    if upright:
        ax.set_xticks(x, shown, parse_math=False)
        ax.set_ylabel(ylabel)
    else:
        ax.set_yticks(x, shown, parse_math=False, fontsize="small")
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    _from_zero(values, ax, upright=upright)


def grouped(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, *,
            ylabel: str = "") -> str:
    """Bars side by side: one group per label, one bar per series (e.g. last week, this week);
    lying down, one group per row, where the labels are many or long."""
    shown = [shorten(s) for s in labels]
    upright = _upright(shown) or all(len(s) <= 5 for s in shown)  # days ("11-23") stand up
    rows = len(labels) * max(len(series), 1) * 0.6
    fig = Figure(figsize=(WIDTH, HEIGHT if upright else _height(round(rows))))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        place = x + (i - (len(series) - 1) / 2) * width
        (ax.bar if upright else ax.barh)(place, values, width, label=name,
                                         color=COLORS[i % len(COLORS)])
    ax.set_title(title, parse_math=False)
    if not labels:
        _empty(ax, "no data this week")
        return _uri(fig)
    everything = [v for values in series.values() for v in values]
    _label_axes(ax, x, shown, everything, ylabel, upright)
    _legend(ax, title)
    return _uri(fig)


def _row_labels(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``candidate · slice`` on one line (a candidate named with its version where two
    versions of it ran), each part shortened."""
    names = shown_names(rows)
    return [f"{shorten(names[(r['candidate'], r.get('version'))], 20)} · "
            f"{shorten(r['slice'])}" for r in rows]


def _paired(rows: Sequence[dict[str, Any]], title: str, online: Sequence[float | None],
            ci: Sequence[Sequence[float | None] | None], offline: Sequence[float | None],
            names: tuple[str, str], xlabel: str, empty: str) -> Figure:
    """Two bars per row (online with its interval, offline), rows top to bottom."""
    fig = Figure(figsize=(WIDTH, _height(len(rows))))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    on = [v if v is not None else 0.0 for v in online]
    ax.barh(y - 0.2, on, 0.4, label=names[0], color=COLORS[0])
    for i, interval in enumerate(ci):
        if interval and interval[0] is not None and interval[1] is not None:
            ax.errorbar(on[i], i - 0.2, xerr=[[max(on[i] - interval[0], 0.0)],
                                              [max(interval[1] - on[i], 0.0)]],
                        color="black", capsize=3)
    ax.barh(y + 0.2, [v if v is not None else 0.0 for v in offline], 0.4, label=names[1],
            color=COLORS[1])
    ax.set_yticks(y, _row_labels(rows), fontsize="small", parse_math=False)
    ax.invert_yaxis()
    ax.set_title(title, parse_math=False)
    ax.set_xlabel(xlabel)
    if rows:
        ax.set_xlim(left=0)
        _legend(ax, title)
    else:
        _empty(ax, empty)
    return fig


def offline_online(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Offline exact match against the online accuracy bound (with its interval) per
    candidate x slice (a candidate named with its version where two versions of it ran)."""
    fig = _paired(rows, title, [r["online"]["accuracy_bound"] for r in rows],
                  [r["online"]["accuracy_ci"] for r in rows],
                  [r["offline"]["exact_match"] for r in rows],
                  ("online (upper bound)", "offline exact match"), "accuracy",
                  "no online traffic")
    if rows:
        fig.axes[0].set_xlim(0, 1)
    return _uri(fig)


def offline_online_mae(rows: Sequence[dict[str, Any]], title: str) -> str:
    """A number candidate's online MAE (corrected answers, with its interval) against its
    offline MAE per candidate x slice: accuracy means nothing for numbers."""
    return _uri(_paired(rows, title, [r["online"].get("mae") for r in rows],
                        [r["online"].get("mae_interval") for r in rows],
                        [r["offline"].get("mae") for r in rows],
                        ("online MAE (corrected answers)", "offline MAE"),
                        "mean absolute error (lower is better)", "no corrected numbers"))


def stage_shares(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Each candidate version's wrong answers by the stage blamed: one bar per version, its
    stages' shares stacked to 100 % in pipeline order (the stage attribution's ``all`` rows)."""
    names = shown_names(rows)
    stages = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    fig = Figure(figsize=(WIDTH, _height(len(rows))))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for i, stage in enumerate(stages):
        share = np.array([r["shares"].get(stage) or 0.0 for r in rows])
        ax.barh(y, share, left=left, label=shorten(stage), color=COLORS[i % len(COLORS)])
        left += share
    ax.set_yticks(y, [f"{shorten(names[(r['candidate'], r.get('version'))], 20)} "
                      f"({r['errors']} wrong)" for r in rows], fontsize="small",
                  parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title, parse_math=False)
    # Below the axes, in as many rows as the stages need: a pipeline's five stages took two
    # rows above, over the title.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12),
              ncol=min(len(stages), 5), frameon=False)
    return _uri(fig)
