"""Every route refuses a caller without the right scope; keys are stored hashed."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth import SCOPES, KeyCache, create_key, revoke_key
from core.store.db import Database
from core.store.models import ApiKey

# Probes are open, as /healthz and /readyz are, and so is the V2 server metadata (a name, a
# version, the extensions: what a client asks before it has a key); the model routes need one.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/static/<path:filename>",
          "/v2", "/v2/health/live", "/v2/health/ready"}


def concrete(rule: str) -> list[str]:
    """Example URLs for a rule: each choice of an any() converter, dummy values elsewhere."""
    match = re.search(r"<any\(([^)]*)\):\w+>", rule)
    if match:
        choices = [c.strip() for c in match.group(1).split(",")]
        return [u for c in choices for u in concrete(rule.replace(match.group(0), c))]
    return [re.sub(r"<(?:int|row_id)[^>]*:\w+>", "1", re.sub(r"<(?:string:)?\w+>", "x", rule))]


def routes(app: Flask) -> list[tuple[str, str, str | None]]:
    """The API's routes; the dashboard's (/dashboard/..., and / that sends a browser there) sit
    behind its session login, checked route by route in tests/dashboards/test_dashboard_auth.py."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/dashboard/") or rule.endpoint == "root":
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for url in concrete(rule.rule):
                out.append((method, url, getattr(view, "required_scope", None), rule.rule))
    return out


def test_every_v1_route_requires_a_scope(app: Flask) -> None:
    for method, url, scope, rule in routes(app):
        if rule in PUBLIC:
            continue
        assert scope in SCOPES, f"{method} {url} has no scope check"


@pytest.mark.parametrize("scope", ["predict", "correct", None])
def test_each_route_refuses_keys_without_its_scope(app: Flask, client: FlaskClient,
                                                   scope: str | None) -> None:
    headers = {}
    if scope is not None:
        key = create_key(app.extensions["abvoc"].db, [scope])["key"]
        headers = {"Authorization": f"Bearer {key}"}
    checked = 0
    for method, url, required, rule in routes(app):
        if rule in PUBLIC:
            continue
        if scope == required:
            continue
        response = client.open(url, method=method, headers=headers, json={})
        expected = 401 if scope is None else 403
        assert response.status_code == expected, (method, url, response.get_json())
        assert "error" in response.get_json()
        checked += 1
    assert checked > 10


def test_keys_are_hashed_and_revocable(app: Flask, client: FlaskClient) -> None:
    db = app.extensions["abvoc"].db
    created = create_key(db, ["admin"], "ops")
    with db.session() as s:
        stored = s.scalars(select(ApiKey)).one()
    assert created["key"] not in (stored.key_hash, stored.prefix)
    headers = {"X-API-Key": created["key"]}
    assert client.get("/v1/experiments", headers=headers).status_code == 200
    # The scheme's name is case-insensitive (RFC 9110): `bearer` is a bearer header too.
    for scheme in ("Bearer", "bearer", "BEARER"):
        sent = {"Authorization": f"{scheme} {created['key']}"}
        assert client.get("/v1/experiments", headers=sent).status_code == 200, scheme
    revoke_key(db, created["prefix"])
    app.extensions["abvoc_keys"]._cache.clear()
    assert client.get("/v1/experiments", headers=headers).status_code == 401
    bogus = client.get("/v1/experiments", headers={"Authorization": "Bearer abv_nope"})
    assert bogus.status_code == 401


def test_a_revoked_key_is_refused_within_the_cache_bound(db: Database) -> None:
    """Look-ups are cached so a request costs no query; the price is a bound, not a leak: a
    revoked key keeps working for at most `ttl_s` after it was last looked up, then is refused."""
    cache = KeyCache(db, ttl_s=1.0)
    created = create_key(db, ["predict"])
    looked_up = time.monotonic()
    assert cache.scopes(created["key"]) == {"predict"}
    revoke_key(db, created["prefix"])
    if time.monotonic() - looked_up < 0.9:  # the cached answer stands within the bound
        assert cache.scopes(created["key"]) == {"predict"}
    time.sleep(max(0.0, 1.0 - (time.monotonic() - looked_up)) + 0.05)
    assert cache.scopes(created["key"]) == frozenset()
    assert KeyCache(db).scopes(created["key"]) == frozenset()  # a fresh cache never served it
