"""Offline results of a bundle candidate, by slice, in the shape every offline test stores
and the divergence report reads: ``{"overall": row, "slices": {name: row}, "label_shares"}``.

A row holds ``n`` and the metric of the output type:

=============  ==============================================================================
``label``      ``accuracy`` (also as ``exact_match``, the key the divergence report compares),
               ``label_shares`` (the true labels) and ``output_shares`` (the answers)
``text``       ``exact_match`` (the same words) and ``token_edit_distance`` (over words, 0..1)
``latex``      ``exact_match`` (the same LaTeX tokens) and ``token_edit_distance`` (over them)
``number``     ``mae``, ``rmse`` and ``mean_error`` (answer minus truth)
``json``       ``exact_match`` (equal as the store's JSON text, as online: 2 and 2.0 alike)
=============  ==============================================================================

plus ``latency_p50_ms``/``latency_p99_ms`` when the test timed the examples, and ``failed``
(examples the candidate gave no answer for) when it ran them: as the online accuracy bound does,
``accuracy`` and ``exact_match`` count a failure as a wrong answer; the distances and errors,
which need an answer, are over the answered examples. Results computed elsewhere are checked
against the same table by :func:`check_imported`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import AbvocError
from core.same_answer import edit_distance, tokens
from core.text import quoted_names, text_problem
from serving.bundles.manifest import OutputSpec

ALL = "all"  # the online name of the whole; an offline slice may not take it
SHARE_TOLERANCE = 1e-3
OVERALL_TOLERANCE = 2e-3  # figures rounded to 3 places, slices and overall alike
_UNIT = {"accuracy", "exact_match", "token_edit_distance"}
METRICS: dict[str, tuple[str, ...]] = {
    "label": ("accuracy",), "text": ("exact_match",), "latex": ("exact_match",),
    "number": ("mae", "rmse"), "json": ("exact_match",),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "label": ("exact_match", "label_shares", "output_shares"),
    "text": ("token_edit_distance",), "latex": ("token_edit_distance",),
    "number": ("mean_error",), "json": (),
}
TIMINGS = ("latency_p50_ms", "latency_p99_ms", "throughput_ips")
# Figures over the answered examples only (an error needs an answer); the rest count all n.
ANSWERED = ("mae", "rmse", "mean_error", "token_edit_distance", "output_shares")
MAX_N = 10**12  # more examples than any test set holds; past it n is a typo (or 10^29)


class _Failed:
    """The answer of an example the candidate failed on (no answer: not even null)."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED = _Failed()


class OfflineError(AbvocError):
    """The dataset or the imported results are not what they must be; the message says where."""

    status = 400


def summarize(output: OutputSpec, truths: Sequence[Any], answers: Sequence[Any],
              latencies_ms: Sequence[float] = ()) -> dict[str, Any]:
    """One row: n and the type's metric for these (truth, answer) pairs; an answer may be
    :data:`FAILED`."""
    n = len(truths)
    answered = [(a, t) for a, t in zip(answers, truths, strict=True) if a is not FAILED]
    row: dict[str, Any] = {"n": n, "failed": n - len(answered)}
    kind = output.type
    if kind == "label":
        accuracy = sum(a == t for a, t in answered) / n if n else None
        row["accuracy"] = row["exact_match"] = _round(accuracy)
        row["label_shares"] = shares(truths, output.classes)
        row["output_shares"] = shares([a for a, _ in answered], output.classes)
    elif kind in ("text", "latex"):
        row["exact_match"] = _round(
            sum(tokens(a, kind) == tokens(t, kind) for a, t in answered) / n) if n else None
        row["token_edit_distance"] = _round(float(np.mean(
            [edit_distance(a, t, kind) for a, t in answered]))) if answered else None
    elif kind == "number":
        errors = np.asarray([a for a, _ in answered], float) \
            - np.asarray([t for _, t in answered], float)
        row["mae"] = _round(float(np.mean(np.abs(errors)))) if answered else None
        row["rmse"] = _round(float(np.sqrt(np.mean(errors ** 2)))) if answered else None
        row["mean_error"] = _round(float(np.mean(errors))) if answered else None
    else:
        row["exact_match"] = _round(sum(a == t for a, t in answered) / n) if n else None
    if len(latencies_ms):
        lat = np.asarray(latencies_ms, float)
        row["latency_p50_ms"] = round(float(np.percentile(lat, 50)), 3)
        row["latency_p99_ms"] = round(float(np.percentile(lat, 99)), 3)
    return row


