"""What an experiment spec must not slip past: a scope V2 clients cannot reach, keys nobody
reads, a salt silently replaced, `true` as a canary step, names that differ by blanks only,
arms that get no assignment bucket. Each is a 400 naming the field, and nothing is stored."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from flask import Flask, request

from app.api.v2 import bp as v2_routes
from app.cli import main
from core.errors import AbvocError
from serving.assignment import allocate
from serving.experiment_spec import check_spec
from serving.experiments import Experiments, effective_weights

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "b", "candidate": "b", "weight": 1}]


def _spec(**fields: Any) -> dict[str, Any]:
    return {"name": "e", "scope": "s", "arms": ARMS, **fields}


def _arms(control: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> list[dict]:
    return [{**ARMS[0], **(control or {})}, {**ARMS[1], **(b or {})}]


# (what is wrong, the spec, words the 400 must hold)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("arm without a weight", _spec(arms=[ARMS[0], {"name": "b", "candidate": "b"}]),
     "arms[1].weight is missing: give a number from 0 to 1,000,000"),
    ("canary of an arm that does not exist",
     _spec(canary={"treatment": "zz", "steps": [0.1, 1]}),
     "canary.treatment names no arm ('zz'): it must name a treatment arm, one of ['b']"),
    ("canary of the control", _spec(canary={"treatment": "control", "steps": [0.1, 1]}),
     "canary.treatment names the control: it must name a treatment arm"),
    ("scope with a slash", _spec(scope="a/b"), "'scope' must not contain '/'"),
    ("scope with a backslash", _spec(scope="a\\b"), "'scope' must not contain '\\\\'"),
    ("scope with a question mark", _spec(scope="a?b"), "'scope' must not contain '?'"),
    ("scope with a hash", _spec(scope="a#b"), "'scope' must not contain '#'"),
    ("scope with a percent sign", _spec(scope="100%"), "'scope' must not contain '%'"),
    ("scope with a newline", _spec(scope="a\nb"), "'scope' must not contain '\\n'"),
    ("scope with a NUL", _spec(scope="a\x00"), "'scope' must not contain '\\x00'"),
    ("scope with DEL", _spec(scope="a\x7f"), "'scope' must not contain '\\x7f'"),
    ("scope with a leading blank", _spec(scope=" s"), "'scope' ' s' must not begin or end"),
    ("scope with a trailing blank", _spec(scope="s "), "use 's'"),
    ("scope of a dot", _spec(scope="."), "'scope' must not be '.'"),
    ("scope of two dots", _spec(scope=".."), "'scope' must not be '..'"),
    ("arm with an unknown key", _spec(arms=_arms(b={"colour": "red"})),
     "arms[1]: unknown keys 'colour'"),
    ("arm with a misspelt version", _spec(arms=_arms(b={"versoin": "2"})),
     "arms[1]: unknown keys 'versoin'; it takes 'candidate', 'control', 'name', 'version', "
     "'weight'"),
    ("shadow with an unknown key", _spec(shadows=[{"candidate": "a", "verison": "1"}]),
     "shadows[0]: unknown keys 'verison'"),
    ("canary stepping after half a request",
     _spec(canary={"treatment": "b", "steps": [0.1, 1], "advance_after_n": 0.5}),
     "canary.advance_after_n must be a positive whole number of requests"),
    ("canary with an unknown key",
     _spec(canary={"treatment": "b", "steps": [0.1], "advance_after": 60}),
     "canary: unknown keys 'advance_after'"),
    ("salt 0", _spec(salt=0), "'salt' must be a non-empty string"),
    ("salt false", _spec(salt=False), "'salt' must be a non-empty string"),
    ("salt []", _spec(salt=[]), "'salt' must be a non-empty string"),
    ("salt ''", _spec(salt=""), "'salt' must be a non-empty string"),
    ("salt 12345", _spec(salt=12345), "'salt' must be a non-empty string"),
    ("canary step true", _spec(canary={"treatment": "b", "steps": [True]}),
     "canary.steps must be increasing shares"),
    ("canary steps true after a share", _spec(canary={"treatment": "b", "steps": [0.1, True]}),
     "not true or false"),
    ("canary step below one bucket", _spec(canary={"treatment": "b", "steps": [0.00005, 0.1]}),
     "canary.steps[0] 5e-05 is too small: the treatment would get none of the 10,000"),
    ("canary false", _spec(canary=False), "'canary' must be an object"),
    ("shadows ''", _spec(shadows=""), "'shadows' must be a list"),
    ("guardrails 0", _spec(guardrails=0), "'guardrails' must be an object"),
    ("name with a trailing blank", _spec(name="lc-a "), "use 'lc-a'"),
    ("name with a leading tab", _spec(name="\tlc-a"), "'name' '\\tlc-a' must not begin or end"),
    ("treatment weight in no bucket",
     _spec(arms=_arms(control={"weight": 1_000_000}, b={"weight": 1e-300})),
     "arms[1].weight 1e-300 is too small: the arm gets none of the 10,000 assignment buckets"),
    ("control weight in no bucket",
     _spec(arms=_arms(control={"weight": 0.01}, b={"weight": 1_000})),
     "arms[0].weight 0.01 is too small"),
    ("third arm in no bucket",
     _spec(arms=[*ARMS, {"name": "c", "candidate": "b", "weight": 1e-5}]),
     "arms[2].weight 1e-05 is too small"),
    ("arm in no bucket beside a canary",
     _spec(arms=[*ARMS, {"name": "c", "candidate": "b", "weight": 1e-5}],
           canary={"treatment": "b", "steps": [0.1, 0.5]}),
     "arms[2].weight 1e-05 is too small"),
]


@pytest.mark.parametrize(("spec", "words"), [(spec, words) for _, spec, words in REFUSED],
                         ids=[what for what, _, _ in REFUSED])
def test_the_spec_refuses_it_naming_the_field(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(AbvocError) as refused:
        check_spec(spec)
    assert refused.value.status == 400
    assert words in str(refused.value), str(refused.value)


def test_a_refused_experiment_stores_nothing(experiments: Experiments) -> None:
    for what, spec, words in REFUSED:
        with pytest.raises(AbvocError, match=re.escape(words)):
            experiments.create(spec)
        assert experiments.list() == [], what
    # Beside them, what is still taken: names and scopes otherwise free, weight 0, null salt.
    kept = experiments.create(_spec(name="lc a", scope="fl😀wers team;v=2", salt=None,
                                    arms=_arms(b={"weight": 0})))
    assert kept["scope"] == "fl😀wers team;v=2" and len(kept["salt"]) == 16
    assert [e["name"] for e in experiments.list()] == ["lc a"]


SCOPES = ["default", "flowers", "s0", "per-unit", "pages", "a b", "fl😀wers", "x;y=1",
          "a:b@c", "a+b&c=d", "~x'y\"", "(x)*!$,", "ünï", "a\u00a0b", "flow-0123abcd"]


@pytest.mark.parametrize("scope", SCOPES)
def test_an_accepted_scope_reaches_its_v2_route(scope: str) -> None:
    """Every scope the spec takes comes back whole from /v2/models/{scope}/infer."""
    assert check_spec(_spec(scope=scope))["scope"] == scope
    app = Flask(__name__)
    app.register_blueprint(v2_routes)
    with app.test_request_context(f"/v2/models/{quote(scope, safe='')}/infer", method="POST"):
        assert request.view_args == {"scope": scope}


def test_only_a_missing_or_null_salt_is_drawn_at_random() -> None:
    drawn = {check_spec(_spec())["salt"], check_spec(_spec(salt=None))["salt"]}
    assert len(drawn) == 2 and all(re.fullmatch("[0-9a-f]{16}", s) for s in drawn)
    assert check_spec(_spec(salt="fixed"))["salt"] == "fixed"


def test_the_weight_the_message_suggests_gets_a_bucket() -> None:
    spec = _spec(arms=_arms(control={"weight": 1_000_000}, b={"weight": 1e-3}))
    with pytest.raises(AbvocError) as refused:
        check_spec(spec)
    least = float(re.search(r"at least (\S+) ", str(refused.value)).group(1))
    checked = check_spec(_spec(arms=_arms(control={"weight": 1_000_000}, b={"weight": least})))
    assert allocate(effective_weights(checked)).counts()[1] >= 1


def test_the_smallest_canary_step_gets_a_bucket() -> None:
    checked = check_spec(_spec(canary={"treatment": "b", "steps": [0.0001, 0.5]}))
    assert allocate(effective_weights(checked)).counts()[1] == 1


def test_the_command_line_refuses_the_same(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ABVOC_DATABASE_URL", "ABVOC_CONFIG", "ABVOC_MODEL_STORE", "ABVOC_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    slash = runner.invoke(main, ["experiment", "create", "--name", "e", "--scope", "a/b",
                                 "--arm", "control=a", "--arm", "b=b"])
    assert slash.exit_code != 0 and "'scope' must not contain '/'" in slash.output
    salted = runner.invoke(main, ["experiment", "create", "--spec", "-"],
                           input=json.dumps(_spec(salt=0)))
    assert salted.exit_code != 0 and "'salt' must be a non-empty string" in salted.output
    listed = runner.invoke(main, ["experiment", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) in ([], {"experiments": []})
