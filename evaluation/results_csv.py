"""The reports' tables as CSV, for a spreadsheet or a notebook: the results' comparisons (one
row per treatment, metric and slice, the same figures as the JSON report's `comparisons`) and
the divergence report's slice rows (one per candidate version and slice, offline beside online)
or its ranked findings.

A text cell that a spreadsheet would run as a formula (one starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: an arm or slice name is the customer's text) is written with a
leading ``'``, as OWASP advises against CSV injection; numbers are written as numbers, floats in
the shortest form that reads back to the same value.
"""

from __future__ import annotations

import csv
import io
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import AbvocError
from evaluation.divergence import empty_slice_row
from evaluation.findings import FINDING_FIELDS
from evaluation.number_metrics import MAE_GAP_FIELDS
from evaluation.results import COMPARISON_COLUMNS

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_INTERVALS = ("_ci", "_interval")
DIVERGENCE_TABLES = ("slices", "findings")
"""The divergence report's tables a CSV can hold: its slice rows, its findings."""


def cell(value: Any) -> str:
    """One value as CSV text: empty for None, true/false, a number in its shortest exact form
    (numpy's as Python's: ``np.float64(0.5)`` is a float whose repr says so), guarded text.
    NaN and infinities are empty too, as the JSON reports write them null (an interval at an
    alpha of 1e-300, whose quantile is infinite, read 'nan' here)."""
    if value is None or isinstance(value, float | np.floating) and not np.isfinite(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def table(rows: Iterable[Mapping[str, Any]], leading: Mapping[str, Any] | None = None,
          fixed: Sequence[str] = ()) -> str:
    """The rows as CSV (RFC 4180 line ends), each row led by the `leading` columns (the same
    for all): the `fixed` columns whatever the rows hold, then any other in the order it first
    appears."""
    rows = list(rows)
    lead = dict(leading or {})
    columns = list(lead) + [c for c in fixed if c not in lead]
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
    """The report's comparisons, each row led by the experiment's id and name; the columns are
    the same whatever the report holds (a draft's table was its two leading columns)."""
    experiment = report["experiment"]
    return table(report["comparisons"], {"experiment_id": experiment["id"],
                                         "experiment": experiment["name"]}, COMPARISON_COLUMNS)


_SLICE_OBJECTS = {"mae_gap": MAE_GAP_FIELDS}
"""The slice rows' objects that may be null, with their fields: a null one is as many empty
columns, so the table's columns do not depend on which rows hold one."""


def flat(row: Mapping[str, Any], objects: Mapping[str, Sequence[str]] | None = None,
         prefix: str = "") -> dict[str, Any]:
    """A report row as one level of columns: a nested object's keys joined to its name with
    ``_`` (``online_n``); an interval ``[low, high]`` (a key ending in ``_ci`` or ``_interval``)
    as ``_low`` and ``_high``, both empty where it is null; any other list as JSON text. A key
    of `objects` that is null here is its fields, each empty."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = prefix + key
        if value is None and key in (objects or {}):
            value = dict.fromkeys((objects or {})[key])
        if key.endswith(_INTERVALS) and (value is None or isinstance(value, list | tuple)):
            low, high = value if value is not None and len(value) == 2 else (None, None)
            out[f"{name}_low"], out[f"{name}_high"] = low, high
        elif isinstance(value, Mapping):
            out.update(flat(value, prefix=f"{name}_"))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def asked_table(asked: str | None) -> str:
    """The divergence table a request asks for (`table`; the slice rows when not given), or a
    400 that lists them."""
    which = DIVERGENCE_TABLES[0] if asked is None else asked
    if which not in DIVERGENCE_TABLES:
        raise AbvocError(f"'table' must be one of {', '.join(DIVERGENCE_TABLES)}")
    return which


def divergence_csv(report: Mapping[str, Any], which: str = "slices") -> str:
    """The divergence report's slice rows or findings (`which`, of DIVERGENCE_TABLES), each
    row led by the experiment's id; findings by rank. The columns are the same whatever the
    report holds: every field a finding may carry, every field of a slice row's objects."""
    lead = {"experiment_id": report["experiment_id"]}
    if asked_table(which) == "findings":
        return table(report["findings"], lead, ("rank", *FINDING_FIELDS))
    return table((flat(r, _SLICE_OBJECTS) for r in report["slices"]), lead,
                 list(flat(empty_slice_row(), _SLICE_OBJECTS)))


def attachment(experiment_id: int, table_name: str = "results") -> dict[str, str]:
    """The headers with which the API and the dashboard give a table of the experiment's as a
    download named ``experiment-{id}-{table_name}.csv``."""
    name = f"experiment-{experiment_id}-{table_name}.csv"
    return {"Content-Disposition": f'attachment; filename="{name}"'}
