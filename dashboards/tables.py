"""Plain HTML tables and number formatting for the pages (every cell is text, escaped)."""

from __future__ import annotations

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
        return f"{value:.4g}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]], table_id: str) -> Component:
    return html.Table(id=table_id, className="grid", children=[
        html.Thead(html.Tr([html.Th(h) for h in headers])),
        html.Tbody([html.Tr([html.Td(fmt(c)) for c in row]) for row in rows]),
    ])
