"""A JSON-output candidate answers a whole batch in one JSON value: a caller's batch whose answer
is past the 10,000-character limit is the caller's 413 (send fewer items), never recorded as
the candidate's failure, so no caller can pause an arm with large batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flask import Flask
from onnx import TensorProto
from sqlalchemy import func, select

from core.store.models import ServedPrediction
from tests.support.keys import bearer
from tests.support.onnx_identity import identity_model
from tests.support.v2 import upload


def _int_echo_bundle(root: Path) -> Path:
    """An ONNX Identity on INT64 [-1, 1] whose answer is JSON: every row, echoed."""
    folder = root / "ids"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(
        identity_model(TensorProto.INT64, 1, ("ids", "output")))
    (folder / "candidate.toml").write_text(
        'name = "ids"\nversion = "1"\nbackend = "onnxruntime"\n[[inputs]]\nname = "ids"\n'
        'datatype = "INT64"\nshape = [-1, 1]\n[output]\ntype = "json"\nschema = {type = "object"}\n'
        '[[stages]]\n'
        'name = "echo"\nkind = "onnx"\npath = "model.onnx"\n')
    return folder


def _served(app: Flask) -> int:
    with app.extensions["abvoc"].db.session() as s:
        return s.scalar(select(func.count()).select_from(ServedPrediction)) or 0


def _infer(app: Flask, rows: int) -> tuple[int, dict]:
    data = np.full(rows, 1_234_567, np.int64).tolist()
    response = app.test_client().post(
        "/v2/models/ids/infer", headers=bearer(app, "predict"),
        json={"inputs": [{"name": "ids", "datatype": "INT64", "shape": [rows, 1], "data": data}],
              "parameters": {"unit_id": "u1"}})
    return response.status_code, response.get_json()


def test_a_batch_whose_answer_is_too_long_is_the_callers_413(v2app: Flask,
                                                             tmp_path: Path) -> None:
    upload(v2app.test_client(), bearer(v2app, "admin"), _int_echo_bundle(tmp_path))
    status, answer = _infer(v2app, 100)
    assert status == 200, answer
    served = _served(v2app)
    status, refused = _infer(v2app, 3000)
    assert status == 413, refused
    assert refused["error"] == ("the answer to these 3000 items is longer than 10000 "
                                "characters, the most an answer may hold: send fewer items per "
                                "request")
    assert _served(v2app) == served, "the caller's batch size was recorded as a failure"
