"""A URL path whose percent-encoded bytes are not UTF-8 is a 400 naming the path parameter that
holds them: werkzeug read each bad byte as U+FFFD, so `POST .../arms/%ff/pause` was a 404 saying
the experiment has no arm '\ufffd'. The WSGI path is the bytes as latin-1 text, as granian and
werkzeug's test client give it."""

from __future__ import annotations

from flask import Flask

from tests.evaluation.helpers import add_experiment
from tests.support.keys import bearer


def test_a_path_that_is_not_utf8_is_a_400_naming_its_parameter(v2app: Flask) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    for raw in ("%ff", "%C3%28", "ok%80"):
        answer = client.post(f"/v1/experiments/{exp}/arms/{raw}/pause", headers=admin)
        assert answer.status_code == 400, (raw, answer.get_json())
        assert answer.get_json()["error"].startswith(
            "path parameter 'arm' is not valid UTF-8"), raw
    # As granian hands it: no request line kept, the path's bytes as latin-1 text.
    as_granian = client.post("/", headers=admin, environ_overrides={
        "PATH_INFO": f"/v1/experiments/{exp}/arms/\xff/pause", "RAW_URI": "", "REQUEST_URI": ""})
    assert as_granian.status_code == 400
    assert as_granian.get_json()["error"].startswith("path parameter 'arm' is not valid UTF-8")
    unrouted = client.get("/v1/%ff", headers=admin)
    assert unrouted.status_code == 400
    assert unrouted.get_json()["error"].startswith("the URL path is not valid UTF-8")
    # Valid UTF-8 is text, U+FFFD itself included: the arm is looked for, and not found.
    for raw, name in (("%C3%A9", "é"), ("%EF%BF%BD", "\ufffd")):
        answer = client.post(f"/v1/experiments/{exp}/arms/{raw}/pause", headers=admin)
        assert answer.status_code == 404, raw
        assert f"has no arm '{name}'" in answer.get_json()["error"]


def test_a_query_value_that_is_not_utf8_is_a_400_naming_its_parameter(v2app: Flask) -> None:
    """werkzeug gave a query value's bad bytes back as `%XX` text: `unit_id=%ff` read the unit
    '%FF' (as `%25FF` does), and `candidate=%ff` said no candidate '%FF' is registered."""
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    outcomes = f"/v1/experiments/{exp}/unit-outcomes"
    for url, name in ((f"{outcomes}?unit_id=%ff", "unit_id"),
                      (f"{outcomes}?unit_id=ok%C3%28", "unit_id"),
                      ("/v1/relabel/rules?candidate=%ff", "candidate")):
        answer = client.get(url, headers=admin)
        assert answer.status_code == 400, (url, answer.get_json())
        assert answer.get_json()["error"].startswith(
            f"query parameter '{name}' is not valid UTF-8"), url
    name = client.get(f"{outcomes}?%ff=1", headers=admin)
    assert name.status_code == 400
    assert name.get_json()["error"].startswith("a query parameter name is not valid UTF-8")
    # As granian hands it: the query's bytes as latin-1 text.
    as_granian = client.get(outcomes, headers=admin,
                            environ_overrides={"QUERY_STRING": "unit_id=\xff"})
    assert as_granian.status_code == 400
    assert "query parameter 'unit_id' is not valid UTF-8" in as_granian.get_json()["error"]
    # Valid UTF-8 is text: '%FF' itself (sent as %25FF) and é are units like any other.
    for raw in ("%25FF", "%C3%A9", "caf%C3%A9+au+lait"):
        assert client.get(f"{outcomes}?unit_id={raw}", headers=admin).status_code == 200, raw
