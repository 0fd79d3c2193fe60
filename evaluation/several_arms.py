"""Units seen in more than one arm of an experiment, which the outcome metrics leave out.

A unit moves to another arm when the split changes under it: a canary step or new weights move
the fewest units the change needs (serving/assignment.py), but those few do move. Such a unit
was first served in one arm and then in another, so its outcomes mix both: counted in one arm
(its first, where an outcome names only the unit) or in the other (where an outcome names a
prediction the later arm served), and with ``missing: zero`` also as an exposed zero in its
first arm. Counted as they come, they would credit each arm with some of the other's effect,
so the outcome metrics leave such a unit out of every arm, exposure counts included, and the
results say how many units that was and which share of the experiment's units (experiment
platforms report these as multiple exposures).

What the store shows of a move: each unit's sums per arm (``unit_sums``, one row for every
arm that served it a prediction, whatever the slice), its first arm per slice
(``experiment_units``, which alone holds the units of predictions applied before schema 0021
whose sums were never rebuilt) and the arms its outcomes counted in (``outcome_unit_values``).
So a unit counts as moved as soon as the worker applies its first prediction from a second
arm, whether or not it sent an outcome from there.

The built-in metrics are per prediction and count each in the arm that served it: a move does
not mix them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select, union
from sqlalchemy.orm import Session

from core.store.models import ExperimentUnit, OutcomeUnitValue
from core.store.outcome_models import UnitSums

# Below this share of the experiment's units, leaving them out is a footnote; above it, a move
# of this size (a canary step, a weight change) is worth a look at when it happened.
NOTABLE_SHARE = 0.01


def units_in_several_arms(experiment_id: int) -> Select:
    """The ids of the experiment's units seen in more than one arm."""
    u, t, s = ExperimentUnit, OutcomeUnitValue, UnitSums
    # UNION's distinct pairs, counted per unit: on SQLite 0.37 s for 200,000 units in two
    # arms and three slices, where UNION ALL and MIN(arm) <> MAX(arm) took 0.41 s.
    pairs = union(select(s.unit_id, s.arm).where(s.experiment_id == experiment_id,
                                                 s.shadow.is_(False)),
                  select(u.unit_id, u.arm).where(u.experiment_id == experiment_id),
                  select(t.unit_id, t.arm).where(t.experiment_id == experiment_id)).subquery()
    return select(pairs.c.unit_id).group_by(pairs.c.unit_id).having(func.count() > 1)


def several_arms_figures(session: Session, experiment_id: int, several: int
                         ) -> dict[str, Any]:
    """What the results say of the `several` units seen in more than one arm: how many, their
    share of the experiment's units, and a note where there are any."""
    if not several:
        return {"units": 0, "share": 0.0, "note": None}
    u = ExperimentUnit
    units = session.scalar(select(func.count(u.unit_id.distinct()))
                           .where(u.experiment_id == experiment_id)) or 0
    share = several / max(units, several)
    note = (f"{several:,} unit(s) ({share:.1%} of the experiment's) were served in more than "
            "one arm, as when a canary step or new weights move units: the outcome metrics "
            "leave them out of every arm, so no arm counts another's outcomes")
    if share >= NOTABLE_SHARE:
        note += ("; that many suggests the split changed while units were still arriving, and "
                 "a time window from the change (since=) compares the units that came after it")
    return {"units": several, "share": share, "note": note}
