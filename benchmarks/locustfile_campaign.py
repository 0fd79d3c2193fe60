"""Locust load for the fault campaign (benchmarks/bench_campaign.py starts it, headless).

Each simulated customer sends a formula image to `/v1/predict` and, for a share of the answers,
corrects the prediction through `/v1/corrections` with its receipt. Every id the API accepted
(a 200 prediction, a 202 correction) is appended to a ledger file, so the campaign can compare the
accepted set with what the evaluation store applied. The run stops itself once the ledger holds
its quota of events.

Environment: ABVOC_CAMPAIGN_DIR (images.json and keys.json, written by the campaign; the ledger
goes there), ABVOC_CAMPAIGN_LEDGER (the ledger's file name), ABVOC_CAMPAIGN_QUOTA (events),
ABVOC_CAMPAIGN_CORRECTION_RATE (share of predictions corrected), ABVOC_CAMPAIGN_OK (a file
that gets each successful request's latency in ms, one a line: Locust's own percentiles and
rates count failed requests too, and a 503 answered at once is no served request).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, task
from locust.exception import StopUser

FOLDER = Path(os.environ.get("ABVOC_CAMPAIGN_DIR", "."))
QUOTA = int(os.environ.get("ABVOC_CAMPAIGN_QUOTA", "1000"))
CORRECTION_RATE = float(os.environ.get("ABVOC_CAMPAIGN_CORRECTION_RATE", "0.3"))
IMAGES: list[str] = json.loads((FOLDER / "images.json").read_text()) if FOLDER.exists() else []
KEYS: dict[str, str] = json.loads((FOLDER / "keys.json").read_text()) if FOLDER.exists() else {}
CORRECTIONS = ("x^{2}+1", "\\frac{1}{2}", "3+4=7", "a-b", "\\sqrt{2}")



def _why(response) -> str:  # noqa: ANN001 - a Locust response
    """The status and the service's own message, so the campaign can say what failed."""
    try:
        message = str(response.json().get("error", ""))[:100]
    except ValueError:
        message = (response.text or str(response.error or ""))[:100]
    return f"status {response.status_code} {message}".strip()

class Ledger:
    """Accepted ids, one `p <prediction_id>` or `c <correction_id>` line each, flushed at once."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the whole run
        self.count = 0

    def accept(self, kind: str, ident: str) -> int:
        self.file.write(f"{kind} {ident}\n")
        self.count += 1
        return self.count


LEDGER = Ledger(FOLDER / os.environ.get("ABVOC_CAMPAIGN_LEDGER", "accepted.txt"))
OK_MS = open(FOLDER / os.environ.get("ABVOC_CAMPAIGN_OK", "ok-ms.txt"), "a",  # noqa: SIM115
             buffering=1) if FOLDER.exists() else None


def _ok(started: float) -> None:
    """One successful request's latency, for the campaign's own rates and percentiles."""
    if OK_MS is not None:
        OK_MS.write(f"{(time.perf_counter() - started) * 1000:.1f}\n")


class Customer(FastHttpUser):
    """A closed-loop client: the next request leaves as soon as the last one is answered."""

    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def _accepted(self, kind: str, ident: str) -> None:
        if LEDGER.accept(kind, ident) == QUOTA:
            # Quit from a greenlet of its own: the runner stops every user, this one included.
            gevent.spawn(self.environment.runner.quit)

    @task
    def predict_and_correct(self) -> None:
        if LEDGER.count >= QUOTA:
            raise StopUser()
        body = {"image_base64": random.choice(IMAGES),
                "unit_id": f"user-{random.randrange(1_000_000)}"}
        headers = {"Authorization": f"Bearer {KEYS['predict']}"}
        started = time.perf_counter()
        with self.client.post("/v1/predict", json=body, headers=headers,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_why(response))
                return
            _ok(started)
            answer = response.json()
        self._accepted("p", answer["prediction_id"])
        if random.random() >= CORRECTION_RATE:
            return
        correction = {"prediction_id": answer["prediction_id"], "receipt": answer["receipt"],
                      "corrected_output": random.choice(CORRECTIONS), "rating": 2}
        headers = {"Authorization": f"Bearer {KEYS['correct']}"}
        started = time.perf_counter()
        with self.client.post("/v1/corrections", json=correction, headers=headers,
                              catch_response=True) as response:
            if response.status_code != 202:
                response.failure(_why(response))
                return
            _ok(started)
            self._accepted("c", response.json()["correction_id"])
