"""One prediction's verified label, read from its input's own items, is the label the rule over
every input gives it (`typed_labels`): twins, items from before items kept their input, labels
that disagree across queues, two output types on one input, items not done, an imported image's
item typed by its candidate."""

from __future__ import annotations

from core.store.db import Database, utcnow
from core.store.models import Candidate, Prediction, RelabelItem
from core.verified_labels import UNTYPED, typed_labels, verified_label

T0 = utcnow()
PREDICTIONS = [  # id, candidate, input, output type
    ("twin-a", "pets", "in1", "label"), ("twin-b", "pets", "in1", "label"),
    ("legacy", "pets", "in2", "label"), ("legacy-twin", "pets", "in2", "label"),
    ("split-a", "pets", "in3", "label"), ("split-b", "pets", "in3", "label"),
    ("typed-l", "pets", "in4", "label"), ("typed-n", "counter", "in4", "number"),
    ("open", "pets", "in5", "label"), ("untyped", "ocr", "in6", None),
    ("alone", "pets", "in7", "label"), ("imported-twin", "pets", "in8", "label"),
]
ITEMS = [  # queue, prediction id, the item's input (None: from before items kept one), status,
    # label
    ("verification", "twin-a", "in1", "done", "cat"),
    ("verification", "legacy", None, "done", "dog"),
    ("verification", "split-a", "in3", "done", "cat"),
    ("offline-test", "split-b", "in3", "done", "dog"),
    ("verification", "typed-l", "in4", "done", "dog"),
    ("offline-test", "typed-n", "in4", "done", "4.0"),
    ("verification", "open", "in5", "open", None),
    ("verification", "untyped", "in6", "done", "x^2"),
    ("imports", "never-stored", "in8", "done", "cat"),
]


def test_one_predictions_label_is_the_rule_over_every_input(db: Database) -> None:
    with db.session() as s:
        s.add(Candidate(id=1, name="pets", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "label", "classes": ["cat", "dog"]}}))
        s.add(Candidate(id=2, name="counter", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "number"}}))
        for pid, candidate, input_hash, kind in PREDICTIONS:
            s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate=candidate,
                             input_hash=input_hash, output="?", output_type=kind,
                             created_at=T0, slice="all"))
        for queue, pid, input_hash, status, label in ITEMS:
            s.add(RelabelItem(queue=queue, prediction_id=pid, input_hash=input_hash,
                              candidate="pets", status=status, label=label, reasons=["x"],
                              created_at=T0))
    with db.reading() as s:
        every = typed_labels(s)
        got = {pid: verified_label(s, pid) for pid, *_ in PREDICTIONS}
        expected = {pid: every.get((h, kind or UNTYPED)) for pid, _, h, kind in PREDICTIONS}
        assert got == expected
        assert got == {"twin-a": "cat", "twin-b": "cat", "legacy": "dog", "legacy-twin": "dog",
                       "split-a": None, "split-b": None, "typed-l": "dog", "typed-n": "4.0",
                       "open": None, "untyped": "x^2", "alone": None, "imported-twin": "cat"}
        assert verified_label(s, "no-such-prediction") is None