def shares(values: Sequence[Any], classes: Sequence[str]) -> dict[str, float]:
    """Each class's share of `values`, every class listed (answers outside them too)."""
    counts = Counter(values)
    total = len(values) or 1
    names = list(classes) + sorted(str(v) for v in counts if v not in classes)
    return {c: round(counts.get(c, 0) / total, 6) for c in names}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- results computed elsewhere -----------------------------------------------------------------

def check_imported(output: OutputSpec, data: Any) -> dict[str, Any]:
    """Imported results in the stored shape, or an OfflineError naming the slice and key.

    Accepted: ``{"slices": {name: row}}`` with an optional ``"overall"`` row (made from the
    slices, which must then partition the test set, when absent), optional top-level
    ``"label_shares"`` (the overall row's, when absent), ``"mix_slices"`` and ``"notes"``."""
    if not isinstance(data, dict):
        raise OfflineError("the results file must hold a JSON object with 'slices'")
    unknown = sorted(set(data) - {"overall", "slices", "label_shares", "mix_slices", "notes"})
    if unknown:
        raise OfflineError(f"unknown key(s) {quoted_names(unknown)}; use 'slices' (and "
                           "optionally 'overall', 'label_shares', 'mix_slices', 'notes')")
    slices = data.get("slices")
    if not isinstance(slices, dict) or not slices:
        raise OfflineError("'slices' must be an object of slice name -> {\"n\": ..., "
                           f"{', '.join(repr(m) for m in METRICS[output.type])}: ...}}")
    rows = {_slice_name(name): check_row(output, row, f"slices[{name!r}]")
            for name, row in slices.items()}
    overall = (check_row(output, data["overall"], "overall") if "overall" in data
               else combine(output, list(rows.values())))
    if "overall" in data:
        _check_overall(output, overall, rows)
    out: dict[str, Any] = {"output_type": output.type, "overall": overall, "slices": rows}
    if output.type == "label":
        top = data.get("label_shares", overall.get("label_shares"))
        if top is not None:
            out["label_shares"] = _shares(output, top, "label_shares")
            given = overall.get("label_shares") or {}
            if any(abs(given[c] - out["label_shares"].get(c, 0.0)) > SHARE_TOLERANCE
                   for c in given):
                raise OfflineError("'label_shares' and the overall row's label_shares differ; "
                                   "give the test set's true labels once")
    elif "label_shares" in data:
        raise OfflineError(f"'label_shares' is only for label outputs, not {output.type!r}")
    if "mix_slices" in data:
        mix = data["mix_slices"]
        if not isinstance(mix, list) or not mix or len(set(map(str, mix))) < len(mix) \
                or any(not isinstance(m, str) or m not in rows for m in mix):
            raise OfflineError("'mix_slices' must list some of the slices "
                               f"{quoted_names(sorted(rows))}, each once")
        out["mix_slices"] = list(mix)
    if "notes" in data:
        if not isinstance(data["notes"], str) or len(data["notes"]) > 2000:
            raise OfflineError("'notes' must be a string of at most 2000 characters")
        if (problem := text_problem(data["notes"])) is not None:
            raise OfflineError(f"'notes' {problem}")
        out["notes"] = data["notes"]
    return out


def _check_overall(output: OutputSpec, overall: dict[str, Any],
                   rows: dict[str, dict[str, Any]]) -> None:
    """A given overall row must be what its slices can make: the slices are parts of the test
    set (their n add up to at most its n; the divergence's mix reads them as a partition), and
    a share right (accuracy, exact match) must lie between the slices' right answers with every
    other example wrong and with every other example right; when the slices hold the whole
    test set, that is their n-weighted mean."""
    covered = sum(r["n"] for r in rows.values())
    if covered > overall["n"]:
        raise OfflineError(f"the slices' n add up to {covered}, more than the overall n of "
                           f"{overall['n']}: each example belongs to one slice at most")
    rest = overall["n"] - covered
    for key in (k for k in ("accuracy", "exact_match") if k in overall):
        if not all(key in r for r in rows.values()):
            continue
        right = sum(r[key] * r["n"] for r in rows.values())
        low, high = right / overall["n"], (right + rest) / overall["n"]
        if not low - OVERALL_TOLERANCE <= overall[key] <= high + OVERALL_TOLERANCE:
            span = f"{low:.4f}" if rest == 0 else f"{low:.4f} to {high:.4f}"
            raise OfflineError(f"overall.{key} is {overall[key]:g}, but its slices make "
                               f"{span} of the overall n of {overall['n']}; give figures of "
                               "one test, or leave 'overall' out to have it made from the "
                               "slices")
    if rest:
        return
    made = combine(output, list(rows.values()))
    for key in (k for k in (*ANSWERED, "label_shares") if k in overall and k in made):
        given, want = overall[key], made[key]
        pairs = [(given[c], want[c]) for c in want] if isinstance(want, dict) \
            else [(given, want)]
        if any(abs(g - w) > OVERALL_TOLERANCE + 1e-3 * abs(w) for g, w in pairs):
            raise OfflineError(f"overall.{key} is {given}, but the slices, which hold the whole "
                               f"test set, make {want}; give figures of one test, or leave "
                               "'overall' out to have it made from the slices")


