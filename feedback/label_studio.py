"""Label Studio task JSON, out and in, so a team can label there instead of in abvoc.

**Export** writes ``tasks.json`` (a JSON array, written task by task) and ``files/``: each task's
``data`` holds the input (``image``: a path relative to the folder, or ``tensors``: the V2
tensors) and abvoc's context (``abvoc_item_id``, queue, candidate, slice, output type and
classes, the customer's correction); ``predictions`` hold the served answer and the shadows'
answers as pre-annotations (``model_version`` is the candidate); ``annotations`` hold the labels
given so far. Results use a ``choices`` control for ``label`` candidates and a ``textarea``
otherwise, both named ``label`` over the object ``input``.

**Import** reads such a file from an import folder and turns each annotation that was not
cancelled into a label of its item, as ``labelstudio:<completed_by>``, through the same rules as
the API (checked against the output type; agreement, review). A task without
``abvoc_item_id`` is new data: its ``data.image`` must be a file inside the import folder (no
absolute paths, no ``..`` out of it, no URLs) and becomes a new item of the given queue and
candidate. Every task is checked before anything is stored; a bad one refuses the whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.errors import AbvocError
from core.output_types import OutputKind
from core.relabel import check_queue, check_queues
from core.store.db import Database, utcnow
from core.store.models import (
    Candidate,
    Correction,
    Prediction,
    PredictionInput,
    RelabelItem,
    RelabelLabel,
)
from core.v2_binary import kept_tensors
from feedback.annotation import checked_label, conclude, output_kind, verdict_of
from feedback.export import PAGE, _inputs
from feedback.item_view import PNG_MAGIC, kept_input

MAX_TASKS_BYTES = 256 << 20
MAX_IMAGE_BYTES = 2 << 20


def _result(kind: OutputKind, value: str) -> dict[str, Any]:
    if kind.type == "label":
        return {"from_name": "label", "to_name": "input", "type": "choices",
                "value": {"choices": [value]}}
    return {"from_name": "label", "to_name": "input", "type": "textarea",
            "value": {"text": [value]}}


def export_tasks(db: Database, folder: Path, queues: list[str] | None = None) -> dict[str, Any]:
    """Write ``tasks.json`` and ``files/`` under `folder`; counts of what was written. The file
    is written under a temporary name and renamed when complete, so a failure half way leaves
    the previous export whole and no truncated file."""
    queues = check_queues(queues)  # before any file is made: an unknown queue exports nothing
    folder = Path(folder)
    (folder / "files").mkdir(parents=True, exist_ok=True)
    target = folder / "tasks.json"
    tmp = folder / f".tasks.json.{os.getpid()}.part"
    try:
        written = _write_tasks(db, tmp, folder, queues)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"tasks": written, "path": str(target)}


def _write_tasks(db: Database, path: Path, folder: Path, queues: list[str] | None) -> int:
    """Stream the tasks as a JSON array into `path`; how many were written."""
    written = 0
    last = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        while True:
            with db.reading() as s:
                query = (select(RelabelItem).where(RelabelItem.id > last,
                                                   RelabelItem.status != "dropped")
                         .order_by(RelabelItem.id).limit(PAGE))
                if queues:
                    query = query.where(RelabelItem.queue.in_(queues))
                page = list(s.scalars(query))
                for item in page:
                    task = _task(s, item, folder / "files")
                    out.write(("\n" if written == 0 else ",\n") + json.dumps(task, sort_keys=True))
                    written += 1
            if len(page) < PAGE:
                break
            last = page[-1].id
        out.write("\n]\n")
    return written


def _task(s: Any, item: RelabelItem, files: Path) -> dict[str, Any]:
    kind = output_kind(s, item.candidate, item.prediction_id)
    data: dict[str, Any] = {"abvoc_item_id": item.id, "queue": item.queue,
                            "candidate": item.candidate, "slice": item.slice,
                            "output_type": kind.type, "classes": list(kind.classes)}
    row = kept_input(s, item.input_hash)
    if row is not None:
        if row.kind == "image":
            inputs, _ = _inputs(row, files)
            data["image"] = inputs["image"]["file"]
        else:
            data["tensors"] = kept_tensors(row.kind, row.data)
    correction = s.scalars(select(Correction.corrected_output).where(
        Correction.prediction_id == item.prediction_id)
        .order_by(Correction.created_at).limit(1)).first()
    data["correction"] = correction
    predictions = []
    served = s.get(Prediction, item.prediction_id)
    if served is not None:
        twins = list(s.scalars(select(Prediction).where(
            Prediction.input_hash == served.input_hash, Prediction.shadow.is_(True),
            Prediction.experiment_id == served.experiment_id,
            Prediction.unit_id == served.unit_id)))
        for p in [served, *twins]:
            predictions.append({"model_version": p.candidate + (" (shadow)" if p.shadow else ""),
                                "score": p.confidence, "result": [_result(kind, p.output)]})
    annotations = [{"completed_by": a.annotator, "result": [_result(kind, a.label or "")],
                    "was_cancelled": False}
                   for a in s.scalars(select(RelabelLabel).where(
                       RelabelLabel.item_id == item.id,
                       RelabelLabel.action.in_(("label", "resolve"))).order_by(RelabelLabel.id))]
    return {"id": item.id, "data": data, "predictions": predictions, "annotations": annotations}


def confined(folder: Path, name: Any, where: str) -> Path:
    """A path named by an import, only if it lies inside the import folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise AbvocError(f"{where}: a file path must be a non-empty string")
    if "://" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise AbvocError(f"{where}: {name!r} must be a path relative to the import folder "
                         "(no URLs, no absolute paths)")
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise AbvocError(f"{where}: {name!r} leads out of the import folder")
    if not path.is_file():
        raise AbvocError(f"{where}: {name!r} does not exist in the import folder")
    return path


