"""A small client of abvoc's public HTTP API, for the reference workloads' simulations.

It speaks only what any team's code would: `/v2` infer, `/v1/corrections`, `/v1/outcomes` and the
admin routes for experiments and metrics. One urllib3 pool serves many threads. An error answer
raises `ServiceError` with the service's own message, so a simulation stops saying what to fix.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import urllib3


class ServiceError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Answer:
    """One /v2 answer: the output value and what correcting it needs."""

    output: Any
    prediction_id: str
    receipt: str


class ServiceClient:
    def __init__(self, base_url: str, key: str, *, threads: int = 8,
                 timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._http = urllib3.PoolManager(maxsize=threads, block=True,
                                         timeout=urllib3.Timeout(total=timeout_s),
                                         retries=urllib3.Retry(total=3, connect=3, read=0,
                                                               status=0, backoff_factor=0.2))

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200, 201, 202)) -> Any:
        response = self._http.request(
            method, self.base_url + path, headers={**self._headers, **(headers or {})},
            body=None if body is None else json.dumps(body).encode())
        data = json.loads(response.data or b"null") if response.data else None
        if response.status not in ok:
            message = data.get("error") if isinstance(data, dict) else response.data[:300]
            raise ServiceError(response.status, f"{method} {path}: {message}")
        return data

    def infer(self, scope: str, name: str, row: np.ndarray, unit_id: str,
              slice_: str | None = None) -> Answer:
        """One V2 inference of a one-row FP32 tensor `name`, routed by the scope's experiment."""
        parameters = {"unit_id": unit_id, **({"slice": slice_} if slice_ else {})}
        body = {"inputs": [{"name": name, "datatype": "FP32", "shape": [1, int(row.size)],
                            "data": [float(x) for x in row.ravel()]}],
                "parameters": parameters}
        answer = self.call("POST", f"/v2/models/{scope}/infer", body)
        tensor = next(t for t in answer["outputs"] if t["name"] == "output")
        value = tensor["data"][0]
        if (tensor.get("parameters") or {}).get("content_type") == "base64":
            value = base64.b64decode(value).decode()
        params = answer["parameters"]
        return Answer(value, params["prediction_id"], params["receipt"])

    def predict_image(self, png: bytes, unit_id: str, scope: str = "default",
                      slice_: str | None = None) -> Answer:
        """One image through POST /v1/predict (JSON, base64)."""
        body = {"image_base64": base64.b64encode(png).decode(), "unit_id": unit_id,
                "scope": scope, **({"slice": slice_} if slice_ else {})}
        answer = self.call("POST", "/v1/predict", body)
        return Answer(answer["output"], answer["prediction_id"], answer["receipt"])

    def correct(self, answer: Answer, corrected: Any, comment: str = "") -> dict[str, Any]:
        return self.call("POST", "/v1/corrections", {
            "prediction_id": answer.prediction_id, "receipt": answer.receipt,
            "corrected_output": corrected, "comment": comment or None})

    def outcome(self, experiment_id: int, unit_id: str, metric: str, value: float,
                event_id: str) -> dict[str, Any]:
        return self.call("POST", "/v1/outcomes", {
            "experiment_id": experiment_id, "unit_id": unit_id, "metric": metric,
            "value": value, "event_id": event_id})

    def experiment_in(self, scope: str) -> dict[str, Any] | None:
        """The running (or paused) experiment that owns `scope`, if any."""
        listed = self.call("GET", "/v1/experiments")["experiments"]
        return next((e for e in listed if e["scope"] == scope
                     and e["status"] in ("running", "paused")), None)

    def running_experiment(self, spec: dict[str, Any],
                           metrics: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        """The experiment running on `spec["scope"]`, else `spec` created (under another name
        when that one is taken by a finished experiment), its outcome metrics defined, started."""
        found = self.experiment_in(spec["scope"])
        if found is not None:
            return found
        try:
            exp = self.call("POST", "/v1/experiments", spec)
        except ServiceError as exc:
            if exc.status != 409:
                raise
            exp = self.call("POST", "/v1/experiments",
                            {**spec, "name": f"{spec['name']} {uuid.uuid4().hex[:8]}"})
        for metric in metrics:
            self.call("POST", f"/v1/experiments/{exp['id']}/metrics", metric)
        return self.call("POST", f"/v1/experiments/{exp['id']}/start")

    def close(self) -> None:
        self._http.clear()
