"""A `number` candidate's corrections feed absolute and squared error, reported per arm as MAE
and RMSE with intervals; truths of other types (and v2 corrections, typeless) do not."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy import stats

from app import close_app, create_app
from app.auth import create_key
from core import events, receipts
from core.settings import Settings
from core.store.db import Database
from evaluation.number_metrics import rmse_interval
from evaluation.results import experiment_results
from tests.evaluation.helpers import SECRET, T0, add_experiment, aggregate_totals, apply, prediction
from tests.support.v2 import drain, flowers, infer_body, upload


def number_prediction(pid: str, value: float, arm: str = "control") -> dict[str, Any]:
    event = prediction(pid, arm=arm, candidate="cand-a" if arm == "control" else "cand-b",
                       confidence=None)
    event.update(output=value, output_type="number")
    return events.validate_event(event)


def number_correction(pid: str, truth: Any, output_type: str | None = "number") -> dict[str, Any]:
    typed = {"output_type": output_type} if output_type else {}
    event = events.make_event(events.CORRECTION_SUBMITTED, correction_id=uuid.uuid4().hex,
                              prediction_id=pid, corrected_output=truth,
                              receipt=receipts.sign(SECRET, pid), **typed)
    event["occurred_at"] = T0.isoformat()
    return event


def test_number_truths_give_mae_and_rmse_with_intervals(db: Database) -> None:
    exp = add_experiment(db)
    answers = [2.0, 4.0, 7.5, 1.0]
    truths = [3, 4, 5.5, 1]  # errors 1, 0, 2, 0 (3 == 3.0: an exact match too)
    batch = [number_prediction(f"p{i}", v) for i, v in enumerate(answers)]
    batch += [number_prediction("t0", 10.0, "treatment")]
    apply(db, batch)
    apply(db, [number_correction(f"p{i}", t) for i, t in enumerate(truths)]
          + [number_correction("t0", "12", output_type="text")])  # not a number: no error
    totals = aggregate_totals(db, exp)
    assert totals["absolute_error"] == 4 and totals["absolute_error.sum"] == pytest.approx(3.0)
    assert totals["squared_error.sum"] == pytest.approx(5.0)
    assert totals["exact_match.sum"] == 2
    with db.session() as s:
        results = experiment_results(s, exp)
    control = results["metrics"]["control"]["all"]
    assert control["numbers_corrected"] == 4
    assert control["mae"] == pytest.approx(0.75)
    assert control["rmse"] == pytest.approx(math.sqrt(5 / 4))
    sd = math.sqrt(((1 - .75) ** 2 + .75 ** 2 + 1.25 ** 2 + .75 ** 2) / 3)
    low, high = control["mae_interval"]
    # Student's t on 3 degrees of freedom (3.182 in a printed table), as scipy's interval.
    assert high == pytest.approx(0.75 + 3.182446 * sd / 2, rel=1e-5)
    assert high == pytest.approx(stats.t.interval(0.95, 3, 0.75, sd / 2)[1], rel=1e-12)
    assert low == 0.0  # clipped: an error is never negative
    # RMSE: the mean square as theta^2 chi2_df / df, df = min(n, 2 n mse^2 / s^2 of squares).
    squared = np.array([1.0, 0.0, 4.0, 0.0])
    df = min(4, 2 * 4 * squared.mean() ** 2 / squared.var(ddof=1))
    assert df == pytest.approx(3.488372, rel=1e-6)  # 2 * 4 * 1.25^2 / (10.75 / 3)
    lows, highs = stats.chi2.ppf([0.975, 0.025], df)
    assert control["rmse_interval"] == pytest.approx(
        [math.sqrt(df * 1.25 / lows), math.sqrt(df * 1.25 / highs)], rel=1e-12)
    assert "mae" not in results["metrics"]["treatment"]["all"]


def test_matching_metrics_show_only_for_the_types_they_judge() -> None:
    """A number arm showed a token edit distance of 1.0 and an exact match; a JSON arm a
    token edit distance: figures no comparison uses, which read as the arm's."""
    from evaluation import aggregation as agg
    from evaluation.online import Cell, metrics

    cell = Cell()
    cell.add(agg.PREDICTIONS, "", (4, 4, 4))
    cell.add(agg.EXACT_MATCH, "", (4, 2, 2))
    cell.add(agg.TOKEN_EDIT_DISTANCE, "", (4, 4, 6))
    shown = {kind: metrics(cell, output_type=kind) for kind in (None, "text", "json", "number")}
    for kind in (None, "text"):
        assert (shown[kind]["exact_match"], shown[kind]["token_edit_distance"]) == (0.5, 1.0)
    assert (shown["json"]["exact_match"], shown["json"]["token_edit_distance"]) == (0.5, None)
    assert (shown["number"]["exact_match"], shown["number"]["token_edit_distance"]) == \
        (None, None)


