"""The dashboard's login: an API key in a form becomes a signed session cookie with roles.

- ``GET/POST /dashboard/login`` takes a key, looks it up (only its hash is stored) and keeps the
  key's *id* and roles in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure in
  production, path ``/dashboard/``); the key itself is never kept. ``POST /dashboard/logout``
  clears it and ends, server-side, every session of that key (:mod:`dashboards.sessions`): a
  copy of the cookie made before it is refused.
- A session lasts :data:`SESSION_HOURS` from the login, however much it is used: the cookie keeps
  its login time (signed) and use does not extend it.
- Failed logins are limited per client address (:mod:`dashboards.throttle`): a 429 after too many.
- Every other ``/dashboard/`` request needs a live session: pages redirect to the login, Dash's
  own requests (``_dash-*``) get a 401. The key is re-checked (cached a few seconds), so a
  revoked key or a lost scope ends the session.
- Roles come from the key's scopes through :data:`ROLES_BY_SCOPE`.
- The session cookie is opened only on the dashboard's own paths: the API authenticates each
  request by its key, so its requests skip reading and re-signing a cookie they never use.
- CSRF: every unsafe request must come from this origin (``Origin``, else ``Referer``), and
  Dash callbacks must also echo the session's token in ``X-CSRFToken``: the renderer reads it
  from the readable cookie :data:`CSRF_COOKIE` (double submit), and the login form carries it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request

from dashboards.sessions import SessionEnds
from dashboards.throttle import Throttle

PREFIX = "/dashboard/"
ROLES_BY_SCOPE: dict[str, str] = {
    "admin": "admin",
    "annotate": "annotator",
}
SESSION_COOKIE = "abvoc_dashboard"
CSRF_COOKIE = "abvoc_csrf"
CSRF_HEADER = "X-CSRFToken"
SESSION_HOURS = 12
# The login and Dash's icon (exact paths) and JavaScript bundles (the one true prefix): the
# same for everyone, needed by no secret. `/dashboard/login-x` or `/dashboard/login/...` is
# not the login: it redirects to it like any other page.
_PUBLIC_PATHS = frozenset({f"{PREFIX}login", f"{PREFIX}_favicon.ico"})
_PUBLIC_PREFIX = f"{PREFIX}_dash-component-suites/"
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

bp = Blueprint("dashboard_auth", __name__)


class KeyBook(Protocol):
    """What the login needs to know about API keys (the app's ``KeyCache`` is one)."""

    def identify(self, key: str) -> tuple[int, frozenset[str]] | None: ...

    def scopes_by_id(self, key_id: int) -> frozenset[str]: ...

    def identity_by_id(self, key_id: int) -> str: ...


def roles_for(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(ROLES_BY_SCOPE[s] for s in scopes if s in ROLES_BY_SCOPE)


def current_roles() -> frozenset[str]:
    """The roles of this request's session (set by the guard; empty outside one)."""
    return g.get("dashboard_roles", frozenset())


def current_identity() -> str:
    """Who the session's key is (``name:prefix``, as the API records it; empty outside one)."""
    key_id = g.get("dashboard_key_id")
    return "" if key_id is None else _keys().identity_by_id(key_id)


def session_key(secret: str) -> str:
    """The cookie-signing key, derived from the service secret so the receipt key itself
    never signs anything else."""
    return hmac.new(secret.encode(), b"abvoc dashboard session", hashlib.sha256).hexdigest()


def _dashboard_path(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/")


class DashboardSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, on the dashboard's paths only; elsewhere a request gets
    Flask's null session (read as empty, never saved). The cookie expires with the session,
    :data:`SESSION_HOURS` after the login, not after the last request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not _dashboard_path(request.path):
            return None
        return super().open_session(app, request)

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        started = session.get("started")
        if session.permanent and isinstance(started, int | float):
            return datetime.fromtimestamp(started, UTC) + timedelta(hours=SESSION_HOURS)
        return super().get_expiration_time(app, session)


def init_app(server: Flask, keys: KeyBook, ends: SessionEnds, secret: str,
             production: bool) -> None:
    """Configure the session cookie and install the login routes and the guard."""
    server.secret_key = session_key(secret)
    server.session_interface = DashboardSessions()
    server.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE, SESSION_COOKIE_PATH=PREFIX,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production, SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    server.extensions["abvoc_dashboard_keys"] = keys
    server.extensions["abvoc_dashboard_sessions"] = ends
    server.extensions["abvoc_dashboard_throttle"] = Throttle()
    server.register_blueprint(bp)
    server.before_request(_guard)
    server.after_request(_csrf_cookie)


def _keys() -> KeyBook:
    from flask import current_app

    return current_app.extensions["abvoc_dashboard_keys"]


def _ends() -> SessionEnds:
    from flask import current_app

    return current_app.extensions["abvoc_dashboard_sessions"]


def _throttle() -> Throttle:
    from flask import current_app

    return current_app.extensions["abvoc_dashboard_throttle"]


def _same_origin() -> bool:
    """True when the request says it comes from this host (Origin, else Referer)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.host


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _refuse(status: int, message: str) -> Response:
    response = jsonify({"error": message, "status": status})
    response.status_code = status
    return response


def _guard() -> Response | None:
    if not _dashboard_path(request.path):
        return None
    path = request.path
    if request.method in _UNSAFE and not _same_origin():
        return _refuse(403, "cross-origin request refused: send it from the dashboard's own "
                            "origin (Origin or Referer header)")
    if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIX):
        return None
    key_id = session.get("key_id")
    roles = roles_for(_keys().scopes_by_id(int(key_id))) if key_id is not None else frozenset()
    if roles and not _ends().live(int(key_id), session.get("started"), SESSION_HOURS * 3600):
        roles = frozenset()  # too old, or ended by a logout (possibly in another browser)
    if not roles:
        session.pop("key_id", None)
        session.pop("started", None)
        # HEAD is GET without the body: a browser's (or a monitor's) HEAD of a page gets the
        # same redirect to the login, not the 401 an API call gets.
        if "/_dash-" in path or path.endswith("_reload-hash") \
                or request.method not in ("GET", "HEAD"):
            return _refuse(401, f"log in first at {PREFIX}login")
        return redirect(f"{PREFIX}login?next={quote(path)}", code=302)
    if request.method in _UNSAFE and path != f"{PREFIX}logout":
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.get("csrf", "").encode()):
            return _refuse(403, f"missing or wrong {CSRF_HEADER} header: reload the page")
    g.dashboard_roles = roles
    g.dashboard_key_id = int(key_id)
    return None


def _csrf_cookie(response: Response) -> Response:
    """Hand the session's CSRF token to the page's JavaScript (readable, not HttpOnly)."""
    if request.path.startswith(PREFIX) and "csrf" in session \
            and request.cookies.get(CSRF_COOKIE) != session["csrf"]:
        from flask import current_app

        response.set_cookie(CSRF_COOKIE, session["csrf"], path=PREFIX, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=False)
    return response


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect, and no control character
    (a line break in a Location header is a 500, or a header injected), nor one percent-encoded
    or bytes that are not UTF-8 (`?x=%FF`: the page it led to was a 400)."""
    if not target or not target.startswith(PREFIX) or "//" in target or "\\" in target \
            or any(_control(c) for c in target) or _climbs(target):
        return PREFIX
    try:
        decoded = unquote_to_bytes(target).decode("utf-8")
    except UnicodeDecodeError:
        return PREFIX
    return PREFIX if any(_control(c) for c in decoded) else target


def _control(c: str) -> bool:
    return ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F


def _climbs(target: str) -> bool:
    """Whether the path has a dot segment, plain or percent-encoded: the browser resolves
    `/dashboard/../healthz` (and `/dashboard/%2e%2e/healthz`) to `/healthz`, off the
    dashboard, though the text starts with its prefix."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    return any(part in (".", "..") for part in unquote(path).split("/"))


@bp.get(f"{PREFIX}login")
def login_form() -> Any:
    return _page(request.args.get("next"), None, 200)


@bp.post(f"{PREFIX}login")
def login() -> Any:
    target = request.form.get("next")
    sent = request.form.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), session.get("csrf", "").encode()):
        return _page(target, "The form expired: log in again.", 400)
    address = request.remote_addr or ""
    wait = _throttle().wait(address)
    if wait:
        page, status = _page(target, "Too many failed logins: try again in a minute.", 429)
        return page, status, {"Retry-After": str(wait)}
    key = request.form.get("key", "").strip()
    found = _keys().identify(key) if 0 < len(key) <= 200 else None
    if found is None:
        _throttle().failed(address)
        return _page(target, "This API key is unknown or revoked.", 401)
    _throttle().succeeded(address)
    key_id, scopes = found
    roles = roles_for(scopes)
    if not roles:
        wanted = " or ".join(sorted(ROLES_BY_SCOPE))
        return _page(target, f"This API key has no dashboard role: it needs the {wanted} "
                             "scope.", 403)
    session.clear()
    session.permanent = True
    session.update(key_id=key_id, csrf=secrets.token_urlsafe(32), started=time.time())
    return redirect(_safe_next(target), code=303)


@bp.post(f"{PREFIX}logout")
def logout() -> Any:
    """End every session of this key server-side too: clearing the cookie alone would leave
    a copy of it working until it expired."""
    _ends().end(g.dashboard_key_id)
    session.clear()
    response = redirect(f"{PREFIX}login", code=303)
    response.delete_cookie(CSRF_COOKIE, path=PREFIX)
    return response


def _page(target: str | None, error: str | None, status: int) -> tuple[str, int]:
    return render_template_string(_LOGIN, error=error, next=_safe_next(target),
                                  csrf=_csrf_token()), status


# Jinja escapes every value put into this page.
_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>abvoc: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/dashboard/_favicon.ico">
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}
form{max-width:360px;margin:12vh auto;box-sizing:border-box;background:#fff;padding:28px;
border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:20px;margin:0 0 16px}label{display:block;margin-bottom:6px;color:#444}
input[type=password]{width:100%;box-sizing:border-box;padding:8px;font-size:14px}
button{margin-top:14px;padding:8px 18px;font-size:14px}.error{color:#b00020;margin:0 0 12px}
p.hint{color:#666;font-size:13px}
</style></head><body>
<form method="post" action="/dashboard/login" id="login-form">
<h1>abvoc dashboard</h1>
{% if error %}<p class="error" id="login-error">{{ error }}</p>{% endif %}
<label for="key">API key</label>
<input type="password" id="key" name="key" autocomplete="off" required maxlength="200">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<button type="submit" id="login-submit">Log in</button>
<p class="hint">A key with the admin scope: <code>abvoc keys create --scopes admin</code></p>
</form></body></html>"""
