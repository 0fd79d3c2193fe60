"""Relabel items for the Annotate page, written straight into the store the way the evaluation
worker leaves them (predictions, kept inputs, a shadow twin, a correction, queued items)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
from PIL import Image

from core.store.db import Database
from core.store.models import (
    Candidate,
    Correction,
    Prediction,
    PredictionInput,
    RelabelItem,
)
from tests.evaluation.helpers import T0

QUEUE = "verification"
EVIL = "<b>x</b><script>window.__abvoc_xss=1</script>"
CLASSES = ["cat", "dog", "<i>bird</i>"]


def png(seed: int) -> bytes:
    """A small white image with a black bar whose place depends on ``seed``."""
    pixels = np.full((48, 96), 255, np.uint8)
    pixels[12 + seed * 4: 20 + seed * 4, 10:80] = 0
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _prediction(s: Any, pid: str, candidate: str, output: str, input_hash: str,
                shadow: bool = False, output_type: str | None = None) -> None:
    s.add(Prediction(prediction_id=pid, event_id=f"ev-{pid}", experiment_id=1,
                     candidate=candidate, arm=None if shadow else "control", shadow=shadow,
                     unit_id=f"u-{input_hash}", slice="printed/middle", input_hash=input_hash,
                     output=output, output_type=output_type, confidence=0.4,
                     created_at=T0))


def _item(s: Any, pid: str, input_hash: str, candidate: str, priority: float,
          queue: str = QUEUE, reasons: tuple[str, ...] = ("correction",)) -> None:
    s.add(RelabelItem(queue=queue, prediction_id=pid, reason=",".join(reasons),
                      priority=priority, status="open", created_at=T0, input_hash=input_hash,
                      experiment_id=1, candidate=candidate, slice="printed/middle",
                      reasons=list(reasons), labels_needed=1))


def seed_queue(db: Database) -> list[str]:
    """Three LaTeX items in :data:`QUEUE` (most urgent first: with a shadow's answer and a
    correction; plain; plain) and one ``label`` item with tensors in ``training``. Returns
    the prediction ids of the three, in claim order."""
    pids = ["p-first", "p-second", "p-third"]
    with db.session() as s:
        s.add(Candidate(name="ocr-a", version="1", pipeline={}, created_at=T0, updated_at=T0))
        s.add(Candidate(name="classes", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "label", "classes": CLASSES}}))
        for i, pid in enumerate(pids):
            data = png(i)
            digest = hashlib.sha256(data).hexdigest()
            s.add(PredictionInput(prediction_id=pid, input_hash=digest, kind="image", data=data,
                                  created_at=T0))
            _prediction(s, pid, "ocr-a", EVIL if i == 0 else f"x^{{{i}}}", digest)
            _item(s, pid, digest, "ocr-a", priority=3.0 - i)
            if i == 0:
                _prediction(s, "p-first-shadow", "ocr-b", "x^{3}", digest, shadow=True)
                s.add(Correction(correction_id="c-first", event_id="ev-c-first",
                                 prediction_id=pid, corrected_output="x^{2}", rating=2,
                                 comment=EVIL, created_at=T0))
        tensors = json.dumps([{"name": "x", "shape": [3], "datatype": "FP32",
                               "data": [0.5, 1.5, 2.5]}]).encode()
        s.add(PredictionInput(prediction_id="p-class", input_hash="h-class", kind="tensors",
                              data=tensors, created_at=T0))
        _prediction(s, "p-class", "classes", "dog", "h-class", output_type="label")
        _item(s, "p-class", "h-class", "classes", priority=1.0, queue="training",
              reasons=("low_confidence",))
    return pids


def seed_text_item(db: Database) -> str:
    """One ``text`` item in :data:`QUEUE` whose candidate read words into a blank image; its
    prediction id."""
    data = png(0)
    digest = hashlib.sha256(data).hexdigest()
    with db.session() as s:
        s.add(Candidate(name="reader", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "text"}}))
        s.add(PredictionInput(prediction_id="p-text", input_hash=digest, kind="image",
                              data=data, created_at=T0))
        _prediction(s, "p-text", "reader", "STOP", digest, output_type="text")
        _item(s, "p-text", digest, "reader", priority=1.0)
    return "p-text"
