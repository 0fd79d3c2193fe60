"""The security pass on the dashboard's login: a logout ends copies of the session server-side,
a session has an absolute lifetime, ``next`` with control characters falls back to the home,
a forged pathname is a 400, pages carry security headers, and failed logins are limited."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import create_key
from core.settings import Settings
from tests.dashboards.test_dashboard_auth import ORIGIN, ROUTE, _token, login

LAYOUT = "/dashboard/_dash-layout"


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second browser holding copies of ``client``'s dashboard cookies."""
    other = app.test_client()
    for name in ("abvoc_dashboard", "abvoc_csrf"):
        cookie = client.get_cookie(name, path="/dashboard/")
        assert cookie is not None, name
        other.set_cookie(name, cookie.value, path="/dashboard/")
    return other


def _route(client: FlaskClient, token: str, pathname: Any = "/dashboard/experiments") -> Any:
    body = {**ROUTE, "inputs": [{"id": "url", "property": "pathname", "value": pathname}]}
    return client.post("/dashboard/_dash-update-component", json=body,
                       headers={**ORIGIN, "X-CSRFToken": token})


def test_logout_ends_a_copied_session_server_side(dash_app: Flask, admin_key: str) -> None:
    db = dash_app.extensions["abvoc"].db
    client = dash_app.test_client()
    assert login(client, admin_key).status_code == 303
    token = _token(client)
    saved = _copy(dash_app, client)
    assert saved.get(LAYOUT).status_code == 200
    other_key = create_key(db, ["annotate"], name="other")["key"]
    bystander = dash_app.test_client()
    assert login(bystander, other_key).status_code == 303

    assert client.post("/dashboard/logout", headers=ORIGIN).status_code == 303
    assert saved.get(LAYOUT).status_code == 401
    assert _route(saved, token).status_code == 401
    assert saved.get("/dashboard/experiments").status_code == 302
    # Another key's session is untouched, and the same key can log in afresh.
    assert bystander.get(LAYOUT).status_code == 200
    fresh = dash_app.test_client()
    assert login(fresh, admin_key).status_code == 303
    assert fresh.get(LAYOUT).status_code == 200
    assert _route(fresh, _token(fresh)).status_code == 200
    assert saved.get(LAYOUT).status_code == 401  # the fresh login did not revive the old one


def test_a_session_ends_twelve_hours_after_login_however_used(dash_app: Flask,
                                                              admin_key: str) -> None:
    client = dash_app.test_client()
    assert login(client, admin_key).status_code == 303
    used = client.get(LAYOUT)
    assert used.status_code == 200
    # Use does not re-issue (and so extend) the session cookie.
    assert not [c for c in used.headers.getlist("Set-Cookie")
                if c.startswith("abvoc_dashboard=")]
    with client.session_transaction("/dashboard/") as session:
        session["started"] = time.time() - 12 * 3600 + 30
    assert client.get(LAYOUT).status_code == 200
    with client.session_transaction("/dashboard/") as session:
        session["started"] = time.time() - 12 * 3600 - 1
    assert client.get(LAYOUT).status_code == 401
    assert client.get("/dashboard/experiments").status_code == 302


@pytest.mark.parametrize("target", ["/dashboard/\r\nSet-Cookie: x=1", "/dashboard/\nx",
                                    "/dashboard/\tx", "/dashboard/\x7fx", "/dashboard/\x85x"])
def test_next_with_control_characters_falls_back_to_the_home(dash_app: Flask, admin_key: str,
                                                              target: str) -> None:
    client = dash_app.test_client()
    form = client.get("/dashboard/login", query_string={"next": target})
    assert form.status_code == 200
    assert 'name="next" value="/dashboard/"' in form.get_data(as_text=True)
    answer = login(client, admin_key, next_=target)
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard/"


def test_the_router_refuses_a_pathname_that_is_not_a_string(dash_app: Flask,
                                                            admin_key: str) -> None:
    client = dash_app.test_client()
    assert login(client, admin_key).status_code == 303
    token = _token(client)
    for forged in (1, ["x"], {"a": 1}, True, 1.5):
        answer = _route(client, token, forged)
        assert answer.status_code == 400, (forged, answer.get_data(as_text=True))
        assert "pathname" in answer.get_json()["error"]
    assert _route(client, token, None).status_code == 200  # the shell's first call
    assert _route(client, token).status_code == 200


def test_dashboard_responses_carry_security_headers(dash_app: Flask, admin_key: str) -> None:
    client = dash_app.test_client()
    pages = [client.get("/dashboard/login"), client.get("/dashboard/")]
    assert login(client, admin_key).status_code == 303
    pages += [client.get("/dashboard/"), client.get(LAYOUT)]
    for answer in pages:
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "same-origin"
        policy = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-eval" not in policy
        assert "Strict-Transport-Security" not in answer.headers  # not over HTTPS here


def test_production_dashboard_sends_hsts(settings: Settings) -> None:
    from app import close_app, create_app

    app = create_app(settings.with_overrides(environment="production"),
                     test_config={"TESTING": True})
    try:
        answer = app.test_client().get("/dashboard/login")
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        assert answer.headers["X-Frame-Options"] == "DENY"
    finally:
        close_app(app)


def test_failed_logins_are_limited_per_address(dash_app: Flask, admin_key: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = dash_app.test_client()
    for _ in range(10):
        assert login(client, "abv_nope_nope").status_code == 401
    blocked = login(client, "abv_nope_nope")
    assert blocked.status_code == 429 and 0 < int(blocked.headers["Retry-After"]) <= 60
    assert login(client, admin_key).status_code == 429  # even a good key waits
    elsewhere = dash_app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    assert login(elsewhere, admin_key).status_code == 303
    import dashboards.throttle as throttle

    later = time.monotonic() + 61
    monkeypatch.setattr(throttle.time, "monotonic", lambda: later)
    assert login(client, admin_key).status_code == 303
