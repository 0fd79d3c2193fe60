"""The dashboard's login: pages redirect to it, Dash's requests get 401 without it, the session
cookie is signed and flagged, cross-origin and token-less posts are refused, a revoked key ends
the session, and roles come from the key's scopes."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from app.auth import create_key, revoke_key
from core.settings import Settings

ORIGIN = {"Origin": "http://localhost"}
ROUTE = {"output": "page.children", "outputs": {"id": "page", "property": "children"},
         "inputs": [{"id": "url", "property": "pathname", "value": "/dashboard/experiments"}],
         "changedPropIds": ["url.pathname"], "state": []}


def _csrf(client: FlaskClient) -> str:
    page = client.get("/dashboard/login")
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def login(client: FlaskClient, key: str, next_: str = "/dashboard/experiments",
          headers: dict[str, str] | None = None) -> Any:
    form = {"key": key, "csrf": _csrf(client), "next": next_}
    return client.post("/dashboard/login", data=form, headers=ORIGIN if headers is None
                       else headers)


# The Experiments page's body callback, as the browser posts it (an admin-only callback).
EXPERIMENTS_BODY = {"output": "..exp-body.children...exp-window.children..",
                    "outputs": [{"id": "exp-body", "property": "children"},
                                {"id": "exp-window", "property": "children"}],
                    "inputs": [{"id": "exp-select", "property": "value", "value": None},
                               {"id": "exp-slice", "property": "value", "value": "all"},
                               {"id": "exp-time", "property": "value", "value": [0, 1]}],
                    "changedPropIds": ["exp-select.value"], "state": []}


def _callback(client: FlaskClient, **headers: str) -> Any:
    return client.post("/dashboard/_dash-update-component", json=ROUTE,
                       headers={**ORIGIN, **headers})


def _token(client: FlaskClient) -> str:
    cookie = client.get_cookie("abvoc_csrf", path="/dashboard/")
    assert cookie is not None and not cookie.http_only
    return cookie.value


def test_without_login_pages_redirect_and_dash_requests_get_401(dash_app: Flask) -> None:
    client = dash_app.test_client()
    for path in ("/dashboard/", "/dashboard/experiments"):
        # HEAD as GET: it was the 401 an API call gets.
        for answer in (client.get(path), client.head(path)):
            assert answer.status_code == 302
            assert answer.headers["Location"] == f"/dashboard/login?next={path}"
    assert client.get("/dashboard/_dash-layout").status_code == 401
    assert client.get("/dashboard/_dash-dependencies").status_code == 401
    refused = _callback(client)
    assert refused.status_code == 401 and "log in" in refused.get_json()["error"]
    assert client.get("/healthz").status_code == 200  # the API is not behind the login
    # The service's bare address opens the dashboard (it answered a JSON 404).
    root = client.get("/")
    assert root.status_code == 302 and root.headers["Location"] == "/dashboard/"


def test_login_sets_a_signed_http_only_cookie_and_logout_clears_it(dash_app: Flask,
                                                                   admin_key: str) -> None:
    client = dash_app.test_client()
    answer = login(client, admin_key)
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard/experiments"
    cookies = "\n".join(answer.headers.getlist("Set-Cookie"))
    session = next(c for c in answer.headers.getlist("Set-Cookie")
                   if c.startswith("abvoc_dashboard="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/dashboard/" in session
    assert "Secure" not in session
    assert admin_key not in cookies  # only the key's id is kept
    assert client.get("/dashboard/experiments").status_code == 200
    assert client.get("/dashboard/_dash-layout").status_code == 200
    routed = _callback(client, **{"X-CSRFToken": _token(client)})
    assert routed.status_code == 200, routed.get_data(as_text=True)
    assert "Experiments" in routed.get_data(as_text=True)
    out = client.post("/dashboard/logout", headers=ORIGIN)
    assert out.status_code == 303 and out.headers["Location"] == "/dashboard/login"
    assert client.get("/dashboard/experiments").status_code == 302


def test_only_the_dashboards_paths_open_a_session(dash_app: Flask, admin_key: str) -> None:
    """The API's requests skip the session cookie: nothing read or signed for them, none set,
    even for a browser that holds a dashboard session."""
    from flask import session

    client = dash_app.test_client()
    assert login(client, admin_key).status_code == 303
    interface = dash_app.session_interface
    for path in ("/healthz", "/v1/experiments", "/metrics", "/dashboardx"):
        with dash_app.test_request_context(path):
            assert interface.is_null_session(session), path
        answer = client.get(path, headers={"Authorization": f"Bearer {admin_key}"})
        assert answer.status_code < 500 and not answer.headers.getlist("Set-Cookie"), path
    for path in ("/dashboard", "/dashboard/", "/dashboard/login"):
        with dash_app.test_request_context(path):
            assert not interface.is_null_session(session), path
    assert client.get("/dashboard/experiments").status_code == 200  # still logged in


def test_production_cookies_are_secure(settings: Settings, tmp_path) -> None:  # noqa: ANN001
    from app import close_app, create_app

    app = create_app(settings.with_overrides(environment="production"),
                     test_config={"TESTING": True})
    try:
        key = create_key(app.extensions["abvoc"].db, ["admin"])["key"]
        answer = login(app.test_client(), key)
        assert answer.status_code == 303
        assert all("Secure" in c for c in answer.headers.getlist("Set-Cookie"))
    finally:
        close_app(app)


def test_bad_keys_and_keys_without_a_dashboard_role_are_refused(dash_app: Flask) -> None:
    client = dash_app.test_client()
    unknown = login(client, "abv_nope_nope")
    assert unknown.status_code == 401 and "unknown or revoked" in unknown.get_data(as_text=True)
    predict_only = create_key(dash_app.extensions["abvoc"].db, ["predict"])["key"]
    refused = login(client, predict_only)
    assert refused.status_code == 403
    assert "no dashboard role" in refused.get_data(as_text=True)
    assert client.get("/dashboard/experiments").status_code == 302


def test_cross_origin_and_tokenless_posts_are_refused(dash_app: Flask, admin_key: str) -> None:
    client = dash_app.test_client()
    assert login(client, admin_key, headers={}).status_code == 403  # no Origin, no Referer
    assert login(client, admin_key, headers={"Origin": "http://evil.example"}).status_code == 403
    stale = client.post("/dashboard/login", headers=ORIGIN,
                        data={"key": admin_key, "csrf": "forged", "next": "/dashboard/"})
    assert stale.status_code == 400
    assert login(client, admin_key).status_code == 303
    assert _callback(client).status_code == 403  # no X-CSRFToken
    assert _callback(client, **{"X-CSRFToken": "forged"}).status_code == 403
    evil = client.post("/dashboard/_dash-update-component", json=ROUTE,
                       headers={"Origin": "http://evil.example", "X-CSRFToken": _token(client)})
    assert evil.status_code == 403
    assert _callback(client, **{"X-CSRFToken": _token(client)}).status_code == 200


def test_login_never_redirects_off_the_dashboard(dash_app: Flask, admin_key: str) -> None:
    # A dot segment climbs out too: the browser resolves /dashboard/../healthz to /healthz.
    for target in ("//evil.example/", "https://evil.example/", "/v1/experiments",
                   "/dashboard//evil.example", "/dashboard/../healthz",
                   "/dashboard/%2e%2e/v1/experiments", "/dashboard/voc/.%2E?x=1",
                   "/dashboard/voc?x=%FF", "/dashboard/voc?x=%00", "/dashboard/%C3%28"):
        answer = login(dash_app.test_client(), admin_key, next_=target)
        assert answer.headers["Location"] == "/dashboard/", target
    # A page the login may lead to is one that answers, not the 400 such a query gets.
    client = dash_app.test_client()
    assert client.get("/dashboard/voc?x=%FF").status_code in (302, 400)
    kept = login(client, admin_key, next_="/dashboard/voc?q=caf%C3%A9")
    assert kept.headers["Location"] == "/dashboard/voc?q=caf%C3%A9"
    assert client.get(kept.headers["Location"]).status_code == 200


def test_text_in_the_login_page_is_escaped(dash_app: Flask) -> None:
    page = dash_app.test_client().get('/dashboard/login?next=/dashboard/"><script>x</script>')
    assert "<script>x" not in page.get_data(as_text=True)


def test_a_revoked_key_ends_the_session(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    made = create_key(db, ["admin"])
    client = dash_app.test_client()
    assert login(client, made["key"]).status_code == 303
    assert client.get("/dashboard/experiments").status_code == 200
    revoke_key(db, made["prefix"])
    dash_app.extensions["abvoc_keys"]._by_id.clear()  # skip the few seconds of caching
    assert client.get("/dashboard/experiments").status_code == 302
    assert _callback(client).status_code == 401


def test_callbacks_refuse_malformed_inputs(dash_app: Flask, admin_key: str) -> None:
    client = dash_app.test_client()
    login(client, admin_key)
    body = {"output": "..exp-body.children...exp-window.children..",
            "outputs": [{"id": "exp-body", "property": "children"},
                        {"id": "exp-window", "property": "children"}],
            "inputs": [{"id": "exp-select", "property": "value", "value": "1; drop"},
                       {"id": "exp-slice", "property": "value", "value": "all"},
                       {"id": "exp-time", "property": "value", "value": [0, 1]}],
            "changedPropIds": ["exp-select.value"], "state": []}
    answer = client.post("/dashboard/_dash-update-component", json=body,
                         headers={**ORIGIN, "X-CSRFToken": _token(client)})
    assert answer.status_code == 400
    assert "whole number" in answer.get_json()["error"]
    body["inputs"][0]["value"] = 999
    missing = client.post("/dashboard/_dash-update-component", json=body,
                          headers={**ORIGIN, "X-CSRFToken": _token(client)})
    assert missing.status_code == 404
    for output in ("nope.children", "..exp-body.children...nope.children..", None):
        unknown = client.post("/dashboard/_dash-update-component", json={**body, "output": output},
                              headers={**ORIGIN, "X-CSRFToken": _token(client)})
        assert unknown.status_code == 400, output
        assert "no dashboard callback has the output" in unknown.get_json()["error"]


def test_every_dashboard_route_needs_the_session(dash_app: Flask) -> None:
    """Each /dashboard/ rule, with dummy values: only the login and Dash's static bundles
    answer without a session."""
    public = ("/dashboard/login", "/dashboard/_dash-component-suites/", "/dashboard/_favicon.ico")
    client = dash_app.test_client()
    checked = 0
    for rule in dash_app.url_map.iter_rules():
        if not rule.rule.startswith("/dashboard/") or rule.rule.startswith(public):
            continue
        url = re.sub(r"<(?:[^:>]+:)?\w+>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            answer = client.open(url, method=method, headers=ORIGIN, json={})
            assert answer.status_code in (302, 401), (method, url, answer.status_code)
            if answer.status_code == 302:
                assert answer.headers["Location"].startswith("/dashboard/login")
            checked += 1
    assert checked >= 6


def test_roles_decide_pages_and_callbacks(dash_app: Flask, monkeypatch) -> None:  # noqa: ANN001
    """A role without the Experiments page (as annotators will be) logs in, but neither the
    page nor its callbacks answer it."""
    from dashboards import auth

    monkeypatch.setitem(auth.ROLES_BY_SCOPE, "correct", "annotator")
    key = create_key(dash_app.extensions["abvoc"].db, ["correct"])["key"]
    client = dash_app.test_client()
    assert login(client, key).status_code == 303
    # parsed: Dash writes '/' as '\u002f' in its JSON
    layout = json.dumps(client.get("/dashboard/_dash-layout").get_json())
    assert "/dashboard/experiments" not in layout  # no link to it
    routed = _callback(client, **{"X-CSRFToken": _token(client)})
    assert routed.status_code == 200 and "cannot see the Experiments page" in routed.get_data(
        as_text=True)
    refused = client.post("/dashboard/_dash-update-component", json=EXPERIMENTS_BODY,
                          headers={**ORIGIN, "X-CSRFToken": _token(client)})
    assert refused.status_code == 403 and "admin" in refused.get_json()["error"]


def test_a_script_path_dash_does_not_serve_is_a_404(dash_app: Flask) -> None:
    client = dash_app.test_client()
    for path in ("/dashboard/_dash-component-suites/dash/nope.js",
                 "/dashboard/_dash-component-suites/nopkg/x.js",
                 "/dashboard/_dash-component-suites/../../../etc/passwd",
                 "/dashboard/_dash-component-suites/dash/../../../setup.cfg"):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert answer.get_json()["error"] == "no such dashboard script", path
    served = client.get("/dashboard/_dash-component-suites/dash/dcc/dash_core_components.js")
    assert served.status_code == 200


def test_a_fresh_apps_first_requests_get_their_scripts_at_once(settings: Settings) -> None:
    """Dash set up its server on the first request and marked it done before registering its
    scripts: a script asked for meanwhile from another thread (granian runs several) got a
    404, leaving the page blank. The dashboard sets Dash up when it is mounted instead."""
    from app import close_app, create_app

    script = "/dashboard/_dash-component-suites/dash/dcc/dash_core_components.js"
    for _ in range(3):  # the race was narrow: a few fresh apps
        fresh = create_app(settings, test_config={"TESTING": True})
        try:
            start = threading.Barrier(12)

            def get(_: int, app: Flask = fresh, start: threading.Barrier = start) -> int:
                client = app.test_client()
                start.wait(10)
                return client.get(script).status_code

            with ThreadPoolExecutor(12) as pool:
                assert list(pool.map(get, range(12))) == [200] * 12
        finally:
            close_app(fresh)
