"""The Offline vs online page's confusion counts of a label candidate with many classes: the
whole 50 x 50 table of two candidates was over 5,000 cells of page components, and Chromium
was still busy with the slice's drill-down after a minute."""

from __future__ import annotations

from typing import Any

import numpy as np

from dashboards.pages import divergence
from tests.support.dash_tree import component_text, find_component


def _confusion(k: int) -> dict[str, Any]:
    """K classes, each answered right 100 times; class j is mistaken for class j + 1 j times."""
    counts = np.diag(np.full(k, 100))
    for j in range(k - 1):
        counts[j, j + 1] = j
    return {"classes": [f"c{j:02d}" for j in range(k)], "counts": counts.tolist()}


def _rows(component: Any) -> list[list[str]]:
    grid = find_component(component, "div-confusion-0")
    head, body = grid.children
    return [[component_text(cell) for cell in row.children]
            for row in [head.children, *body.children]]


def test_a_table_of_many_classes_shows_those_with_the_most_wrong_answers() -> None:
    shown = divergence._confusion(0, "bot", _confusion(50))
    rows = _rows(shown)
    limit = divergence.CONFUSION_CLASSES
    assert len(rows) == limit + 1 and all(len(r) == limit + 1 for r in rows)
    # Class j's wrong answers, its own and those given for it: j + (j - 1), so c37 to c48
    # (c49 is only the truth of c48's 48 mistakes).
    expected = [f"c{j:02d}" for j in range(37, 49)]
    assert rows[0][1:] == expected and [r[0] for r in rows[1:]] == expected
    assert rows[1][1:3] == ["100", "37"]  # c37's row: right 100 times, 37 times called c38
    assert "The 12 classes with the most wrong answers of 50; the other 38" \
        in component_text(shown)


def test_a_table_of_few_classes_is_whole() -> None:
    shown = divergence._confusion(0, "bot", _confusion(5))
    rows = _rows(shown)
    assert rows[0] == ["answer \\ truth", "c00", "c01", "c02", "c03", "c04"]
    assert rows[2] == ["c01", "0", "100", "1", "0", "0"]
    assert "most wrong answers" not in component_text(shown)
