"""Prometheus metrics: request counts and latency histograms, per endpoint and per candidate,
and shadow runs dropped because the shadow queue was full or lost unrecorded.

Each app has its own registry (tests build many apps). With PROMETHEUS_MULTIPROC_DIR set before
the process starts (`abvoc up` sets it to a folder in shared memory for every process it runs,
see app.supervisor.metrics_folder), each process writes its samples there and /metrics sums
every process's counts.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.auth import Unauthorized, bearer_token, require
from core.settings import Settings

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("abvoc_http_requests", "HTTP requests",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("abvoc_http_request_duration_seconds", "HTTP request latency",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("abvoc_predictions", "Predictions served",
                                   ["candidate", "outcome"], registry=self.registry)
        self.prediction_latency = Histogram(
            "abvoc_prediction_duration_seconds", "Candidate latency per prediction",
            ["candidate"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.shadow_dropped = Counter(
            "abvoc_shadow_dropped", "Shadow runs dropped because the shadow queue was full",
            registry=self.registry)
        self.shadow_unrecorded = Counter(
            "abvoc_shadow_unrecorded", "Shadow runs whose answer could not be recorded (the "
            "store unavailable, say): lost from the shadow's figures", registry=self.registry)
        # Each label set's counter and histogram children, looked up once (prometheus_client
        # checks the labels and takes a lock on every `labels` call: a few µs a request).
        self._by_request: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._by_prediction: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def count_request(self, endpoint: str, method: str, status: int,
                      seconds: float | None) -> None:
        """One answered request; an unknown method is counted as "other", so a client cannot
        make new label sets at will."""
        key = (endpoint, method if method in _METHODS else "other", str(status))
        self._count(self._by_request, key,
                    lambda: (self.requests.labels(*key), self.latency.labels(endpoint)), seconds)

    def count_prediction(self, candidate: str, ok: bool, seconds: float | None = None) -> None:
        """One served prediction, answered (with its candidate latency) or failed."""
        outcome = "ok" if ok else "error"
        self._count(self._by_prediction, (candidate, outcome),
                    lambda: (self.predictions.labels(candidate, outcome),
                             self.prediction_latency.labels(candidate)), seconds)

    @staticmethod
    def _count(seen: dict[tuple[str, ...], tuple[Any, Any]], key: tuple[str, ...],
               children: Callable[[], tuple[Any, Any]], seconds: float | None) -> None:
        """Count one in the key's counter and, with `seconds`, observe it in its histogram."""
        pair = seen.get(key)
        if pair is None:
            pair = seen[key] = children()
        pair[0].inc()
        if seconds is not None:
            pair[1].observe(seconds)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


def init_app(app: Flask) -> Metrics:
    metrics = Metrics()
    app.extensions["abvoc_metrics"] = metrics
    serving = app.extensions.get("abvoc_serving")
    if serving is not None:
        serving.predict.shadows.on_drop = metrics.shadow_dropped.inc
        serving.predict.on_shadow_lost = metrics.shadow_unrecorded.inc

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        req = request._get_current_object()  # noqa: SLF001 - one proxy lookup
        started = g.get("started")
        metrics.count_request(req.url_rule.rule if req.url_rule else "unmatched", req.method,
                              response.status_code,
                              None if started is None else time.perf_counter() - started)
        return response

    settings: Settings = app.extensions["abvoc"].settings
    exposition = _guarded(settings, lambda: Response(metrics.exposition(),
                                                     content_type=CONTENT_TYPE_LATEST))
    app.add_url_rule("/metrics", "prometheus_metrics", exposition, methods=["GET"])

    return metrics


def _guarded(settings: Settings, view: Callable[[], Response]) -> Callable[[], Response]:
    """/metrics as the settings allow it: its per-candidate series name the candidates, which
    only admin keys may learn. With ABVOC_METRICS_TOKEN, only that bearer token; in production
    without one, an admin API key (never open there); in development, open."""
    token = settings.metrics_token
    if token:
        expected = token.reveal().encode()

        def with_token() -> Response:
            given = (bearer_token(request.headers.get("Authorization", "")) or "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized("/metrics needs 'Authorization: Bearer <token>' with the "
                                   "token set in ABVOC_METRICS_TOKEN")
            return view()

        return with_token
    return require("admin")(view) if settings.production else view


def part_restarts() -> Counter:
    """Restarts of `abvoc up`'s supervised parts (api, relay, worker), counted by the
    supervisor; in multiprocess mode they appear in every API worker's /metrics."""
    return Counter("abvoc_part_restarts", "Supervised parts restarted after they died",
                   ["part"], registry=CollectorRegistry())
