"""What evaluation reads about a candidate from the registry: its output type (which metrics
apply) and its offline results, from the newest version of each name (the version the
divergence report has always held online results against)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.output_types import OutputKind
from core.store.models import Candidate


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


def candidate_facts(session: Session, names: Iterable[str]) -> dict[str, CandidateFacts]:
    """The facts of each named candidate's newest version (unknown names are left out)."""
    wanted = sorted(set(names))
    out: dict[str, CandidateFacts] = {}
    if not wanted:
        return out
    rows = session.execute(
        select(Candidate.name, Candidate.pipeline, Candidate.offline_results)
        .where(Candidate.name.in_(wanted))
        .order_by(Candidate.name, Candidate.created_at.desc(), Candidate.id.desc()))
    for name, pipeline, offline in rows:
        if name in out:
            continue
        described = isinstance((pipeline or {}).get("output"), dict)
        out[name] = CandidateFacts(OutputKind.of_pipeline(pipeline), described,
                                   dict(offline or {}))
    return out
