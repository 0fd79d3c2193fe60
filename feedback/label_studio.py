"""Label Studio task JSON, out and in, so a team can label there instead of in abvoc.

**Export** writes ``tasks.json`` (a JSON array, written task by task) and ``files/``: each task's
``data`` holds the input (``image``: a path relative to the folder, or ``tensors``: the V2 tensors)
and abvoc's context (``abvoc_item_id``, queue, candidate, slice, output type and classes, the
customer's correction); ``predictions`` hold the served answer and the shadows' answers as
pre-annotations (``model_version`` names the candidate and the version that answered, e.g.
``iris-onnx v4``; a failed prediction has no answer, so no pre-annotation an annotator could
accept); ``annotations`` hold the labels given so far. Results use a ``choices`` control for
``label`` candidates and a ``textarea`` otherwise, both named ``label`` over the object ``input``.

**Import** reads such a file from an import folder and turns each annotation that was not
cancelled into a label of its item, as ``labelstudio:<completed_by>`` (one naming no annotator as
``labelstudio:annotation-<id>``: :func:`feedback.label_studio_tasks.who_labeled`), checked against
the item's output type. A task must belong to its item (the queue, candidate, output type and
classes it carries match). Imported labels join the item's like an annotator's, but an import
holds no lease: a leased item stays with its annotator, a flagged one with the admin, and a done
item goes to review when they contradict its label. A task without ``abvoc_item_id`` is new
data: an image inside the import folder (no absolute paths, no ``..``, no URLs) for a candidate
that takes images, a new item of the given queue (never the ``offline-test`` audit sample).
Every task is checked before anything is stored; a bad one refuses the whole file, naming the
task and annotation (counted from 1).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import AbvocError
from core.ids import MAX_ROW_ID
from core.output_types import OutputKind, classes_shown
from core.relabel import OFFLINE_TEST, check_queue, check_queues
from core.store.db import Database, utcnow
from core.store.models import (
    Candidate,
    Correction,
    Prediction,
    PredictionInput,
    RelabelItem,
    RelabelLabel,
    ServedPrediction,
)
from core.text import sent
from core.v2_binary import kept_tensors
from feedback.annotation import checked_label, conclude_imported, output_kind, verdict_of
from feedback.export import PAGE, _inputs
from feedback.item_view import failed, kept_input, readable_image, request_shadows
from feedback.label_studio_new import check_same_answers, image_digest, new_item
from feedback.label_studio_tasks import (
    confined,
    label_text,
    typed_label,
    was_cancelled,
    who_labeled,
)
from feedback.page_size import with_image
from feedback.relabel_rules import effective

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
    tmp = folder / f".tasks.json.{uuid.uuid4().hex[:12]}.part"  # two exports at once: two files
    try:
        written, blind = _write_tasks(db, tmp, folder, queues)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"tasks": written, "without_input": blind, "path": str(target)}


def _write_tasks(db: Database, path: Path, folder: Path, queues: list[str] | None
                 ) -> tuple[int, int]:
    """Stream the tasks as a JSON array into `path`; how many were written, and how many items
    still to label were left out because their input is no longer kept (labeled blind, their
    label could not be exported: they are never offered)."""
    written = blind = 0
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
                    row = kept_input(s, item.input_hash)
                    if row is None and item.status in TO_LABEL:
                        blind += 1
                        continue
                    task = _task(s, item, row, folder / "files")
                    out.write(("\n" if written == 0 else ",\n") + json.dumps(task, sort_keys=True))
                    written += 1
            if len(page) < PAGE:
                break
            last = page[-1].id
        out.write("\n]\n")
    return written, blind


def _task(s: Any, item: RelabelItem, row: PredictionInput | None,
          files: Path) -> dict[str, Any]:
    kind = output_kind(s, item.candidate, item.prediction_id)
    data: dict[str, Any] = {"abvoc_item_id": item.id, "queue": item.queue,
                            "candidate": item.candidate, "slice": item.slice,
                            "output_type": kind.type, "classes": list(kind.classes)}
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
    predictions: list[dict[str, Any]] = []
    served = s.get(Prediction, item.prediction_id)
    if served is not None:
        predictions = [{"model_version": _model_version(s, p), "score": p.confidence,
                        "result": [_result(kind, p.output)]}
                       for p in [served, *request_shadows(s, served)] if not failed(p)]
    annotations = [{"completed_by": a.annotator, "result": [_result(kind, a.label or "")],
                    "was_cancelled": False}
                   for a in s.scalars(select(RelabelLabel).where(
                       RelabelLabel.item_id == item.id,
                       RelabelLabel.action.in_(("label", "resolve"))).order_by(RelabelLabel.id))]
    return {"id": item.id, "data": data, "predictions": predictions, "annotations": annotations}


def _model_version(s: Session, p: Prediction) -> str:
    """The candidate and the version that answered (the ledger's; the name alone in rows from
    before versions were recorded), so an annotator can tell two versions' answers apart."""
    ledger = s.get(ServedPrediction, p.prediction_id)
    name = p.candidate if ledger is None or ledger.version is None \
        else f"{p.candidate} v{ledger.version}"
    return name + (" (shadow)" if p.shadow else "")


