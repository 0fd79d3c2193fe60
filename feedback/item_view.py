"""What an annotator sees of one relabel item: the input, the served answer, shadows' answers
to the same request, the customer's correction, and what a label must be (output type, classes).

Outputs, the correction and the label are values of the output type (numbers as numbers, JSON
as the value it is: :func:`core.events.typed_value`), so an annotator can send the correction
back as the label unchanged. A failed prediction's output is ``null`` beside ``"failed": true``:
the store keeps its missing answer as ``''``, which would read as an answer of the empty string.
The input is the one kept with the served prediction
(``prediction_inputs``): an image as base64 PNG, V2 tensors as they were sent; ``null`` once its
retention has passed.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import AbvocError
from core.events import typed_value
from core.grayscale import upright
from core.output_types import OutputKind
from core.shadow_twins import own_request
from core.store.models import (
    Correction,
    Prediction,
    PredictionInput,
    RelabelItem,
    RelabelLabel,
    RelabelSample,
)
from core.times import utc_iso
from core.v2_binary import kept_tensors
from core.verified_labels import answer_type

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def as_png(data: bytes) -> bytes:
    """The image as PNG bytes (kept inputs are the PNG or JPEG the customer sent), a JPEG upright
    as it was read: the PNG written keeps no EXIF orientation, so a phone photo was shown on its
    side while its boxes were drawn on the turned page."""
    if data.startswith(PNG_MAGIC):
        return data
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            out = io.BytesIO()
            upright(image).save(out, format="PNG")
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise AbvocError("a kept input image does not decode as a PNG or JPEG") from exc


def readable_image(data: bytes) -> bool:
    """Whether `data` decodes whole as a PNG or JPEG (its magic bytes alone do not say: an
    import of such a file broke every later export of its queue)."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


def kept_input(s: Session, input_hash: str | None) -> PredictionInput | None:
    if input_hash is None:
        return None
    return s.scalars(select(PredictionInput).where(PredictionInput.input_hash == input_hash)
                     .order_by(PredictionInput.created_at).limit(1)).first()


def input_view(row: PredictionInput | None) -> dict[str, Any] | None:
    return None if row is None else describe_input(row.kind, row.data)


def describe_input(kind: str, data: bytes) -> dict[str, Any]:
    """A kept input as a reader sees it: an image as base64 PNG, tensors as V2 JSON."""
    if kind == "image":
        return {"kind": "image", "media_type": "image/png",
                "data_base64": base64.b64encode(as_png(data)).decode("ascii")}
    return {"kind": "tensors", "tensors": kept_tensors(kind, data)}


def stage_samples_view(s: Session, item: RelabelItem) -> list[dict[str, Any]]:
    """A stage item's samples: each symbol crop (base64 PNG, the box within it, the true and
    the served class), the relation sample, or the reason the item is the whole input."""
    out = []
    for row in s.scalars(select(RelabelSample).where(RelabelSample.item_id == item.id)
                         .order_by(RelabelSample.symbol)):
        view: dict[str, Any] = {"kind": row.kind, "symbol": row.symbol, "label": row.label,
                                "predicted": row.predicted, "reason": row.reason,
                                "sample": row.sample}
        if row.image is not None:
            view["image"] = {"media_type": "image/png",
                             "data_base64": base64.b64encode(row.image).decode("ascii")}
        out.append(view)
    return out


def failed(p: Prediction) -> bool:
    """Whether the candidate failed to answer: its stored output (``''``) is then no answer
    and must be offered nowhere (``None``: stored before failures were recorded, taken as not)."""
    return p.failed is True


def served_output(p: Prediction, output_type: str | None) -> Any:
    """`p`'s answer as a value of its type, or None where the candidate failed."""
    return None if failed(p) else typed_value(p.output, output_type)


