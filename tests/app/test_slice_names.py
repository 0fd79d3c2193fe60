"""A request's `slice` is held to the slice names' one rule at every door (/v1/predict, /v1/pages,
/v2 `parameters.slice`): a slice named `all` was folded into the whole's row of the results,
and one with control characters (line breaks, tabs) or bidi controls (U+202E) broke
`abvoc experiment divergence`'s text table. Refused before anything is served or stored."""

from __future__ import annotations

from flask import Flask

from tests.support.keys import bearer

REFUSED = [("all", "other than 'all'"), ("overall", "other than 'all'"),
           ("line\nbreak", "control characters"), ("a\ttab", "control characters"),
           ("\u202egnp", "bidirectional controls"), ("x\u2067y", "bidirectional controls")]


def test_a_slice_that_cannot_name_a_slice_is_a_400_at_every_door(v2app: Flask) -> None:
    client, key = v2app.test_client(), bearer(v2app, "predict")
    doors = {
        "/v1/predict": lambda s: {"image_base64": "aGk=", "unit_id": "u1", "slice": s},
        "/v1/pages": lambda s: {"image_base64": "aGk=", "unit_id": "u1", "slice": s},
        "/v2/models/default/infer": lambda s: {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}],
            "parameters": {"unit_id": "u1", "slice": s}},
    }
    for path, body in doors.items():
        for name, said in REFUSED:
            answer = client.post(path, headers=key, json=body(name))
            assert answer.status_code == 400, (path, name, answer.get_json())
            assert answer.get_json()["error"].startswith("'slice' must"), (path, name)
            assert said in answer.get_json()["error"], (path, name)
        # A good name passes the check (and fails later, on the image or the missing model).
        fine = client.post(path, headers=key, json=body("printed/middle é"))
        assert "'slice'" not in (fine.get_json() or {}).get("error", ""), path