def _label_text(result: Any, where: str) -> str:
    if not isinstance(result, list):
        raise AbvocError(f"{where}: 'result' must be a list")
    for r in result:
        value = r.get("value") if isinstance(r, dict) else None
        if isinstance(value, dict):
            for key in ("choices", "text"):
                got = value.get(key)
                if isinstance(got, list) and got and isinstance(got[0], str):
                    return got[0]
    raise AbvocError(f"{where}: no 'choices' or 'text' value in the result")


def _typed(kind: OutputKind, text: str) -> Any:
    try:
        if kind.type == "number":
            return float(text)
        if kind.type == "json":
            return json.loads(text)
    except ValueError:
        raise AbvocError(f"{text[:60]!r} is not a {kind.type}") from None
    return text


def _who(annotation: dict[str, Any]) -> tuple[str, str]:
    """The annotator as abvoc records a Label Studio label, and as the task names them (a
    label abvoc exported comes back under its own annotator and is not imported again)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    raw = str(who if who is not None else "unknown")[:100]
    return (raw if raw.startswith("labelstudio:") else f"labelstudio:{raw}"[:100]), raw


def import_tasks(db: Database, folder: Path, tasks_file: str = "tasks.json", *,
                 queue: str = "training", candidate: str | None = None) -> dict[str, Any]:
    """Apply a Label Studio export's annotations; counts of labels and new items. New items go
    to `queue`, which must be a queue abvoc fills (else a 400 before anything is read)."""
    check_queue(queue)
    folder = Path(folder)
    path = confined(folder, tasks_file, "tasks file")
    if path.stat().st_size > MAX_TASKS_BYTES:
        raise AbvocError(f"{tasks_file} is larger than {MAX_TASKS_BYTES} bytes; split it")
    try:
        tasks = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AbvocError(f"{tasks_file} is not JSON: {str(exc)[:200]}") from None
    if not isinstance(tasks, list):
        raise AbvocError(f"{tasks_file} must be a JSON array of tasks")
    with db.session() as s:
        if candidate is not None and s.scalars(select(Candidate.id).where(
                Candidate.name == candidate).limit(1)).first() is None:
            raise AbvocError(f"candidate {candidate!r} is not registered; see "
                             "`abvoc candidates list`")
        planned = [_plan(s, folder, t, i, candidate) for i, t in enumerate(tasks)]
        labels = new_items = 0
        for item_id, image, kind_candidate, found in planned:
            item = s.get(RelabelItem, item_id) if item_id is not None else \
                _new_item(s, image, queue, kind_candidate)
            new_items += item_id is None
            for (who, raw), label in found:
                if s.scalar(select(RelabelLabel.id).where(
                        RelabelLabel.item_id == item.id, RelabelLabel.annotator.in_((who, raw)),
                        RelabelLabel.action.in_(("label", "resolve"))).limit(1)) is not None:
                    continue  # imported before, or abvoc's own label exported with the task
                s.add(RelabelLabel(item_id=item.id, annotator=who, action="label", label=label,
                                   verdict=verdict_of(s, item.prediction_id, label),
                                   created_at=utcnow()))
                labels += 1
            s.flush()
            if found:
                conclude(s, item)
    return {"tasks": len(tasks), "labels": labels, "new_items": new_items}


def _plan(s: Any, folder: Path, task: Any, i: int, candidate: str | None
          ) -> tuple[int | None, bytes | None, str | None, list[tuple[tuple[str, str], str]]]:
    where = f"task {i}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise AbvocError(f"{where}: a task is an object with 'data'")
    data = task["data"]
    item_id, image = data.get("abvoc_item_id"), None
    if item_id is not None:
        if not isinstance(item_id, int) or isinstance(item_id, bool) \
                or s.get(RelabelItem, item_id) is None:
            raise AbvocError(f"{where}: abvoc_item_id {item_id!r} is not a relabel item here")
        held = s.get(RelabelItem, item_id)
        kind = output_kind(s, held.candidate, held.prediction_id)
    else:
        if candidate is None:
            raise AbvocError(f"{where} is new data (no abvoc_item_id): give the candidate whose "
                             "output type its labels have")
        image = confined(folder, data.get("image"), f"{where}: data.image").read_bytes()
        if len(image) > MAX_IMAGE_BYTES or not (image.startswith(PNG_MAGIC)
                                                or image.startswith(b"\xff\xd8")):
            raise AbvocError(f"{where}: data.image must be a PNG or JPEG of at most "
                             f"{MAX_IMAGE_BYTES} bytes")
        kind = output_kind(s, candidate)
    found = []
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise AbvocError(f"{where}: 'annotations' must be a list")
    for j, a in enumerate(annotations):
        if not isinstance(a, dict) or a.get("was_cancelled"):
            continue
        text = _label_text(a.get("result"), f"{where} annotation {j}")
        found.append((_who(a), checked_label(kind, _typed(kind, text))))
    return item_id, image, candidate, found


def _new_item(s: Any, image: bytes | None, queue: str, candidate: str | None) -> RelabelItem:
    assert image is not None
    digest = hashlib.sha256(image).hexdigest()[:32]
    existing = s.scalars(select(RelabelItem).where(RelabelItem.queue == queue,
                                                   RelabelItem.input_hash == digest)).first()
    if existing is not None:
        return existing
    pid = f"import:{digest}"
    if s.get(PredictionInput, pid) is None:
        s.add(PredictionInput(prediction_id=pid, input_hash=digest, kind="image", data=image,
                              created_at=utcnow()))
    item = RelabelItem(queue=queue, prediction_id=pid, input_hash=digest, candidate=candidate,
                       reasons=["imported"], reason="imported", priority=0.0, status="open",
                       labels_needed=1, created_at=utcnow())
    s.add(item)
    s.flush()
    return item
