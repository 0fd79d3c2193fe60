"""What a blamed stage's dataset gets from one answer whose truth is known.

An item of ``stage:recognizer`` or ``stage:aligner`` holds the whole input; its *samples*
(``relabel_samples``) are what the stage itself trains on:

* **recognizer**: every symbol whose recognized class is not the truth's becomes a labeled
  symbol crop: the kept input cut around the symbol's recorded detector box, with a margin of
  paper (``MARGIN``) so the detector's own ink normalisation and masking can run on the crop
  when the training reader turns it into the recognizer's 32×32 input
  (:func:`workloads.ocr.relabeled.read_symbol_crops`; that code is the recognizer's, not a
  copy). Symbols are paired with the truth's in reading order: the order the aligner's
  relations read the detected symbols (:func:`evaluation.attribution.render`) when that
  structure is the truth's, or left to right when the formula is one plain row.
* **aligner**: one relation sample: the recognized symbols with their boxes and the true
  relations ``[parent, relation]``, derived from the truth's LaTeX when it parses against the
  recognized symbols (the derived relations render back to exactly the truth).

Where neither can be made (the input is no longer kept, the counts or structure do not line
up, the truth does not parse) the item keeps the whole input and one ``whole`` sample says why.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.grayscale import gray_pixels
from core.relabel import STAGE_PREFIX
from core.store.db import utcnow
from core.store.models import PredictionInput, RelabelSample, StoredPrediction
from core.store.upsert import insert_ignore
from core.v2_binary import kept_tensors
from evaluation.attribution import canonical, render, symbol_pairs

CROP, RELATIONS, WHOLE = "crop", "relations", "whole"
WHOLE_SYMBOL = -1  # the symbol key of an input's one relation sample or whole-input reason
MIN_MARGIN = 4  # pixels of paper kept around a crop's box at least
_GROUPS = {"\\frac": ("num", "den"), "\\sqrt": ("body",)}
NOT_KEPT = ("the input is no longer kept (pruned after ABVOC_INPUT_RETENTION_HOURS, or never "
            "kept), so no symbol crop can be cut; the item is the whole input")


def kept_image(s: Session, input_hash: str | None) -> np.ndarray | None:
    """The kept input as a grayscale uint8 array (an image, or a 2-D UINT8 tensor), or None."""
    if input_hash is None:
        return None
    row = s.scalars(select(PredictionInput).where(PredictionInput.input_hash == input_hash)
                    .order_by(PredictionInput.created_at).limit(1)).first()
    if row is None:
        return None
    if row.kind == "image":
        with Image.open(io.BytesIO(row.data), formats=("PNG", "JPEG")) as image:
            return gray_pixels(image)  # as decode_image read it when it was served
    for tensor in kept_tensors(row.kind, row.data):
        if tensor.get("datatype") == "UINT8" and len(tensor.get("shape", [])) == 2:
            return np.asarray(tensor["data"], dtype=np.uint8).reshape(tensor["shape"])
    return None


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(out, "PNG")
    return out.getvalue()


def _crop(image: np.ndarray, box: Sequence[int]) -> tuple[np.ndarray, list[int]] | None:
    """The image around `box` with a margin of paper, and the box within the crop."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = image.shape
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        return None
    m = max(MIN_MARGIN, max(x1 - x0, y1 - y0) // 2)
    cx0, cy0 = max(0, x0 - m), max(0, y0 - m)
    crop = image[cy0: min(h, y1 + m), cx0: min(w, x1 + m)]
    return crop, [x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0]


def recognizer_samples(stages: dict[str, Any], truth: str,
                       image: np.ndarray | None) -> list[dict[str, Any]]:
    """A labeled crop per wrongly recognized symbol, or one whole-input row with the reason."""
    classes = list((stages.get("recognizer") or {}).get("classes", []))
    boxes = list((stages.get("detector") or {}).get("boxes", []))
    relations = (stages.get("aligner") or {}).get("relations", [])
    if len(boxes) != len(classes):
        return [_whole("the prediction's stages record no detector box per recognized symbol")]
    pairs = symbol_pairs(classes, relations, truth)
    if isinstance(pairs, str):
        return [_whole(pairs)]
    wrong = [(i, true) for i, true in pairs if classes[i] != true]
    if not wrong:
        return [_whole("every recognized symbol is the truth's; no symbol crop to label")]
    if image is None:
        return [_whole(NOT_KEPT)]
    rows = []
    # The input's paper brightness (its median): ink is measured against it in service.
    paper = float(np.median(image))
    for i, true in sorted(wrong):
        cut = _crop(image, boxes[i])
        if cut is None:
            return [_whole(f"symbol {i}'s recorded box {boxes[i]} lies outside the kept input "
                           f"({image.shape[1]}x{image.shape[0]}); the item is the whole input")]
        crop, inner = cut
        rows.append({"symbol": i, "kind": CROP, "label": true, "predicted": classes[i],
                     "image": png(crop), "reason": None,
                     "sample": {"box": [int(v) for v in boxes[i]], "box_in_crop": inner,
                                "paper": paper,
                                "reading_index": [k for k, _ in pairs].index(i)}})
    return rows


def truth_structure(latex: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The truth's symbols in reading order and each one's ``(parent, relation)`` in the
    aligner's terms (``start``, ``right``, ``sup``, ``sub``, ``num``, ``den``, ``body``);
    ValueError when the canonical tokens are not a formula of that grammar."""
    tokens = canonical(latex)
    symbols: list[str] = []
    relations: list[tuple[int, str]] = []

    def row(i: int, parent: int, rel: str) -> int:
        prev: int | None = None
        while i < len(tokens) and tokens[i] != "}":
            tok = tokens[i]
            if tok in ("^", "_"):
                if prev is None:
                    raise ValueError("a script without a base")
                i = group(i + 1, prev, "sup" if tok == "^" else "sub")
                continue
            if tok == "{":
                raise ValueError("a group that belongs to nothing")
            idx = len(symbols)
            symbols.append("-" if tok == "\\frac" else tok)
            relations.append((parent, rel) if prev is None else (prev, "right"))
            prev, i = idx, i + 1
            for part in _GROUPS.get(tok, ()):
                i = group(i, idx, part)
        return i

    def group(i: int, parent: int, rel: str) -> int:
        if i >= len(tokens) or tokens[i] != "{":
            raise ValueError("a script or argument without its braces")
        i = row(i + 1, parent, rel)
        if i >= len(tokens):
            raise ValueError("an unclosed group")
        return i + 1

    if row(0, -1, "start") != len(tokens):
        raise ValueError("an unmatched closing brace")
    return symbols, relations


def aligner_samples(stages: dict[str, Any], truth: str) -> list[dict[str, Any]]:
    """One relation sample: recognized symbols, their boxes, the true relations (by detected
    index). Equal classes are paired in the detector's left-to-right order."""
    classes = list((stages.get("recognizer") or {}).get("classes", []))
    boxes = list((stages.get("detector") or {}).get("boxes", []))
    if len(boxes) != len(classes):
        return [_whole("the prediction's stages record no detector box per recognized symbol")]
    try:
        symbols, rels = truth_structure(truth)
    except ValueError as exc:
        return [_whole(f"the truth does not parse as a formula ({exc}); the item is the whole "
                       "input")]
    if sorted(symbols) != sorted(classes):
        return [_whole("the truth's symbols are not the recognized symbols, so its relations "
                       "cannot be laid on them; the item is the whole input")]
    free: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(classes):
        free[c].append(i)
    detected = [free[c].pop(0) for c in symbols]  # truth index -> detected index
    relations: list[list[Any]] = [[-1, "start"]] * len(classes)
    for t, (parent, rel) in enumerate(rels):
        relations[detected[t]] = [detected[parent] if parent >= 0 else -1, rel]
    if render(classes, relations) != canonical(truth):
        return [_whole("the truth's relations laid on the recognized symbols do not read back "
                       "as the truth; the item is the whole input")]
    if not geometry_fits(boxes, relations):
        return [_whole("the truth's relations laid on the recognized symbols go against their "
                       "boxes (a symbol read after one to its right), so some symbols are "
                       "likely recognized as each other; the item is the whole input")]
    served = [[int(r[0]), str(r[1])] for r in (stages.get("aligner") or {}).get("relations", [])]
    return [{"symbol": WHOLE_SYMBOL, "kind": RELATIONS, "label": truth, "predicted": None,
             "image": None, "reason": None,
             "sample": {"classes": classes, "boxes": [[int(v) for v in b] for b in boxes],
                        "relations": relations, "served_relations": served}}]


def geometry_fits(boxes: Sequence[Sequence[int]], relations: Sequence[Sequence[Any]]) -> bool:
    """Whether relations agree with where the symbols are: what follows a symbol, or is its
    script, lies to its right; a numerator above its bar and a denominator below, both within
    its span; a root's body under the root. (Classes alone cannot place two symbols whose
    classes the recognizer swapped.)"""
    for child, (parent, rel) in enumerate(relations):
        if parent < 0:
            continue
        px0, py0, px1, py1 = boxes[parent]
        cx0, cy0, cx1, cy1 = boxes[child]
        cx, cy = (cx0 + cx1) / 2, (cy0 + cy1) / 2
        if rel in ("right", "sup", "sub") and not cx > (px0 + px1) / 2:
            return False
        if rel in ("num", "den", "body") and not px0 <= cx <= px1:
            return False
        if (rel == "num" and not cy < (py0 + py1) / 2) or (
                rel == "den" and not cy > (py0 + py1) / 2):
            return False
    return True


def _whole(reason: str) -> dict[str, Any]:
    return {"symbol": WHOLE_SYMBOL, "kind": WHOLE, "label": None, "predicted": None,
            "image": None, "sample": {}, "reason": reason}


def samples_for(s: Session, stage: str, p: StoredPrediction, truth: str) -> list[dict[str, Any]]:
    stages = p.stages or {}
    try:
        if stage == "recognizer":
            return recognizer_samples(stages, truth, kept_image(s, p.input_hash))
        if stage == "aligner":
            return aligner_samples(stages, truth)
    except (ValueError, TypeError, KeyError, IndexError, OSError) as exc:
        return [_whole(f"the prediction's stages or kept input could not be read ({exc}); the "
                       "item is the whole input")]
    return [_whole(f"stage {stage!r} has no sample kind of its own (symbol crops are the OCR "
                   "recognizer's, relation samples its aligner's); the item is the whole input")]


def store_samples(s: Session, item_id: int, queue: str, p: StoredPrediction,
                  truth: str) -> int:
    """(Re)write the samples of stage item `item_id` from `truth`; the rows written."""
    rows = samples_for(s, queue.removeprefix(STAGE_PREFIX), p, truth)
    s.execute(delete(RelabelSample).where(RelabelSample.item_id == item_id))
    now = utcnow()
    values = [{**row, "item_id": item_id, "prediction_id": p.prediction_id,
               "input_hash": p.input_hash, "created_at": now} for row in rows]
    insert_ignore(s, RelabelSample.__table__, values, ("item_id", "symbol"))
    return len(values)

