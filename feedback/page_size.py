"""The size of the page a page prediction (formula boxes, :mod:`core.page_boxes`) answered on,
so a correction or an annotator's label of its boxes can be held to the page's edges: a box past
them (``[700, 900, 5000, 5000]`` on a 720x1000 page) was taken and became the page's truth.

Read cheaply from what the store keeps: the prediction's record, whose extraction stage names
the page's size (``page_size``, [width, height]), else, before the evaluation worker has applied
it (a correction sent right after the page), the header of its kept input. Neither kept (old
records, inputs not retained): unknown, and only the rules of any box apply."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.grayscale import oriented_size
from core.output_types import OutputKind
from core.store.models import Prediction, PredictionInput

HEAD_BYTES = 64 << 10
"""The kept input's first bytes read: a PNG's size is in its first 33, a JPEG's in its frame
header, after any metadata segments (which this leaves room for; longer ones: the whole)."""


def with_page(s: Session, kind: OutputKind, prediction_id: str | None) -> OutputKind:
    """`kind` with its page's size, when it answers page boxes and the size is known."""
    if not kind.page_boxes or prediction_id is None:
        return kind
    return dataclasses.replace(kind, page=page_size(s, prediction_id))


def with_image(kind: OutputKind, image: bytes) -> OutputKind:
    """`kind` with the size of `image`, a page that comes with its labels (new data in a Label
    Studio import), when it answers page boxes."""
    if not kind.page_boxes:
        return kind
    return dataclasses.replace(kind, page=_image_size(image))


def page_size(s: Session, prediction_id: str) -> tuple[int, int] | None:
    """The (width, height) of the page `prediction_id` answered on, or None where not kept."""
    stages = s.scalar(select(Prediction.stages).where(Prediction.prediction_id == prediction_id))
    if (size := _recorded(stages)) is not None:
        return size
    kept = (PredictionInput.prediction_id == prediction_id, PredictionInput.kind == "image")
    head = s.scalar(select(func.substr(PredictionInput.data, 1, HEAD_BYTES)).where(*kept))
    if head is None:
        return None
    if (size := _image_size(bytes(head))) is None and len(head) == HEAD_BYTES:
        # A JPEG whose metadata (an ICC profile, EXIF with a thumbnail) runs past the head:
        # its size was unknown, and a box past its edges was taken. Rare: the whole is read.
        whole = s.scalar(select(PredictionInput.data).where(*kept))
        size = None if whole is None else _image_size(bytes(whole))
    return size


def _recorded(stages: Any) -> tuple[int, int] | None:
    extraction = stages.get("extraction") if isinstance(stages, dict) else None
    size = extraction.get("page_size") if isinstance(extraction, dict) else None
    if isinstance(size, list) and len(size) == 2 \
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        return size[0], size[1]
    return None


def _image_size(head: bytes) -> tuple[int, int] | None:
    """The size a PNG or JPEG's header gives, turned as its EXIF orientation says, as the page
    was read (PIL reads no pixels to open it), or None."""
    try:
        with Image.open(io.BytesIO(head), formats=("PNG", "JPEG")) as image:
            return oriented_size(image)
    except Exception:  # noqa: BLE001 - a header cut short or unreadable: the size is unknown
        return None
