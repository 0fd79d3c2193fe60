"""The OpenAPI document covers every route, and schemathesis, in all its phases (examples,
coverage, fuzzing, and the stateful phase that follows the document's links), finds no server
error, no undocumented status or content type, no response that breaks the document, and no
schema-invalid input accepted."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from app.openapi import OPERATION_IDS, openapi_document
from tests.support.live import serve

# A fixed seed by default, so a run is repeatable; ABVOC_SCHEMATHESIS_SEED picks another and
# ABVOC_SCHEMATHESIS_EXAMPLES / _SECONDS make a longer hunt (the run stops at the time limit).
SEED = int(os.environ.get("ABVOC_SCHEMATHESIS_SEED", "20261130"))
EXAMPLES = int(os.environ.get("ABVOC_SCHEMATHESIS_EXAMPLES", "15"))
SECONDS = int(os.environ.get("ABVOC_SCHEMATHESIS_SECONDS", "12"))
# The stateful walk stops once it has walked the whole flow (WANTED reached, the document's
# links FOLLOWED) and STATEFUL_MIN_SECONDS have passed; here it gets there in about 3 s. On a
# slow machine the walk turns away from slow operations, so it may take longer: up to
# STATEFUL_SECONDS (at 30 s a slow run once stopped short of the correction on both stores,
# and at 60 s, on a store the fuzzing phases had filled, of the experiment's start).
STATEFUL_MIN_SECONDS = int(os.environ.get("ABVOC_SCHEMATHESIS_STATEFUL_MIN_SECONDS", "8"))
STATEFUL_SECONDS = max(SECONDS + 78, STATEFUL_MIN_SECONDS)
WANTED = (("POST /v1/experiments", 201), ("POST /v1/experiments/{experiment_id}/start", 200),
          ("POST /v1/predict", 200), ("POST /v1/corrections", 202),
          ("GET /v1/experiments/{experiment_id}/results", 200))
# Ids and receipts came through the document's own links (beside ones schemathesis infers).
FOLLOWED = (("[200] CreateExperiment", 201), ("[200] CorrectPrediction", 202))
# What the API promises. Off: positive_data_acceptance (a schema-valid body can still be refused
# for what JSON Schema cannot say: an unregistered candidate, malformed LaTeX, a bad receipt) and
# ignored_auth (every request carries the admin key; auth refusals are tested in test_auth.py).
CHECKS = {name: {"enabled": on} for name, on in (
    ("not_a_server_error", True), ("status_code_conformance", True),
    ("content_type_conformance", True), ("response_schema_conformance", True),
    ("negative_data_rejection", True), ("unsupported_method", True),
    ("positive_data_acceptance", False), ("ignored_auth", False))}


# The experiments' life-cycle actions: bodies the document describes whole (a `reason` or none).
ACTIONS = (r"^/v1/experiments/\{experiment_id\}/(arms/\{arm\}/)?"
           r"(start|pause|resume|kill|stop|advance)$")


def _as_openapi(rule: str) -> list[str]:
    match = re.search(r"<any\(([^)]*)\):\w+>", rule)
    if match:
        return [p for c in match.group(1).split(",")
                for p in _as_openapi(rule.replace(match.group(0), c.strip()))]
    return [re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule)]


def test_document_lists_every_route(app: Flask) -> None:
    documented = openapi_document()["paths"]
    for rule in app.url_map.iter_rules():
        # The dashboard's pages (and / that sends a browser there) are for browsers, behind
        # their own login, not the API.
        if rule.endpoint in ("static", "root") or rule.rule.startswith("/dashboard/"):
            continue
        for path in _as_openapi(rule.rule):
            assert path in documented, f"{path} is served but not documented"
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in documented[path], f"{method} {path} undocumented"


# A value for each path parameter: any route then answers what it would for a real request.
PATH_VALUES = {"experiment_id": "1", "arm": "a", "name": "x", "scope": "default",
               "version": "1", "item_id": "1"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, a path to send it to, the operation) for every documented operation."""
    for path, item in openapi_document()["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
        for method, op in item.items():
            yield method.upper(), concrete, op


def test_every_operation_documents_what_any_request_may_get() -> None:
    """400, 413 and 415 can answer any request (refused before any route); 429 and 503 (the
    store unavailable) any that takes a key, which is looked up in the store."""
    for method, path, op in operations():
        keyed = ("429", "503") if "401" in op["responses"] else ()
        missing = {"400", "413", "415", *keyed} - set(op["responses"])
        assert not missing, f"{method} {path} does not document {sorted(missing)}"


def test_an_encoding_abvoc_does_not_read_is_a_documented_415(client: FlaskClient) -> None:
    for method, path, op in operations():
        answer = client.open(path, method=method, data=b"x",
                             headers={"Content-Encoding": "br"})
        assert answer.status_code == 415, (method, path, answer.status_code)
        assert "415" in op["responses"], f"{method} {path}"


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind a real HTTP server on a free loopback port, as a client would meet it.

    No relay drains its outbox here, so after READY_MAX_LAG_S (120 s) `/readyz` rightly says
    not ready (503): a longer hunt (ABVOC_SCHEMATHESIS_SECONDS) would report that as a server
    error, so the limit is past any hunt's length."""
    app.config["READY_MAX_LAG_S"] = 24 * 3600
    with serve(app) as url:
        yield url


def _failures(event: Any) -> list[str]:
    found = []
    if isinstance(event, events.ScenarioFinished):
        for case_id, checks in event.recorder.checks.items():
            case = event.recorder.cases[case_id].value
            found += [f"[{event.phase.value}] {check.name}: {case.method} {case.formatted_path} "
                      f"query={case.query} body={str(case.body)[:300]}\n"
                      f"{str(check.failure_info.failure)[:600] if check.failure_info else ''}"
                      for check in checks if check.status.value == "failure"]
    elif isinstance(event, events.NonFatalError | events.FatalError):
        found.append(f"schemathesis error: {event}")
    return found


def _stateful_steps(event: Any) -> list[tuple[str, str, int]]:
    """(operation, link that led to it, status) of each stateful step."""
    if not (isinstance(event, events.ScenarioFinished) and event.phase.value == "stateful"):
        return []
    steps = []
    for case_id, node in event.recorder.cases.items():
        interaction = event.recorder.interactions.get(case_id)
        if interaction is not None and interaction.response is not None:
            link = node.transition.id if node.transition is not None else ""
            steps.append((node.value.operation.label, link, interaction.response.status_code))
    return steps


def _walked(steps: list[tuple[str, str, int]]) -> tuple[set, set]:
    """The (operation, status) pairs the steps reached; the (link, status) pairs they followed."""
    reached = {(op, status) for op, _, status in steps}
    followed = {(link.split(" -> ")[1], status) for _, link, status in steps if link}
    return reached, followed


def _flow_walked(steps: list[tuple[str, str, int]]) -> bool:
    reached, followed = _walked(steps)
    return set(WANTED) <= reached and set(FOLLOWED) <= followed


def _run(served: str, admin: dict, phases: dict[str, Any], seconds: int,
         operation_ids: list[str] | None = None, min_seconds: float | None = None,
         actions: bool = False) -> tuple[list[str], dict[str, set], list]:
    """Run schemathesis; with `min_seconds`, the run is stopped once that much time has passed
    and the steps have walked the flow (its phase then reads "interrupted"). `actions`: only
    the experiments' life-cycle actions, with schema-valid data held to be accepted."""
    checks = {**CHECKS, "positive_data_acceptance": {"enabled": True}} if actions else CHECKS
    config = SchemathesisConfig.from_dict({
        "seed": SEED, "max-time": seconds, "headers": admin, "base-url": served,
        "suppress-health-check": ["all"], "checks": checks, "phases": phases,
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
    })
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json", config=config)
    # Retiring the registered candidates leaves every later predict with an honest 503 ("no
    # candidate is registered"), which would read as a server error; retire is tested in
    # test_candidates_api.py.
    schema = schema.exclude(path_regex=r"/retire$")
    if operation_ids:
        schema = schema.include(operation_id=operation_ids)
    if actions:
        schema = schema.include(method="POST", path_regex=ACTIONS)
    failures: list[str] = []
    statuses: dict[str, set[str]] = {}  # elastic phases repeat until the time limit
    steps: list[tuple[str, str, int]] = []
    stream = engine.from_schema(schema).execute()
    start, stopping = time.monotonic(), False
    for event in stream:
        failures += _failures(event)
        steps += _stateful_steps(event)
        if isinstance(event, events.PhaseFinished):
            statuses.setdefault(event.phase.name.value, set()).add(event.status.value)
        if min_seconds is not None and not stopping \
                and time.monotonic() - start >= min_seconds and _flow_walked(steps):
            stream.stop()
            stopping = True
    return list(dict.fromkeys(failures)), statuses, steps


def test_schemathesis_all_phases_find_nothing(served: str, admin: dict) -> None:
    """Examples, coverage and fuzzing on every operation; the stateful phase is the next test."""
    admin = {**admin, "X-API-Key": admin["Authorization"].removeprefix("Bearer ")}
    failures, statuses, _ = _run(served, admin, {"stateful": {"enabled": False}}, SECONDS)
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:15])
    for phase in ("examples", "coverage", "fuzzing"):
        assert "success" in statuses.get(phase, ()), (phase, statuses)


