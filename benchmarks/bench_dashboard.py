"""Benchmark of the dashboard's pages on a store with N predictions (default 1,000,000).

The store is filled the way the evaluation worker leaves it, in bulk rather than event by
event (the worker's own speed is bench_worker's business): N rows in ``predictions`` and in the
API's ``served_predictions`` ledger over a week (two arms and a shadow, four slices; one in a
thousand an OCR prediction with stages), 4 % of them corrected (``corrections`` and
``prediction_truths``, each with the stage verdict the worker stores; a few comments carry a
``<script>``; half labeled by annotators too, done ``relabel_items``), outcome reports for 1 %,
the ``online_aggregates`` rows those predictions add up to (per group and hour: predictions, errors,
latency with its sketch, corrected, exact match) and their 50,000 units' ``unit_sums`` (a unit
keeps its variant, as the router keeps it in its arm; the results test per unit from these),
plus a heartbeat and an outbox backlog.

Then each page's callbacks are timed through the real Dash endpoint (``_dash-update-component``
over the Flask test client, logged in with an admin key): the ones a visit fires (the page's
layout and its first callbacks) and one filter each; median of R runs after a warm-up, against
the 2 s target.

``--live`` has the evaluation worker apply one more prediction (a real event, through its own
path: aggregates and unit sums move) before each timed run, as on a store the worker is writing
to: a page cannot reuse what it read on the last visit, and every read is timed from the store.

Run: ``python benchmarks/bench_dashboard.py [--predictions N] [--repeats R] [--db PATH] [--live]``
(SQLite; ``--database-url`` for PostgreSQL).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.counts import positive_int  # noqa: E402
from benchmarks.dashboard_live import live_write  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.store import schema  # noqa: E402
from core.store.db import Database  # noqa: E402
from core.store.models import (  # noqa: E402
    Candidate,
    ComponentHeartbeat,
    Correction,
    Experiment,
    OnlineAggregate,
    OutboxEvent,
    Outcome,
    Prediction,
    PredictionTruth,
    RelabelItem,
    ServedPrediction,
)
from core.store.outcome_models import UnitSums  # noqa: E402
from evaluation import aggregation as agg  # noqa: E402
from evaluation import sketch  # noqa: E402
from evaluation.stage_blame import verdict  # noqa: E402

T0 = datetime(2026, 11, 16, tzinfo=UTC)
HOURS = 168
SLICES = ("printed/low", "printed/high", "handwritten/low", "handwritten/high")
VARIANTS = (("control", "ocr-small", False), ("treatment", "ocr-large", False),
            ("", "ocr-remote", True))
CORRECTED = 0.04
UNITS = 50_000
OUTCOMES = 0.01
CHUNK = 20_000
TARGET_S = 2.0
STAGES = {"detector": {"boxes": [[10, 20, 30, 50], [34, 8, 44, 24]]},
          "recognizer": {"classes": ["x", "3"], "scores": [0.97, 0.61],
                         "runner_up": [["X", 0.02], ["2", 0.3]]},
          "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.88]]},
          "converter": {"latex": "x^{3}"}}
say = partial(print, flush=True)  # progress shows as it is made


def _insert(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    with db.session() as s:
        for lo in range(0, len(rows), CHUNK):
            s.execute(table.insert(), rows[lo: lo + CHUNK])


def seed(db: Database, n: int, rng: np.random.Generator) -> int:
    """Fill the store; returns the experiment id."""
    offline = {"overall": {"n": 4000, "exact_match": 0.9},
               "slices": {s: {"n": 1000, "exact_match": 0.9} for s in SLICES}}
    with db.session() as s:
        for _, cand, _ in VARIANTS:
            s.add(Candidate(name=cand, version="1", offline_results=offline, created_at=T0,
                            updated_at=T0))
        exp = Experiment(name="bench", salt="s", status="running", arms=[
            {"name": "control", "candidate": "ocr-small", "weight": 0.5, "control": True},
            {"name": "treatment", "candidate": "ocr-large", "weight": 0.5, "control": False,
             "paused": None}], shadows=[{"candidate": "ocr-remote"}], guardrails={},
            primary_metric="correction_rate", created_at=T0, started_at=T0)
        s.add(exp)
        s.flush()
        experiment_id = int(exp.id)
    unit = np.arange(n) % UNITS
    variant = rng.integers(0, len(VARIANTS), UNITS)[unit]  # sticky, as the router assigns
    slice_ = rng.choice(len(SLICES), n, p=[0.4, 0.3, 0.2, 0.1])
    second = np.sort(rng.integers(0, HOURS * 3600, n))
    latency = rng.lognormal(3.0, 0.4, n)
    errors = rng.random(n) < 0.002
    corrected = rng.random(n) < CORRECTED + 0.06 * (slice_ == 3)
    say(f"  predictions and ledger: {n:,} rows each ...")
    start = time.perf_counter()
    preds, ledger = [], []
    for i in range(n):
        _, cand, shadow = VARIANTS[variant[i]]
        at = T0 + timedelta(seconds=int(second[i]))
        pid = f"p{i:09d}"
        preds.append({"prediction_id": pid, "event_id": f"e{pid}", "experiment_id": experiment_id,
                      "candidate": cand, "arm": VARIANTS[variant[i]][0] or None,
                      "shadow": shadow, "unit_id": f"u{unit[i]}",
                      "slice": SLICES[slice_[i]], "input_hash": pid, "output": "x^{2}",
                      "output_type": None, "confidence": 0.9, "latency_ms": float(latency[i]),
                      "stages": STAGES if i % 1000 == 0 else {}, "created_at": at})
        ledger.append({"prediction_id": pid, "experiment_id": experiment_id, "candidate": cand,
                       "created_at": at, "arm": VARIANTS[variant[i]][0],
                       "latency_ms": float(latency[i]), "error": bool(errors[i])})
        if len(preds) == CHUNK or i == n - 1:  # in chunks: a million dicts would not fit
            _insert(db, Prediction.__table__, preds)
            _insert(db, ServedPrediction.__table__, ledger)
            preds, ledger = [], []
    say(f"    {time.perf_counter() - start:.0f} s")
    fixes, truths, outcomes, labels = [], [], [], []
    for i in np.flatnonzero(corrected & ~np.array([VARIANTS[v][2] for v in variant])):
        pid, at = f"p{i:09d}", T0 + timedelta(seconds=int(second[i]) + 60)
        comment = "<script>alert(1)</script> wrong exponent" if i % 97 == 0 else None
        fixes.append({"correction_id": f"c{pid}", "event_id": f"ec{pid}", "prediction_id": pid,
                      "idempotency_key": None, "corrected_output": "x^{3}", "output_type": None,
                      "rating": 2, "comment": comment, "created_at": at})
        blame, names = verdict("x^{2}", STAGES if i % 1000 == 0 else {}, "x^{3}", None)
        truths.append({"prediction_id": pid, "correction_id": f"c{pid}", "truth": "x^{3}",
                       "counted_at": at, "blame": blame, "blame_stages": names})
        if i % 2:  # labeled by annotators too
            labels.append({"queue": "verification", "prediction_id": pid, "input_hash": pid,
                           "status": "done", "label": "x^{3}", "reasons": [], "created_at": at})
    for i in np.flatnonzero(rng.random(n) < OUTCOMES):
        pid = f"p{i:09d}"
        outcomes.append({"outcome_id": f"o{pid}", "event_id": f"eo{pid}",
                         "experiment_id": experiment_id, "metric": "paid",
                         "value": float(i % 2), "prediction_id": pid, "unit_id": f"u{i}",
                         "arm": VARIANTS[variant[i]][0] or None, "counted_at": None,
                         "observed_at": T0 + timedelta(seconds=int(second[i]) + 120)})
    say(f"  {len(fixes):,} corrections, {len(labels):,} labels, {len(outcomes):,} outcomes")
    _insert(db, Correction.__table__, fixes)
    _insert(db, PredictionTruth.__table__, truths)
    _insert(db, Outcome.__table__, outcomes)
    _insert(db, RelabelItem.__table__, labels)
    in_shadow = np.array([VARIANTS[v][2] for v in variant])
    _insert(db, OnlineAggregate.__table__, aggregates(
        experiment_id, variant, slice_, second // 3600, latency, errors,
        corrected & ~in_shadow))
    _insert(db, UnitSums.__table__, unit_sums(experiment_id, unit, variant, slice_, latency,
                                              errors, corrected & ~in_shadow))
    with db.session() as s:
        s.add(ComponentHeartbeat(component="worker", instance="bench", started_at=T0,
                                 beat_at=datetime.now(UTC), lag_s=1.0))
        s.add_all([OutboxEvent(event_id=f"ob{i}", topic="t", key="k", payload=b"{}",
                               created_at=datetime.now(UTC)) for i in range(500)])
    return experiment_id


def aggregates(experiment_id: int, variant: np.ndarray, slice_: np.ndarray, hour: np.ndarray,
               latency: np.ndarray, errors: np.ndarray,
               corrected: np.ndarray) -> list[dict[str, Any]]:
    """The online aggregate rows of these predictions, per variant, slice and hour."""
    key = (variant * len(SLICES) + slice_) * HOURS + hour
    order = np.argsort(key, kind="stable")
    groups, starts = np.unique(key[order], return_index=True)
    rows = []
    for g, lo, hi in zip(groups, starts, [*starts[1:], len(order)], strict=True):
        idx = order[lo:hi]
        v, rest = divmod(int(g), len(SLICES) * HOURS)
        s, h = divmod(rest, HOURS)
        arm, cand, shadow = VARIANTS[v]
        base = {"experiment_id": experiment_id, "arm": arm, "candidate": cand,
                "shadow": shadow, "slice": SLICES[s], "hour": T0 + timedelta(hours=h),
                "label": "", "sketch": None}
        lat = latency[idx]
        k, c = len(idx), int(corrected[idx].sum())
        rows += [base | {"metric": agg.PREDICTIONS, "n": k, "sum": k, "sum_squares": k},
                 base | {"metric": agg.ERRORS, "n": k, "sum": float(errors[idx].sum()),
                         "sum_squares": float(errors[idx].sum())},
                 base | {"metric": agg.LATENCY, "n": k, "sum": float(lat.sum()),
                         "sum_squares": float((lat * lat).sum()),
                         "sketch": sketch.encode(sketch.from_values(lat))},
                 base | {"metric": agg.CORRECTED, "n": c, "sum": c, "sum_squares": c},
                 base | {"metric": agg.EXACT_MATCH, "n": c, "sum": 0.0, "sum_squares": 0.0}]
    return rows


def unit_sums(experiment_id: int, unit: np.ndarray, variant: np.ndarray, slice_: np.ndarray,
              latency: np.ndarray, errors: np.ndarray,
              corrected: np.ndarray) -> list[dict[str, Any]]:
    """Each unit's sums per variant and slice, as the worker keeps them."""
    keys, index = np.unique((variant * len(SLICES) + slice_) * UNITS + unit,
                            return_inverse=True)

    def total(values: Any) -> np.ndarray:
        return np.bincount(index, weights=np.broadcast_to(values, index.shape),
                           minlength=len(keys))

    predictions, fixes = total(1.0), total(corrected.astype(float))
    columns = {"errors": total(errors.astype(float)), "latency_sum": total(latency),
               "confidence_sum": total(0.9)}
    rows = []
    for j, key in enumerate(keys):
        rest, u = divmod(int(key), UNITS)
        v, s = divmod(rest, len(SLICES))
        arm, cand, shadow = VARIANTS[v]
        n, c = int(predictions[j]), int(fixes[j])
        rows.append({"experiment_id": experiment_id, "arm": arm, "candidate": cand,
                     "shadow": shadow, "slice": SLICES[s], "unit_id": f"u{u}",
                     "predictions": n, "errors": int(columns["errors"][j]), "corrected": c,
                     "truths": c, "exact_sum": 0.0, "edit_sum": 0.0, "confidence_n": n,
                     "confidence_sum": float(columns["confidence_sum"][j]), "latency_n": n,
                     "latency_sum": float(columns["latency_sum"][j]), "number_n": 0,
                     "abs_sum": 0.0, "sq_sum": 0.0})
    return rows


