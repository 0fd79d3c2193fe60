"""Hand-made callback requests with a malformed body, or inputs of the wrong kind, are 400s
naming what is wrong, never 500s: ``outputs``/``inputs`` missing, null, text or empty, the
router's pathname outside the dashboard, the inspector's ``url.search`` that is not text."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.dashboards.test_dashboard_auth import ORIGIN, ROUTE, _token, login

PATH = "/dashboard/_dash-update-component"
MISSING = object()
PREVIEW = {"output": "ann-preview.children",
           "outputs": {"id": "ann-preview", "property": "children"},
           "inputs": [[{"id": {"type": "ann-label", "kind": "latex"}, "property": "value",
                        "value": "x^2"}]],
           "state": [[{"id": {"type": "ann-label", "kind": "latex"}, "property": "id",
                       "value": {"type": "ann-label", "kind": "latex"}}]],
           "changedPropIds": ['{"kind":"latex","type":"ann-label"}.value']}


@pytest.fixture
def client(dash_app: Flask, admin_key: str) -> FlaskClient:
    client = dash_app.test_client()
    assert login(client, admin_key).status_code == 303
    return client


def _post(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post(PATH, json=body, headers={**ORIGIN, "X-CSRFToken": _token(client)})


def _with(base: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    body = dict(base)
    if value is MISSING:
        body.pop(field)
    else:
        body[field] = value
    return body


@pytest.mark.parametrize("field", ["outputs", "inputs"])
@pytest.mark.parametrize("value", [MISSING, None, "x", [], 7, [None], [{"id": "url"}]])
def test_a_malformed_outputs_or_inputs_is_a_400_naming_it(client: FlaskClient, field: str,
                                                          value: Any) -> None:
    answer = _post(client, _with(ROUTE, field, value))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert f"'{field}'" in answer.get_json()["error"]


@pytest.mark.parametrize(("field", "value"), [
    ("outputs", {"id": "other", "property": "children"}),
    ("outputs", [{"id": "page", "property": "children"}] * 2),
    ("state", "x"), ("state", [{"id": "a", "property": "b"}]), ("changedPropIds", 5)])
def test_outputs_of_another_callback_and_malformed_state_are_400s(client: FlaskClient,
                                                                   field: str,
                                                                   value: Any) -> None:
    answer = _post(client, _with(ROUTE, field, value))
    assert answer.status_code == 400 and f"'{field}'" in answer.get_json()["error"]


def test_a_pattern_matching_callback_still_runs_and_checks_its_lists(client: FlaskClient,
                                                                     dash_app: Flask,
                                                                     admin_key: str) -> None:
    assert _post(client, PREVIEW).status_code in (200, 403)  # admin: not an annotator
    flat = _with(PREVIEW, "inputs", [{"id": "x", "property": "value", "value": "x"}])
    answer = _post(client, flat)
    assert answer.status_code == 400 and "'inputs'" in answer.get_json()["error"]


@pytest.mark.parametrize("pathname", ["s", "/other", "/dashboardx/experiments", ""])
def test_the_router_refuses_a_pathname_outside_the_dashboard(client: FlaskClient,
                                                             pathname: str) -> None:
    body = {**ROUTE, "inputs": [{"id": "url", "property": "pathname", "value": pathname}]}
    answer = _post(client, body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "pathname" in answer.get_json()["error"]
    for fine in ("/dashboard", "/dashboard/", "/dashboard/voc", "/dashboard/nope"):
        body["inputs"][0]["value"] = fine
        assert _post(client, body).status_code == 200, fine


@pytest.mark.parametrize("search", [["?id=1"], 7, True, 1.5, {"a": 1}])
def test_the_inspector_refuses_a_search_that_is_not_text(client: FlaskClient,
                                                         search: Any) -> None:
    body = {"output": "insp-id.value", "outputs": {"id": "insp-id", "property": "value"},
            "inputs": [{"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["url.search"]}
    answer = _post(client, body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "url.search" in answer.get_json()["error"]
    body["inputs"][0]["value"] = "?id=abc"
    fine = _post(client, body)
    assert fine.status_code == 200 and fine.get_json()["response"]["insp-id"]["value"] == "abc"


@pytest.mark.parametrize("hours", [[None, None], [0, None], [None, 3], [0], "0-3", [0, "x"]])
def test_the_experiments_page_refuses_hours_that_are_not_a_pair(client: FlaskClient,
                                                                 hours: Any) -> None:
    """A handle without a value reached the window's arithmetic: a 500."""
    body = {"output": "..exp-body.children...exp-window.children..",
            "outputs": [{"id": "exp-body", "property": "children"},
                        {"id": "exp-window", "property": "children"}],
            "inputs": [{"id": "exp-select", "property": "value", "value": 1},
                       {"id": "exp-slice", "property": "value", "value": "all"},
                       {"id": "exp-time", "property": "value", "value": hours}],
            "changedPropIds": ["exp-time.value"]}
    answer = _post(client, body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "'time'" in answer.get_json()["error"]