def test_schemathesis_stateful_phase_walks_the_flow(served: str, admin: dict) -> None:
    """The stateful phase on the operations the links chain, until it walked the flow, on a
    store of its own: the fuzzing phases stop at a time limit, so what they leave behind (how
    many experiments, which running) would depend on the machine's speed."""
    admin = {**admin, "X-API-Key": admin["Authorization"].removeprefix("Bearer ")}
    flow = list(OPERATION_IDS.values())
    failures, statuses, steps = _run(served, admin, {
        "examples": {"enabled": False}, "coverage": {"enabled": False},
        "fuzzing": {"enabled": False}, "stateful": {"max-steps": 10}}, STATEFUL_SECONDS, flow,
        min_seconds=STATEFUL_MIN_SECONDS)
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:15])
    assert statuses.get("stateful", set()) & {"success", "interrupted"}, statuses
    reached, followed = _walked(steps)
    for wanted in WANTED:
        assert wanted in reached, "; ".join(map(str, sorted(reached)))
    for wanted in FOLLOWED:
        assert wanted in followed, "; ".join(map(str, sorted(followed)))


def test_schemathesis_action_bodies_the_document_allows_are_accepted(served: str,
                                                                     admin: dict) -> None:
    """Schema-valid requests are accepted (`positive_data_acceptance`, off for the whole run,
    where JSON Schema cannot say what a route refuses) on the life-cycle actions, whose bodies
    the document says whole: an arm's resume was documented with pause's `reason` body, which
    the route refuses."""
    admin = {**admin, "X-API-Key": admin["Authorization"].removeprefix("Bearer ")}
    failures, statuses, _ = _run(served, admin, {"stateful": {"enabled": False}}, SECONDS,
                                 actions=True)
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:15])
