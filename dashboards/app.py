"""The Dash app: a shell (navigation, log-out, the page area) and a router that builds the page
for the URL if the session's roles allow it. Mounted on the service's Flask app under
``/dashboard/`` (see :func:`dashboards.init_app`)."""

from __future__ import annotations

from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component
from dash.exceptions import DependencyException
from flask import Flask, jsonify

from dashboards.access import allowed
from dashboards.auth import CSRF_COOKIE, CSRF_HEADER, PREFIX
from dashboards.pages import PAGES, Page

HOME = PAGES[0]
_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{display:flex;gap:18px;align-items:center;background:#223;color:#fff;padding:10px 20px}
header a{color:#cde;text-decoration:none}header .brand{font-weight:600;color:#fff}
header form{margin-left:auto}main{padding:16px 24px}
.controls{display:flex;gap:24px;flex-wrap:wrap;margin-bottom:18px}
.control{min-width:220px}.wide{min-width:420px}.time{padding:0 56px}
table.grid{border-collapse:collapse;background:#fff;font-size:13px}
table.grid th,table.grid td{border:1px solid #ddd;padding:4px 8px;text-align:left}
.decision{background:#fff;border-left:6px solid #888;padding:6px 14px;margin:10px 0}
.decision.ship{border-color:#2a7}.decision.stop{border-color:#c33}
.decision.keep_running{border-color:#e90}.alert{background:#fdd;padding:8px;border:1px solid #c33}
pre.output{background:#fff;border:1px solid #ddd;padding:6px 10px;margin:4px 0}
.message{margin:8px 0;font-weight:600}#ann-actions{align-items:center}
#ann-actions button,button.claim{padding:6px 16px;align-self:flex-end}
"""


def create_dash(server: Flask) -> Dash:
    """A Dash app on ``server`` with every page of :data:`dashboards.pages.PAGES`."""
    app = Dash(__name__, server=server, url_base_pathname=PREFIX, pages_folder="",
               use_pages=False, suppress_callback_exceptions=True, title="abvoc",
               update_title=None, serve_locally=True, csrf_token_name=CSRF_COOKIE,
               csrf_header_name=CSRF_HEADER, include_assets_files=False)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + _STYLE + "</style>")
    app.layout = _shell
    # Dash raises this for a script path it does not serve (an unknown package or file, `..`):
    # the caller's mistake, a 404, not a server error with Dash's list of every script.
    server.register_error_handler(
        DependencyException,
        lambda _exc: (jsonify({"error": "no such dashboard script", "status": 404}), 404))

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def _route(pathname: str | None) -> Component:
        return page_for(app.strip_relative_path(pathname or PREFIX) or "")

    for page in PAGES:
        page.register(app)
    return app


def page_for(path: str) -> Component:
    """The page at ``path`` (relative to the prefix), or why it cannot be shown."""
    page = HOME if path == "" else next((p for p in PAGES if p.path == path.strip("/")), None)
    if page is None:
        return html.H2("No such page", id="not-found")
    if not allowed(page.roles):
        return html.P(f"Your role cannot see the {page.title} page.", id="forbidden")
    return page.layout()


def _nav(pages: tuple[Page, ...]) -> list[Component]:
    return [dcc.Link(p.title, href=f"{PREFIX}{p.path}") for p in pages if allowed(p.roles)]


def _shell() -> Component:
    return html.Div([
        dcc.Location(id="url"),
        html.Header([html.Span("abvoc", className="brand"), *_nav(PAGES),
                     html.Form(method="POST", action=f"{PREFIX}logout", children=html.Button(
                         "Log out", id="logout", type="submit"))]),
        html.Main(html.Div(id="page")),
    ])
