"""The candidates an experiment routes to, checked against the registry: each arm and shadow
is pinned to one registered version when the experiment is created, all of them take the same
requests and give answers its primary metric can measure, and each is still active when it
starts. The spec's own fields are checked without the registry, in serving/experiment_spec.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.builtin_metrics import PRIMARY_METRICS, measures
from core.errors import Conflict
from core.store.models import Candidate, Experiment
from core.text import quoted_names
from serving.experiment_spec import fail


def pin_candidates(s: Session, refs: list[dict[str, Any]], primary_metric: str) -> None:
    """Pin every arm and shadow in `refs` to a version (in place) and check that together
    they can serve the experiment and be measured by its primary metric (400 otherwise)."""
    wanted = {ref["candidate"] for ref in refs}
    known = set(s.scalars(select(Candidate.name).where(Candidate.name.in_(wanted))))
    if wanted - known:
        raise fail(f"candidates not registered: {quoted_names(sorted(wanted - known))}; "
                   "see `abvoc candidates list`")
    _pin_versions(s, refs)
    _check_primary(primary_metric, _check_compatible(s, refs))


def check_still_active(s: Session, exp: Experiment) -> None:
    """Each pinned version must still be active when the experiment starts (409 otherwise)."""
    for ref in [*exp.arms, *exp.shadows]:
        retired = s.scalar(select(Candidate.retired_at).where(
            Candidate.name == ref["candidate"], Candidate.version == ref["version"]))
        if retired is not None:
            raise Conflict(f"candidate {ref['candidate']!r} version {ref['version']!r}, pinned by "
                           f"experiment {exp.id}, was retired since it was created; create the "
                           "experiment again to pin an active version")


def _pin_versions(s: Session, refs: list[dict[str, Any]]) -> None:
    """Give each arm and shadow the version it runs for the experiment's life: the one named,
    else the newest active version now. Registering a newer version later changes nothing here."""
    for ref in refs:
        query = select(Candidate.version, Candidate.retired_at).where(
            Candidate.name == ref["candidate"])
        if ref.get("version") is not None:
            row = s.execute(query.where(Candidate.version == ref["version"])).first()
            if row is None or row.retired_at is not None:
                state = "is retired" if row is not None else "is not registered"
                raise fail(f"candidate {ref['candidate']!r} version {ref['version']!r} {state}; "
                           "see `abvoc candidates list`")
            continue
        row = s.execute(query.where(Candidate.retired_at.is_(None))
                        .order_by(Candidate.id.desc()).limit(1)).first()
        if row is None:
            raise fail(f"candidate {ref['candidate']!r} has no active version; register one")
        ref["version"] = row.version


def _check_compatible(s: Session, refs: list[dict[str, Any]]) -> str | None:
    """Every arm and shadow must take the requests the scope gets and answer in one output
    type: a unit routed to an arm whose candidate takes other inputs would fail on every
    request (sticky assignment), unseen by the figures and the guardrails. Returns that output
    type (None: candidates that do not say, LaTeX pipelines)."""
    first: tuple[str, Any] | None = None
    for ref in refs:
        pipeline = s.scalar(select(Candidate.pipeline).where(
            Candidate.name == ref["candidate"], Candidate.version == ref["version"])) or {}
        contract = (pipeline.get("takes"), pipeline.get("inputs"),
                    (pipeline.get("output") or {}).get("type"))
        runs = f"{ref['candidate']} v{ref['version']}"
        label = f"arm {ref['name']} ({runs})" if ref.get("name") else f"shadow {runs}"
        if first is None:
            first = (label, contract)
        elif contract != first[1]:
            what = ("inputs" if contract[:2] != first[1][:2] else "output type")
            raise fail(f"{label} and {first[0]} differ in their {what}: every arm and "
                       "shadow of an experiment must take the same requests and answer in "
                       "the same output type")
    return None if first is None else first[1][2]


def _check_primary(primary: str, output_type: str | None) -> None:
    """A primary metric the arms' answers can never give would keep the decision waiting for
    ever ("no baseline yet")."""
    if not measures(primary, output_type):
        fits = [m for m in PRIMARY_METRICS if measures(m, output_type)]
        raise fail(f"'primary_metric' {primary!r} has nothing to measure in answers of type "
                   f"{output_type or 'latex'!r}, which the arms give; choose one of "
                   f"{quoted_names(fits)}")
