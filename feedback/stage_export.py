"""A stage dataset's part of an export: the samples of done ``stage:<stage>`` items.

Beside the manifest (whole inputs, the ``abvoc offline-test`` format) a version holds

* ``symbol_labels.tsv`` with ``crops/*.png``: one symbol crop a line, ``file``, ``label`` (the
  true class), ``predicted`` (the class the recognizer gave), the symbol's box within the
  crop ``x0 y0 x1 y1``, the input's ``paper`` brightness (ink is measured against it), then
  the prediction id, input hash and symbol index. The recognizer's
  training reader (:func:`workloads.ocr.relabeled.read_symbol_crops`) loads it.
* ``relations.jsonl``: one relation sample a line, ``classes``, ``boxes``, the true
  ``relations`` ``[parent, relation]`` per symbol, the served ones, and provenance; the
  aligner's (:func:`workloads.ocr.relabeled.read_relation_samples`).

Dedupe: a crop once per input hash and symbol, a relation sample once per input hash. An item
with no sample (its stored reason says why) stays a whole-input line of the manifest, with the
reason beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.relabel import STAGE_PREFIX
from core.store.models import RelabelItem, RelabelSample

_HEX = re.compile(r"[0-9a-f]{1,64}")


def file_stem(input_hash: str) -> str:
    """A file name for an input hash: the hash itself when it is hex (as the service computes
    it), else its SHA-256, so no stored value can name a path outside the export folder."""
    if _HEX.fullmatch(input_hash):
        return input_hash
    return hashlib.sha256(input_hash.encode("utf-8", "surrogatepass")).hexdigest()

CROPS_DIR, LABELS_FILE, RELATIONS_FILE = "crops", "symbol_labels.tsv", "relations.jsonl"
LABEL_COLUMNS = ("file", "label", "predicted", "x0", "y0", "x1", "y1", "paper",
                 "prediction_id", "input_hash", "symbol")


class StageWriter:
    """Writes the samples of stage items into one version folder, feeding the export's digest."""

    def __init__(self, folder: Path, digest: Any) -> None:
        self.folder, self.digest = folder, digest
        self.seen: set[tuple[str, str | None, int]] = set()
        self.counts = {"crops": 0, "relation_samples": 0}
        self._files: dict[str, IO[str]] = {}

    def _file(self, name: str, header: str | None = None) -> IO[str]:
        if name not in self._files:
            self._files[name] = (self.folder / name).open("w")
            if header is not None:
                self._write(name, header)
        return self._files[name]

    def _write(self, name: str, text: str) -> None:
        self._file(name).write(text)
        self.digest.update(text.encode())

    def write(self, s: Session, item: RelabelItem) -> str | None:
        """Write the item's samples; None when it had some (it needs no manifest line), else
        the reason it has none (the manifest line carries it; "" for a non-stage item)."""
        if not item.queue.startswith(STAGE_PREFIX):
            return ""
        rows = list(s.scalars(select(RelabelSample).where(RelabelSample.item_id == item.id)
                              .order_by(RelabelSample.symbol)))
        made = [r for r in rows if r.kind in ("crop", "relations")]
        if not made:
            reasons = [r.reason for r in rows if r.reason]
            return reasons[0] if reasons else "no stage sample was made for this item"
        for row in made:
            key = (row.kind, row.input_hash, row.symbol)
            if key in self.seen:
                continue
            self.seen.add(key)
            if row.kind == "crop":
                self._crop(row)
            else:
                self._relations(row, item)
        return None

    def _crop(self, row: RelabelSample) -> None:
        (self.folder / CROPS_DIR).mkdir(exist_ok=True)
        name = f"{CROPS_DIR}/{file_stem(row.input_hash)}-{row.symbol}.png"
        (self.folder / name).write_bytes(row.image or b"")
        self.digest.update(hashlib.sha256(row.image or b"").digest())
        box = [str(int(v)) for v in row.sample["box_in_crop"]]
        paper = row.sample.get("paper")
        fields = [name, row.label or "", row.predicted or "", *box,
                  "" if paper is None else repr(float(paper)), row.prediction_id,
                  row.input_hash or "", str(row.symbol)]
        self._file(LABELS_FILE, "\t".join(LABEL_COLUMNS) + "\n")
        self._write(LABELS_FILE, "\t".join(f.replace("\t", " ") for f in fields) + "\n")
        self.counts["crops"] += 1

    def _relations(self, row: RelabelSample, item: RelabelItem) -> None:
        line = {**row.sample, "latex": row.label, "prediction_id": row.prediction_id,
                "input_hash": row.input_hash, "candidate": item.candidate, "slice": item.slice}
        self._file(RELATIONS_FILE)
        self._write(RELATIONS_FILE, json.dumps(line, sort_keys=True, separators=(",", ":"))
                    + "\n")
        self.counts["relation_samples"] += 1

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
