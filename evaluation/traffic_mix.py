"""The traffic-mix part of the divergence report: the offline test's slice shares against the
online traffic's, and the Kitagawa split of the accuracy change into mix and within-slice parts.

Which offline slices make up the offline mix: those named in ``offline_results["mix_slices"]``
when given; else those whose family (the part before ``/``) appears online, plus every other
offline family that fits beside them in the offline test (their ``n`` together no more than the
overall ``n``): a slice the offline test has and online traffic lacks is part of the offline
mix, so its share is reported (and weighs in the chi-square test and PSI), never dropped with
the rest renormalised as if the offline test had been something else (a 50/50 test reported
as 100 % of one slice). A family that does not fit is another grouping of the same examples
(``noise/*`` beside ``printed/*``): counting it would count examples twice, so it is left out
and ``left_out`` says so. Without an overall ``n`` the two cannot be told apart and unmatched
families are left out, with that reason.

What is compared, and said in the output (``compared``): the offline mix (each slice's ``n``
over the total of the mix's slices, ``offline_n``) against the online traffic (each slice's
predictions over all online predictions, ``online_n``), both over the union of their slices;
``offline_only`` and ``online_only`` name the slices one side lacks and the share they hold.
The decomposition needs both accuracies, so it runs over the slices with an offline accuracy and
online traffic only, each side renormalised over them; its ``slices``, ``offline_share``,
``online_share`` and ``basis`` say so, and its ``offline`` is those slices' offline accuracy,
which differs from the offline test's overall figure where some slice is left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from evaluation import aggregation as agg
from evaluation.candidate_facts import Ref
from evaluation.clustered_shares import clustered_shift, untestable
from evaluation.online import ALL, Cell
from evaluation.share_tests import PSI_EPSILON, PSI_SHIFT, homogeneity, psi, too_few_units
from evaluation.unit_class_counts import UnitClassCounts

COMPARED = ("chi-square test of homogeneity and PSI between the offline mix (each slice's n over "
            "the offline_n examples of the mix's slices, those with no online traffic included) "
            "and the online traffic (each slice's predictions over all online_n predictions), "
            f"over the union of their slices; PSI floors each share at {PSI_EPSILON:g}")


def _family(name: str) -> str:
    return name.split("/")[0]


def offline_mix(offline: dict[str, Any], online: list[str]) -> tuple[list[str], dict[str, str]]:
    """The offline slices of the offline mix, and those left out with why (module docstring);
    no mix (and nothing left out) where no offline slice shares a family with online traffic."""
    slices = offline.get("slices") or {}
    listed = offline.get("mix_slices")
    if listed:
        return list(listed), {s: "not listed in the offline results' mix_slices"
                              for s in slices if s not in listed}
    families = {_family(s) for s in online}
    mix = [s for s in slices if _family(s) in families]
    if not mix:
        return [], {}
    total = (offline.get("overall") or {}).get("n")
    used = sum(float(slices[s].get("n") or 0) for s in mix)
    others: dict[str, list[str]] = defaultdict(list)
    for s in slices:
        if _family(s) not in families:
            others[_family(s)].append(s)
    left: dict[str, str] = {}
    for family in sorted(others):
        n = sum(float(slices[s].get("n") or 0) for s in others[family])
        if total is not None and used + n <= float(total) + 1e-9:
            mix += others[family]
            used += n
            continue
        reason = ("the offline results give no overall n, so a part of the offline test with "
                  "no online traffic cannot be told from another grouping of its examples"
                  if total is None else
                  f"another grouping of the offline test's examples: its {n:g} beside the "
                  f"{used:g} of the mix's slices are more than the test's {float(total):g}")
        left.update({s: reason for s in others[family]})
    return mix, left


def _decomposition(names: list[str], w_off: np.ndarray, w_on: np.ndarray,
                   a_off: np.ndarray, a_on: np.ndarray) -> dict[str, Any] | None:
    """Kitagawa's split over the slices with both accuracies (module docstring)."""
    both = ~np.isnan(a_off) & ~np.isnan(a_on) & (w_on > 0)
    if not both.any():
        return None
    wo, wn = w_off[both] / w_off[both].sum(), w_on[both] / w_on[both].sum()
    kept = [s for s, b in zip(names, both, strict=True) if b]
    off_share, on_share = float(w_off[both].sum()), float(w_on[both].sum())
    whole = off_share >= 1 - 1e-12 and on_share >= 1 - 1e-12
    basis = ("over every slice of both mixes" if whole else
             f"over the {len(kept)} slice(s) with an offline accuracy and online traffic "
             f"({', '.join(repr(s) for s in kept)}), {off_share:.1%} of the offline mix and "
             f"{on_share:.1%} of online requests, each side renormalised over them: 'offline' "
             "is those slices' offline accuracy, not the offline test's overall figure")
    return {"offline": float(np.sum(wo * a_off[both])), "online": float(np.sum(wn * a_on[both])),
            "mix_effect": float(np.sum((wn - wo) * a_off[both])),
            "within_slices": float(np.sum(wn * (a_on[both] - a_off[both]))),
            "slices": kept, "offline_share": off_share, "online_share": on_share,
            "basis": basis}


