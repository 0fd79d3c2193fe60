"""The Dash app: a shell (navigation, log-out, the page area) and a router that builds the page
for the URL if the session's roles allow it. Mounted on the service's Flask app under
``/dashboard/`` (see :func:`dashboards.init_app`)."""

from __future__ import annotations

from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component
from dash.exceptions import DependencyException
from flask import Flask, jsonify, request

from core.errors import AbvocError
from dashboards import csv_downloads, session_end
from dashboards.access import allowed
from dashboards.auth import CSRF_COOKIE, CSRF_HEADER, PREFIX
from dashboards.callback_body import body_problem
from dashboards.pages import PAGES, Page

HOME = PAGES[0]
# Table cells wrap long unbroken text (a comment of one 2,000-letter word) so a table fits the
# window; their minimum width keeps the other columns readable beside it.
# On a phone-sized window the header wraps, controls take the width there is, and a table too
# wide for the window scrolls in its own box, so the page itself never scrolls sideways; for
# the same reason preformatted text (an answer, a prediction's stages) wraps at the page's edge.
_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:center;background:#223;color:#fff;
padding:10px 20px}
header a{color:#cde;text-decoration:none}header .brand{font-weight:600;color:#fff}
header form{margin-left:auto}main{padding:16px 24px;overflow-wrap:anywhere}
.controls{display:flex;gap:24px;flex-wrap:wrap;margin-bottom:18px}
.control{min-width:min(220px,100%);max-width:100%;box-sizing:border-box}
.wide{min-width:min(420px,100%)}.time{padding:0 56px}
table.grid{border-collapse:collapse;background:#fff;font-size:13px;display:block;
max-width:100%;overflow-x:auto}
@media (max-width:600px){main{padding:10px}.time{padding:0 48px}.controls{gap:12px}
header{padding:8px 10px}}
table.grid th,table.grid td{border:1px solid #ddd;padding:4px 8px;text-align:left;
overflow-wrap:anywhere;min-width:5em}
.decision{background:#fff;border-left:6px solid #888;padding:6px 14px;margin:10px 0}
.decision.ship{border-color:#2a7}.decision.stop{border-color:#c33}
.decision.keep_running{border-color:#e90}.alert{background:#fdd;padding:8px;border:1px solid #c33}
pre.output{background:#fff;border:1px solid #ddd;padding:6px 10px;margin:4px 0}
main pre{white-space:pre-wrap}
.message{margin:8px 0;font-weight:600}#ann-actions{align-items:center}
#ann-actions button,button.claim{padding:6px 16px;align-self:flex-end}
"""


def create_dash(server: Flask) -> Dash:
    """A Dash app on ``server`` with every page of :data:`dashboards.pages.PAGES`."""
    app = Dash(__name__, server=server, url_base_pathname=PREFIX, pages_folder="",
               use_pages=False, suppress_callback_exceptions=True, title="abvoc",
               update_title=None, serve_locally=True, csrf_token_name=CSRF_COOKIE,
               csrf_header_name=CSRF_HEADER, include_assets_files=False,
               external_scripts=[session_end.URL],
               meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}])
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + _STYLE + "</style>")
    app.layout = _shell
    # Dash raises this for a script path it does not serve (an unknown package or file, `..`):
    # the caller's mistake, a 404, not a server error with Dash's list of every script.
    server.register_error_handler(
        DependencyException,
        lambda _exc: (jsonify({"error": "no such dashboard script", "status": 404}), 404))
    server.before_request(lambda: _refuse_unknown_output(app))
    session_end.install(server)

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def _route(pathname: str | None) -> Component:
        # Only a forged request sends a pathname that is not a string: a 400, not a 500.
        if pathname is not None and not isinstance(pathname, str):
            raise AbvocError(f"url.pathname must be a string, not {type(pathname).__name__}")
        if pathname is not None and not _under_prefix(pathname):
            raise AbvocError(f"url.pathname must be a path under {PREFIX}")
        return page_for(app.strip_relative_path(pathname or PREFIX) or "")

    for page in PAGES:
        page.register(app)
    csv_downloads.register(app)  # the pages' tables as CSV, for the session's admin
    # Dash sets its server up on the first request, and marks it done before it registers the
    # scripts it serves: a script another thread asks for meanwhile got a 404 and left the
    # page blank. Set it up now, once, before any request (its later call does nothing).
    with server.test_request_context(PREFIX):
        app._setup_server()  # noqa: SLF001
    return app


def _refuse_unknown_output(app: Dash) -> None:
    """A callback request naming an output no callback has, or with malformed ``outputs``,
    ``inputs`` or ``state``, is the caller's mistake (only a hand-made request sends one): a
    400 naming the field, not the KeyError or TypeError Dash would raise as a 500."""
    if request.method != "POST" or request.path != f"{PREFIX}_dash-update-component":
        return
    problem = body_problem(request.get_json(silent=True), app.callback_map)
    if problem:
        raise AbvocError(problem)


def _under_prefix(pathname: str) -> bool:
    """Dash strips the prefix from the path, and raises (a 500) for a path without it."""
    return pathname.startswith(PREFIX) or pathname == PREFIX.rstrip("/")


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
