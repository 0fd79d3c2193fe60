"""The enqueue rules people set, per experiment, per candidate or as the default (stored in
``relabel_rules``; the evaluation worker reads them each batch)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.errors import NotFound
from core.relabel import parse_rules, scope_key
from core.store.db import Database, utcnow
from core.store.models import Candidate, Experiment, RelabelRule
from core.store.upsert import insert_ignore


def _check_scope(db: Database, experiment_id: int | None, candidate: str | None) -> str:
    key = scope_key(experiment_id, candidate)
    with db.reading() as s:
        if experiment_id is not None and s.get(Experiment, experiment_id) is None:
            raise NotFound(f"experiment {experiment_id} does not exist")
        if candidate is not None and s.scalars(select(Candidate.id).where(
                Candidate.name == candidate).limit(1)).first() is None:
            raise NotFound(f"candidate {candidate!r} is not registered")
    return key


def _stored(db: Database) -> dict[str, dict[str, Any]]:
    with db.reading() as s:
        return {row.scope: row.rules for row in s.scalars(select(RelabelRule))}


def effective(db: Database, experiment_id: int | None = None,
              candidate: str | None = None) -> dict[str, Any]:
    """The rules that apply to the scope, which stored scope they come from, and the fields
    that scope sets itself (`set_here`; the others follow the default, then the built-in)."""
    key = _check_scope(db, experiment_id, candidate)
    stored = _stored(db)
    default = parse_rules(stored.get("default", {}))
    source = key if key in stored else "default"
    rules = parse_rules(stored[key], default) if key in stored else default
    return {"scope": key, "from": source if source in stored else "built-in",
            "set_here": sorted(stored.get(key, {})), "rules": rules.as_dict()}


def put(db: Database, body: Any, experiment_id: int | None = None,
        candidate: str | None = None) -> dict[str, Any]:
    """Set (part of) a scope's rules; fields left out keep their current values, and those the
    scope never set keep following the default's (see `_own`).

    Read, merge and write are one transaction holding the scope's row: two admins setting
    different fields at once each apply on top of the other. A scope without rules gets an
    empty row first (rules ``{}`` read as the default's), which a concurrent first PUT's row
    leaves as it is (ON CONFLICT DO NOTHING), so neither fails on the primary key."""
    key = _check_scope(db, experiment_id, candidate)
    with db.session() as s:
        insert_ignore(s, RelabelRule.__table__,
                      [{"scope": key, "rules": {}, "updated_at": utcnow()}], ["scope"])
        row = s.scalars(select(RelabelRule).where(RelabelRule.scope == key)
                        .with_for_update()).one()
        default = s.get(RelabelRule, "default") if key != "default" else None
        inherited = parse_rules(default.rules if default else {})
        rules = parse_rules(body, parse_rules(row.rules, inherited))
        row.rules, row.updated_at = _own(row.rules, body, rules.as_dict()), utcnow()
    return {"scope": key, "from": key, "set_here": sorted(row.rules), "rules": rules.as_dict()}


def _own(stored: dict[str, Any], body: dict[str, Any], rules: dict[str, Any]) -> dict[str, Any]:
    """The fields a scope sets itself after a PUT: those it set before and those in `body`, as
    checked (`rules`, the effective result). Only these are stored, so a field it never set
    follows the default (or the built-in value) when that changes later; `quotas` and
    `weights` keep the keys set, not the whole map."""
    own = dict(stored)
    for field in body:
        if field in ("quotas", "weights"):
            own[field] = {**stored.get(field, {}), **{k: rules[field][k] for k in body[field]}}
        else:
            own[field] = rules[field]
    return own
