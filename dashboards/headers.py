"""Security headers on every dashboard response.

- No framing (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``): no clickjacking of
  the Annotate or Log out buttons.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``.
- A Content-Security-Policy: scripts only from this origin plus the hashes of Dash's own inline
  scripts (:meth:`dash.Dash.csp_hashes`, computed once every callback is registered); styles
  may be inline, as Dash's components set ``style`` attributes.
- In production (served over HTTPS), ``Strict-Transport-Security``.
"""

from __future__ import annotations

from dash import Dash
from flask import Flask, Response, request

from dashboards.auth import PREFIX

HSTS = "max-age=31536000"


def policy(dash_app: Dash) -> str:
    """The dashboard's Content-Security-Policy."""
    scripts = " ".join(["'self'", *dash_app.csp_hashes()])  # each already quoted
    return "; ".join([
        "default-src 'self'", f"script-src {scripts}", "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:", "font-src 'self' data:", "connect-src 'self'",
        "object-src 'none'", "base-uri 'self'", "form-action 'self'",
        "frame-ancestors 'none'"])


def install(server: Flask, dash_app: Dash, production: bool) -> None:
    """Add the headers to the dashboard's responses (the API's are left as they are)."""
    headers = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "same-origin", "Content-Security-Policy": policy(dash_app)}
    if production:
        headers["Strict-Transport-Security"] = HSTS

    def add(response: Response) -> Response:
        if request.path.startswith(PREFIX) or request.path == PREFIX.rstrip("/"):
            for name, value in headers.items():
                response.headers.setdefault(name, value)
        return response

    server.after_request(add)
