"""abvoc's Dash dashboard, behind a login, mounted on the service's Flask app at /dashboard/.

The pages read the store through :mod:`dashboards.data`, which calls the evaluation functions
the HTTP API uses.
"""

from __future__ import annotations

from dash import Dash
from flask import Flask

from core.settings import Settings
from dashboards import auth, headers
from dashboards.app import create_dash
from dashboards.auth import KeyBook
from dashboards.sessions import SessionEnds


def init_app(server: Flask, keys: KeyBook, settings: Settings) -> Dash:
    """Mount the dashboard on ``server``: the login (keys looked up through ``keys``), the
    session cookie (signed with a key derived from the service secret), the Dash app and its
    security headers. Logouts are kept on the key rows of the store of ``server``'s services."""
    if not settings.secret_key:
        raise ValueError("the dashboard needs the service's secret key to sign its sessions")
    ends = SessionEnds(server.extensions["abvoc"].db)
    auth.init_app(server, keys, ends, settings.secret_key.reveal(), settings.production)
    dash_app = create_dash(server)
    headers.install(server, dash_app, settings.production)
    return dash_app
