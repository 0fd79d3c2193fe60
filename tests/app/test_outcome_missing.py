"""A metric's ``missing`` rule through the real API: ``zero`` counts every unit exposed in an arm,
one that reported nothing at 0, so a team that sends only positive events (``purchase`` = 1
when one happens) gets a real test; checked against scipy and statsmodels on the explicitly
zero-filled unit values. ``skip`` (the default) keeps the mean over the reporting units, and
says so where every one of them has the same value."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask
from scipy import integrate, stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest

from app import close_app, create_app
from app.auth import create_key
from app.cli import main
from core.settings import load_settings
from core.store import schema
from core.store.db import Database
from tests.app.test_outcomes_flow import _drain
from tests.evaluation.helpers import add_experiment
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload_two_iris

UNITS = 160
METRICS = (
    {"name": "purchase", "kind": "proportion", "direction": "higher", "missing": "zero",
     "primary": True},
    {"name": "revenue", "kind": "mean", "direction": "higher", "combine": "sum",
     "missing": "zero"},
    {"name": "visits", "kind": "mean", "direction": "higher", "combine": "sum"},
    {"name": "revenue_per_visit", "kind": "ratio", "direction": "higher",
     "numerator": "revenue", "denominator": "visits", "missing": "zero"},
    {"name": "bought", "kind": "proportion", "direction": "higher"},  # missing: skip
)


def test_missing_is_validated_stored_and_shown(v2app: Flask) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    url = f"/v1/experiments/{exp}/metrics"
    body = {"name": "purchase", "kind": "proportion", "direction": "higher"}
    for bad in ("zeros", "", 0, True, ["zero"]):
        refused = client.post(url, headers=admin, json={**body, "missing": bad})
        assert refused.status_code == 400, refused.get_json()
        assert refused.get_json()["error"] == "'missing' must be one of 'skip', 'zero'"
    made = client.post(url, headers=admin, json={**body, "missing": "zero"})
    assert made.status_code == 201 and made.get_json()["missing"] == "zero"
    listed = client.get(url, headers=admin).get_json()["metrics"]
    assert [m["missing"] for m in listed] == ["zero"]
    changed = client.post(url, headers=admin, json={**body, "missing": None})
    assert changed.status_code == 200 and changed.get_json()["missing"] == "skip"
    assert client.get(url, headers=admin).get_json()["metrics"][0]["missing"] == "skip"
    shown = client.get(f"/v1/experiments/{exp}/results", headers=admin).get_json()
    assert shown["outcomes"]["purchase"]["missing"] == "skip"


def test_the_command_line_defines_and_lists_missing(database_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    with Database(database_url) as db:
        schema.upgrade(db)
        exp = add_experiment(db)
    runner = CliRunner()
    args = ["metrics", "define", str(exp), "--name", "purchase", "--kind", "proportion",
            "--direction", "higher"]
    made = runner.invoke(main, [*args, "--missing", "zero"])
    assert made.exit_code == 0, made.output
    assert "purchase: proportion (first), higher is better, an exposed unit without one " \
        "counts 0" in made.output
    listed = runner.invoke(main, ["metrics", "list", str(exp), "--json"])
    assert json.loads(listed.output)[0]["missing"] == "zero"
    assert runner.invoke(main, [*args, "--missing", "some"]).exit_code == 2


def _app(tmp_path: Path) -> Flask:
    env = {"ABVOC_DATA_DIR": str(tmp_path / "data"), "ABVOC_SECRET_KEY": "test-secret",
           "ABVOC_TOPIC_PREFIX": f"m{tmp_path.name[-10:].replace('-', '')}",
           "ABVOC_DATABASE_URL": f"sqlite:///{tmp_path / 'abvoc.db'}"}
    return create_app(load_settings(env=env),
                      test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})


def test_zero_counts_every_exposed_unit_end_to_end(tmp_path: Path) -> None:
    app = _app(tmp_path)
    try:
        _run(app, tmp_path)
    finally:
        close_app(app)


def _send(app: Flask, tmp_path: Path) -> tuple[int, dict[str, str], dict[str, dict]]:
    """An experiment, a prediction for each of the units (a second for some), outcomes for
    only some units; the experiment, each unit's arm and the outcomes each unit sent."""
    client = app.test_client()
    db = app.extensions["abvoc"].db
    admin = {"Authorization": f"Bearer {create_key(db, ['admin'])['key']}"}
    product = {"Authorization": f"Bearer {create_key(db, ['outcome'])['key']}"}
    upload_two_iris(client, admin, tmp_path)
    exp = experiment(client, admin, "shop", "iris-onnx", "iris-b", salt="missing-zero")["id"]
    for body in METRICS:
        made = client.post(f"/v1/experiments/{exp}/metrics", headers=admin, json=body)
        assert made.status_code == 201, made.get_json()
    arms: dict[str, str] = {}
    for i, row in enumerate(flowers(UNITS + UNITS // 4, seed=7)):
        unit = f"shopper-{i % UNITS}"
        answer = client.post("/v2/models/shop/infer", headers=admin,
                             json=infer_body(row[None], unit))
        assert answer.status_code == 200, answer.get_json()
        arms[unit] = answer.get_json()["parameters"]["arm"]
    rng = np.random.default_rng(11)
    sent: dict[str, dict[str, list[float]]] = {u: {} for u in arms}
    for unit, arm in arms.items():
        if rng.random() < 0.5:
            sent[unit]["visits"] = [float(v) for v in rng.integers(1, 4, rng.integers(1, 3))]
        if rng.random() < (0.4 if arm == "control" else 0.2):  # only purchases are sent
            sent[unit]["purchase"] = sent[unit]["bought"] = [1.0]
            sent[unit]["revenue"] = [float(v) for v in rng.integers(5, 60, rng.integers(1, 3))]
    count = 0
    for unit, by_metric in sent.items():
        for metric, values in by_metric.items():
            for k, value in enumerate(values):  # two equal values: two events
                answer = client.post("/v1/outcomes", headers=product, json={
                    "unit_id": unit, "experiment_id": exp, "metric": metric, "value": value,
                    "event_id": f"{unit}-{metric}-{k}"})
                assert answer.status_code == 202, answer.get_json()
                count += 1
    _drain(app, count)
    return exp, arms, sent


def _zero_filled(arms: dict[str, str], sent: dict[str, dict], arm: str,
                 metric: str) -> np.ndarray:
    return np.array([sum(sent[u].get(metric, [])) for u in sorted(arms) if arms[u] == arm])


def _record(results: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(r for r in results["comparisons"] if r["metric"] == metric)


def _run(app: Flask, tmp_path: Path) -> None:
    exp, arms, sent = _send(app, tmp_path)
    client = app.test_client()
    admin = bearer(app, "admin")
    results = client.get(f"/v1/experiments/{exp}/results", headers=admin).get_json()
    exposed = Counter(arms.values())
    assert results["srm"]["units"] == dict(exposed)  # the same count of units per arm
    outcomes = results["outcomes"]
    for arm in ("control", "treatment"):
        purchases = sum(1 for u in arms if arms[u] == arm and "purchase" in sent[u])
        assert 0 < purchases < exposed[arm]
        figures = outcomes["purchase"]["arms"][arm]
        assert (figures["units"], figures["reported"]) == (exposed[arm], purchases)
        assert figures["mean"] == pytest.approx(purchases / exposed[arm])
        revenue = _zero_filled(arms, sent, arm, "revenue")
        assert outcomes["revenue"]["arms"][arm]["units"] == exposed[arm]
        assert outcomes["revenue"]["arms"][arm]["mean"] == pytest.approx(revenue.mean())
        assert outcomes["revenue"]["arms"][arm]["variance"] == pytest.approx(revenue.var(ddof=1))
        # Skip: the mean over the units that sent one, 1.0 in both arms, and a note.
        assert outcomes["bought"]["arms"][arm]["units"] == purchases
        assert outcomes["bought"]["arms"][arm]["mean"] == 1.0
    assert outcomes["purchase"]["missing"] == "zero" and outcomes["purchase"]["note"] is None
    assert outcomes["bought"]["missing"] == "skip"
    assert '"missing": "zero"' in outcomes["bought"]["note"]
    # Two-proportion z (pooled) of statsmodels on the zero-filled 0/1 values.
    rec = _record(results, "purchase")
    c, t = (_zero_filled(arms, sent, a, "purchase") for a in ("control", "treatment"))
    assert (rec["n_control"], rec["n_treatment"]) == (c.size, t.size)
    z, p = proportions_ztest(np.array([t.sum(), c.sum()]), np.array([t.size, c.size]))
    assert rec["statistic"] == pytest.approx(z, rel=1e-9)
    assert rec["p_value"] == pytest.approx(p, rel=1e-9)
    assert rec["difference"] == pytest.approx(t.mean() - c.mean())
    # Bayesian: the chance the treatment's rate is higher under Beta(1 + s, 1 + n - s).
    post_c, post_t = (stats.beta(1 + a.sum(), 1 + a.size - a.sum()) for a in (c, t))
    chance = integrate.quad(lambda x: post_t.pdf(x) * post_c.cdf(x), 0, 1)[0]
    assert rec["chance_to_win"] == pytest.approx(chance, abs=1e-6)
    # MDE: Cohen's h that statsmodels finds detectable at these n, from the zero-filled rate.
    h = NormalIndPower().solve_power(nobs1=c.size, ratio=t.size / c.size, alpha=0.05,
                                     power=0.8)
    base = c.mean()
    assert rec["mde"] == pytest.approx(np.sin(np.arcsin(np.sqrt(base)) + h / 2) ** 2 - base,
                                       rel=1e-3)
    # Welch's t of scipy on the zero-filled revenue.
    rec = _record(results, "revenue")
    c, t = (_zero_filled(arms, sent, a, "revenue") for a in ("control", "treatment"))
    welch = stats.ttest_ind(t, c, equal_var=False)
    assert (rec["n_control"], rec["n_treatment"]) == (c.size, t.size)
    assert rec["statistic"] == pytest.approx(welch.statistic, rel=1e-9)
    assert rec["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    # The ratio: every exposed unit, 0 over 0 where it sent neither; Welch on the delta
    # method's linearised values.
    rec = _record(results, "revenue_per_visit")
    linear = []
    for arm in ("control", "treatment"):
        y, x = (_zero_filled(arms, sent, arm, m) for m in ("revenue", "visits"))
        ratio = y.sum() / x.sum()
        z = (y - ratio * x) / x.mean()
        linear.append((ratio, z.var(ddof=1), y.size))
        assert outcomes["revenue_per_visit"]["arms"][arm]["units"] == exposed[arm]
        assert outcomes["revenue_per_visit"]["arms"][arm]["mean"] == pytest.approx(ratio)
        assert outcomes["revenue_per_visit"]["arms"][arm]["variance"] == pytest.approx(
            z.var(ddof=1))
    (r_c, v_c, n_c), (r_t, v_t, n_t) = linear
    welch = stats.ttest_ind_from_stats(r_t, np.sqrt(v_t), n_t, r_c, np.sqrt(v_c), n_c,
                                       equal_var=False)
    assert (rec["n_control"], rec["n_treatment"]) == (n_c, n_t)
    assert rec["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    # The power of the primary metric reads the zero-filled control.
    assert results["power"]["treatment"]["error"] is None
    _windows(client, admin, exp, exposed)


def _windows(client: Any, admin: dict, exp: int, exposed: Counter) -> None:
    """A window holding every unit counts them all; one before the experiment none."""
    whole = client.get(f"/v1/experiments/{exp}/results?since=2000-01-01T00:00:00Z",
                       headers=admin).get_json()
    assert {a: f["units"] for a, f in whole["outcomes"]["purchase"]["arms"].items()} \
        == dict(exposed)
    before = client.get(f"/v1/experiments/{exp}/results?until=2001-01-01T00:00:00Z",
                        headers=admin).get_json()
    assert {f["units"] for f in before["outcomes"]["purchase"]["arms"].values()} == {0}