SKIPPED = {"already_labeled": "already labeled by that annotator",
           "dropped": "on dropped items", "cancelled": "cancelled",
           "without_input": "on items whose input is no longer kept"}
TO_LABEL = ("open", "leased")
"""Why an annotation was not applied, as the summary says it."""
SHOWN_STATUSES = ("done", "review", "open", "leased", "flagged")


def import_tasks(db: Database, folder: Path, tasks_file: str = "tasks.json", *,
                 queue: str = "training", candidate: str | None = None,
                 on_done: Callable[[Session, int], str | None] | None = None) -> dict[str, Any]:
    """Apply a Label Studio export's annotations; counts of labels applied and skipped (by
    reason), of new items, and the statuses of the labeled items now (``disputed``: done items
    the import contradicted, now in review). New items go to `queue`, which must be a queue
    abvoc fills and not the audit sample (else a 400 before anything is read).

    `on_done(session, item_id)` runs, in the import's transaction, for each item the import
    left done, as the API does for an annotator's label: the command passes
    evaluation.relabel_enqueue.route_label, which sends a staged answer's label to the blamed
    stage's queue and returns that queue (``stage_routed`` counts them)."""
    check_queue(queue)
    if queue == OFFLINE_TEST:
        raise AbvocError(f"queue {OFFLINE_TEST!r} holds the uniform audit sample of served "
                         "predictions; imported items would bias it. Put new data in "
                         "'training', 'verification' or 'stage:<stage>'")
    folder = Path(folder)
    tasks = _read_tasks(folder, tasks_file)
    takes, share = None, 0.0
    if candidate is not None:
        with db.reading() as s:
            pipeline = s.scalars(select(Candidate.pipeline).where(Candidate.name == candidate)
                                 .order_by(Candidate.id.desc()).limit(1)).first()
        if pipeline is None:
            raise AbvocError(f"candidate {candidate!r} is not registered; see "
                             "`abvoc candidates list`")
        takes = (pipeline or {}).get("takes")
        # The rules claim and enqueue use (no experiment: the candidate's, else the default).
        share = effective(db, candidate=candidate)["rules"]["second_annotator_share"]
    skipped: Counter[str] = Counter()
    touched: dict[int, RelabelItem] = {}
    disputed: set[int] = set()
    applied = new_items = 0
    with db.session() as s:
        planned = sorted((_plan(s, folder, t, n, queue, candidate, takes)
                          for n, t in enumerate(tasks, 1)), key=_lock_order)
        for plan in planned:
            skipped["cancelled"] += plan.cancelled
            if plan.item_id is None:
                item, created = new_item(s, plan.image, queue, candidate, share)
                new_items += created
            else:
                item = s.scalars(select(RelabelItem).where(RelabelItem.id == plan.item_id)
                                 .with_for_update()).one()
            if item.status == "dropped":
                skipped["dropped"] += len(plan.labels)
                continue
            if item.status in TO_LABEL and kept_input(s, item.input_hash) is None:
                skipped["without_input"] += len(plan.labels)  # never offered (no example)
                continue

            added = []
            for (who, known_as), label in plan.labels:
                if s.scalar(select(RelabelLabel.id).where(
                        RelabelLabel.item_id == item.id,
                        RelabelLabel.annotator.in_((who, *known_as)),
                        RelabelLabel.action.in_(("label", "resolve"))).limit(1)) is not None:
                    skipped["already_labeled"] += 1  # imported before, or abvoc's own label
                    continue
                s.add(RelabelLabel(item_id=item.id, annotator=who, action="label", label=label,
                                   verdict=verdict_of(s, item, label),
                                   created_at=utcnow()))
                added.append(label)
            s.flush()
            was_done = item.status == "done"
            if conclude_imported(s, item, added) == "review" and was_done:
                disputed.add(item.id)
            if added:
                touched[item.id] = item
            applied += len(added)
        statuses = Counter(i.status for i in touched.values())
        s.flush()
        routed = 0 if on_done is None else sum(
            on_done(s, i.id) is not None for i in touched.values() if i.status == "done")
    return {"tasks": len(tasks), "labels": applied,
            "skipped": {why: skipped[why] for why in SKIPPED}, "new_items": new_items,
            "labeled_items": {st: statuses[st] for st in SHOWN_STATUSES},
            "disputed": len(disputed), "stage_routed": routed}


