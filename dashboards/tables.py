"""Plain HTML tables and number formatting for the pages (every cell is text, escaped)."""

from __future__ import annotations

import math
from typing import Any

from dash import html
from dash.development.base_component import Component


def fmt(value: Any, percent: bool = False) -> str:
    """A short, readable number; '–' when there is none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if percent:
            return f"{value:+.1%}"
        if math.isfinite(value) and abs(value) >= 10_000:
            return f"{value:,.0f}"  # 1,521,000 s ago: 4 significant figures wrote 1.521e+06
        return f"{value:.4g}"
    return str(value)


NO_TEXT = "(no text)"
# Metrics taken over the predictions whose truth is known, mostly corrections of wrong answers.
TRUTH_METRICS = ("exact_match", "expected_calibration_error")


def truth_note(metrics: set[str]) -> str | None:
    """What a reader must be told beside an arm plotted at exact match 0: it is not an arm that
    is never right (the Experiments page and the weekly report say the same)."""
    shown = sorted(metrics & set(TRUTH_METRICS))
    if not shown:
        return None
    return (f"{', '.join(shown)}: over predictions with a known truth only, mostly customer "
            "corrections of wrong answers (0 by construction where every truth is a "
            "correction); not the arms' accuracy, which the Relabeling page's audited "
            "accuracy gives.")


def answer_text(value: str | None) -> str:
    """A stored answer, correction or label as a page shows it: '–' for none, and the empty text
    (a truth that the input holds no text) in words rather than as an empty cell."""
    if value is None:
        return "–"
    return value or NO_TEXT


def verdict_text(row: dict[str, Any]) -> str:
    """A comparison's verdict as a page or the report shows it. The results say
    "inconclusive" also for a comparison never tested (an arm with no traffic, a metric with
    no truths): without its always-valid interval, the row's error says why instead, else
    "no data"; "inconclusive" is kept for a test that ran. A caveat follows the verdict (an
    arm faster by failing fast, :func:`evaluation.compared_metrics.add_caveats`)."""
    if row.get("sequential_ci_low") is None or row.get("sequential_ci_high") is None:
        return row.get("error") or "no data"
    verdict = row.get("verdict") or ""
    return f"{verdict}: {row['caveat']}" if row.get("caveat") else verdict


def isolate(name: Any) -> str:
    """A user-chosen name between U+2068 FIRST STRONG ISOLATE and U+2069 POP DIRECTIONAL
    ISOLATE, for plain-text places (dropdown labels, sentences): a U+202E in the name then
    cannot reverse the page's own text after it. In components, :func:`html.Bdi` does this."""
    return f"\u2068{name}\u2069"


def table(headers: list[str], rows: list[list[Any]], table_id: str) -> Component:
    return html.Table(id=table_id, className="grid", children=[
        html.Thead(html.Tr([html.Th(h) for h in headers])),
        html.Tbody([html.Tr([html.Td(fmt(c)) for c in row]) for row in rows]),
    ])
