"""Training data from abvoc's relabeling export: the stage datasets of a version folder.

``abvoc relabel export`` writes a ``stage:recognizer`` item's wrongly recognized symbols as
PNG crops listed in ``symbol_labels.tsv`` (a margin of paper around each symbol's detector
box) and a ``stage:aligner`` item as a line of ``relations.jsonl``. These readers turn them
into what the stages train on: a `CropSet` for :func:`train_recognizer`, built by the
detector and the recognizer's own preprocessing run on each crop, so a crop becomes the very
input the recognizer saw in service; and samples for :func:`relation_examples`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from workloads.ocr.detector import detect, ink_of, match
from workloads.ocr.formulas import CLASS_INDEX
from workloads.ocr.recognizer import SIZE, CropSet, crop_tensor

LABELS_FILE, RELATIONS_FILE = "symbol_labels.tsv", "relations.jsonl"


def symbol_patch(crop: np.ndarray, box: tuple[int, int, int, int],
                 paper: float | None = None) -> np.ndarray:
    """The symbol's ink as the detector masks it (against the whole input's `paper`): the
    detection on the crop that matches the box; the box's ink when none does (a symbol the
    detector splits on the crop alone)."""
    det = detect(crop, paper)
    hit = match(det.boxes, [box])
    if 0 in hit:
        return det.patches[hit[0]]
    x0, y0, x1, y1 = box
    return ink_of(crop, paper)[y0:y1, x0:x1]


def read_symbol_crops(folder: str | Path) -> CropSet:
    """The exported symbol crops of a version folder as recognizer training data."""
    folder = Path(folder)
    path = folder / LABELS_FILE
    if not path.is_file():
        return CropSet(np.zeros((0, 1, SIZE, SIZE), np.float32), np.zeros(0, np.int64))
    xs, ys = [], []
    with path.open(newline="") as f:
        for n, row in enumerate(csv.DictReader(f, delimiter="\t"), start=2):
            if row["label"] not in CLASS_INDEX:
                raise ValueError(f"{path} line {n}: {row['label']!r} is not a symbol class")
            with Image.open(folder / row["file"], formats=("PNG",)) as image:
                crop = np.asarray(image.convert("L"), dtype=np.uint8)
            box = (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
            paper = float(row["paper"]) if row.get("paper") else None
            xs.append(crop_tensor(symbol_patch(crop, box, paper)))
            ys.append(CLASS_INDEX[row["label"]])
    if not xs:
        return CropSet(np.zeros((0, 1, SIZE, SIZE), np.float32), np.zeros(0, np.int64))
    return CropSet(np.stack(xs)[:, None], np.asarray(ys, dtype=np.int64))


@dataclass
class RelationSample:
    """What :func:`relation_examples` reads of a sample: symbols, boxes, true relations."""

    classes: list[str]
    boxes: list[tuple[int, int, int, int]]
    relations: list[tuple[int, str]]
    latex: str


def read_relation_samples(folder: str | Path) -> list[RelationSample]:
    """The exported relation samples of a version folder, for the aligner's training."""
    path = Path(folder) / RELATIONS_FILE
    if not path.is_file():
        return []
    out = []
    with path.open() as f:
        for line in f:
            d = json.loads(line)
            out.append(RelationSample(list(d["classes"]), [tuple(b) for b in d["boxes"]],
                                      [(int(p), str(r)) for p, r in d["relations"]],
                                      d.get("latex") or ""))
    return out
