"""Numbers in paths and queries are ASCII digits: Python's `\\d` and int() take any script's
digits ('١', '２') and int() also '1_0' and ' 1', so `/v1/experiments/١` was experiment 1,
`limit=1_0` a limit of 10, and a fullwidth year passed the time pattern to be called "not a
real time"."""

from __future__ import annotations

from flask import Flask

from core.query import plain_decimal, whole_number
from tests.evaluation.helpers import add_experiment
from tests.support.keys import bearer


def test_a_path_number_in_another_script_is_no_number(v2app: Flask) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    assert exp == 1
    assert client.get("/v1/experiments/1", headers=admin).status_code == 200
    letters = client.get("/v1/experiments/abc", headers=admin)
    assert letters.status_code == 404
    for digit in ("\u0661", "\uff11", "\u0967"):  # Arabic-Indic, fullwidth, Devanagari one
        other = client.get(f"/v1/experiments/{digit}", headers=admin)
        assert (other.status_code, other.get_json()) == (404, letters.get_json()), digit
        assert client.get(f"/v1/experiments/{digit}/results",
                          headers=admin).status_code == 404, digit


def test_query_numbers_are_ascii_digits(v2app: Flask) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    assert client.get("/v1/relabel/items?limit=10", headers=admin).status_code == 200
    for raw in ("1_0", "%201", "1%20", "%2B1", "\u0661"):
        answer = client.get(f"/v1/relabel/items?limit={raw}", headers=admin)
        assert answer.status_code == 400, raw
        assert "'limit' must be an integer from 1 to 500" in answer.get_json()["error"], raw
    fullwidth = client.get(f"/v1/experiments/{exp}/results",
                           query_string={"since": "\uff12026-12-07T18:00:00Z"}, headers=admin)
    assert fullwidth.status_code == 400
    assert "'since' must be an RFC 3339 time" in fullwidth.get_json()["error"]


def test_whole_number() -> None:
    assert [whole_number(raw, 1, 500) for raw in ("1", "500", "0001", "0", "501")] \
        == [1, 500, 1, None, None]
    assert [whole_number(raw, 0, 10) for raw in ("1_0", " 1", "+1", "-0", "\u0661", "")] \
        == [None] * 6
    assert whole_number("0" * 5000 + "1", 0, 10) is None  # not read at all: too long


def test_plain_decimal() -> None:
    """The rule the reports' shares and Label Studio's number labels are read by."""
    assert [plain_decimal(raw) for raw in ("0.05", ".5", "1000", "2.5e3", "1E-2")] \
        == [0.05, 0.5, 1000.0, 2500.0, 0.01]
    assert [plain_decimal(raw, signed=True) for raw in ("-0.5", "-2.5e3")] == [-0.5, -2500.0]
    refused = ("1_000", " 3 ", "3 ", "\uff10", "\u0661", "+3", "-3", "nan", "inf", "1e", "5.",
               "", "1.2.3")
    assert [plain_decimal(raw) for raw in refused] == [None] * len(refused)
    assert plain_decimal("--3", signed=True) is None and plain_decimal("+3", signed=True) is None
    assert plain_decimal("1" * 100_000 + "x") is None  # refused at once: no backtracking
