"""GET /v1/experiments/{id}/results and /divergence take since, until and max_slices; a bad or
unknown query parameter is a 400 naming it, never the whole experiment answered silently."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from app.cli import main
from core.store.db import Database
from evaluation import unit_recount
from tests.evaluation.helpers import T0, add_experiment, apply, prediction
from tests.support.keys import bearer


@pytest.fixture
def exp(db: Database) -> int:
    """Two arms, three slices, traffic in the hour of T0 only."""
    exp = add_experiment(db)
    apply(db, [prediction(f"{arm}-{s}-{k}", arm=arm, candidate=cand, slice_=s,
                          unit_id=f"{arm}-{k}", at=T0)
               for arm, cand in (("control", "cand-a"), ("treatment", "cand-b"))
               for s, n in (("big", 9), ("mid", 5), ("small", 2)) for k in range(n)])
    return exp


@pytest.mark.parametrize("report", ["results", "divergence"])
def test_reports_take_a_window_and_a_slice_limit(v2app: Flask, exp: int, report: str) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    url = f"/v1/experiments/{exp}/{report}"

    def get(**query: str) -> dict:
        answer = client.get(url, query_string=query, headers=admin)
        assert answer.status_code == 200, answer.json
        return answer.json

    assert get()["slice_choice"] == {"shown": 3, "left_out": 0, "left_out_predictions": 0,
                                     "max_slices": 50}
    assert get(max_slices="1")["slice_choice"]["left_out_predictions"] == 2 * (5 + 2)
    hour = T0.replace(minute=0)
    inside = get(since=hour.isoformat(), until=(hour + timedelta(hours=1)).isoformat())
    later = get(since=(hour + timedelta(hours=1)).isoformat().replace("+00:00", "Z"))
    if report == "results":
        assert inside["metrics"]["control"]["all"]["predictions"] == 16
        assert later["metrics"] == {"control": {}, "treatment": {}}
    else:
        assert {r["online"]["n"] for r in inside["slices"] if r["slice"] == "all"} == {16}
        assert later["slices"] == []
    for query, words in [({"since": "yesterday"}, "'since' must be an RFC 3339 time"),
                         ({"until": "2026-11-20T10:00:00"}, "'until' must be an RFC 3339"),
                         ({"since": "2026-11-20T11:00:00Z", "until": "2026-11-20T10:00:00Z"},
                          "'until' must be later than 'since'"),
                         ({"max_slices": "-1"}, "'max_slices' must be a whole number"),
                         ({"max_slices": "1001"}, "from 0 to 1000"),
                         ({"max_slices": "²"}, "'max_slices' must be a whole number"),
                         ({"max_slices": "0" * 5000 + "1"}, "'max_slices' must be a whole"),
                         ("since=%ED%A0%80", "query parameter 'since' is not valid UTF-8"),
                         ({f"p{i}": "1" for i in range(50)}, "'p0', 'p1', 'p10', 'p11', "
                          "'p12', 'p13', 'p14', 'p15', 'p16' and 41 more;"),
                         ({"recount_units": "yes"}, "'recount_units' must be true or false"),
                         ("since=2026-11-20T10:00:00Z&since=2026-11-20T11:00:00Z",
                          "query parameter(s) 'since' given more than once"),
                         ({"primary_metric": "x"},
                          "unknown query parameter(s) 'primary_metric'")]:
        refused = client.get(url, query_string=query, headers=admin)
        assert refused.status_code == 400 and words in refused.json["error"], refused.json


def test_a_window_is_tested_per_unit_when_its_units_are_recounted(
        v2app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Units that send several requests, and one more request an hour later: the first hour
    alone is tested per unit, its units recounted, unless `recount_units=false` says to count
    predictions, or it holds more than the live-read limit (unless `recount_units=true`)."""
    from tests.evaluation.test_unit_analysis import clustered
    exp = add_experiment(db)
    apply(db, [*clustered(seed=2, units=8, experiment_id=exp)[0],
               prediction("later", experiment_id=exp, unit_id="control-0",
                          at=T0 + timedelta(hours=1))])
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    hour = T0.replace(minute=0)
    window = {"until": (hour + timedelta(hours=1)).isoformat()}

    def get(**recount: str) -> dict:
        return client.get(f"/v1/experiments/{exp}/results", query_string={**window, **recount},
                          headers=admin).json

    assert client.get(f"/v1/experiments/{exp}/divergence", query_string=window,
                      headers=admin).status_code == 200  # recounted the same way
    for recounted in (get(), get(recount_units="true")):
        assert "correction_rate" in recounted["analysis_unit"]["per_unit"]
        assert recounted["analysis_unit_note"] is None
    counted = get(recount_units="false")
    assert counted["analysis_unit"]["per_unit"] == []
    assert "correction_rate" in counted["analysis_unit"]["per_prediction"]
    monkeypatch.setattr(unit_recount, "AUTO_RECOUNT_LIMIT", 10)  # the window holds more
    assert get()["analysis_unit"]["per_unit"] == []
    assert "count predictions as independent" in get()["analysis_unit_note"]
    assert "correction_rate" in get(recount_units="true")["analysis_unit"]["per_unit"]


@pytest.mark.parametrize("command", ["results", "divergence"])
def test_the_cli_takes_the_slice_limit(exp: int, database_url: str, tmp_path: Path,
                                       command: str) -> None:
    env = {"ABVOC_DATABASE_URL": database_url, "ABVOC_DATA_DIR": str(tmp_path)}
    shown = CliRunner().invoke(main, ["experiment", command, str(exp), "--max-slices", "1",
                                      "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["slice_choice"]["left_out"] == 2
    refused = CliRunner().invoke(main, ["experiment", command, str(exp), "--max-slices", "-2"],
                                 env=env)
    assert refused.exit_code == 2 and "--max-slices" in refused.output


@pytest.mark.parametrize(("path", "said"), [
    ("/v1/reports?x=1", "parameter(s) 'x';"), ("/v1/candidates?al=1", "this route takes all"),
    ("/v1/candidates/iris-onnx?verison=2", "parameter(s) 'verison';"),
    ("/v1/experiments?state=running", "this route takes status"),
    ("/v1/relabel/queues?queue=training", "this route takes none"),
    ("/v1/candidates?all=1&all=0", "given more than once")])
def test_every_documented_route_refuses_a_query_parameter_it_does_not_take(
        v2app: Flask, path: str, said: str) -> None:
    """Read from the OpenAPI document (app/query_params.py): a typo was answered for the
    default as if it had been heard."""
    response = v2app.test_client().get(path, headers=bearer(v2app, "admin"))
    assert response.status_code == 400, response.get_json()
    assert said in response.get_json()["error"]


@pytest.mark.parametrize("path", ["/v1/reports?x=1", "/v1/candidates?al=1",
                                  "/v1/relabel/queues?queue=training"])
def test_a_caller_without_a_valid_key_learns_nothing_of_the_query_a_route_takes(
        v2app: Flask, path: str) -> None:
    """The key is judged first (401, then 403 for a key without the route's scope), as on a
    request without a query: the 400 named the parameters the route takes to anyone."""
    client = v2app.test_client()
    assert client.get(path).status_code == 401
    wrong = client.get(path, headers={"Authorization": "Bearer not-a-key"})
    assert wrong.status_code == 401 and "takes" not in wrong.get_json()["error"]
    lacking = client.get(path, headers=bearer(v2app, "outcome"))
    assert lacking.status_code == 403, lacking.get_json()
    assert client.get(path, headers=bearer(v2app, "admin")).status_code == 400