def _one_side(names: list[str], mine: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """The slices one side has and the other lacks, and the share of this side they hold."""
    only = (mine > 0) & (other == 0)
    return {"slices": [s for s, o in zip(names, only, strict=True) if o],
            "share": float(mine[only].sum() / mine.sum())}


def traffic_mix(ref: Ref, offline: dict[str, Any], cells: dict[str, Cell], alpha: float,
                rows: list[dict[str, Any]], units: UnitClassCounts | None = None,
                ) -> dict[str, Any] | None:
    """One candidate version's offline mix against its online traffic, with the chi-square test,
    PSI and the decomposition; None where either side has no counts to compare. `units`: each
    unit's predictions per slice where some unit sent several; the test is then over units
    (:mod:`evaluation.clustered_shares`), as a user who sends one kind of input sends it
    again."""
    online = [s for s in cells if s != ALL]
    mix, left_out = offline_mix(offline, online)
    names = sorted(set(mix) | set(online))
    off_slices = offline.get("slices") or {}
    off_n = np.array([float(off_slices.get(s, {}).get("n") or 0) if s in mix else 0.0
                      for s in names])
    on_n = np.array([float(cells[s].get(agg.PREDICTIONS)[0]) if s in cells else 0.0
                     for s in names])
    if off_n.sum() == 0 or on_n.sum() == 0:
        return None
    w_off, w_on = off_n / off_n.sum(), on_n / on_n.sum()
    chi2, p, note = homogeneity(off_n, on_n) if units is None else \
        _over_units(w_off, float(off_n.sum()), units.matrix(names))
    index = psi(off_n, on_n)
    by_slice = {r["slice"]: r for r in rows}
    a_off = np.array([off_slices.get(s, {}).get("exact_match") for s in names], dtype=float)
    a_on = np.array([by_slice[s]["online"]["accuracy_bound"] if s in by_slice else np.nan
                     for s in names], dtype=float)
    return {"candidate": ref[0], "version": ref[1], "slices": names,
            "offline_shares": dict(zip(names, w_off.tolist(), strict=True)),
            "online_shares": dict(zip(names, w_on.tolist(), strict=True)),
            "offline_n": float(off_n.sum()), "online_n": float(on_n.sum()),
            "offline_only": _one_side(names, off_n, on_n),
            "online_only": _one_side(names, on_n, off_n),
            "left_out": left_out, "compared": COMPARED,
            "analysis_unit": "prediction" if units is None else "unit",
            "online_units": None if units is None else int(units.counts.shape[0]),
            "chi_square": None if math.isnan(chi2) else chi2,
            "p_value": None if math.isnan(p) else p, "psi": index,
            "decomposition": _decomposition(names, w_off, w_on, a_off, a_on), "note": note,
            "shifted": bool(not math.isnan(p) and p < alpha and note is None
                            and index >= PSI_SHIFT)}


def _over_units(offline: np.ndarray, offline_n: float,
                units: np.ndarray) -> tuple[float, float, str | None]:
    """The Wald test over units in place of Pearson's: statistic, p and why it must not be
    read as a shift, as :func:`evaluation.share_tests.homogeneity` gives them."""
    res = clustered_shift(offline, offline_n, units)
    seen = int(((offline > 0) | (units.sum(axis=0) > 0)).sum())
    if res is None or math.isnan(res.p_value):
        return math.nan, math.nan, untestable(units.shape[0], math.inf if res is None
                                              else res.units, seen, "slices", "sent requests of")
    return res.statistic, res.p_value, too_few_units(units.shape[0], seen)
