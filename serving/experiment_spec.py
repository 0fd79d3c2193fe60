"""An experiment's specification as a client sends it, checked field by field: arms with
weights, shadows, a canary ramp, guardrails. Every refusal is a 400 that names the field."""

from __future__ import annotations

import math
import re
import secrets
from typing import Any

from core.builtin_metrics import DEFAULT_PRIMARY, PRIMARY_METRICS
from core.errors import AbvocError, refuse_unknown
from core.text import quoted, quoted_names, text_problem
from serving.assignment import NUM_BUCKETS, allocate

# What is randomized: `user` and `session` stick by the unit id a request carries; `request`
# assigns each request on its own, and each request is then a unit (serving/router.py).
UNITS = ("user", "session", "request")
ACTIVE = ("running", "paused", "killed")
# Who paused an arm (its `paused_by`): an admin by hand, or a guardrail's breach; the
# Operations page tells the two apart. A resumed arm has neither a reason nor who.
BY_ADMIN, BY_GUARDRAIL = "admin", "guardrail"
UNPAUSED = {"paused": None, "paused_by": None}
# The primary metrics the results can test: exactly their built-in metrics (outcome metrics
# are made primary by their definition, not here).
METRICS = PRIMARY_METRICS
# Each guardrail's largest sensible limit: an hour of latency, rates as shares.
GUARDRAILS = {"p99_latency_ms": 3_600_000, "error_rate": 1, "correction_rate": 1}
# The requests a guardrail judges: the arm's last GUARDRAIL_WINDOW (serving/guardrails.py), so a
# `min_samples` above it can never be reached and the guardrail would never act.
GUARDRAIL_WINDOW = 500
MAX_WEIGHT = 1_000_000
# The expected sample per arm the always-valid test may be tuned for, and what an experiment
# that does not say gets. It is written into the experiment at creation, so a later change of
# this default never re-tunes an experiment already running.
EXPECTED_SAMPLE = (10, 10**9)
DEFAULT_EXPECTED_SAMPLE = 5000
MAX_ARMS = 20
SHADOW_PREFIX = "shadow:"
ARM_KEYS = ("name", "candidate", "version", "weight", "control")
CANARY_KEYS = ("treatment", "steps", "advance_after_s", "advance_after_n")
SHADOW_KEYS = ("candidate", "version")
# Characters a scope cannot hold: it is the {scope} segment of /v2/models/{scope}/infer, and
# these either end the segment ('/', and '\\', which browsers and WHATWG parsers read as '/'),
# end the path ('?', '#'), start an escape that clients decode differently ('%'), or are
# control characters no client sends unescaped. The OpenAPI schema's pattern says the same.
SCOPE_REFUSED = r"/\\?#%\x00-\x1f\x7f-\x9f"
SCOPE_PATTERN = f"^[^{SCOPE_REFUSED}]+$"
_SCOPE_BAD = re.compile(f"[{SCOPE_REFUSED}]")
# The smallest canary step that gets an assignment bucket.
MIN_SHARE = 1 / NUM_BUCKETS


def fail(message: str) -> AbvocError:
    return AbvocError(message, status=400)


