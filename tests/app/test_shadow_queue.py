"""The shadow queue is bounded: a slow shadow never holds up a served answer; its runs beyond
the queue's room are dropped and counted in /metrics."""

from __future__ import annotations

import re
import threading
import time

from flask import Flask
from flask.testing import FlaskClient

from serving.pool import ShadowQueue
from tests.app.test_experiments_api import ARMS, act, create
from tests.app.test_predict_flow import predict
from tests.support.flow import swap_loaded


class StuckCandidate:
    """A real shadow candidate that hangs until released, as one on a dead GPU would."""

    def __init__(self, candidate, release: threading.Event) -> None:  # noqa: ANN001
        self.candidate = candidate
        self.release = release
        self.accepts, self.output_type = candidate.accepts, candidate.output_type

    def predict(self, image, finish=None):  # noqa: ANN001, ANN201
        self.release.wait(60)
        return self.candidate.predict(image, finish)

    def close(self) -> None:
        self.candidate.close()


def _dropped(client: FlaskClient) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return float(re.search(r"^abvoc_shadow_dropped_total (\S+)$", text, re.M).group(1))


def test_a_stuck_shadow_drops_runs_and_never_slows_the_answer(
    app: Flask, client: FlaskClient, admin: dict
) -> None:
    serving = app.extensions["abvoc_serving"]
    old = serving.predict.shadows
    old.close()
    serving.predict.shadows = ShadowQueue(workers=1, capacity=3, on_drop=old.on_drop)
    release = threading.Event()
    swap_loaded(serving.pool, "ocr-large-mixed", lambda c: StuckCandidate(c, release))
    exp = create(client, admin, shadows=[{"candidate": "ocr-large-mixed"}], arms=ARMS[:2])
    act(client, admin, exp["id"], "start")
    assert _dropped(client) == 0

    took = []
    for u in range(20):
        started = time.perf_counter()
        response = predict(client, admin, unit=f"s{u}")
        took.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_json()
    # One run is stuck in the worker, three wait in the queue, the other sixteen are dropped.
    assert serving.predict.shadows.dropped == 16
    assert _dropped(client) == 16
    assert max(took) < 5.0  # the shadow hangs for a minute; answers never wait for it
    release.set()
    serving.predict.shadows.close()  # the queued four run and are recorded
    assert serving.predict.shadows.depth() == 0


def test_a_shadow_answer_the_store_cannot_take_is_counted_lost(
        app: Flask, client: FlaskClient, admin: dict, monkeypatch, caplog) -> None:  # noqa: ANN001
    """A PostgreSQL restart took one shadow row: the shadow's figures fell one short, with a
    traceback in the log and nothing in /metrics to say why."""
    from sqlalchemy.exc import OperationalError

    serving = app.extensions["abvoc_serving"]
    record = serving.predict._record  # noqa: SLF001 - the fault goes where the store is met

    def store_restarting(event, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if event["shadow"]:
            raise OperationalError("INSERT", {}, Exception("the database system is shutting "
                                                           "down"))
        return record(event, *args, **kwargs)

    monkeypatch.setattr(serving.predict, "_record", store_restarting)
    exp = create(client, admin, shadows=[{"candidate": "ocr-large-mixed"}], arms=ARMS[:2])
    act(client, admin, exp["id"], "start")
    assert predict(client, admin, unit="lost-1").status_code == 200
    serving.predict.shadows.close()  # its run is done
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r"^abvoc_shadow_unrecorded_total 1\.0$", text, re.M), text[-2000:]
    said = [r for r in caplog.records if "not recorded" in r.getMessage()]
    assert said and said[0].exc_info is None and "OperationalError" in said[0].getMessage()
