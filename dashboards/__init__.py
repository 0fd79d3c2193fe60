"""abvoc's Dash dashboard, behind a login, mounted on the service's Flask app at /dashboard/.

The pages read the store through :mod:`dashboards.data`, which calls the evaluation functions
the HTTP API uses.
"""

from __future__ import annotations

from dash import Dash
from flask import Flask

from core.settings import Settings
from dashboards import auth
from dashboards.app import create_dash
from dashboards.auth import KeyBook


def init_app(server: Flask, keys: KeyBook, settings: Settings) -> Dash:
    """Mount the dashboard on ``server``: the login (keys looked up through ``keys``), the
    session cookie (signed with a key derived from the service secret) and the Dash app."""
    if not settings.secret_key:
        raise ValueError("the dashboard needs the service's secret key to sign its sessions")
    auth.init_app(server, keys, settings.secret_key.reveal(), settings.production)
    return create_dash(server)
