"""What evaluation reads about a candidate from the registry: its output type (which metrics
apply) and its offline results, from the version an experiment pinned for it (else the newest
version of the name: candidates outside the experiment's arms, experiments from before pins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.output_types import OutputKind
from core.store.models import Candidate, Experiment


@dataclass(frozen=True)
class CandidateFacts:
    kind: OutputKind
    described: bool  # whether the candidate declares its output type (a bundle's manifest)
    offline: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_label(self) -> bool:
        """A label candidate, or an undeclared one (registered by hand, before output types)
        whose offline results give label shares: its answers are classes."""
        if self.described:
            return self.kind.type == "label"
        return bool(self.offline.get("label_shares"))

    @property
    def is_number(self) -> bool:
        return self.described and self.kind.type == "number"


UNKNOWN = CandidateFacts(OutputKind("latex"), False)


def pinned_versions(experiment: Experiment) -> dict[str, str]:
    """The version the experiment runs of each candidate it names (arms first, then shadows;
    for a name pinned twice, the first)."""
    out: dict[str, str] = {}
    for ref in [*(experiment.arms or []), *(experiment.shadows or [])]:
        if ref.get("version") is not None:
            out.setdefault(ref["candidate"], ref["version"])
    return out


def candidate_facts(session: Session, names: Iterable[str],
                    pinned: Mapping[str, str] | None = None) -> dict[str, CandidateFacts]:
    """The facts of each named candidate: of its `pinned` version where that is registered,
    else of its newest version (unknown names are left out)."""
    wanted = sorted(set(names))
    pinned = pinned or {}
    out: dict[str, CandidateFacts] = {}
    if not wanted:
        return out
    rows = session.execute(
        select(Candidate.name, Candidate.version, Candidate.pipeline, Candidate.offline_results)
        .where(Candidate.name.in_(wanted))
        .order_by(Candidate.name, Candidate.created_at.desc(), Candidate.id.desc())).all()
    found = {(name, version) for name, version, _, _ in rows}
    for name, version, pipeline, offline in rows:
        if name in out or ((name, pinned.get(name)) in found and version != pinned[name]):
            continue
        described = isinstance((pipeline or {}).get("output"), dict)
        out[name] = CandidateFacts(OutputKind.of_pipeline(pipeline), described,
                                   dict(offline or {}))
    return out
