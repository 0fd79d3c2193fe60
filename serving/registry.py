"""The model registry: candidates with their pipeline, artifacts, backend, requirements and
offline results by slice, kept in the SQL store.

Requirements are data so that online results can be held against them: p99 processing time,
target accuracy, target QPS, model size, serving method and hardware. Two are also gates the
offline test holds (`offline_checks`): the model size limit and the accuracy floor, the lowest
offline accuracy (exact match) a candidate may show, e.g. a quantized one against its float one.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from core.errors import AbvocError, ConfigError, Conflict, NotFound, refuse_unknown
from core.masking import hide_userinfo
from core.store import Database, utcnow
from core.store.models import Candidate
from core.text import shown
from core.times import utc_iso

REQUIREMENT_KEYS: dict[str, type | tuple[type, ...]] = {
    "p99_ms": (int, float),
    "target_accuracy": (int, float),
    "target_recall": (int, float),  # a detector's (e.g. formula extraction's) share found
    "target_qps": (int, float),
    "model_size_mb": (int, float),  # the most the model's files may weigh, in MiB
    "accuracy_floor": (int, float),  # the least offline exact match (accuracy) it may show
    "serving_method": str,
    "hardware": str,
}
BACKENDS = ("torch", "onnxruntime", "tensorrt")
# A remote candidate is served by an Open Inference Protocol endpoint the team runs.
CANDIDATE_BACKENDS = (*BACKENDS, "remote")


def validate_requirements(requirements: dict[str, Any]) -> dict[str, Any]:
    """The requirements if every key is known and typed right; an error that says what to fix."""
    refuse_unknown(requirements, REQUIREMENT_KEYS, noun="requirement(s)", known="use:")
    for key, kind in REQUIREMENT_KEYS.items():
        value = requirements.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            raise AbvocError(f"requirement {key!r} must be a {_kind_name(kind)}, got {value!r}")
        # NaN compares false with everything, so it is refused by what it is not.
        if kind is not str and not (math.isfinite(value) and value > 0):
            raise AbvocError(f"requirement {key!r} must be positive and finite, got {value!r}")
    for share in ("target_accuracy", "target_recall", "accuracy_floor"):
        value = requirements.get(share)
        if value is not None and value > 1:
            raise AbvocError(f"requirement {share!r} is a share between 0 and 1")
    return dict(requirements)


def offline_checks(requirements: dict[str, Any],
                   results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each requirement the offline test can hold, as {requirement, limit, measured, passed}:
    the model size limit (the test's measured size) and the accuracy floor (overall exact
    match, or accuracy for a label output). `passed` is None where the test did not measure
    the figure (e.g. a bundle whose stages name no model file): neither pass nor fail."""
    overall = results.get("overall") or {}
    size = (results.get("model") or {}).get("size_mb", overall.get("model_size_mb"))
    accuracy = overall.get("exact_match", overall.get("accuracy"))
    measured = {"model_size_mb": size, "accuracy_floor": accuracy}
    checks = []
    for key, limit in requirements.items():
        if key not in measured or limit is None:
            continue
        value = measured[key]
        passed = None if value is None else (value <= limit if key == "model_size_mb"
                                             else value >= limit)
        checks.append({"requirement": key, "limit": limit, "measured": value, "passed": passed})
    return checks


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "number" if isinstance(kind, tuple) else "string"


@dataclass
class CandidateInfo:
    name: str
    version: str
    description: str
    pipeline: dict[str, Any]
    backend: str
    artifacts: str
    requirements: dict[str, Any]
    offline_results: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None = None

    @classmethod
    def of(cls, row: Candidate) -> CandidateInfo:
        return cls(row.name, row.version, row.description, dict(row.pipeline or {}), row.backend,
                   row.artifacts, dict(row.requirements or {}), dict(row.offline_results or {}),
                   row.created_at, row.updated_at, row.retired_at)

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    def to_dict(self, *, shares: bool = True) -> dict[str, Any]:
        """The candidate as the API and the CLI show it: times with their UTC offset (SQLite
        hands them back naive), a remote's URL without its user or password. Without `shares`
        (lists), the offline results leave out their per-class share maps, which one candidate
        of many classes made megabytes long in every list."""
        out = asdict(self)
        if not shares:
            out["offline_results"] = _without_shares(out["offline_results"])
        out["created_at"] = utc_iso(self.created_at)
        out["updated_at"] = utc_iso(self.updated_at)
        out["retired_at"] = utc_iso(self.retired_at)
        remote = out["pipeline"].get("remote")
        if isinstance(remote, dict) and isinstance(remote.get("url"), str):
            out["pipeline"]["remote"] = {**remote, "url": hide_userinfo(remote["url"])}
        return out


def _without_shares(results: dict[str, Any]) -> dict[str, Any]:
    """Offline results without their `*_shares` maps, at the top, in the overall row and in
    each slice's row."""
    def strip(row: Any) -> Any:
        return ({k: v for k, v in row.items() if not k.endswith("_shares")}
                if isinstance(row, dict) else row)
    out = strip(results)
    if isinstance(out.get("overall"), dict):
        out["overall"] = strip(out["overall"])
    if isinstance(out.get("slices"), dict):
        out["slices"] = {name: strip(row) for name, row in out["slices"].items()}
    return out


