"""A scope's relabel rules keep only the fields set for it: the others follow the default (and
the default's unset ones the built-in values) when those change later, for the API's view and
for the worker alike."""

from __future__ import annotations

from core.relabel import RelabelRules
from core.store import Database
from evaluation.relabel_enqueue import load_rules
from feedback.relabel_rules import effective, put
from serving.registry import Registry

BUILT_IN = RelabelRules().as_dict()


def test_a_scope_follows_the_default_in_the_fields_it_never_set(db: Database) -> None:
    Registry(db).register("pets", "1")
    put(db, {"audit_rate": 0.1})
    answered = put(db, {"second_annotator_share": 0.5, "quotas": {"training": 7}},
                   candidate="pets")
    assert answered["set_here"] == ["quotas", "second_annotator_share"]
    put(db, {"audit_rate": 0.3, "quotas": {"offline-test": 9}})  # the default changes later
    shown = effective(db, candidate="pets")
    assert shown["from"] == "candidate:pets"
    assert shown["set_here"] == ["quotas", "second_annotator_share"]
    rules = shown["rules"]
    assert (rules["audit_rate"], rules["second_annotator_share"]) == (0.3, 0.5)
    assert rules["quotas"] == {**BUILT_IN["quotas"], "training": 7, "offline-test": 9}
    assert effective(db)["set_here"] == ["audit_rate", "quotas"]
    with db.reading() as s:
        worker = load_rules(s)(None, "pets")
    assert worker.as_dict() == rules
    # A second PUT on the scope adds to what it set; a field set there stays its own.
    put(db, {"audit_rate": 0.2}, candidate="pets")
    put(db, {"audit_rate": 0.4, "second_annotator_share": 0.9})
    rules = effective(db, candidate="pets")["rules"]
    assert (rules["audit_rate"], rules["second_annotator_share"]) == (0.2, 0.5)