def _lock_order(plan: _Plan) -> tuple[int, int, str]:
    """Every import takes its items' locks in one order, existing items by id, new data by its
    hash: two imports of the same tasks listed in other orders deadlocked on PostgreSQL."""
    if plan.item_id is not None:
        return 0, plan.item_id, ""
    return 1, 0, image_digest(plan.image or b"")


def summary(out: dict[str, Any]) -> str:
    """One line for the command: what was applied, what was skipped and why, where items are."""
    skipped = sum(out["skipped"].values())
    why = ", ".join(f"{n} {SKIPPED[k]}" for k, n in out["skipped"].items() if n)
    now = ", ".join(f"{n} {st}" for st, n in out["labeled_items"].items() if n)
    line = (f"{out['tasks']} tasks: {out['labels']} labels applied, {skipped} skipped"
            f"{f' ({why})' if why else ''}, {out['new_items']} new items")
    if now:
        line += f"; labeled items now {now}"
    if out["disputed"]:
        line += (f"; {out['disputed']} done items contradicted by the import went to review "
                 "(GET /v1/relabel/items?status=review)")
    if out.get("stage_routed"):
        line += f"; {out['stage_routed']} labels also went to their blamed stage's queue"
    return line


def _read_tasks(folder: Path, tasks_file: str) -> list[Any]:
    path = confined(folder, tasks_file, "tasks file")
    if path.stat().st_size > MAX_TASKS_BYTES:
        raise AbvocError(f"{tasks_file} is larger than {MAX_TASKS_BYTES} bytes; split it")
    try:
        tasks = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AbvocError(f"{tasks_file} is not JSON: {str(exc)[:200]}") from None
    if not isinstance(tasks, list):
        raise AbvocError(f"{tasks_file} must be a JSON array of tasks")
    return tasks


class _Plan(NamedTuple):
    """One task, checked: its item (None: new data, with its image) and its labels."""

    item_id: int | None
    image: bytes | None
    labels: list[tuple[tuple[str, tuple[str, ...]], str]]
    cancelled: int


