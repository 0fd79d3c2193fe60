"""What an operator types is taken as typed or refused: a name ending in a line break (a
regex's `$` matched before it), an arm name that is a path segment's `.` or `..`, a field
the action does not take, a blank reason, a time whose '+' a query string turned to a space."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from core.errors import AbvocError
from core.outcome_metrics import check_definition
from core.times import parse_rfc3339
from evaluation.weekly import parse_week
from tests.app.test_experiments_api import ARMS, act, create


@pytest.mark.parametrize("name", ["revenue\n", "a\n"])
def test_a_metric_name_with_a_trailing_line_break_is_refused(name: str) -> None:
    with pytest.raises(AbvocError, match="name"):
        check_definition({"name": name, "kind": "mean", "direction": "higher"})


def test_a_metric_without_a_direction_is_told_it_is_required() -> None:
    """It was told "'direction' must be one of 'higher', 'lower'", as if it had sent a wrong
    one."""
    with pytest.raises(AbvocError, match="'direction' is required: one of 'higher', 'lower'"):
        check_definition({"name": "revenue", "kind": "mean"})


def test_a_week_with_a_trailing_line_break_is_refused() -> None:
    with pytest.raises(AbvocError):
        parse_week("2026-W10\n")


@pytest.mark.parametrize("arm", [".", "..", " control", "treat ", "a?b", "a#b", "a%2e",
                                 "a\\b", "a\x07b"])
def test_an_arm_name_that_is_no_path_segment_is_refused(client: FlaskClient, admin: dict,
                                                        arm: str) -> None:
    arms = [ARMS[0], {**ARMS[1], "name": arm}]
    refused = client.post("/v1/experiments", headers=admin, json={"name": "odd", "arms": arms})
    assert refused.status_code == 400, refused.get_json()
    assert "is a path segment" in refused.get_json()["error"]


def test_an_action_refuses_fields_it_does_not_take_and_a_blank_reason(
        client: FlaskClient, admin: dict) -> None:
    exp = create(client, admin)["id"]
    act(client, admin, exp, "start")
    typo = act(client, admin, exp, "pause", reson="checking the split")
    assert typo.status_code == 400 and "['reson']" in typo.get_json()["error"]
    blank = act(client, admin, exp, "kill", reason="   ")
    assert blank.status_code == 400 and "not blank" in blank.get_json()["error"]
    dropped = act(client, admin, exp, "resume", reason="done checking")
    assert dropped.status_code == 400 and "takes no body" in dropped.get_json()["error"]
    arm = client.post(f"/v1/experiments/{exp}/arms/mixed/pause", headers=admin,
                      json={"why": "slow"})
    assert arm.status_code == 400 and "['why']" in arm.get_json()["error"]
    assert client.get(f"/v1/experiments/{exp}", headers=admin).get_json()["status"] == \
        "running"  # nothing was done
    assert act(client, admin, exp, "pause", reason="checking").status_code == 200


def test_a_plus_turned_to_a_space_is_named() -> None:
    with pytest.raises(AbvocError, match=r"must be sent as %2B"):
        parse_rfc3339("2026-11-30T08:00:00 01:00", "since")
    with pytest.raises(AbvocError, match=r"RFC 3339 time with its offset") as plain:
        parse_rfc3339("2026-11-30T08:00:00Z\n", "since")
    assert "%2B" not in plain.value.message
