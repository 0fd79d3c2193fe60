"""KServe's own V2 REST client (kserve 0.21's InferenceRESTClient, in KServe's virtual
environment) pointed at abvoc, as a KServe user would switch: only the base URL and the headers
change. Its request bodies name the model (`model_name`) as KServe's servers read them. Reads
{"url", "key", "scope", "rows"} as JSON on stdin and writes what each call gave back as JSON
on stdout, for the test to check.

    python kserve_rest_client.py < request.json
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main() -> None:
    spec = json.load(sys.stdin)
    scope, url = spec["scope"], spec["url"]
    auth = {"Authorization": f"Bearer {spec['key']}"}
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    out: dict = {"live": await client.is_server_live(url),
                 "ready": await client.is_server_ready(url),
                 "model_ready": await client.is_model_ready(url, scope, headers=auth),
                 "answers": []}
    for i, row in enumerate(spec["rows"]):
        binary = i % 2 == 1  # even rows: JSON tensors (its default); odd: binary data
        tensor = InferInput("features", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.asarray([row], dtype=np.float32), binary_data=binary)
        request = InferRequest(model_name=scope, infer_inputs=[tensor], request_id=f"k{i}",
                               parameters={"unit_id": f"unit-{i}"})
        # A copy each time: the client adds its binary header to the dict it is given.
        answer = await client.infer(url, request, model_name=scope, headers=dict(auth))
        outputs = {o.name: o.as_numpy() for o in answer.outputs}
        label = outputs["output"][0]
        out["answers"].append({
            "binary": binary, "id": answer.id,
            "label": label.decode() if isinstance(label, bytes) else str(label),
            "probabilities": outputs["probabilities"].tolist(),
            "parameters": answer.parameters})
    await client.close()
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    asyncio.run(main())
