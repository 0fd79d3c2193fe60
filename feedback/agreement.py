"""Agreement between annotators on the items that got two labels.

Exact agreement is the share of items whose first two labels are equal, by the rule an item's
labels agree by (core.same_answer: spacing never counts in text and LaTeX). Where the item's
prediction was corrected by the customer, each label is also a verdict on that correction
(accept when equal to it, reject otherwise); Cohen's kappa on those verdict pairs is computed by
statsmodels (``statsmodels.stats.inter_rater.cohens_kappa`` on the 2 x 2 table), with its
standard error. Kappa is undefined when every verdict is the same: then it is null and a note
says why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import select
from statsmodels.stats.inter_rater import cohens_kappa

from core.relabel import check_queue
from core.same_answer import same_output
from core.store.db import Database
from core.store.models import RelabelItem, RelabelLabel
from core.verified_labels import item_type

VERDICTS = ("accept", "reject")


def agreement(db: Database, queue: str | None = None) -> dict[str, Any]:
    lb, r = RelabelLabel, RelabelItem
    if queue is not None:
        check_queue(queue)  # a mistyped queue is a 400, not "no item has two labels"
    by_item: dict[int, list[tuple[str | None, str | None]]] = {}
    types: dict[int, str] = {}
    with db.reading() as s:
        query = (select(lb.item_id, lb.label, lb.verdict, item_type(s))
                 .join(r, r.id == lb.item_id)
                 .where(lb.action == "label").order_by(lb.item_id, lb.id))
        if queue is not None:
            query = query.where(r.queue == queue)
        for item_id, label, verdict, output_type in s.execute(query):
            by_item.setdefault(item_id, []).append((label, verdict))
            types[item_id] = output_type
    first_two = {i: v[:2] for i, v in by_item.items() if len(v) >= 2}
    # Equal by the rule the item's own labels agree by (spacing never counts in text, LaTeX).
    agreed = sum(1 for i, (a, b) in first_two.items()
                 if same_output(a[0] or "", b[0] or "", types[i]))
    pairs = list(first_two.values())
    table = np.zeros((2, 2))
    for a, b in pairs:
        if a[1] in VERDICTS and b[1] in VERDICTS:
            table[VERDICTS.index(a[1]), VERDICTS.index(b[1])] += 1
    out: dict[str, Any] = {
        "queue": queue, "items_with_two_labels": len(pairs), "agreed": agreed,
        "exact_agreement": agreed / len(pairs) if pairs else None,
        "verdict_pairs": int(table.sum()),
        "verdict_table": {"rows": "first annotator", "columns": "second annotator",
                          "order": list(VERDICTS), "counts": table.astype(int).tolist()},
        "kappa": None, "kappa_se": None, "note": None,
    }
    if table.sum() == 0:
        out["note"] = "no item with a customer correction has two labels yet"
        return out
    n = table.sum()
    chance = float((table.sum(axis=0) * table.sum(axis=1)).sum() / (n * n))
    if chance >= 1.0:
        out["note"] = ("kappa is undefined: every verdict is the same, so chance agreement is "
                       "total")
        return out
    with np.errstate(all="ignore"):  # its z test divides by 0 when one rater never varies
        result = cohens_kappa(table)
    out["kappa"] = float(result.kappa)
    se = float(result.std_kappa)
    out["kappa_se"] = None if math.isnan(se) else se
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    constant = [who for who, margin in (("first", rows), ("second", cols))
                if (margin > 0).sum() == 1]
    if constant:  # kappa is 0 with no spread: it says nothing of the other's agreement
        out["note"] = (f"the {' and '.join(constant)} annotator gave one verdict on every "
                       "pair, so kappa is 0 whatever the other did (its standard error "
                       "says nothing there); read the exact agreement and the table")
    return out