WHOLE_NAMES = (ALL, "overall")
"""What the whole is called online and in offline tables: a slice by either name was a second
"overall" row beside the real one."""


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")
"""Unicode's Bidi_Control characters: invisible, they reorder the text after them."""


def slice_problem(name: Any) -> str | None:
    """Why `name` cannot name a slice (one rule for the datasets, the imported results and the
    requests' `slice`): a slice named as the whole folded into it, and control or bidi
    characters broke the reports' text tables."""
    if not isinstance(name, str) or not name or len(name) > 100 or name in WHOLE_NAMES:
        return (f"must be a name of 1 to 100 characters other than {WHOLE_NAMES[0]!r} and "
                f"{WHOLE_NAMES[1]!r} (the names of the whole)")
    if not _BIDI_CONTROLS.isdisjoint(name):
        return ("must not contain bidirectional controls (such as U+202E), which reorder the "
                "text shown after them")
    return text_problem(name, controls=True)


def _slice_name(name: str) -> str:
    if (problem := slice_problem(name)) is not None:
        raise OfflineError(f"slice name {name!r} {problem}")
    return name


def check_row(output: OutputSpec, row: Any, where: str) -> dict[str, Any]:
    """One imported row: n, the type's metrics in range, optional timings and shares."""
    kind = output.type
    if not isinstance(row, dict):
        raise OfflineError(f"{where} must be an object with 'n' and {quoted_names(METRICS[kind])}")
    known = {"n", "failed", *METRICS[kind], *OPTIONAL[kind], *TIMINGS}
    unknown = sorted(set(row) - known)
    if unknown:
        raise OfflineError(f"{where}: unknown key(s) {quoted_names(unknown)} for a {kind!r} "
                           f"output; known: {quoted_names(sorted(known))}")
    n = row.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise OfflineError(f"{where}.n must be a positive whole number of examples (at most "
                           f"{MAX_N:.0e}), got {n!r}")
    out: dict[str, Any] = {"n": n}
    if "failed" in row:
        failed = row["failed"]
        if isinstance(failed, bool) or not isinstance(failed, int) or not 0 <= failed <= n:
            raise OfflineError(f"{where}.failed must be a whole number of examples from 0 to "
                               f"n ({n}), got {failed!r}")
        out["failed"] = failed
    if kind == "label" and "accuracy" not in row and "exact_match" in row:
        row = {**row, "accuracy": row["exact_match"]}  # either name is the share right
    if out.get("failed") == n:  # no answer: the figures over the answered have nothing to read
        row = _none_answered(kind, row, where, n, out)
    for key in METRICS[kind]:
        if key not in row and key not in out:
            raise OfflineError(f"{where}.{key} is missing: a {kind!r} output's offline results "
                               f"give {quoted_names(METRICS[kind])}")
    for key in [k for k in row if k not in ("n", "failed", "label_shares", "output_shares")]:
        out[key] = _number(row[key], f"{where}.{key}", unit=key in _UNIT)
    if kind == "label":
        if "exact_match" in out and out["exact_match"] != out["accuracy"]:
            raise OfflineError(f"{where}: exact_match and accuracy are the same figure for a "
                               "label output; give one")
        out["exact_match"] = out["accuracy"]
        for key in ("label_shares", "output_shares"):
            if key in row:
                out[key] = _shares(output, row[key], f"{where}.{key}")
    _consistent(out, where)
    return out


def _none_answered(kind: str, row: dict[str, Any], where: str, n: int,
                   out: dict[str, Any]) -> dict[str, Any]:
    """A row whose every example failed: its figures over the answered examples are null, as
    the offline test writes them (an MAE of no answers was stored and held against online)."""
    given = [k for k in ANSWERED if row.get(k) is not None]
    if given:
        raise OfflineError(f"{where}.{given[0]} is {row[given[0]]!r}, but every example failed "
                           f"(failed = n = {n}): a figure over the answered examples has none "
                           "to be taken over; give null or leave it out")
    out.update({k: None for k in ANSWERED if k in row or k in METRICS[kind]})
    return {k: v for k, v in row.items() if k not in ANSWERED}


