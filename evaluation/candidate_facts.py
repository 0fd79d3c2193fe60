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
    def compared_as(self) -> str | None:
        """The type the worker held this candidate's answers against their truths by
        (:mod:`core.same_answer`): the declared one, else None, LaTeX tokens, as its untyped
        events were counted; an undeclared label candidate's confusion table must follow it."""
        return self.kind.type if self.described else None

    @property
    def is_number(self) -> bool:
        return self.described and self.kind.type == "number"

    @property
    def output_type(self) -> str | None:
        """What the candidate answers, as far as it is known (None: not said)."""
        if self.described:
            return self.kind.type
        return "label" if self.is_label else None


UNKNOWN = CandidateFacts(OutputKind("latex"), False)


Ref = tuple[str, str | None]
"""A candidate as a report keys it: its name and the version that ran (None: not pinned, an
experiment from before pins; its facts are then the newest version's)."""


def pinned_versions(experiment: Experiment) -> dict[str, str]:
    """The version the experiment runs of each candidate it names (arms first, then shadows;
    for a name pinned twice, the first). Two arms may pin two versions of one name: key by
    :func:`variant_version` wherever that matters."""
    out: dict[str, str] = {}
    for ref in [*(experiment.arms or []), *(experiment.shadows or [])]:
        if ref.get("version") is not None:
            out.setdefault(ref["candidate"], ref["version"])
    return out


def variant_version(experiment: Experiment, arm: str, candidate: str,
                    shadow: bool) -> str | None:
    """The version one variant ran: its own arm's pin (a shadow's: its shadow entry's), so two
    arms running two versions of one name stay two; else (traffic of an arm the experiment no
    longer lists) the name's first pin."""
    refs = experiment.shadows if shadow else experiment.arms
    for ref in refs or []:
        if ref.get("candidate") == candidate and (shadow or ref.get("name") == arm) \
                and ref.get("version") is not None:
            return str(ref["version"])
    return pinned_versions(experiment).get(candidate)


def facts_by_version(session: Session, refs: Iterable[Ref]) -> dict[Ref, CandidateFacts]:
    """The facts of each (name, version): of that version where it is registered, else of the
    name's newest version (unknown names are left out)."""
    refs = list(dict.fromkeys(refs))
    wanted = sorted({name for name, _ in refs})
    out: dict[Ref, CandidateFacts] = {}
    if not wanted:
        return out
    rows = session.execute(
        select(Candidate.name, Candidate.version, Candidate.pipeline, Candidate.offline_results)
        .where(Candidate.name.in_(wanted))
        .order_by(Candidate.name, Candidate.created_at.desc(), Candidate.id.desc())).all()
    newest: dict[str, Any] = {}
    exact: dict[Ref, Any] = {}
    for row in rows:
        newest.setdefault(row.name, row)
        exact[(row.name, row.version)] = row
    for name, version in refs:
        row = exact.get((name, version)) or newest.get(name)
        if row is None:
            continue
        described = isinstance((row.pipeline or {}).get("output"), dict)
        out[(name, version)] = CandidateFacts(OutputKind.of_pipeline(row.pipeline), described,
                                              dict(row.offline_results or {}))
    return out


def candidate_facts(session: Session, names: Iterable[str],
                    pinned: Mapping[str, str] | None = None) -> dict[str, CandidateFacts]:
    """The facts of each named candidate: of its `pinned` version where that is registered,
    else of its newest version (unknown names are left out). One version per name: where an
    experiment runs two, use :func:`facts_by_version`."""
    pinned = pinned or {}
    refs = [(name, pinned.get(name)) for name in sorted(set(names))]
    return {name: f for (name, _), f in facts_by_version(session, refs).items()}


def shown_names(rows: Iterable[Mapping[str, Any]]) -> dict[Ref, str]:
    """How a report names the (candidate, version) of each row: the name alone, or ``name vX``
    where the report holds two versions of that name, so a reader can tell them apart while a
    report with one version per name reads as it always did."""
    refs = list(dict.fromkeys((r["candidate"], r.get("version")) for r in rows))
    versions: dict[str, int] = {}
    for name, _ in refs:
        versions[name] = versions.get(name, 0) + 1
    return {(name, version): f"{name} v{version}"
            if versions[name] > 1 and version is not None else name
            for name, version in refs}
