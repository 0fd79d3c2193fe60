"""ABVOC_RATE_LIMIT: each API key keeps to its rate (a burst of two seconds' worth, then 429
with Retry-After), without touching other keys; refused requests store nothing; off by
default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import close_app, create_app
from app.rate_limit import KeyRateLimit
from core.settings import Settings, load_settings
from core.store.models import Experiment
from tests.support.keys import bearer

EXPERIMENT = {"name": "limited", "arms": [{"name": "control", "candidate": "a", "weight": 0.5},
                                          {"name": "treatment", "candidate": "b", "weight": 0.5}]}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_two_seconds_and_refills_at_the_rate() -> None:
    clock = Clock()
    limit = KeyRateLimit(5, clock)
    assert [limit.wait_s("a") for _ in range(10)] == [0.0] * 10
    assert limit.wait_s("a") == pytest.approx(0.2)
    assert limit.wait_s("b") == 0.0, "another key has its own bucket"
    clock.now += 0.1
    assert limit.wait_s("a") == pytest.approx(0.1), "half a request refilled: wait the rest"
    clock.now += 0.1
    assert limit.wait_s("a") == 0.0 and limit.wait_s("a") > 0
    clock.now += 60
    assert [limit.wait_s("a") for _ in range(11)].count(0.0) == 10, "never more than the burst"
    slow = KeyRateLimit(0.1, clock)
    assert slow.wait_s("c") == 0.0 and slow.wait_s("c") == pytest.approx(10.0)


@pytest.fixture
def limited(settings: Settings) -> Iterator[Flask]:
    """The app with 5 requests a second per key (a burst of 10)."""
    app = create_app(settings.with_overrides(rate_limit=5.0), test_config={"TESTING": True})
    yield app
    close_app(app)


def test_a_key_over_its_rate_gets_a_429_and_other_keys_go_on(limited: Flask) -> None:
    client = limited.test_client()
    busy, other = bearer(limited, "admin", name="loader"), bearer(limited, "admin")
    codes = [client.get("/v1/experiments", headers=busy).status_code for _ in range(10)]
    assert codes == [200] * 10
    refused = client.post("/v1/experiments", json=EXPERIMENT, headers=busy)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    prefix = busy["Authorization"].split("_")[1]
    assert f"API key {prefix} sent more than 5 requests a second" in refused.json["error"]
    assert "ABVOC_RATE_LIMIT" in refused.json["error"]
    with limited.extensions["abvoc"].db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Experiment)) == 0, "nothing stored"
    assert client.get("/v1/experiments", headers=other).status_code == 200
    # A request without a valid key is refused for that, and takes nothing from any bucket.
    assert client.get("/v1/experiments", headers={"Authorization": "Bearer nope"}
                      ).status_code == 401
    # The V2 routes answer the limit in their own error shape.
    v2 = client.post("/v2/models/default/infer", json={"inputs": []}, headers=busy)
    assert v2.status_code == 429 and "ABVOC_RATE_LIMIT" in v2.json["error"]


def test_no_limit_unless_set(v2app: Flask, tmp_path) -> None:  # noqa: ANN001
    assert "abvoc_rate" not in v2app.extensions
    client, key = v2app.test_client(), bearer(v2app, "admin")
    assert all(client.get("/v1/experiments", headers=key).status_code == 200
               for _ in range(50))
    env = {"ABVOC_DATA_DIR": str(tmp_path)}
    assert load_settings(env={**env, "ABVOC_RATE_LIMIT": "250"}).rate_limit == 250.0
    refusal = r"ABVOC_RATE_LIMIT \(rate_limit in the config file\) must be requests a second"
    for bad in ("-1", "fast", "nan", "2000000"):
        with pytest.raises(Exception, match=refusal):
            load_settings(env={**env, "ABVOC_RATE_LIMIT": bad})
