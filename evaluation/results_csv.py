"""The results' comparisons as CSV, for a spreadsheet or a notebook: one row per treatment,
metric and slice, the same figures as the JSON report's `comparisons`.

A text cell that a spreadsheet would run as a formula (one starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: an arm or slice name is the customer's text) is written with a
leading ``'``, as OWASP advises against CSV injection; numbers are written as numbers, floats in
the shortest form that reads back to the same value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One value as CSV text: empty for None, true/false, repr of a float, guarded text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def table(rows: Iterable[Mapping[str, Any]], leading: Mapping[str, Any] | None = None) -> str:
    """The rows as CSV (RFC 4180 line ends), columns in the order they first appear, each row
    led by the `leading` columns (the same for all)."""
    rows = list(rows)
    lead = dict(leading or {})
    columns = list(lead)
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(cell(c) for c in columns)
    for row in rows:
        full = {**row, **lead}
        writer.writerow(cell(full.get(c)) for c in columns)
    return out.getvalue()


def comparisons_csv(report: Mapping[str, Any]) -> str:
    """The report's comparisons, each row led by the experiment's id and name."""
    experiment = report["experiment"]
    return table(report["comparisons"], {"experiment_id": experiment["id"],
                                         "experiment": experiment["name"]})


def download_name(experiment_id: int) -> str:
    """The file name the API and the dashboard give the table."""
    return f"experiment-{experiment_id}-results.csv"
