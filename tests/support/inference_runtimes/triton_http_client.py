"""Triton's own Python HTTP client (tritonclient 2.73, in its own virtual environment) pointed at
abvoc, as a Triton user would switch: only the base URL and the headers change. Runs in that
environment, not abvoc's; reads {"url", "key", "scope", "rows"} as JSON on stdin and writes what
each call gave back as JSON on stdout, for the test to check.

    python triton_http_client.py < request.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException


def main() -> None:
    spec = json.load(sys.stdin)
    key, scope = spec["key"], spec["scope"]
    auth = {"Authorization": f"Bearer {key}"}
    client = triton.InferenceServerClient(spec["url"].removeprefix("http://"))
    out: dict = {"live": client.is_server_live(), "ready": client.is_server_ready(),
                 "model_ready": client.is_model_ready(scope, headers=auth),
                 "metadata": client.get_model_metadata(scope, headers=auth),
                 "server": client.get_server_metadata(), "answers": []}
    for i, row in enumerate(spec["rows"]):
        features = np.asarray([row], dtype=np.float32)
        tensor = triton.InferInput("features", list(features.shape), "FP32")
        # Even rows: the client's defaults (binary tensors both ways, no outputs named, the
        # unit in a header). Odd rows: JSON tensors, named outputs, the unit as a parameter.
        binary = i % 2 == 0
        tensor.set_data_from_numpy(features, binary_data=binary)
        if binary:
            result = client.infer(scope, [tensor], request_id=f"r{i}",
                                  headers={**auth, "X-Abvoc-Unit-Id": f"unit-{i}"})
        else:
            outputs = [triton.InferRequestedOutput("output", binary_data=False),
                       triton.InferRequestedOutput("probabilities", binary_data=True)]
            # With the client's own request parameters (priority, timeout): passed unread.
            result = client.infer(scope, [tensor], outputs=outputs, request_id=f"r{i}",
                                  headers=auth, parameters={"unit_id": f"unit-{i}"},
                                  priority=1, timeout=30_000_000)
        response = result.get_response()
        label = result.as_numpy("output")[0]
        # BYTES in JSON come as the text they hold (Triton's reading); as binary data, raw.
        label = label.decode() if binary else label
        out["answers"].append({
            "binary": binary, "id": response.get("id"), "label": label,
            "probabilities": result.as_numpy("probabilities").tolist(),
            "parameters": response["parameters"],
            "outputs": [o["name"] for o in response["outputs"]]})
    # Bodies compressed as the client can send them (answers may come back uncompressed).
    for algorithm in ("gzip", "deflate"):
        tensor = triton.InferInput("features", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.asarray([spec["rows"][0]], dtype=np.float32))
        result = client.infer(scope, [tensor], headers={**auth, "X-Abvoc-Unit-Id": algorithm},
                              request_compression_algorithm=algorithm,
                              response_compression_algorithm=algorithm)
        out[algorithm] = result.as_numpy("output")[0].decode()
    bad = triton.InferInput("petals", [1, 4], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 4), np.float32))
    out["refusal"] = _refusal(lambda: client.infer(scope, [bad], headers={
        **auth, "X-Abvoc-Unit-Id": "u"}))
    # A client that names a model version: the scope has none; told to leave it empty.
    out["versioned"] = _refusal(lambda: client.infer(scope, [tensor], model_version="1",
                                                     headers={**auth, "X-Abvoc-Unit-Id": "u"}))
    client.close()
    json.dump(out, sys.stdout)


def _refusal(call: Callable[[], object]) -> dict | None:
    """The status and message of the error the call raised; None if it answered."""
    try:
        call()
    except InferenceServerException as exc:
        return {"status": exc.status(), "message": exc.message()}
    return None


if __name__ == "__main__":
    main()
