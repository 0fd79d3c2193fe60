"""Versioned dataset snapshots of the verified labels: ``<out>/<name>/v<N>/``.

Each version holds ``manifest.jsonl`` (one example a line, in the format ``abvoc offline-test NAME
--dataset`` reads: ``inputs``, ``label``, ``slice``, plus ``id``, ``source`` — the queues and
reasons that picked it — and ``provenance`` — prediction, candidate, experiment, annotators, time,
the served answer: ``served_output``, null with ``served_failed: true`` only where the candidate
failed to answer), ``files/`` (images as PNG; a BYTES input's value as a raw file, ``{"file":
...}``, or several values one file each, in row-major order, as ``{"files": [...], "shape":
[...]}``) and ``version.json`` with the content hash: SHA-256 over the manifest and every file, in
manifest order. An export whose content equals the newest version's makes no new version. An input
whose verified labels disagree (:mod:`core.verified_labels`) is left out and counted under
``conflicts``; one labeled alike in several queues is written once (``duplicates``). A
``stage:<stage>`` item is written as its stage's samples (symbol crops, relation samples:
:mod:`feedback.stage_export`) rather than a manifest line; one without samples stays a manifest
line that says why.

Items are read in pages by id and written line by line, so memory stays flat however large the
queue (only the input hashes already written are kept, to write each input once). A version is
written in a hidden folder and renamed into place when complete: a reader never sees half a
version. Two exports of one dataset at once take two numbers, or make one version when their
content is the same (the second finds the first's, as a later run would).

One candidate's examples (``candidate``) make a dataset that candidate's ``abvoc offline-test``
reads whole; an export of several candidates whose inputs differ still works, and its result
says so (``warning``), since no one candidate can read every line of it.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, union
from sqlalchemy.orm import Session

from core.errors import AbvocError
from core.events import typed_value
from core.relabel import check_queues
from core.store.db import Database
from core.store.models import Candidate, Prediction, PredictionInput, RelabelItem
from core.times import utc_iso
from core.v2_binary import kept_tensors
from core.verified_labels import conflicting_labels, labeled_type
from feedback.annotation import output_kind
from feedback.item_view import as_png, failed, kept_input, served_output
from feedback.stage_export import StageWriter, file_stem

PAGE = 200
IMAGE_INPUT = "image"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def labeled_items(db: Database, queues: list[str] | None,
                  candidate: str | None = None) -> Iterator[tuple[Session, RelabelItem]]:
    """Done items with a label (of `candidate` only, when given), by id, a page per read
    transaction."""
    last = 0
    while True:
        with db.reading() as s:
            query = (select(RelabelItem).where(RelabelItem.status == "done",
                                               RelabelItem.label.is_not(None),
                                               RelabelItem.id > last)
                     .order_by(RelabelItem.id).limit(PAGE))
            if queues:
                query = query.where(RelabelItem.queue.in_(queues))
            if candidate is not None:
                query = query.where(RelabelItem.candidate == candidate)
            page = list(s.scalars(query))
            for item in page:
                yield s, item
        if len(page) < PAGE:
            return
        last = page[-1].id


def check_candidate(db: Database, candidate: str | None) -> None:
    """A 400 for a candidate that is neither registered nor named by any relabel item: a typo
    would otherwise export an empty dataset version."""
    if candidate is None:
        return
    with db.reading() as s:
        names = sorted(n for n in s.scalars(union(
            select(Candidate.name), select(RelabelItem.candidate).where(
                RelabelItem.candidate.is_not(None))).subquery().select()) if n)
    if candidate not in names:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise AbvocError(f"unknown candidate {candidate!r}; candidates here: {shown or 'none'}")


def mixed_inputs_warning(signatures: dict[str, set[tuple[str, ...]]]) -> str | None:
    """One line when the examples' inputs differ between candidates (None when they agree):
    ``abvoc offline-test`` checks every line against one candidate's inputs."""
    if len({sig for sigs in signatures.values() for sig in sigs}) < 2:
        return None
    named = "; ".join(f"{c}: {' | '.join(', '.join(sig) for sig in sorted(sigs))}"
                      for c, sigs in sorted(signatures.items()))
    return (f"the examples come from candidates with different inputs ({named}); "
            "abvoc offline-test reads one candidate's: export each with --candidate NAME")


