"""`abvoc relabel rules|queues|ls-export|ls-import` on SQLite and PostgreSQL: thin commands over
the feedback functions, refusals as one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from app.cli import main
from core.settings import Settings
from core.store import Database
from core.store.models import RelabelItem
from feedback import annotation, relabel_rules
from tests.evaluation.helpers import apply, prediction
from tests.feedback.test_relabel_export import with_inputs
from tests.support.kept_inputs import keep_input


def test_rules_queues_and_label_studio(cli: CliRunner, settings: Settings,
                                       tmp_path: Path) -> None:
    changed = cli.invoke(main, ["relabel", "rules", "--set", '{"audit_rate": 0.05}', "--json"])
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["rules"]["audit_rate"] == 0.05
    shown = json.loads(cli.invoke(main, ["relabel", "rules", "--json"]).stdout)
    assert shown["from"] == "default" and shown["rules"]["audit_rate"] == 0.05
    # Without --json, the rules for people (--json switched nothing before).
    text = cli.invoke(main, ["relabel", "rules"]).stdout
    assert text.startswith("rules of default (from default):") and "* audit_rate: 0.05" in text
    assert "  second_annotator_share: " in text and "(* set for this scope" in text
    bad = cli.invoke(main, ["relabel", "rules", "--set", '{"audit_rate": 5}'])
    assert bad.exit_code == 2 and "'audit_rate' must be a number from 0 to 1" in bad.output
    with Database(settings.database_url) as db:
        ids = with_inputs(db, 2)
        item = annotation.claim(db, "ann")
        annotation.submit(db, item["id"], "ann", "owl")
    queues = json.loads(cli.invoke(main, ["relabel", "queues", "--json"]).stdout)
    assert queues["queues"][0]["done"] == 1 and queues["queues"][0]["open"] == 1
    out = cli.invoke(main, ["relabel", "ls-export", str(tmp_path / "ls"), "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["tasks"] == 2
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    tasks[1]["annotations"] = [{"completed_by": 2, "result": [{"value": {"choices": ["dog"]}}]}]
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(tasks))
    imported = cli.invoke(main, ["relabel", "ls-import", str(tmp_path / "ls"), "--json"])
    assert imported.exit_code == 0, imported.output
    counts = json.loads(imported.stdout)
    assert (counts["tasks"], counts["labels"], counts["new_items"]) == (2, 1, 0)
    with Database(settings.database_url) as db:
        assert annotation.show(db, ids[1])["label"] == "dog"
    escape = cli.invoke(main, ["relabel", "ls-import", str(tmp_path / "ls"), "--tasks",
                               "../elsewhere.json"])
    assert escape.exit_code == 2 and "import folder" in escape.output


def test_an_imported_label_goes_to_the_blamed_stages_queue(cli: CliRunner, settings: Settings,
                                                           tmp_path: Path) -> None:
    """A label through the API or the annotation page also sends a staged answer's label to the
    blamed stage's dataset; one from `ls-import` finished the item and routed nothing."""
    stages = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
              "recognizer": {"classes": ["x", "2"]},
              "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}
    with Database(settings.database_url) as db:
        relabel_rules.put(db, {"audit_rate": 1.0, "low_confidence_below": None,
                               "divergent_slice_rate": 0.0, "second_annotator_share": 0.0})
        apply(db, [prediction("o3", output="x^{2}", stages=stages)])
        with db.session() as s:  # served, so kept: an item without its input is never offered
            keep_input(s, "o3", "o3"[:16], kind="image")
            (item_id,) = s.scalars(select(RelabelItem.id)).all()
    said = {"from_name": "label", "to_name": "input", "type": "textarea",
            "value": {"text": ["y^{2}"]}}
    tasks = [{"data": {"abvoc_item_id": item_id},
              "annotations": [{"completed_by": "zed", "result": [said]}]}]
    (tmp_path / "ls").mkdir()
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(tasks))
    imported = cli.invoke(main, ["relabel", "ls-import", str(tmp_path / "ls")])
    assert imported.exit_code == 0, imported.output
    assert "1 labels also went to their blamed stage's queue" in imported.output
    with Database(settings.database_url) as db, db.reading() as s:
        routed = s.scalars(select(RelabelItem)
                           .where(RelabelItem.queue == "stage:recognizer")).one()
        assert (routed.status, routed.label) == ("done", "y^{2}")
        assert routed.annotator == "labelstudio:zed"