def check_arms(arms: Any) -> list[dict[str, Any]]:
    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        raise fail(f"'arms' must be a list of at least two arms (one control, one treatment) "
                    f"and at most {MAX_ARMS}")
    out, names = [], set()
    for i, arm in enumerate(arms):
        if not isinstance(arm, dict):
            raise fail(f"arms[{i}] must be an object with name, candidate and weight")
        check_keys(arm, ARM_KEYS, f"arms[{i}]")
        name, candidate, weight = arm.get("name"), arm.get("candidate"), arm.get("weight")
        if not isinstance(name, str) or not name or len(name) > 100:
            raise fail(f"arms[{i}].name must be a non-empty string of at most 100 characters")
        if _SCOPE_BAD.search(name) or name in (".", "..") or name != name.strip():
            raise fail(f"arms[{i}].name {name!r} must not contain '/', '\\', '?', '#', '%' or "
                       "control characters, be '.' or '..', or begin or end with a space: it "
                       "is a path segment in /v1/experiments/{id}/arms/{arm}/pause")
        if name in names:
            raise fail(f"arm name {quoted(name)} is used twice")
        names.add(name)
        if not isinstance(candidate, str) or not candidate or len(candidate) > 200:
            raise fail(f"arms[{i}].candidate must name a registered candidate")
        if name.startswith(SHADOW_PREFIX):
            raise fail(f"arms[{i}].name must not start with {SHADOW_PREFIX!r}: results name "
                        "shadow candidates that way")
        # Compared as Python numbers first: float() of a huge int raises, and weights near the
        # float limit would sum to infinity and store a different split than was asked for.
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            0 <= weight <= MAX_WEIGHT
        ):
            said = "is missing: give" if "weight" not in arm else "must be"
            raise fail(f"arms[{i}].weight {said} a number from 0 to {MAX_WEIGHT:,}")
        control = arm.get("control", False)
        if not isinstance(control, bool):
            raise fail(f"arms[{i}].control must be true or false")
        out.append({"name": name, "candidate": candidate,
                    "version": check_version(arm.get("version"), f"arms[{i}]"),
                    "weight": float(weight), "control": control, "paused": None})
    if sum(a["control"] for a in out) != 1:
        raise fail("exactly one arm must have \"control\": true")
    if sum(a["weight"] for a in out) <= 0:
        raise fail("arm weights must not all be zero")
    return out


def check_keys(given: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    """Refuse keys the spec does not read: a typo ('versoin') would otherwise pass unnoticed
    and leave the field at its default."""
    refuse_unknown(given, known, noun="keys", known="it takes", where=where)


def check_buckets(arms: list[dict[str, Any]], canary: dict[str, Any]) -> None:
    """Each arm given a positive weight must get at least one of the NUM_BUCKETS assignment
    buckets at the start: one that gets none never takes traffic, and its results would say
    only 'no difference yet'. The split is the one serving/experiments.effective_weights
    makes: a canary's treatment takes its first step and the control the rest."""
    total = sum(a["weight"] for a in arms)
    shares = [a["weight"] / total for a in arms]
    treatment = control = None
    if canary:
        treatment = next(i for i, a in enumerate(arms) if a["name"] == canary["treatment"])
        shares[treatment] = canary["steps"][0]
        control = next(i for i, a in enumerate(arms) if a["control"])
        shares[control] = 0.0
        shares[control] = max(0.0, 1.0 - sum(shares))
    counts = allocate(shares).counts()
    for i, arm in enumerate(arms):
        # A canary's treatment is held to its steps (check_canary), its control takes the rest.
        if arm["weight"] > 0 and counts[i] == 0 and i not in (treatment, control):
            others = total - arm["weight"]
            least = _round_up(others / (NUM_BUCKETS - 1))
            raise fail(f"arms[{i}].weight {arm['weight']:g} is too small: the arm gets none of "
                       f"the {NUM_BUCKETS:,} assignment buckets, so it would never take "
                       f"traffic; give it at least {least:g} (1/{NUM_BUCKETS:,} of the "
                       "total weight), or 0 to leave it out")


def _round_up(value: float) -> float:
    """`value` rounded up to 3 significant digits, so the weight a message suggests is enough."""
    digits = 2 - math.floor(math.log10(value))
    scale = 10.0**digits
    return math.ceil(value * scale * (1 - 1e-12)) / scale


def check_version(version: Any, where: str) -> str | None:
    """An arm's or shadow's candidate version; None: the newest at creation."""
    if version is None:
        return None
    if not isinstance(version, str) or not version or len(version) > 50:
        raise fail(f"{where}.version must be a registered version of its candidate (a string)")
    return version


def check_canary(canary: Any, arms: list[dict[str, Any]]) -> dict[str, Any]:
    if canary is None or canary == {}:
        return {}
    if not isinstance(canary, dict):
        raise fail("'canary' must be an object with treatment and steps (or null for none)")
    check_keys(canary, CANARY_KEYS, "canary")
    treatment = canary.get("treatment")
    arm = next((a for a in arms if a["name"] == treatment), None)
    if arm is None or arm["control"]:
        treatments = [a["name"] for a in arms if not a["control"]]
        named = "the control" if arm is not None else f"no arm ({str(treatment)[:100]!r})"
        raise fail(f"canary.treatment names {named}: it must name a treatment arm, one of "
                   f"{treatments}")
    steps = canary.get("steps")
    # Booleans are ints to Python, but `true` is not a share of traffic.
    if (not isinstance(steps, list) or not steps
            or not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 < x <= 1
                       for x in steps)
            or any(b <= a for a, b in zip(steps, steps[1:], strict=False))):
        raise fail("canary.steps must be increasing shares in (0, 1] (numbers, not true or "
                   "false), e.g. [0.01, 0.05, 0.25]")
    if steps[0] < MIN_SHARE:
        raise fail(f"canary.steps[0] {steps[0]:g} is too small: the treatment would get none "
                   f"of the {NUM_BUCKETS:,} assignment buckets; start at {MIN_SHARE:g} or more")
    others = sum(a["weight"] for a in arms if not a["control"] and a is not arm)
    others_share = others / sum(a["weight"] for a in arms)
    if steps[-1] + others_share > 1:
        raise fail("canary.steps leave no traffic for the control arm")
    out: dict[str, Any] = {"treatment": treatment, "steps": [float(x) for x in steps], "step": 0}
    for key, limit, what in (("advance_after_s", 10 * 365 * 86400, "number of seconds"),
                             ("advance_after_n", 10**12, "whole number of requests")):
        value = canary.get(key)
        whole = key == "advance_after_n"  # half a request never comes
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value <= limit
                                  or (whole and value != int(value))):
            raise fail(f"canary.{key} must be a positive {what} of at most {limit}")
        out[key] = int(value) if whole and value is not None else value
    return out


