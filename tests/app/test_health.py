"""Health endpoints of the API on the embedded defaults."""

from __future__ import annotations

from tests.app.test_readiness import spool_checked


def test_healthz(client) -> None:  # noqa: ANN001
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_store_and_bus(client) -> None:  # noqa: ANN001
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert spool_checked(client, body["checks"]) == {"database": "ok", "bus": "ok",
                                                     "outbox": "ok"}
    assert body["outbox_pending"] == 0


def test_unknown_route_is_json_404(client) -> None:  # noqa: ANN001
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["status"] == 404
