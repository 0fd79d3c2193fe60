"""An app serving the dashboard over a store filled with a two-arm experiment's real events
(outbox → relay → bus → worker), and an admin key to log in with."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from app import close_app, create_app
from app.auth import create_key
from core.settings import Settings
from tests.evaluation.helpers import T0, add_candidate, add_experiment, correction, flow, prediction

NAME = "<b>checkout</b> & <script>alert(1)</script>"
SLICES = {"printed/middle": (0.10, 0.10), "handwritten/high": (0.40, 0.05)}
"""Correction rate of (control, treatment) per slice: the arms differ only on handwriting."""
PER_HOUR = 30
HOURS = 3


def seed_events() -> list[dict[str, Any]]:
    """Predictions of both arms in both slices over three hours, and their corrections."""
    batch = []
    for hour in range(HOURS):
        at = T0 + timedelta(hours=hour)
        for slice_, rates in SLICES.items():
            tag = slice_.split("/")[0][:2]
            for arm, candidate, rate in (("control", "cand-a", rates[0]),
                                         ("treatment", "cand-b", rates[1])):
                for i in range(PER_HOUR):
                    pid = f"{arm[0]}{tag}{hour}-{i:03d}"
                    batch.append(prediction(pid, arm=arm, candidate=candidate, slice_=slice_,
                                            at=at, unit_id=f"u-{pid}", latency_ms=10.0 + i % 7,
                                            confidence=0.5 + (i % 5) / 10))
                    if i < round(rate * PER_HOUR):
                        batch.append(correction(pid, "y^{2}", at=at + timedelta(minutes=5)))
    return batch


def seed(app: Flask) -> int:
    """The experiment, its candidates, and its events drained into the evaluation store."""
    services = app.extensions["abvoc"]
    add_candidate(services.db, "cand-a", {})
    add_candidate(services.db, "cand-b", {})
    experiment_id = add_experiment(services.db, name=NAME)
    batch = seed_events()
    applied = flow(services.db, services.bus, batch, services.settings.topic_prefix)
    assert applied == len(batch)
    return experiment_id


@pytest.fixture
def dash_app(settings: Settings) -> Iterator[Flask]:
    flask_app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    yield flask_app
    close_app(flask_app)


@pytest.fixture
def seeded(dash_app: Flask) -> int:
    return seed(dash_app)


@pytest.fixture
def admin_key(dash_app: Flask) -> str:
    return create_key(dash_app.extensions["abvoc"].db, ["admin"], name="dashboard")["key"]