def check_guardrails(guardrails: Any) -> dict[str, Any]:
    guardrails = {} if guardrails is None else guardrails
    if not isinstance(guardrails, dict):
        raise fail("'guardrails' must be an object (or null for none)")
    refuse_unknown(guardrails, {*GUARDRAILS, "min_samples"}, noun="guardrails", known="use")
    min_samples = guardrails.get("min_samples", 50)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or not (
        1 <= min_samples <= GUARDRAIL_WINDOW
    ):
        raise fail(f"guardrails.min_samples must be a whole number from 1 to {GUARDRAIL_WINDOW}: "
                   f"the guardrails judge an arm's last {GUARDRAIL_WINDOW} requests, so a larger "
                   "one is never reached")
    out: dict[str, Any] = {"min_samples": min_samples}
    for key, limit in GUARDRAILS.items():
        value = guardrails.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value <= limit):
            raise fail(f"guardrails.{key} must be a number above 0 and at most {limit:,}")
        out[key] = value
    return out


def check_spec(spec: Any) -> dict[str, Any]:
    """The experiment's fields, checked; a 400 naming the first field that is wrong."""
    if not isinstance(spec, dict):
        raise fail("the experiment must be a JSON object")
    refuse_unknown(spec, {"name", "scope", "unit", "salt", "arms", "shadows", "canary",
                          "guardrails", "primary_metric", "expected_sample_per_arm"})
    name = check_name(spec.get("name"))
    scope = check_scope(spec.get("scope", "default"))
    unit = spec.get("unit", "user")
    if unit not in UNITS:
        raise fail(f"'unit' must be one of {quoted_names(UNITS)}: 'user' or 'session' keep "
                   "a unit id's requests on one arm, 'request' assigns each request on its own")
    salt = check_salt(spec.get("salt"))
    arms = check_arms(spec.get("arms"))
    shadows = check_shadows(spec.get("shadows"))
    canary = check_canary(spec.get("canary"), arms)
    check_buckets(arms, canary)
    guardrails = check_guardrails(spec.get("guardrails"))
    primary = spec.get("primary_metric", DEFAULT_PRIMARY)
    if primary not in METRICS:
        raise fail(f"'primary_metric' must be one of {quoted_names(METRICS)} (the metrics "
                   "the results test; outcome metrics become primary through their definition)")
    check_texts(spec)  # what the checks above let through (a salt, a candidate's name)
    return {"name": name, "scope": scope, "unit": unit, "salt": salt, "arms": arms,
            "shadows": shadows, "canary": canary, "guardrails": guardrails,
            "primary_metric": primary,
            "expected_sample_per_arm": check_expected_sample(spec.get("expected_sample_per_arm"))}


