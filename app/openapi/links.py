"""Operation ids and links: they chain the operations the way a session uses them — candidates →
create an experiment → start it → predict in its scope → correct the prediction → read the
results — so schemathesis' stateful phase walks that path with real ids and receipts."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import SAMPLE_IMAGE, error_responses

OPERATION_IDS = {
    ("get", "/v1/candidates"): "listCandidates",
    ("post", "/v1/experiments"): "createExperiment",
    ("get", "/v1/experiments"): "listExperiments",
    ("get", "/v1/experiments/{experiment_id}"): "showExperiment",
    ("post", "/v1/experiments/{experiment_id}/start"): "startExperiment",
    ("post", "/v1/predict"): "predict",
    ("post", "/v1/corrections"): "correct",
    ("get", "/v1/experiments/{experiment_id}/results"): "experimentResults",
    ("get", "/v1/experiments/{experiment_id}/divergence"): "experimentDivergence",
}
# Whole bodies, not merged into generated ones, where the flow needs them exactly. (Predict
# takes JSON or multipart, so its link bodies are merged into a generated JSON one instead.)
_WHOLE = {"x-schemathesis": {"merge_body": False}}
_BY_ID = {"experiment_id": "$response.body#/id"}
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("get", "/v1/candidates", "200"): {
        "Predict": {"operationId": "predict", "requestBody": {
            "image_base64": SAMPLE_IMAGE, "unit_id": "flow-user"}}},
    ("post", "/v1/experiments", "201"): {
        "StartExperiment": {"operationId": "startExperiment", "parameters": _BY_ID},
        "ShowExperiment": {"operationId": "showExperiment", "parameters": _BY_ID},
        "ExperimentResults": {"operationId": "experimentResults", "parameters": _BY_ID}},
    ("post", "/v1/experiments/{experiment_id}/start", "200"): {
        "PredictInScope": {"operationId": "predict", "requestBody": {
            "image_base64": SAMPLE_IMAGE, "unit_id": "flow-user",
            "scope": "$response.body#/scope"}},
        "ExperimentResults": {"operationId": "experimentResults", "parameters": _BY_ID},
        "ExperimentDivergence": {"operationId": "experimentDivergence",
                                 "parameters": _BY_ID}},
    ("post", "/v1/predict", "200"): {
        # A fresh name and scope from the prediction id; both arms on the candidate that served.
        "CreateExperiment": {"operationId": "createExperiment", **_WHOLE, "requestBody": {
            "name": "flow-{$response.body#/prediction_id}",
            "scope": "flow-{$response.body#/prediction_id}",
            "arms": [{"name": "control", "candidate": "$response.body#/candidate",
                      "weight": 1, "control": True},
                     {"name": "treatment", "candidate": "$response.body#/candidate",
                      "weight": 1}]}},
        "CorrectPrediction": {"operationId": "correct", **_WHOLE, "requestBody": {
            "prediction_id": "$response.body#/prediction_id",
            "receipt": "$response.body#/receipt", "corrected_output": "x^{2}", "rating": 2}},
        "ExperimentResults": {"operationId": "experimentResults",
                              "parameters": {"experiment_id": "$response.body#/experiment_id"}}},
    ("post", "/v1/corrections", "202"): {
        "ListExperiments": {"operationId": "listExperiments"}},
    ("get", "/v1/experiments", "200"): {
        "ExperimentResults": {"operationId": "experimentResults",
                              "parameters": {"experiment_id":
                                             "$response.body#/experiments/0/id"}}},
}


def finish(paths: dict[str, Any]) -> dict[str, Any]:
    """Operation ids and links; 400 (text that cannot be stored, JSON too deep), 413 (body over
    the limit) and 415 (a Content-Encoding other than gzip or deflate, refused before any route,
    app/compressed.py) can answer any request, so every operation documents them, and 429 (a
    key over ABVOC_RATE_LIMIT) and 503 (the store unavailable or locked past its busy timeout:
    the key is looked up there, and every such route reads it) any that takes a key."""
    for path, item in paths.items():
        for method, op in item.items():
            if (method, path) in OPERATION_IDS:
                op["operationId"] = OPERATION_IDS[method, path]
            keyed = ("429", "503") if "401" in op["responses"] else ()
            for code in ("400", "413", "415", *keyed):
                op["responses"].setdefault(code, error_responses(int(code))[code])
            for status, response in op["responses"].items():
                links = LINKS.get((method, path, status))
                if links:
                    response["links"] = links
    return paths
