"""The extraction figures on hand-made cases, worked out by hand and held against pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from workloads.ocr.pages.metrics import evaluate_boxes, iou_matrix

A, B = (0, 0, 10, 10), (20, 0, 30, 10)


def test_perfect_boxes_score_one() -> None:
    r = evaluate_boxes([[A, B]], [[(B, 0.9), (A, 0.8)]])
    assert (r.precision, r.recall, r.map, r.map_50) == (1.0, 1.0, 1.0, 1.0)
    assert r.matches == [{0: 1, 1: 0}]


def test_a_false_positive_between_two_hits() -> None:
    # Ranked: hit (P 1, R .5), miss (P .5), hit (P 2/3, R 1). COCO's 101-point interpolated
    # precision is 1 at recalls 0..0.50 (51 points) and 2/3 at 0.51..1 (50 points).
    r = evaluate_boxes([[A, B]], [[(B, 0.9), ((50, 50, 60, 60), 0.8), (A, 0.7)]])
    assert r.precision == pytest.approx(2 / 3) and r.recall == 1.0
    assert r.map == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert r.map_50 == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert r.matches == [{0: 1, 2: 0}]


def test_a_loose_box_counts_only_at_the_lower_thresholds() -> None:
    # IoU 0.62 passes 0.50, 0.55 and 0.60 of the ten thresholds 0.50:0.95.
    r = evaluate_boxes([[A]], [[((0, 0, 6.2, 10), 0.5)]])
    assert r.precision == 1.0 and r.recall == 1.0
    assert r.map_50 == pytest.approx(1.0)
    assert r.map == pytest.approx(0.3)


def test_a_duplicate_is_a_false_positive_but_costs_no_precision_at_full_recall() -> None:
    r = evaluate_boxes([[A]], [[(A, 0.9), (A, 0.8)]])
    assert r.precision == 0.5 and r.recall == 1.0 and r.map == pytest.approx(1.0)
    assert r.matches == [{0: 0}]


def test_pages_are_matched_apart_and_empty_cases_say_so() -> None:
    r = evaluate_boxes([[A], [], [B]], [[(B, 0.9)], [(A, 0.8)], [(B, 0.7)]])
    assert r.true_positives == 1 and r.n_pred == 3 and r.n_truth == 2
    assert r.matches == [{}, {}, {0: 0}]
    none = evaluate_boxes([[A, B]], [[]])
    assert (none.precision, none.recall, none.map) == (None, 0.0, 0.0)
    nothing = evaluate_boxes([[]], [[(A, 0.5)]])
    assert nothing.recall is None and nothing.map is None and nothing.precision == 0.0
    with pytest.raises(ValueError):
        evaluate_boxes([[A]], [])


def test_iou_matrix_agrees_with_pycocotools() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (12, 2))
    wh = rng.uniform(1, 30, (12, 2))
    boxes = np.hstack([xy, xy + wh])
    ours = iou_matrix(boxes[:5], boxes[5:])
    theirs = coco_mask.iou(np.hstack([xy[:5], wh[:5]]).tolist(),
                           np.hstack([xy[5:], wh[5:]]).tolist(), [0] * 7)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