def request_shadows(s: Session, served: Prediction) -> list[Prediction]:
    """The shadows' answers to `served`'s own request, one per shadow candidate, by candidate
    (a unit that sends the same input again makes more of them: core.shadow_twins picks)."""
    twins = s.scalars(select(Prediction).where(
        Prediction.input_hash == served.input_hash,
        Prediction.experiment_id == served.experiment_id,
        Prediction.unit_id == served.unit_id))
    own = own_request(served, twins)
    return [own[name] for name in sorted(own)]


MAX_CORRECTIONS = 20  # an item shows its first correction and at most this many later ones


def other_corrections(s: Session, item: RelabelItem, served: Prediction | None,
                      output_type: str) -> list[dict[str, Any]]:
    """Corrections of the same input sent on other predictions of its type (another customer,
    or the same one asking again), oldest first, at most MAX_CORRECTIONS: the label the
    annotator gives is their truth too (core.verified_labels), so they are part of the case."""
    input_hash = item.input_hash or (served.input_hash if served is not None else None)
    if input_hash is None:
        return []
    p = Prediction
    query = (select(Correction).join(p, p.prediction_id == Correction.prediction_id)
             .where(p.input_hash == input_hash, answer_type(p) == output_type)
             .order_by(Correction.created_at, Correction.correction_id).limit(MAX_CORRECTIONS))
    if item.prediction_id is not None:
        query = query.where(p.prediction_id != item.prediction_id)
    return [{"prediction_id": c.prediction_id,
             "corrected_output": typed_value(c.corrected_output, output_type),
             "rating": c.rating, "comment": c.comment} for c in s.scalars(query)]


def item_view(s: Session, item: RelabelItem, kind: OutputKind) -> dict[str, Any]:
    """The item with its answers typed as `kind` says (the store keeps them as text)."""

    def typed(text: str | None) -> Any:
        return None if text is None else typed_value(text, kind.type)

    served = s.get(Prediction, item.prediction_id)
    shadows: list[dict[str, Any]] = []
    if served is not None:
        shadows = [{"candidate": t.candidate, "prediction_id": t.prediction_id,
                    "output": served_output(t, kind.type), "failed": failed(t),
                    "confidence": t.confidence} for t in request_shadows(s, served)]
    corrections = list(s.scalars(select(Correction).where(
        Correction.prediction_id == item.prediction_id)
        .order_by(Correction.created_at, Correction.correction_id).limit(MAX_CORRECTIONS + 1)))
    correction = corrections[0] if corrections else None
    labels_done = s.scalar(select(func.count()).select_from(RelabelLabel).where(
        RelabelLabel.item_id == item.id, RelabelLabel.action == "label"))
    return {
        "id": item.id, "queue": item.queue, "status": item.status, "priority": item.priority,
        "reasons": list(item.reasons or []), "labels_needed": item.labels_needed,
        "labels_done": labels_done,
        "lease": {"owner": item.lease_owner, "until": utc_iso(item.lease_until)}
        if item.status == "leased" else None,
        "prediction_id": item.prediction_id, "experiment_id": item.experiment_id,
        "candidate": item.candidate, "slice": item.slice,
        "output_type": kind.type, "classes": list(kind.classes), "schema": kind.schema,
        "input": input_view(kept_input(s, item.input_hash)),
        "served": None if served is None else {
            "output": served_output(served, kind.type), "failed": failed(served),
            "confidence": served.confidence, "arm": served.arm,
            "created_at": utc_iso(served.created_at)},
        "shadows": shadows,
        "correction": None if correction is None else {
            "corrected_output": typed(correction.corrected_output), "rating": correction.rating,
            "comment": correction.comment},
        # The first correction is the prediction's truth until a label says otherwise; later
        # ones (another customer disagreeing) are what the annotator is deciding between.
        "later_corrections": [{"corrected_output": typed(c.corrected_output),
                               "rating": c.rating, "comment": c.comment}
                              for c in corrections[1:]],
        "other_corrections": other_corrections(s, item, served, kind.type),
        "label": typed(item.label), "note": item.note,
        "stage_samples": stage_samples_view(s, item) if item.queue.startswith("stage:") else [],
    }