def check_texts(spec: dict[str, Any]) -> None:
    """Every string of the spec, field names included, storable as text. The API's request
    check refuses the others before they come here, but `abvoc experiment create --spec` reads
    its file with Python's JSON parser, which takes a lone surrogate escape (`\\ud800`) or NUL:
    stored, one broke `abvoc experiment list` at every run, and PostgreSQL refused the NUL."""
    stack: list[tuple[str, Any]] = [("", spec)]
    while stack:
        path, value = stack.pop()
        where = f"'{path}'" if path else "the experiment"
        if isinstance(value, str) and (problem := text_problem(value)):
            raise fail(f"{where} {problem}")
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    raise fail(f"a field name in {where} {problem}")
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def check_name(name: Any) -> str:
    """The experiment's name; blanks at its ends are refused, not stripped, so that two names
    that look the same are the same name (experiment names are unique)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise fail("'name' must be a non-empty string of at most 100 characters")
    if name != name.strip():
        raise fail(f"'name' {name!r} must not begin or end with whitespace; "
                   f"use {name.strip()!r}")
    if problem := text_problem(name, controls=True):  # shown on one line, terminals included
        raise fail(f"'name' {problem}")
    return name


def check_scope(scope: Any) -> str:
    """The traffic scope, which V2 clients send as the {scope} segment of
    /v2/models/{scope}/infer: refused unless it can travel there unchanged."""
    if not isinstance(scope, str) or not scope or len(scope) > 100:
        raise fail("'scope' must be a non-empty string of at most 100 characters")
    bad = _SCOPE_BAD.search(scope)
    if bad:
        raise fail(f"'scope' must not contain {bad.group()!r}: it is the model name in "
                   "/v2/models/{scope}/infer, a single URL path segment (it may not hold '/', "
                   "'\\', '?', '#', '%' or control characters)")
    if scope != scope.strip():
        raise fail(f"'scope' {scope!r} must not begin or end with whitespace; "
                   f"use {scope.strip()!r}")
    if scope in (".", ".."):
        raise fail(f"'scope' must not be {scope!r}: clients resolve it as a relative path in "
                   "/v2/models/{scope}/infer")
    return scope


def check_salt(salt: Any) -> str:
    """The assignment salt; only a missing or null one is drawn at random, as a fixed salt is
    what makes an assignment replayable."""
    if salt is None:
        return secrets.token_hex(8)
    if not isinstance(salt, str) or not salt or len(salt) > 64:
        raise fail("'salt' must be a non-empty string of at most 64 characters "
                   "(or null for a random one)")
    return salt


def check_shadows(shadows: Any) -> list[dict[str, Any]]:
    """Candidates answering beside the arms, for comparison only."""
    if shadows is None:
        return []
    if not isinstance(shadows, list) or not all(
        isinstance(s, dict) and isinstance(s.get("candidate"), str) for s in shadows
    ):
        raise fail("'shadows' must be a list of {\"candidate\": name}")
    for i, shadow in enumerate(shadows):
        check_keys(shadow, SHADOW_KEYS, f"shadows[{i}]")
    out = [{"candidate": x["candidate"],
            "version": check_version(x.get("version"), f"shadows[{i}]")}
           for i, x in enumerate(shadows)]
    names = [s["candidate"] for s in out]
    if len(set(names)) != len(names):
        raise fail("'shadows' names a candidate twice; list each shadow once")
    return out


def check_expected_sample(value: Any) -> int:
    """The sample per arm (units, or predictions where units send one each) the experiment
    expects by its end: its always-valid intervals are tightest there. Fixed at creation, as
    the test's guarantee needs (tuning it on the data seen would void it); None: the default,
    written into the experiment so that it stays fixed too."""
    if value is None:
        return DEFAULT_EXPECTED_SAMPLE
    low, high = EXPECTED_SAMPLE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(f"'expected_sample_per_arm' must be a whole number from {low} to {high:,} "
                   "(the units per arm you expect by the end; the always-valid test is "
                   "tightest there)")
    return value