def _inputs(row: PredictionInput, files: Path) -> tuple[dict[str, Any], list[Path]]:
    """The manifest's ``inputs`` for a kept input, and the files it wrote."""
    if row.kind == "image":
        path = files / f"{file_stem(row.input_hash)}.png"
        path.write_bytes(as_png(row.data))
        return {IMAGE_INPUT: {"file": f"files/{path.name}"}}, [path]
    out: dict[str, Any] = {}
    written: list[Path] = []
    for tensor in kept_tensors(row.kind, row.data):
        name, shape, data = tensor["name"], tensor["shape"], tensor["data"]
        if tensor["datatype"] != "BYTES":
            out[name] = np.asarray(data).reshape(shape).tolist()
            continue
        paths = _bytes_files(files, row.input_hash, name, len(data), written)
        for path, value in zip(paths, data, strict=True):
            path.write_bytes(base64.b64decode(value))
        written.extend(paths)
        if len(data) == 1:  # one value: one file, as the offline test's {"file": ...} reads
            out[name] = {"file": f"files/{paths[0].name}"}
        else:  # keeping the first of a [1, 2] input's values dropped the rest
            out[name] = {"files": [f"files/{p.name}" for p in paths], "shape": list(shape)}
    return out, written


def _bytes_files(files: Path, input_hash: str, name: str, values: int,
                 taken: list[Path]) -> list[Path]:
    """The files for a BYTES input's `values`: ``<input>-<name>.bin`` for one value, else one
    per value numbered in row-major order (``-0.bin``, ``-1.bin``, zero-padded so they sort in
    it). Names the input's other tensors `taken` (two names made alike by the character cut,
    or ``x-0`` beside ``x``'s first value) get the name's digest, so no file is overwritten."""
    stem = f"{file_stem(input_hash)}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)[:50]}"
    width = len(str(max(values - 1, 0)))

    def named(base: str) -> list[Path]:
        return [files / f"{base}.bin"] if values == 1 else \
            [files / f"{base}-{k:0{width}d}.bin" for k in range(values)]

    paths = named(stem)
    if set(paths) & set(taken):
        paths = named(f"{stem}~{hashlib.sha256(name.encode()).hexdigest()[:8]}")
    return paths


def _next_version(folder: Path) -> tuple[int, dict[str, Any] | None]:
    versions = sorted(int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit())
    if not versions:
        return 1, None
    newest = folder / f"v{versions[-1]}" / "version.json"
    return versions[-1] + 1, json.loads(newest.read_text()) if newest.is_file() else None