def _plan(s: Session, folder: Path, task: Any, n: int, queue: str, candidate: str | None,
          takes: Any) -> _Plan:
    """Task `n` (counted from 1) checked against what it will change, or a 400 naming it."""
    where = f"task {n}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise AbvocError(f"{where}: a task is an object with 'data'")
    data = task["data"]
    item_id, image = data.get("abvoc_item_id"), None
    if item_id is not None:
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            raise AbvocError(f"{where}: abvoc_item_id must be an integer item id, as "
                             f"`abvoc relabel ls-export` writes it; got {item_id!r}")
        held = s.get(RelabelItem, item_id) if 1 <= item_id <= MAX_ROW_ID else None
        if held is None:
            raise AbvocError(f"{where}: abvoc_item_id {item_id!r} is not a relabel item here")
        where = f"task {n} (abvoc item {item_id})"
        kind = output_kind(s, held.candidate, held.prediction_id)
        _belongs(data, where, f"item {item_id}", held.queue, held.candidate, kind)
    else:
        if candidate is None:
            raise AbvocError(f"{where} is new data (no abvoc_item_id): give the candidate whose "
                             "output type its labels have")
        if takes not in (None, "image"):
            # New data comes in as images only; tensors reach abvoc through predictions.
            raise AbvocError(f"{where} is new data (no abvoc_item_id), which an import takes "
                             f"as an image only, but candidate {candidate!r} takes {takes}; "
                             "import new data for a candidate that takes images, or label "
                             "its items exported from abvoc (they carry abvoc_item_id)")
        image = confined(folder, data.get("image"), f"{where}: data.image").read_bytes()
        if len(image) > MAX_IMAGE_BYTES or not readable_image(image):
            raise AbvocError(f"{where}: data.image must be a PNG or JPEG that decodes, of at "
                             f"most {MAX_IMAGE_BYTES} bytes")
        kind = with_image(output_kind(s, candidate), image)
        _belongs(data, where, "the import's queue and candidate", queue, candidate, kind)
        check_same_answers(s, where, image, queue, candidate, kind)
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise AbvocError(f"{where}: 'annotations' must be a list")
    found, cancelled = [], 0
    for j, a in enumerate(annotations, 1):
        at = f"{where}, annotation {j}"
        if not isinstance(a, dict):
            raise AbvocError(f"{at}: an annotation is an object with 'result'")
        if was_cancelled(a, at):
            cancelled += 1
            continue
        text = label_text(a.get("result"), at, kind.type)
        try:
            label = checked_label(kind, typed_label(text, kind.type))
        except AbvocError as exc:
            raise AbvocError(f"{at}: {exc.message}", details=exc.details) from None
        found.append((who_labeled(a, at), label))
    return _Plan(item_id, image, found, cancelled)


def _belongs(data: dict[str, Any], where: str, whose: str, queue: str, candidate: str | None,
             kind: OutputKind) -> None:
    """Refuse a task whose own context (as :func:`export_tasks` writes it) names another queue,
    candidate or output type than `whose`: a task of another project or another abvoc would
    otherwise label whichever item happens to have its id."""
    wanted: dict[str, Any] = {"candidate": candidate, "output_type": kind.type, "queue": queue}
    wrong = [f"{key} {data[key]!r} (the {whose} has {want!r})"
             for key, want in wanted.items() if key in data and data[key] != want]
    classes = data.get("classes")  # in any order (labels are class names), each named once
    if "classes" in data and not (isinstance(classes, list) and all(isinstance(c, str) for c in
            classes) and sorted(classes) == sorted(set(kind.classes))):
        wrong.append(f"classes {sent(classes)} (the {whose} has {classes_shown(kind.classes)}, "
                     "each once)")
    if wrong:
        raise AbvocError(f"{where} does not belong here: its {'; '.join(wrong)}. Was it "
                         "exported from another project or abvoc? Nothing was imported")