def _consistent(row: dict[str, Any], where: str) -> None:
    """Refuse figures that no set of answers gives together (the first found is named)."""
    answered = row["n"] - row.get("failed", 0)
    found = [f"{key} {row[key]:g} is more than the {answered} answered of {row['n']} examples "
             "can be right (a failure counts wrong)" for key in ("accuracy", "exact_match")
             if key in row and row[key] > answered / row["n"] + OVERALL_TOLERANCE]
    if "exact_match" in row and "token_edit_distance" in row and answered:
        # An exact answer is 0 apart, any other at most 1: the mean over the answered is at most
        # the inexact ones' share of them (exact 1.0 with a distance of 0.5 was stored).
        inexact = max(answered - row["exact_match"] * row["n"], 0.0)
        if row["token_edit_distance"] > inexact / answered + OVERALL_TOLERANCE:
            found.append(f"token_edit_distance {row['token_edit_distance']:g} is more than the "
                         f"{inexact:g} inexact of the {answered} answered examples can make "
                         "(an exact answer is 0 apart, any other at most 1)")
    if row.get("mae") is not None and row.get("rmse") is not None:
        if row["rmse"] + 1e-9 < row["mae"]:
            found.append(f"rmse {row['rmse']:g} is below mae {row['mae']:g}")
        elif row["rmse"] > row["mae"] * math.sqrt(max(answered, 1)) * (1 + 1e-3) + 1e-3:
            found.append(f"rmse {row['rmse']:g} is more than mae {row['mae']:g} times the "
                         f"square root of the {answered} answered examples")
    if row.get("mean_error") is not None and row.get("mae") is not None \
            and abs(row["mean_error"]) > row["mae"] + 1e-3:
        found.append(f"mean_error {row['mean_error']:g} is larger in size than mae "
                     f"{row['mae']:g}")
    if row.get("latency_p50_ms", 0) > row.get("latency_p99_ms", math.inf):
        found.append(f"latency_p50_ms {row['latency_p50_ms']:g} is above latency_p99_ms "
                     f"{row['latency_p99_ms']:g}")
    if found:
        raise OfflineError(f"{where}: {found[0]}, which no set of answers gives; check the "
                           "figures")


def _number(value: Any, where: str, *, unit: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OfflineError(f"{where} must be a finite number, got {value!r}")
    if unit and not 0 <= value <= 1:
        raise OfflineError(f"{where} is a share between 0 and 1, got {value!r}")
    if where.endswith((".mae", ".rmse", "_ms", ".throughput_ips")) and value < 0:
        raise OfflineError(f"{where} must not be negative, got {value!r}")
    return float(value)


def _shares(output: OutputSpec, value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise OfflineError(f"{where} must be an object of class -> share")
    unknown = sorted(set(value) - set(output.classes))
    if unknown:
        raise OfflineError(f"{where} names {unknown}, which are not among the candidate's "
                           f"classes {quoted_names(output.classes)}")
    out = {c: _number(value.get(c, 0.0), f"{where}[{c!r}]", unit=True) for c in output.classes}
    if abs(sum(out.values()) - 1) > SHARE_TOLERANCE:
        raise OfflineError(f"{where} must add up to 1, got {sum(out.values()):.4f}")
    return out


def combine(output: OutputSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The overall row from slice rows that partition the test set: n-weighted means (RMSE
    through its mean square)."""
    n = sum(r["n"] for r in rows)
    out: dict[str, Any] = {"n": n}
    if all("failed" in r for r in rows):
        out["failed"] = sum(r["failed"] for r in rows)

    def weight(r: dict[str, Any], key: str) -> int:
        """A figure over the answered examples weighs by them; a share right, by n."""
        return r["n"] - r.get("failed", 0) if key in ANSWERED else r["n"]

    for key in (*METRICS[output.type], *OPTIONAL[output.type]):
        total = sum(weight(r, key) for r in rows)
        if not total or not all(key in r for r in rows):
            continue
        # A slice with no answer holds null for a figure over the answered: it weighs nothing.
        live = [r for r in rows if weight(r, key)]
        if key.endswith("_shares"):
            out[key] = {c: round(sum(r[key][c] * weight(r, key) for r in live) / total, 6)
                        for c in output.classes}
        elif key == "rmse":
            try:
                out[key] = _round(math.sqrt(
                    sum(r["rmse"] ** 2 * weight(r, key) for r in live) / total))
            except OverflowError:  # an imported RMSE of 1e201 squares past float range
                raise OfflineError("'rmse' is too large to combine across slices (its square "
                                   "passes float range)") from None
        else:
            out[key] = _round(sum(r[key] * weight(r, key) for r in live) / total)
    return out
