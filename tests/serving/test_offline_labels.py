"""The offline test's manifest check refuses examples that are not labeled (null; for LaTeX
also empty or blank, since no formula is empty) and LaTeX labels abvoc's own validator rejects,
naming the line, before the model runs. Empty text is a text label: the input holds no text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.bundles.manifest import Manifest, parse_manifest
from serving.bundles.offline import read_dataset
from serving.bundles.offline_metrics import OfflineError, summarize


def _manifest(output: dict[str, object]) -> Manifest:
    return parse_manifest({
        "name": "reader", "version": "1", "backend": "onnxruntime",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "output": output, "stages": [{"name": "m", "kind": "onnx", "path": "m.onnx"}]})


def _dataset(tmp_path: Path, *labels: object) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"inputs": {"x": [1.0, 2.0]}, "label": label}) + "\n"
                            for label in labels))
    return path


@pytest.mark.parametrize(("kind", "label"), [
    ("latex", None), ("latex", ""), ("latex", "   "), ("latex", "\t\n"), ("text", None)])
def test_unlabeled_examples_are_refused(tmp_path: Path, kind: str, label: object) -> None:
    path = _dataset(tmp_path, "x^{2}", label)
    with pytest.raises(OfflineError, match=r"d\.jsonl line 2: the example is not labeled .*"
                                           "label it first"):
        read_dataset(path, _manifest({"type": kind}))


@pytest.mark.parametrize("label", ["", "   ", "\t\n"])
def test_empty_text_is_a_text_label(tmp_path: Path, label: str) -> None:
    """An input with no text in it (a blank crop) has the empty text as its truth; a candidate
    that answers nothing there is right, one that reads words into it is wrong."""
    path = _dataset(tmp_path, "the cat", label)
    examples = read_dataset(path, _manifest({"type": "text"}))
    assert [e.label for e in examples] == ["the cat", label]
    output = _manifest({"type": "text"}).output
    row = summarize(output, ["the cat", label, label], ["the cat", "", "a cat"])
    assert row["exact_match"] == pytest.approx(2 / 3, abs=1e-4)  # rounded to 4 places
    assert row["token_edit_distance"] == pytest.approx(1 / 3, abs=1e-4)  # 0, 0 and 1


@pytest.mark.parametrize("label", ["x^{", "x_", "x}", "\\nosuchcommand{x}"])
def test_malformed_latex_labels_are_refused(tmp_path: Path, label: str) -> None:
    path = _dataset(tmp_path, "x^{2}", label)
    with pytest.raises(OfflineError, match=r"d\.jsonl line 2: label .* is not valid LaTeX"):
        read_dataset(path, _manifest({"type": "latex"}))
    # A text candidate holds any non-blank string.
    assert read_dataset(path, _manifest({"type": "text"}))[1].label == label


def test_null_labels_of_other_kinds_are_refused(tmp_path: Path) -> None:
    path = _dataset(tmp_path, None)
    for output in ({"type": "number"}, {"type": "label", "classes": ["a", "b"]}):
        with pytest.raises(OfflineError, match="line 1: the example is not labeled"):
            read_dataset(path, _manifest(output))
    assert read_dataset(_dataset(tmp_path, "x^{2}", "\\frac{1}{2}"),
                        _manifest({"type": "latex"}))[1].label == "\\frac{1}{2}"


@pytest.mark.parametrize("value", ["1e309", "-1e309", "NaN", "Infinity"])
def test_inputs_that_are_not_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    """As the API refuses them in a JSON body (Python's parser reads 1e309 as infinity)."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"inputs": {"x": [1.0, 2.0]}, "label": "a"}\n'
                    f'{{"inputs": {{"x": [1.0, {value}]}}, "label": "a"}}\n')
    with pytest.raises(OfflineError, match=r"line 2: input 'x' holds a number that is not finite"):
        read_dataset(path, _manifest({"type": "text"}))


def test_a_file_numpy_cannot_read_safely_is_refused_in_plain_words(tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_text("not numbers")
    path = tmp_path / "d.jsonl"
    path.write_text('{"inputs": {"x": "x.npy"}, "label": "a"}\n')
    with pytest.raises(OfflineError) as refused:
        read_dataset(path, _manifest({"type": "text"}))
    assert "'x.npy' is not a .npy file of numbers" in refused.value.message
    assert "allow_pickle" not in refused.value.message



BIG = 100_000
LONG = 5_000


@pytest.mark.parametrize(("output", "line", "words", "size"), [
    ({"type": "label", "classes": ["a", "b"]}, {"label": ["a"] * BIG},
     "is not one of the candidate's classes 'a', 'b'", f"({BIG} items)"),
    ({"type": "label", "classes": [f"c{i}" for i in range(BIG)]}, {"label": "z" * LONG},
     "is not one of the candidate's classes 'c0', 'c1', ", f"({LONG} characters)"),
    ({"type": "number"}, {"label": "9" * LONG}, "label must be a finite number, got '999",
     f"({LONG} characters)"),
    ({"type": "json", "schema": {"type": "object", "properties": {"y": {"type": "number"}}}},
     {"label": {"y": "z" * LONG}}, 'does not match the output schema at /y: "zzz',
     'zzz" is not of type "number" ('),
    ({"type": "text"}, {"label": "a", "slice": "s" * LONG}, "'slice' must be a name of 1 to 100",
     f"({LONG} characters)"),
    ({"type": "text"}, {"label": "a", "inputs": {"x": [1.0, 2.0], **{f"k{i}": 0 for i in
                                                                      range(BIG)}}},
     "'inputs' must name the inputs 'x', got ['k0', 'k1', ", f"({BIG + 1} items)"),
], ids=["label-list", "many-classes", "number", "json", "slice", "inputs"])
def test_errors_show_a_shortened_value_and_its_size(tmp_path: Path, output: dict[str, object],
                                                    line: dict[str, object], words: str,
                                                    size: str) -> None:
    """A 100,000-item label list came back whole: a 1 MB error line (the exploratory pass).
    The message keeps what to fix, the start of the value and its size."""
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"inputs": {"x": [1.0, 2.0]}, **line}) + "\n")
    with pytest.raises(OfflineError) as refused:
        read_dataset(path, _manifest(output))
    message = refused.value.message
    assert message.startswith("d.jsonl line 1: ") and words in message, message[:500]
    assert size in message and len(message) < 700, message[:500]


@pytest.mark.parametrize("label", [1e300, -(2.0**54)])
def test_a_number_label_past_two_to_the_53_is_refused_as_online(tmp_path: Path,
                                                                label: float) -> None:
    """Its squared error overflowed: RMSE stored as null, MAE 5e+299."""
    with pytest.raises(OfflineError, match=r"d\.jsonl line 2: label .* is out of range: a "
                                           r"number label is at most 2\^53"):
        read_dataset(_dataset(tmp_path, 1.0, label), _manifest({"type": "number"}))
