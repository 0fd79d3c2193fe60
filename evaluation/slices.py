"""Which slices a report shows. A slice is any string a caller sends with a prediction, so an
experiment may hold thousands; reports test and print slice ``all`` and at most `max_slices`
others (those with the most predictions served, ties by name; slices the offline results name
first where a report compares against them), and say how many slices and served predictions
they left out.
Everything left out still counts in ``all``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from evaluation import aggregation as agg
from evaluation.online import ALL, Cells

DEFAULT_MAX_SLICES = 50
MAX_SLICES_LIMIT = 1000


@dataclass(frozen=True)
class SliceChoice:
    """The cells of the slices shown (``all`` included), and what was left out."""

    cells: Cells
    shown: list[str]  # ``all`` first, then by name
    left_out: int
    left_out_predictions: int
    max_slices: int

    def as_dict(self) -> dict[str, Any]:
        return {"shown": len(self.shown) - (ALL in self.shown), "left_out": self.left_out,
                "left_out_predictions": self.left_out_predictions,
                "max_slices": self.max_slices}


def choose_slices(cells: Cells, max_slices: int = DEFAULT_MAX_SLICES,
                  first: Collection[str] = ()) -> SliceChoice:
    """Keep ``all`` and the `max_slices` slices with the most predictions served (over every
    arm), those in `first` ahead of the rest. A shadow's copies are no predictions of their own
    (the results count served ones everywhere): counted, one shadow doubled the number left
    out."""
    predictions: Counter[str] = Counter()
    for (variant, slice_), cell in cells.items():
        if slice_ != ALL:
            predictions[slice_] += 0 if variant.shadow else int(cell.get(agg.PREDICTIONS)[0])
    ranked = sorted(predictions, key=lambda s: (s not in first, -predictions[s], s))
    kept = set(ranked[:max_slices])
    left = ranked[max_slices:]
    return SliceChoice(
        {key: cell for key, cell in cells.items() if key[1] == ALL or key[1] in kept},
        [ALL, *sorted(kept)], len(left), sum(predictions[s] for s in left),
        max_slices)