def number_bundle(root: Path) -> Path:
    """A team's `number` bundle: an ONNX model that answers the sum of its four features."""
    folder = root / "sum-onnx"
    folder.mkdir()
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["features", "axes"], ["output"], keepdims=1)], "sum",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "candidate.toml").write_text("""name = "sum-onnx"
version = "1"
backend = "onnxruntime"
[[inputs]]
name = "features"
datatype = "FP32"
shape = [-1, 4]
[output]
type = "number"
[[stages]]
name = "sum"
kind = "onnx"
path = "model.onnx"
""")
    return folder


def test_number_corrections_through_v2_reach_the_results(settings: Settings,
                                                         tmp_path: Path) -> None:
    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    try:
        client = app.test_client()
        key = create_key(app.extensions["abvoc"].db, ["admin", "correct"])["key"]
        admin = {"Authorization": f"Bearer {key}"}
        upload(client, admin, number_bundle(tmp_path))
        rows = flowers(6, seed=5)
        answers = []
        for i, row in enumerate(rows):
            response = client.post("/v2/models/default/infer", headers=admin,
                                   json=infer_body(row[None], f"u{i}"))
            assert response.status_code == 200, response.get_json()
            answers.append(response.get_json()["parameters"])
        for value, words in ((float("nan"), "finite"), ("1.5", "number")):
            refused = client.post("/v1/corrections", headers=admin, json={
                "prediction_id": answers[0]["prediction_id"], "receipt": answers[0]["receipt"],
                "corrected_output": value})
            assert refused.status_code == 400 and words in refused.get_json()["error"]
        for i, a in enumerate(answers):
            accepted = client.post("/v1/corrections", headers=admin, json={
                "prediction_id": a["prediction_id"], "receipt": a["receipt"],
                "corrected_output": float(rows[i].sum()) + (1 if i % 2 else -1)})
            assert accepted.status_code == 202, accepted.get_json()
        drain(app, len(rows))
        totals = aggregate_totals(app.extensions["abvoc"].db)
        assert totals["absolute_error"] == len(rows)
        assert totals["absolute_error.sum"] == pytest.approx(len(rows), rel=1e-5)
    finally:
        close_app(app)


def _rmse_coverage(errors: np.ndarray, rmse: float) -> float:
    """How often the 95 % interval of each row's errors holds the true RMSE."""
    squares = errors ** 2
    n = errors.shape[1]
    hits = [low <= rmse <= high for low, high in
            (rmse_interval(n, float(s.sum()), float((s * s).sum()), 0.05) for s in squares)]
    return float(np.mean(hits))


@pytest.mark.parametrize("n", [5, 10, 30])
def test_the_rmse_interval_covers_its_level_for_normal_errors(n: int) -> None:
    # Centred normal errors: n * mse / sigma^2 is chi-square on n degrees of freedom, so the
    # interval is exact there (the t interval on the squares covered 0.82 at 5, 0.91 at 30).
    # 4,000 samples: the coverage's standard error is 0.0034.
    rng = np.random.default_rng(n)
    assert _rmse_coverage(rng.normal(0, 2, (4000, n)), 2.0) == pytest.approx(0.95, abs=0.012)
    # A bias only makes it wider than needed; heavy tails still cover less (Laplace, whose
    # RMSE is sqrt(2): 0.71 at 5 and 0.84 at 30 with the t interval).
    assert _rmse_coverage(rng.normal(1, 1, (4000, n)), math.sqrt(2)) > 0.96
    assert 0.86 < _rmse_coverage(rng.laplace(0, 1, (4000, n)), math.sqrt(2)) < 0.92


def test_the_rmse_interval_without_spread() -> None:
    assert rmse_interval(1, 4.0, 16.0, 0.05) == (0.0, math.inf)  # one error: no interval
    assert rmse_interval(3, 0.0, 0.0, 0.05) == (0.0, 0.0)  # every answer exact
    # Equal squared errors: no spread to estimate, the chi-square on n degrees of freedom.
    low, high = rmse_interval(3, 12.0, 48.0, 0.05)
    assert (low, high) == pytest.approx((math.sqrt(12 / stats.chi2.ppf(0.975, 3)),
                                         math.sqrt(12 / stats.chi2.ppf(0.025, 3))), rel=1e-12)