def _placed(tmp: Path, target: Path) -> bool:
    """Rename a finished version into place; False when another export took the name first
    (a version folder is never empty, so the rename cannot replace it)."""
    try:
        tmp.rename(target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def export_snapshot(db: Database, out: Path, name: str, queues: list[str] | None = None,
                    candidate: str | None = None) -> dict[str, Any]:
    """Write the next version of dataset `name` under `out` (of `candidate`'s items only, when
    given); its version.json as a dict, with a ``warning`` when candidates' inputs differ."""
    if not _NAME.fullmatch(name):
        raise AbvocError("the dataset name must be 1 to 100 letters, digits, '.', '_' or '-'")
    queues = check_queues(queues)  # an unknown queue: a 400, not an empty dataset version
    check_candidate(db, candidate)
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    version, previous = _next_version(folder)
    # A name of its own: another export of the dataset may be writing this number at once.
    tmp = folder / f".v{version}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial"
    (tmp / "files").mkdir(parents=True)
    digest = hashlib.sha256()
    seen: set[tuple[str | None, str]] = set()
    counts = {"examples": 0, "without_input": 0, "duplicates": 0, "conflicts": 0,
              "stage_whole_inputs": 0}
    conflicted: set[str] = set()
    signatures: dict[str, set[tuple[str, ...]]] = {}
    stage = StageWriter(tmp, digest)
    try:
        # Inputs whose done labels of one output type disagree have no truth in it
        # (core.verified_labels, the rule the audited accuracy follows too): left out, each
        # counted once under "conflicts". Another type's labels of the input are no conflict.
        with db.reading() as s:
            disputed = conflicting_labels(s)
        with (tmp / "manifest.jsonl").open("w") as manifest:
            for s, item in labeled_items(db, queues, candidate):
                # The type of the version that served the item's prediction: a newer version
                # of another type does not retype its labels.
                kind = output_kind(s, item.candidate, item.prediction_id).type
                truth_of = (item.input_hash, labeled_type(s, item, kind))
                if truth_of in disputed:
                    conflicted.add(item.input_hash)
                    counts["conflicts"] = len(conflicted)
                    continue
                why = stage.write(s, item)
                if why is None:
                    continue  # a stage item written as its crops or relation sample
                if why:
                    counts["stage_whole_inputs"] += 1
                if truth_of in seen:  # another type's label of the input is another truth
                    counts["duplicates"] += 1
                    continue
                row = kept_input(s, item.input_hash)
                if row is None:
                    counts["without_input"] += 1
                    continue
                seen.add(truth_of)
                pred = s.get(Prediction, item.prediction_id)
                inputs, written = _inputs(row, tmp / "files")
                # Input names and the answer's type: a number candidate's and a JSON one's
                # examples with one input name mixed without a word, and no candidate could
                # read both kinds of label.
                signatures.setdefault(item.candidate or "(none)", set()).add(
                    (*sorted(inputs), f"answers {kind}"))
                line = {"id": str(item.id), "inputs": inputs,
                        "label": typed_value(item.label or "", kind),
                        "source": {"queue": item.queue, "reasons": list(item.reasons or [])},
                        "provenance": {
                            "prediction_id": item.prediction_id, "candidate": item.candidate,
                            "experiment_id": item.experiment_id,
                            "input_hash": item.input_hash, "annotators": item.annotator,
                            "labeled_at": utc_iso(item.labeled_at),
                            "served_output": served_output(pred, kind) if pred else None}}
                if pred is not None and failed(pred):  # only then: unchanged data, one hash
                    line["provenance"]["served_failed"] = True
                if item.slice and item.slice != "all":
                    line["slice"] = item.slice
                if why:
                    line["stage_sample"] = {"reason": why}
                text = json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
                manifest.write(text)
                digest.update(text.encode())
                for path in written:
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
                counts["examples"] += 1
        stage.close()
        counts.update(stage.counts)
        if not counts["examples"] and not any(stage.counts.values()):
            left = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()
                             if v and k != "examples")
            raise AbvocError(
                f"nothing to export: no finished item of {', '.join(queues or ['any queue'])}"
                + (f" for candidate {candidate!r}" if candidate else "")
                + (f" can be written (left out: {left})" if left else " yet")
                + "; no dataset version was made")
        content_hash = digest.hexdigest()
        warning = {"warning": w} if (w := mixed_inputs_warning(signatures)) else {}
        meta = {"name": name, "version": version, "content_hash": content_hash,
                "created_at": datetime.now(UTC).isoformat(), "queues": queues or "all",
                "candidate": candidate or "all", "candidates": sorted(signatures),
                **counts, "manifest": "manifest.jsonl", "unchanged": False}
        while True:
            if previous is not None and previous.get("content_hash") == content_hash:
                shutil.rmtree(tmp)
                return {**previous, "unchanged": True, **warning,
                        "path": str(folder / f"v{previous.get('version', version - 1)}")}
            meta["version"] = version
            (tmp / "version.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
            if _placed(tmp, folder / f"v{version}"):
                return {**meta, **warning, "path": str(folder / f"v{version}")}
            # Another export placed this number while this one was written: the next is ours,
            # unless that export (or a later one) holds this very content.
            version, previous = _next_version(folder)
    except BaseException:
        stage.close()
        shutil.rmtree(tmp, ignore_errors=True)
        with suppress(OSError):  # a dataset folder made for this export only, left empty
            folder.rmdir()
        raise
