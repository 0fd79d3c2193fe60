"""`abvoc dashboard` serves the dashboard alone, as a real process on a free loopback port, under
the production server (granian) and Werkzeug's (`--dev`): the login page and Dash's scripts
answer, pages redirect to the login, and the prediction API is not there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core.settings import Settings
from tests.support.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


def _status(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


@pytest.mark.parametrize("server", [[], ["--dev"]], ids=["granian", "dev"])
def test_abvoc_dashboard_serves_the_dashboard_alone(settings: Settings, server: list[str]) -> None:
    port = free_port()
    env = {**os.environ, "ABVOC_DATABASE_URL": settings.database_url,
           "ABVOC_DATA_DIR": str(settings.data_dir), "ABVOC_SECRET_KEY": "test-secret",
           "PYTHONPATH": str(ROOT)}
    # Started as a script's background job would be: with SIGINT ignored (a CI run started that
    # way once left the server running after its SIGINT).
    proc = subprocess.Popen([sys.executable, "-m", "app", "dashboard", *server, "--port",
                             str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        wait_for_port(port, 60, proc)
        base = f"http://127.0.0.1:{port}"
        status, body = _status(f"{base}/dashboard/login")
        assert status == 200 and 'id="login-form"' in body
        for script in ("dcc/dash_core_components.js", "dash-renderer/build/dash_renderer.min.js"):
            status, code = _status(f"{base}/dashboard/_dash-component-suites/dash/{script}")
            assert status == 200 and len(code) > 100_000, script  # Dash's own, whole
        assert _status(f"{base}/dashboard/experiments") == \
            (302, "/dashboard/login?next=/dashboard/experiments")
        assert _status(f"{base}/v1/experiments")[0] == 404
        assert _status(f"{base}/") == (302, "/dashboard/")  # a JSON 404 before
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()  # and close its pipes, so the failure is this test's alone (a
            proc.communicate(timeout=60)  # server worker it left stops by itself: orphan watch)
            raise
    assert f"http://127.0.0.1:{port}/dashboard/" in output
