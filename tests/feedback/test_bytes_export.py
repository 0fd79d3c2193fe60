"""A BYTES input of several values (a JSON candidate's input declared [1, 3], which serving
takes) exports every value, one file each in row-major order, with the shape to put them back
in, and the offline test reads the line back as the tensor that was served; one value stays one
file. The export kept only the first value: b"second" and b"third" were lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.store.db import Database, utcnow
from core.store.models import Candidate, Prediction, RelabelItem
from core.v2_binary import KEPT, SIZE, pack_bytes, pack_kept
from feedback.export import export_snapshot
from serving.bundles.manifest import Manifest, parse_manifest
from serving.bundles.offline import read_dataset
from serving.bundles.offline_metrics import OfflineError
from tests.support.kept_inputs import keep_input

T0 = utcnow()
VALUES = {"words": ([1, 3], [b"first", b"second", b"third"]),
          "tag": ([1], [b"\xff\x00raw"]),
          "words-0": ([1], [b"a name like a value's file"])}


def _kept() -> bytes:
    """The item's input in the form serving keeps a V2 request's tensors in."""
    tensors = []
    for name, (shape, values) in VALUES.items():
        raw = pack_bytes(values)
        tensors.append(({"name": name, "shape": shape, "datatype": "BYTES",
                         "parameters": {SIZE: len(raw)}}, raw))
    return pack_kept(tensors)


def _manifest() -> Manifest:
    """A JSON candidate taking the three inputs, as its bundle would declare them."""
    return parse_manifest({
        "name": "reader", "version": "1", "backend": "onnxruntime",
        "inputs": [{"name": n, "datatype": "BYTES", "shape": s} for n, (s, _) in VALUES.items()],
        "output": {"type": "json", "schema": {"type": "string"}},
        "stages": [{"name": "m", "kind": "onnx", "path": "m.onnx"}]})


def _done_item(db: Database) -> None:
    with db.session() as s:
        s.add(Candidate(name="reader", version="1", created_at=T0, updated_at=T0,
                        pipeline={"takes": "tensors", "output": {"type": "json"}}))
        s.add(Prediction(prediction_id="p1", event_id="e-p1", candidate="reader",
                         input_hash="h-p1", output='"x"', output_type="json", created_at=T0,
                         slice="all"))
        keep_input(s, "p1", "h-p1", kind=KEPT, data=_kept())
        s.add(RelabelItem(queue="training", prediction_id="p1", input_hash="h-p1",
                          candidate="reader", slice="all", reasons=["audit"], priority=1.0,
                          status="done", label='"y"', labeled_at=T0, labels_needed=1,
                          created_at=T0))


def test_every_value_of_a_bytes_input_is_exported(db: Database, tmp_path: Path) -> None:
    _done_item(db)
    out = export_snapshot(db, tmp_path, "bytes")
    folder = Path(out["path"])
    (line,) = [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]
    words, tag, alike = (line["inputs"][n] for n in ("words", "tag", "words-0"))
    assert words["shape"] == [1, 3] and set(words) == {"files", "shape"}
    assert [(folder / f).read_bytes() for f in words["files"]] == VALUES["words"][1]
    assert [f.rsplit("-", 1)[1] for f in words["files"]] == ["0.bin", "1.bin", "2.bin"]
    assert set(tag) == {"file"} and tag["file"].endswith("-tag.bin")  # one value: as before
    assert (folder / tag["file"]).read_bytes() == b"\xff\x00raw"
    # "words-0" would be named as words' first value: it gets its name's digest instead.
    assert (folder / alike["file"]).read_bytes() == VALUES["words-0"][1][0]
    assert alike["file"] not in words["files"]
    assert len(list((folder / "files").iterdir())) == 5

    (example,) = read_dataset(folder / "manifest.jsonl", _manifest())
    for name, (shape, values) in VALUES.items():
        got = example.inputs[name]
        assert got.shape == tuple(shape) and list(got.ravel()) == values, name
    assert line["label"] == "y"


def test_a_files_input_must_hold_as_many_files_as_its_shape(db: Database,
                                                            tmp_path: Path) -> None:
    _done_item(db)
    folder = Path(export_snapshot(db, tmp_path, "bytes")["path"])
    line = json.loads((folder / "manifest.jsonl").read_text())
    line["inputs"]["words"]["files"].pop()
    (folder / "short.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(OfflineError, match=r"short\.jsonl line 1: input 'words': .*shape "
                                           r"\[1, 3\] holds 3 values, 2 files are given"):
        read_dataset(folder / "short.jsonl", _manifest())
