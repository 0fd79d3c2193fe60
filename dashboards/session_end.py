"""The page's answer to a session that ends while it is open (a logout in another browser, a
revoked key, the 12-hour limit): every callback is then answered 401, and Dash alone would keep
the old content on screen under new controls, saying nothing.

A small script wraps ``window.fetch``: the first 401 to one of Dash's own requests sends the
browser to the login, with ``next=`` the page it was on. It is served from here rather than
from an assets folder so that it travels with the package's Python files; the CSP's
``script-src 'self'`` allows it, and it sits behind the login like every dashboard path.
"""

from __future__ import annotations

from flask import Flask, Response

from dashboards.auth import PREFIX

URL = f"{PREFIX}_abvoc/session_end.js"

SCRIPT = """(function () {
  "use strict";
  var prefix = %(prefix)s;
  var original = window.fetch;
  var leaving = false;
  window.fetch = function (target) {
    var url = typeof target === "string" ? target : (target && target.url) || "";
    return original.apply(this, arguments).then(function (response) {
      if (response.status === 401 && !leaving && url.indexOf("_dash-") !== -1) {
        leaving = true;
        var here = window.location.pathname + window.location.search;
        window.location.assign(prefix + "login?next=" + encodeURIComponent(here));
      }
      return response;
    });
  };
}());
"""


def install(server: Flask) -> None:
    """Serve the script at :data:`URL` (the Dash app lists it among its scripts)."""
    body = SCRIPT % {"prefix": f'"{PREFIX}"'}

    def script() -> Response:
        return Response(body, mimetype="text/javascript",
                        headers={"Cache-Control": "no-cache"})

    server.add_url_rule(URL, "abvoc_dashboard_session_end", script)
