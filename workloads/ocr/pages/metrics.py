"""Detection figures for formula extraction, computed by pycocotools' COCOeval.

Every page is a COCO image and every formula one box of the single category "formula". COCOeval
gives the mean average precision over IoU 0.50:0.95 (and at 0.50) and, from its own per-image
matching at IoU 0.50 (score order, each truth matched once), the precision, the recall and which
truth each predicted box found — the end-to-end test reads those matches, so the pairing of a
predicted box with a formula is the library's, not a second hand-written one.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Box = Sequence[int] | Sequence[float]  # x0, y0, x1, y1
Scored = tuple[Box, float]


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (x0, y0, x1, y1; areas in pixels)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    pa, pb = np.asarray(a, float)[:, None, :], np.asarray(b, float)[None, :, :]
    w = np.clip(np.minimum(pa[..., 2], pb[..., 2]) - np.maximum(pa[..., 0], pb[..., 0]), 0, None)
    h = np.clip(np.minimum(pa[..., 3], pb[..., 3]) - np.maximum(pa[..., 1], pb[..., 1]), 0, None)
    inter = w * h
    area = lambda p: (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])  # noqa: E731
    return inter / np.maximum(area(pa) + area(pb) - inter, 1e-9)


@dataclass
class DetectionResult:
    """The figures, and per page which truth index each prediction matched at IoU 0.5."""

    n_truth: int
    n_pred: int
    true_positives: int
    map: float | None  # COCO mAP@[.5:.95]; None without any truth
    map_50: float | None
    matches: list[dict[int, int]] = field(default_factory=list)  # page: pred idx -> truth idx

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.n_pred if self.n_pred else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.n_truth if self.n_truth else None

    def figures(self) -> dict[str, float | int | None]:
        r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
        return {"formulas": self.n_truth, "predicted": self.n_pred,
                "precision_50": r(self.precision), "recall_50": r(self.recall),
                "map": r(self.map), "map_50": r(self.map_50)}


def _xywh(box: Box) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def evaluate_boxes(truths: Sequence[Sequence[Box]],
                   predictions: Sequence[Sequence[Scored]]) -> DetectionResult:
    """COCO figures over pages: `truths[i]` the true boxes of page i, `predictions[i]` its
    predicted (box, score) pairs."""
    if len(truths) != len(predictions):
        raise ValueError("one list of predictions per page of truth")
    n_truth = sum(len(t) for t in truths)
    n_pred = sum(len(p) for p in predictions)
    matches: list[dict[int, int]] = [{} for _ in truths]
    if n_truth == 0 or n_pred == 0:
        return DetectionResult(n_truth, n_pred, 0, 0.0 if n_truth else None,
                               0.0 if n_truth else None, matches)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_ids: dict[int, tuple[int, int]] = {}
    dt_ids: dict[int, tuple[int, int]] = {}
    images, gts, dts = [], [], []
    for page, (truth, preds) in enumerate(zip(truths, predictions, strict=True)):
        images.append({"id": page + 1})
        for j, box in enumerate(truth):
            ann_id = len(gts) + 1
            gt_ids[ann_id] = (page, j)
            xywh = _xywh(box)
            gts.append({"id": ann_id, "image_id": page + 1, "category_id": 1, "bbox": xywh,
                        "area": xywh[2] * xywh[3], "iscrowd": 0})
        for j, (box, score) in enumerate(preds):
            dts.append({"image_id": page + 1, "category_id": 1, "bbox": _xywh(box),
                        "score": float(score)})
            dt_ids[len(dts)] = (page, j)  # loadRes numbers results 1, 2, ... in order
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": gts,
                        "categories": [{"id": 1, "name": "formula"}]}
        coco.createIndex()
        found = coco.loadRes(dts)
        ev = COCOeval(coco, found, "bbox")
        ev.params.maxDets = [1, 10, 100]  # summarize() reads 100; a page holds fewer
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    tp = 0
    at_50 = 0  # index of IoU 0.50 in ev.params.iouThrs
    for record in ev.evalImgs:
        if record is None or record["aRng"] != ev.params.areaRng[0] \
                or record["maxDet"] != ev.params.maxDets[-1]:
            continue
        for d, dt_id in enumerate(record["dtIds"]):
            gt_id = int(record["dtMatches"][at_50, d])
            if gt_id and not record["dtIgnore"][at_50, d]:
                tp += 1
                page, j = dt_ids[dt_id]
                matches[page][j] = gt_ids[gt_id][1]
    return DetectionResult(n_truth, n_pred, tp, _stat(ev.stats[0]), _stat(ev.stats[1]), matches)


def _stat(value: float) -> float | None:
    return None if value < 0 else float(value)
