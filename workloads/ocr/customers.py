"""Simulated OCR customers against a running abvoc, through its public API only.

A three-arm experiment (the printed-only recognizer as control, the mixed and the larger mixed
ones as treatments) with the larger one also run as a shadow; customers photograph formulas
whose mix differs from the offline test (mostly handwritten, noisier), send them to
`/v1/predict`, and correct most wrong answers with the right LaTeX.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.images import encode_png
from workloads.client import ServiceClient
from workloads.ocr.dataset import ONLINE_MIX, sample_requests

SCOPE = "formulas"
ARMS = (("control", "ocr-small-printed", True), ("mixed", "ocr-small-mixed", False),
        ("large", "ocr-large-mixed", False))
SHADOW = "ocr-large-mixed"


@dataclass(frozen=True)
class Customers:
    requests: int = 600
    customers: int = 120
    correcting_share: float = 0.8  # of wrong answers, how many a customer corrects
    seed: int = 0
    threads: int = 8
    scope: str = SCOPE


def ensure_experiment(client: ServiceClient, scope: str = SCOPE) -> dict[str, Any]:
    """The experiment running on `scope`, or a new three-arm one with a shadow, started."""
    return client.running_experiment({
        "name": f"formula OCR on {scope}", "scope": scope, "unit": "user",
        "salt": "formula-ocr-customers",  # fixed: the same customers land in the same arms
        "arms": [{"name": arm, "candidate": cand, "weight": 1, "control": control}
                 for arm, cand, control in ARMS],
        "shadows": [{"candidate": SHADOW}], "guardrails": {"p99_latency_ms": 2000}})


def run_customers(client: ServiceClient, config: Customers,
                  on_request: Callable[[], None] | None = None) -> dict[str, int]:
    """Send the requests; counts of answers, wrong answers and corrections sent."""
    done = on_request or (lambda: None)
    rng = np.random.default_rng([config.seed, 11])
    corrects = rng.random(config.requests) < config.correcting_share
    counts = {"requests": 0, "wrong": 0, "corrections": 0}

    def one(i: int, sample: Any) -> tuple[bool, bool]:
        answer = client.predict_image(encode_png(sample.image),
                                      f"customer-{config.seed}-{i % config.customers}",
                                      config.scope, sample.category)
        wrong = answer.output != sample.latex
        if wrong and corrects[i]:
            client.correct(answer, sample.latex)
        done()
        return wrong, bool(wrong and corrects[i])

    samples = sample_requests(config.requests, ONLINE_MIX, seed=config.seed)
    with ThreadPoolExecutor(config.threads) as pool:
        for wrong, corrected in pool.map(lambda a: one(*a), enumerate(samples)):
            counts["requests"] += 1
            counts["wrong"] += wrong
            counts["corrections"] += corrected
    return counts