class Client:
    """The Flask test client logged in to the dashboard, posting Dash callbacks."""

    def __init__(self, app: Any, key: str) -> None:
        self.client = app.test_client()
        page = self.client.get("/dashboard/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        self.origin = {"Origin": "http://localhost"}
        form = {"key": key, "csrf": csrf, "next": "/dashboard/"}
        answer = self.client.post("/dashboard/login", data=form, headers=self.origin)
        assert answer.status_code == 303, answer.status_code
        self.token = self.client.get_cookie("abvoc_csrf", path="/dashboard/").value

    def call(self, outputs: list[str], inputs: list[tuple[str, Any]],
             state: tuple[tuple[str, Any], ...] = ()) -> None:
        def props(pairs: Any) -> list[dict[str, Any]]:
            return [dict(zip(("id", "property"), k.split("."), strict=True)) | {"value": v}
                    for k, v in pairs]

        outs = [dict(zip(("id", "property"), o.split("."), strict=True)) for o in outputs]
        body = {"output": outputs[0] if len(outputs) == 1 else ".." + "...".join(outputs) + "..",
                "outputs": outs[0] if len(outs) == 1 else outs, "inputs": props(inputs),
                "state": props(state),
                "changedPropIds": [k for k, v in inputs if k.endswith("n_clicks") and v]
                or [inputs[0][0]]}
        answer = self.client.post("/dashboard/_dash-update-component", json=body,
                                  headers={**self.origin, "X-CSRFToken": self.token})
        if answer.status_code != 200:
            raise SystemExit(f"{outputs} answered {answer.status_code}: "
                             f"{answer.get_data(as_text=True)[:300]}")


def route(path: str) -> tuple[list[str], list[tuple[str, Any]]]:
    return ["page.children"], [("url.pathname", f"/dashboard/{path}")]


def scenarios(experiment_id: int) -> dict[str, list[tuple[list[str], list[tuple[str, Any]],
                                                          tuple[tuple[str, Any], ...]]]]:
    """Per page and action, the callbacks it fires."""
    voc_out = ["voc-body.children", "voc-count.children", "voc-page.data"]
    voc = [("voc-kinds.value", ["correction", "outcome"]), ("voc-prev.n_clicks", None),
           ("voc-next.n_clicks", None)]
    exp_body = ["exp-body.children", "exp-window.children"]
    return {
        "experiments: visit": [
            (*route("experiments"), ()),
            (["exp-slice.options", "exp-slice.value", "exp-time.max", "exp-time.value",
              "exp-time.marks"], [("exp-select.value", experiment_id)], ()),
            (exp_body, [("exp-select.value", experiment_id), ("exp-slice.value", None),
                        ("exp-time.value", None)], ())],
        "experiments: a slice and hours": [
            (exp_body, [("exp-select.value", experiment_id),
                        ("exp-slice.value", "handwritten/high"), ("exp-time.value", [10, 100])],
             ())],
        "relabeling: visit": [
            (*route("relabeling"), ()),
            (["relabel-overview.children"], [("relabel-exp.id", "relabel-exp")], ()),
            (["relabel-accuracy.children"], [("relabel-exp.value", experiment_id)], ())],
        "offline-vs-online: visit": [
            (*route("divergence"), ()),
            (["div-body.children", "div-slice.options", "div-slice.value"],
             [("div-select.value", experiment_id)], ()),
            (["div-drill.children"], [("div-slice.value", "all"),
                                      ("div-select.value", experiment_id)], ())],
        "offline-vs-online: pick a slice": [
            (["div-drill.children"], [("div-slice.value", "handwritten/high"),
                                      ("div-select.value", experiment_id)], ())],
        "voc: visit": [(*route("voc"), ()),
                       (voc_out, [("voc-search.value", None), *voc], (("voc-page.data", 1),))],
        "voc: search": [(voc_out, [("voc-search.value", "exponent"), *voc],
                         (("voc-page.data", 1),))],
        "voc: page 200": [(voc_out, [("voc-search.value", None), voc[0], voc[1],
                                     ("voc-next.n_clicks", 1)], (("voc-page.data", 199),))],
        "inspector: an OCR prediction": [
            (*route("inspector"), ()),
            (["insp-body.children"], [("insp-id.value", "p000001000"),
                                      ("insp-go.n_clicks", None)], ())],
        "operations: visit": [
            (*route("operations"), ()),
            (["ops-traffic.children"], [("ops-candidate.value", "all candidates"),
                                        ("ops-span.value", "24")], ()),
            (["ops-health.children"], [("ops-span.id", "ops-span")], ())],
        "operations: a week, one candidate": [
            (["ops-traffic.children"], [("ops-candidate.value", "ocr-large"),
                                        ("ops-span.value", "168")], ())],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", type=positive_int, default=1_000_000)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--db", type=Path, help="SQLite file to reuse (seeded when new)")
    parser.add_argument("--database-url", help="a PostgreSQL URL instead (must be empty)")
    parser.add_argument("--live", action="store_true",
                        help="the worker applies a prediction before each timed run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-dashboard-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    """Seeds (unless `--db` names a seeded file) and times the pages; `tmp` is a scratch
    folder removed afterwards, so a seeded store to keep goes in `--db`."""
    path = args.db or tmp / "bench.db"
    url = args.database_url or f"sqlite:///{path}"
    settings = load_settings(env={"ABVOC_DATA_DIR": str(tmp / "data"),
                                  "ABVOC_DATABASE_URL": url, "ABVOC_SECRET_KEY": "bench"})
    fresh = args.database_url is not None or not path.exists()  # before opening creates it
    db = Database(settings.database_url)
    schema.upgrade(db)
    if fresh:
        say(f"seeding {args.predictions:,} predictions into {url.split('@')[-1]} ...")
        start = time.perf_counter()
        experiment_id = seed(db, args.predictions, np.random.default_rng(0))
        say(f"  seeded in {time.perf_counter() - start:.0f} s")
    else:
        with db.session() as s:
            experiment_id = int(s.query(Experiment.id).filter_by(name="bench").scalar())
    db.dispose()

    from app import close_app, create_app
    from app.auth import create_key

    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    try:
        client = Client(app, create_key(app.extensions["abvoc"].db, ["admin"])["key"])
        say(f"\n{'page / action':38} {'median s':>9} {'min s':>7} {'max s':>7}  target 2 s")
        for name, calls in scenarios(experiment_id).items():
            times = []
            for i in range(args.repeats + 1):
                if args.live:
                    live_write(db, experiment_id, SLICES)
                start = time.perf_counter()
                for outputs, inputs, state in calls:
                    client.call(outputs, inputs, state)
                if i:  # the first run warms the caches
                    times.append(time.perf_counter() - start)
            median = statistics.median(times)
            say(f"{name:38} {median:9.3f} {min(times):7.3f} {max(times):7.3f}  "
                f"{'ok' if median < TARGET_S else 'OVER'}")
    finally:
        close_app(app)


if __name__ == "__main__":
    main()