class Registry:
    """Candidates in the SQL store; one row per (name, version)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, name: str, version: str, *, description: str = "",
                 pipeline: dict[str, Any] | None = None, backend: str = "torch",
                 artifacts: str = "", requirements: dict[str, Any] | None = None,
                 create_only: bool = False) -> CandidateInfo:
        """Create the candidate or update it in place (offline results are kept); with
        `create_only`, an existing (name, version) is a Conflict instead."""
        if not name or not version:
            raise AbvocError("a candidate needs a name and a version")
        if backend not in CANDIDATE_BACKENDS:
            raise AbvocError(f"backend {backend!r} is unknown; use one of {CANDIDATE_BACKENDS}")
        reqs = validate_requirements(requirements or {})
        with self._session() as s:
            row = self._find(s, name, version)
            if row is not None and create_only:
                raise Conflict(f"candidate {name!r} version {version!r} is already registered; "
                               "give the changed bundle a new version")
            now = utcnow()
            if row is None:
                row = Candidate(name=name, version=version, created_at=now, offline_results={})
                s.add(row)
            row.description = description
            row.pipeline = pipeline or {}
            row.backend = backend
            row.artifacts = artifacts
            row.requirements = reqs
            row.updated_at = now
            s.flush()
            return CandidateInfo.of(row)

    def exists(self, name: str, version: str) -> bool:
        with self._reading() as s:
            return self._find(s, name, version) is not None

    def get(self, name: str, version: str | None = None) -> CandidateInfo:
        """One candidate; when no version is named, the most recently created one not retired
        (a named version is found even when retired: experiments keep theirs)."""
        with self._reading() as s:
            row = self._find(s, name, version, active=version is None)
            if row is None and version is None and self._find(s, name, None) is not None:
                raise NotFound(f"candidate {name!r} is retired (every version of it); see "
                               f"`abvoc candidates list --all` (GET /v1/candidates?all=1) for "
                               "retired versions, and name one to show it")
            if row is None:
                what = shown(name) + (f" version {shown(version)}" if version is not None else "")
                raise NotFound(f"candidate {what} is not registered; see `abvoc candidates list`")
            return CandidateInfo.of(row)

    def list(self, *, include_retired: bool = False) -> list[CandidateInfo]:
        with self._reading() as s:
            query = select(Candidate).order_by(Candidate.name, Candidate.id)
            if not include_retired:
                query = query.where(Candidate.retired_at.is_(None))
            return [CandidateInfo.of(r) for r in s.scalars(query).all()]

    def retire(self, name: str, version: str | None = None) -> list[CandidateInfo]:
        """Retire one version, or every active version of `name`; rows are kept. Returns the
        versions this call retired: a conditional UPDATE, so of concurrent callers exactly
        one retires each version (the others get it as a later call would, already retired)
        and its `retired_at` stays the first one."""
        with self._session() as s:
            query = select(Candidate.id).where(Candidate.name == name)
            if version is not None:
                query = query.where(Candidate.version == version)
            ids = list(s.scalars(query))
            if not ids:
                what = shown(name) + (f" version {shown(version)}" if version is not None else "")
                raise NotFound(f"candidate {what} is not registered; see `abvoc candidates list`")
            now = utcnow()
            changed = list(s.scalars(
                update(Candidate)
                .where(Candidate.id.in_(ids), Candidate.retired_at.is_(None))
                .values(retired_at=now, updated_at=now).returning(Candidate.id),
                execution_options={"synchronize_session": False}))
            rows = s.scalars(select(Candidate).where(Candidate.id.in_(changed))
                             .order_by(Candidate.id)) if changed else []
            return [CandidateInfo.of(r) for r in rows]

    def set_offline_results(self, name: str, version: str,
                            results: dict[str, Any]) -> CandidateInfo:
        with self._session() as s:
            row = self._find(s, name, version)
            if row is None:
                raise NotFound(f"candidate {name!r} version {version!r} is not registered")
            row.offline_results = results
            row.updated_at = utcnow()
            s.flush()
            return CandidateInfo.of(row)

    def set_backend(self, name: str, version: str, backend: str) -> CandidateInfo:
        if backend not in BACKENDS:
            raise AbvocError(f"backend {backend!r} is unknown; use one of {BACKENDS}")
        with self._session() as s:
            row = self._find(s, name, version)
            if row is None:
                raise NotFound(f"candidate {name!r} version {version!r} is not registered")
            row.backend = backend
            row.updated_at = utcnow()
            s.flush()
            return CandidateInfo.of(row)

    @staticmethod
    def _find(s, name: str, version: str | None,  # noqa: ANN001
              active: bool = False) -> Candidate | None:
        query = select(Candidate).where(Candidate.name == name)
        if version is not None:
            query = query.where(Candidate.version == version)
        if active:
            query = query.where(Candidate.retired_at.is_(None))
        return s.scalars(query.order_by(Candidate.id.desc()).limit(1)).first()

    def _session(self):  # noqa: ANN202 - a context manager
        return _TableGuard(self.db.session())

    def _reading(self):  # noqa: ANN202 - a context manager
        """A read-only unit of work: the serving path's lookups never queue behind a writer."""
        return _TableGuard(self.db.reading())


class _TableGuard:
    """A unit of work that turns a missing table into an error that says what to run; any other
    store error goes on as it is (a store that is restarting is the app's 503, not a 500)."""

    def __init__(self, unit: AbstractContextManager[Session]) -> None:
        self._cm = unit

    def __enter__(self):  # noqa: ANN204
        return self._cm.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:  # noqa: ANN001
        try:
            handled = self._cm.__exit__(exc_type, exc, tb)
        except (OperationalError, ProgrammingError) as err:
            if _table_missing(err):
                raise ConfigError(_MIGRATE) from err
            raise
        if isinstance(exc, OperationalError | ProgrammingError) and _table_missing(exc):
            raise ConfigError(_MIGRATE) from exc
        return bool(handled)


def _table_missing(err: Exception) -> bool:
    text = str(err).lower()
    return "candidates" in text and ("no such table" in text or "does not exist" in text)


_MIGRATE = ("the candidates table does not exist: apply the database migrations "
            "(`abvoc db upgrade`) first")
