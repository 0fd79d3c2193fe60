"""The idle-bot case: a game bot trained on logs dominated by 'idle' scores 99% offline and
collapses online, where the states differ and it answers 'idle' far more often than the true
labels warrant. The divergence report must name that first.

The classifier is real: a multinomial logistic regression trained here by gradient descent on
synthetic game-state logs. Its offline logs come from players whose input rate gives 'idle' away;
online, a new client reports a low input rate for everyone, and enemies come close more often.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.bus.embedded import EmbeddedBus
from core.store.db import Database
from evaluation.divergence import divergence_report
from tests.evaluation.helpers import (
    add_candidate,
    add_experiment,
    correction,
    flow,
    prediction,
)

CLASSES = ("idle", "move", "attack")
SLICE = "arena/ranked"


def _states(rng: np.random.Generator, n: int, shares: tuple[float, float, float],
            online: bool) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): enemy distance (noisy), obstacle ahead, player input rate."""
    labels = rng.choice(3, size=n, p=shares)
    # An idle player may stand anywhere; an active one attacks close enemies and moves to far ones.
    distance = np.where(labels == 2, rng.uniform(0, 2, n),
                        np.where(labels == 1, rng.uniform(2, 6, n), rng.uniform(0, 20, n)))
    active = labels > 0
    if online:  # the new client reports a low input rate whatever the player does
        rate = rng.normal(0.25, 0.15, n)
    else:
        rate = np.where(active, rng.normal(2.0, 0.3, n), rng.normal(0.2, 0.1, n))
    features = np.column_stack([distance + rng.normal(0, 0.2, n), rng.random(n), rate])
    return features, labels


class LogisticBot:
    """Softmax regression, full-batch gradient descent with L2, standardized inputs."""

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int = 2000, lr: float = 1.0) -> LogisticBot:
        self.mean, self.std = x.mean(axis=0), x.std(axis=0)
        z = (x - self.mean) / self.std
        onehot = np.eye(3)[y]
        self.w, self.b = np.zeros((x.shape[1], 3)), np.zeros(3)
        for _ in range(steps):
            p = self._proba(z)
            grad = (p - onehot) / len(y)
            self.w -= lr * (z.T @ grad + 1e-4 * self.w)
            self.b -= lr * grad.sum(axis=0)
        return self

    def _proba(self, z: np.ndarray) -> np.ndarray:
        logits = z @ self.w + self.b
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self._proba((x - self.mean) / self.std)
        return p.argmax(axis=1), p.max(axis=1)


@pytest.fixture(scope="module")
def bot() -> tuple[LogisticBot, dict]:
    rng = np.random.default_rng(7)
    shares = (0.9, 0.06, 0.04)
    model = LogisticBot().fit(*_states(rng, 6000, shares, online=False))
    x, y = _states(rng, 2000, shares, online=False)
    pred, _ = model.predict(x)
    accuracy = float((pred == y).mean())
    offline = {
        "overall": {"n": 2000, "exact_match": accuracy},
        "slices": {SLICE: {"n": 2000, "exact_match": accuracy}},
        "label_shares": {c: float((y == i).mean()) for i, c in enumerate(CLASSES)},
    }
    return model, offline


def test_idle_bot_collapses_online_and_the_report_names_idle(db: Database,
                                                             bot: tuple) -> None:
    model, offline = bot
    assert offline["overall"]["exact_match"] >= 0.985  # it really is a 99% model offline
    add_candidate(db, "idle-bot", offline)
    exp = add_experiment(db, name="bots", arms=[
        {"name": "control", "candidate": "idle-bot", "weight": 1.0, "control": True}])
    rng = np.random.default_rng(11)
    x, y = _states(rng, 1500, (0.35, 0.40, 0.25), online=True)
    pred, conf = model.predict(x)
    batch = []
    for i in range(len(y)):
        pid = f"bot-{i}"
        batch.append(prediction(pid, experiment_id=exp, arm="control", candidate="idle-bot",
                                slice_=SLICE, output=CLASSES[pred[i]], confidence=float(conf[i]),
                                latency_ms=1.0 + i % 7, unit_id=f"player-{i % 400}"))
        if pred[i] != y[i] and rng.random() < 0.9:  # most players correct a wrong move
            batch.append(correction(pid, CLASSES[y[i]]))
    bus = EmbeddedBus(db, partitions=3, heartbeat_s=0.2)
    assert flow(db, bus, batch, "idlebot") == len(batch)
    online_idle = float((pred == 0).mean())
    assert online_idle > 0.8 and (y == 0).mean() < 0.4  # the collapse is real

    with db.session() as s:
        report = divergence_report(s, exp)
    top = report["findings"][0]
    assert top["kind"] == "prediction_shift"
    assert top["label"] == "idle"
    assert "'idle'" in top["explanation"]
    assert f"{online_idle:.0%}" in top["explanation"]
    # The accuracy gap is found too, below its cause.
    kinds = [f["kind"] for f in report["findings"]]
    assert "accuracy_gap" in kinds[1:]
    overall = next(r for r in report["slices"] if r["slice"] == "all")
    assert overall["flagged"] and overall["gap"] < -0.3
