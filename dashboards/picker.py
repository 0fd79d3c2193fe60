"""The experiment picker the pages share: every experiment, the newest chosen."""

from __future__ import annotations

from dash import dcc, html
from dash.development.base_component import Component

from dashboards import data
from dashboards.tables import isolate


def experiment_picker(component_id: str) -> Component:
    listed = data.experiments(data.store())
    # The name is isolated: a U+202E in it cannot reverse the status after it.
    options = [{"label": f"#{e['id']} {isolate(e['name'])} ({e['status']})", "value": e["id"]}
               for e in listed]
    return html.Label(["Experiment", dcc.Dropdown(
        id=component_id, options=options, clearable=False,
        value=listed[-1]["id"] if listed else None, placeholder="no experiments yet")],
        className="control wide")
