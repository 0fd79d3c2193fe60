"""A relabel item's input, kept the way the service keeps it: a ``prediction_inputs`` row written
with the served prediction (serving.predict), found by the item's ``input_hash``. An item whose
input is not kept is never offered to annotators (feedback.annotation), so the tests' item
builders keep one for each item they make.

The body is one that feedback.item_view reads back: an image as PNG (``kind="image"``), tensors
as V2 JSON (``kind="tensors"``, the legacy form core.v2_binary still reads), or tensors in the
binary form V2 requests are kept in now (``kind="v2-binary"``)."""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from core.store.db import utcnow
from core.store.models import PredictionInput
from core.v2_binary import KEPT, LEGACY_JSON, SIZE, pack_kept

TENSORS = [{"name": "x", "shape": [3], "datatype": "FP32", "data": [0.5, 1.5, 2.5]}]


def tensors_json() -> bytes:
    """V2 JSON tensors: a ``tensors`` input."""
    return json.dumps(TENSORS).encode()


def tensors_kept() -> bytes:
    """The same tensors in core.v2_binary's kept form: a ``v2-binary`` input."""
    raw = np.asarray(TENSORS[0]["data"], dtype="<f4").tobytes()
    header = {"name": "x", "shape": [3], "datatype": "FP32", "parameters": {SIZE: len(raw)}}
    return pack_kept([(header, raw)])


def png() -> bytes:
    """A small white PNG with a black bar: an ``image`` input."""
    image = Image.new("L", (24, 12), 255)
    image.paste(0, (4, 4, 20, 8))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _default(kind: str) -> bytes:
    if kind == "image":
        return png()
    if kind == KEPT:
        return tensors_kept()
    if kind == LEGACY_JSON:
        return tensors_json()
    raise ValueError(f"no default body for a kept input of kind {kind!r}")


def keep_input(session: Session, prediction_id: str, input_hash: str, kind: str = LEGACY_JSON,
               data: bytes | None = None, created_at: datetime | None = None) -> None:
    """Keep `prediction_id`'s input (of hash `input_hash`) in `session`, as the service does
    when it serves the prediction; nothing if that prediction's input is kept already. `data`
    defaults to a readable body of `kind`."""
    if session.get(PredictionInput, prediction_id) is not None:
        return
    session.add(PredictionInput(prediction_id=prediction_id, input_hash=input_hash, kind=kind,
                                data=_default(kind) if data is None else data,
                                created_at=utcnow() if created_at is None else created_at))
