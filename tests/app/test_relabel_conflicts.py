"""An input whose verified labels disagree (an audit item and a verification item of the same
image labeled differently) is a conflict under one rule: left out of the dataset export and of
the audited accuracy, counted as ``conflicts`` in both, and named by `abvoc relabel export` as a
warning line; an input labeled alike twice is still written once, as a duplicate."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from app.cli import main
from core.settings import Settings
from core.store import Database
from core.store.models import Prediction, RelabelItem
from evaluation.label_accuracy import online_accuracy
from evaluation.online import Variant
from tests.evaluation.helpers import T0
from tests.feedback.test_relabel_export import with_inputs

LABELS = {"offline-test-p0": "cat", "offline-test-p1": "dog", "offline-test-p2": "owl"}
SECOND = {"h-offline-test-p0": "dog",  # disagrees with the audit: a conflict
          "h-offline-test-p1": "dog"}  # agrees: a duplicate


def _seed(db: Database) -> None:
    """Three audited inputs, and a verification item of a second request of two of them."""
    with_inputs(db, 3, queue="offline-test")
    with db.session() as s:
        for item in s.scalars(select(RelabelItem)):
            item.status, item.label, item.annotator = "done", LABELS[item.prediction_id], "ann"
            item.labeled_at, item.reasons = T0, ["audit"]
        for n, (digest, label) in enumerate(SECOND.items()):
            pid = f"again-{n}"
            s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate="pets",
                             input_hash=digest, output="cat", output_type="label",
                             created_at=T0, slice="all", arm="control", experiment_id=1,
                             unit_id="u-2"))
            s.add(RelabelItem(queue="verification", prediction_id=pid, input_hash=digest,
                              candidate="pets", experiment_id=1, slice="all",
                              reasons=["correction"], status="done", label=label,
                              annotator="bob", created_at=T0, labeled_at=T0))


def test_conflicting_labels_are_left_out_of_export_and_accuracy(
        cli: CliRunner, settings: Settings, tmp_path: Path) -> None:
    with Database(settings.database_url) as db:
        _seed(db)
        with db.reading() as s:
            accuracy = online_accuracy(s, 1, [Variant("control", "pets", False)], {}, {})
    assert accuracy["conflicts"] == 1
    labeled = accuracy["variants"]["control"]["slices"]["all"]["labeled"]
    assert labeled["n"] == 3  # p1's two requests (their labels agree) and p2; p0's none

    shown = cli.invoke(main, ["relabel", "export", "pets", "--out", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "warning: 1 conflicting inputs left out" in shown.stdout.splitlines()
    again = cli.invoke(main, ["relabel", "export", "pets", "--out", str(tmp_path), "--json"])
    out = json.loads(again.stdout)
    assert (out["conflicts"], out["examples"], out["duplicates"]) == (1, 2, 1)
    manifest = Path(out["path"]) / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(line["provenance"]["input_hash"] for line in lines) == [
        "h-offline-test-p1", "h-offline-test-p2"]
    assert {line["label"] for line in lines} == {"dog", "owl"}
