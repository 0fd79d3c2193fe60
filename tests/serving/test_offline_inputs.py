"""What a team's offline files may hold, checked before anything is allocated or run: integers a
float cannot hold (the checks' `math.isfinite` would overflow), `.npy` headers that claim more
than the file holds, slice names with control characters; and a `json` answer matched against
its label by the rule the online metrics use, so 2 and 2.0 agree on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from core.events import value_text
from serving.bundles import register_bundle
from serving.bundles.manifest import Manifest, parse_manifest
from serving.bundles.offline import import_results, offline_test, read_dataset
from serving.bundles.offline_labels import stored_answer, truth
from serving.bundles.offline_metrics import OfflineError
from serving.registry import Registry

HUGE = 10**400  # 401 digits: float() of it overflows


def _manifest(output: dict[str, object], datatype: str = "FP32") -> Manifest:
    return parse_manifest({
        "name": "reader", "version": "1", "backend": "onnxruntime",
        "inputs": [{"name": "x", "datatype": datatype, "shape": [-1, 2]}],
        "output": output, "stages": [{"name": "m", "kind": "onnx", "path": "m.onnx"}]})


def _lines(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


GOOD = {"inputs": {"x": [1.0, 2.0]}, "label": 3}
JSON = {"type": "json", "schema": {}}


# --- integers past 2^53 -------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "place"), [
    ({**GOOD, "label": HUGE}, "'label'"),
    ({**GOOD, "label": -(2**53 + 1)}, "'label'"),
    ({**GOOD, "label": {"sum": [1, HUGE]}}, r"label\['sum'\]\[1\]"),
    ({**GOOD, "slice": HUGE}, "'slice'"),
])
def test_integers_past_2_53_are_refused_naming_the_place(tmp_path: Path, line: dict,
                                                         place: str) -> None:
    path = _lines(tmp_path, GOOD, line)
    for output in ({"type": "number"}, JSON):
        with pytest.raises(OfflineError, match=rf"^d\.jsonl line 2: {place} must be a finite "
                                               r"number of at most 2\^53 \(9007199254740992\) "
                                               r"in size, got the integer -?\d"):
            read_dataset(path, _manifest(output))


def test_the_refusal_shortens_a_long_integer(tmp_path: Path) -> None:
    with pytest.raises(OfflineError) as refused:
        read_dataset(_lines(tmp_path, {**GOOD, "label": HUGE}), _manifest({"type": "number"}))
    assert refused.value.message.endswith("got the integer 10000000000000000000... (401 digits)")


def test_numbers_up_to_2_53_are_read_and_floats_past_it_refused(tmp_path: Path) -> None:
    """As online: a label past 2^53, however written, overflowed its squared error's sums."""
    path = _lines(tmp_path, {**GOOD, "label": 2**53}, {**GOOD, "label": -(2**53)})
    labels = [ex.label for ex in read_dataset(path, _manifest({"type": "number"}))]
    assert labels == [2.0**53, -(2.0**53)]
    past = _lines(tmp_path, '{"inputs": {"x": [1.0, 2.0]}, "label": 1e300}')
    with pytest.raises(OfflineError, match=r"^d\.jsonl line 1: label 1e\+300 is out of range"):
        read_dataset(past, _manifest({"type": "number"}))
    digits = _lines(tmp_path, {**GOOD, "label": "12345678901234567890", "slice": "s" + "9" * 20})
    assert read_dataset(digits, _manifest(JSON))[0].label == '"12345678901234567890"'
    inf = _lines(tmp_path, '{"inputs": {"x": [1.0, 2.0]}, "label": 1e400}')
    with pytest.raises(OfflineError, match=r"^d\.jsonl line 1: label must be a finite number, "
                                           r"got inf$"):
        read_dataset(inf, _manifest({"type": "number"}))


def test_tensor_data_keeps_its_datatype_range(tmp_path: Path) -> None:
    """Input data is bounded by the input's own datatype (INT64 reaches 2^63), not by 2^53."""
    path = _lines(tmp_path, {"inputs": {"x": [2**62, -(2**63)]}, "label": 1})
    (example,) = read_dataset(path, _manifest({"type": "number"}, "INT64"))
    assert example.inputs["x"].tolist() == [[2**62, -(2**63)]]
    path = _lines(tmp_path, {"inputs": {"x": [2**64, 1]}, "label": 1})
    with pytest.raises(OfflineError, match=r"line 1: input 'x'"):
        read_dataset(path, _manifest({"type": "number"}, "INT64"))


def test_thousands_of_digits_are_refused_in_plain_words(tmp_path: Path) -> None:
    path = _lines(tmp_path, '{"inputs": {"x": [1.0, 2.0]}, "label": 1' + "0" * 5000 + "}")
    with pytest.raises(OfflineError) as refused:
        read_dataset(path, _manifest({"type": "number"}))
    assert refused.value.message == ("d.jsonl line 1 holds a number of thousands of digits, "
                                     "which is out of range")


NUMBER_BUNDLE = """name = "num"\nversion = "1"\nbackend = "onnxruntime"
[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 2]
[output]\ntype = "number"\n[[stages]]\nname = "sum"\nkind = "python"\ncallable = "stage:run"
"""


@pytest.fixture
def number(registry: Registry, models: Path, tmp_path: Path) -> str:
    folder = tmp_path / "num"
    folder.mkdir()
    (folder / "stage.py").write_text("def run(t):\n    return {'y': t['x'].sum(axis=1)}\n")
    (folder / "candidate.toml").write_text(NUMBER_BUNDLE)
    return register_bundle(registry, models, folder).name


def test_a_huge_integer_metric_in_imported_results_is_refused(registry: Registry, number: str,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"slices": {"lab": {"n": 10, "mae": 1' + "0" * 400 + ', "rmse": 1}}}')
    with pytest.raises(OfflineError, match=r"^results\.json: slices\['lab'\]\['mae'\] must be a "
                                           r"finite number of at most 2\^53"):
        import_results(registry, number, path)
    path.write_text('{"slices": {"lab": {"n": 10000000000000, "mae": 1, "rmse": 1}}}')
    with pytest.raises(OfflineError, match=r"^slices\['lab'\].n must be a positive whole number"
                                           r" of examples \(at most 1e\+12\), got 1000"):
        import_results(registry, number, path)  # within 2^53, past any test set
    assert registry.get(number).offline_results == {}


# --- .npy headers -------------------------------------------------------------------------------

def _npy(path: Path, shape: tuple[int, ...], data: bytes, descr: str = "<f4") -> None:
    with path.open("wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False,
                                              "shape": shape})
        f.write(data)


@pytest.mark.parametrize(("shape", "data", "claim"), [
    ((10**15,), bytes(16), r"claims 1000000000000000 values of float32 \(4000000000000000 "
                           r"bytes\) but holds 16 bytes"),
    ((1, 2**28), bytes(8), r"claims 268435456 values of float32 \(1073741824 bytes\) but "
                           r"holds 8 bytes"),
    ((1, 2), bytes(12), r"claims 2 values of float32 \(8 bytes\) but holds 12 bytes"),
])
def test_a_npy_header_is_checked_against_the_file_size_before_reading(
        tmp_path: Path, shape: tuple[int, ...], data: bytes, claim: str) -> None:
    _npy(tmp_path / "claim.npy", shape, data)
    path = _lines(tmp_path, {**GOOD, "inputs": {"x": "claim.npy"}})
    with pytest.raises(OfflineError, match=rf"^d\.jsonl line 1: input 'x': 'claim\.npy' {claim}"):
        read_dataset(path, _manifest({"type": "number"}))


@pytest.mark.parametrize(("shape", "descr"), [((-1,), "<f4"), ((4,), "|V0")])
def test_a_npy_header_no_array_has_is_refused(tmp_path: Path, shape: tuple[int, ...],
                                              descr: str) -> None:
    _npy(tmp_path / "odd.npy", shape, bytes(16), descr)
    path = _lines(tmp_path, {**GOOD, "inputs": {"x": "odd.npy"}})
    with pytest.raises(OfflineError, match=r"input 'x': 'odd\.npy' is not a \.npy file of "):
        read_dataset(path, _manifest({"type": "number"}))


def test_a_true_npy_file_is_read(tmp_path: Path) -> None:
    np.save(tmp_path / "v1.npy", np.array([1.5, 2.5], np.float32))
    with (tmp_path / "v2.npy").open("wb") as f:
        npy_format.write_array(f, np.array([[3.0, 4.0]], np.float64), version=(2, 0))
    path = _lines(tmp_path, {**GOOD, "inputs": {"x": "v1.npy"}},
                  {**GOOD, "inputs": {"x": "v2.npy"}})
    arrays = [ex.inputs["x"].tolist() for ex in read_dataset(path, _manifest({"type": "number"}))]
    assert arrays == [[[1.5, 2.5]], [[3.0, 4.0]]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_npy_file_holding_nan_is_the_lines_error_as_in_json(tmp_path: Path, bad: float) -> None:
    """A .npy input holding NaN or Infinity is refused with its line, as the same value in the
    line's JSON is (and /v2 refuses it in binary data): it was run, and counted as an example
    the candidate failed on, lowering its stored accuracy for the dataset's own defect."""
    np.save(tmp_path / "nan.npy", np.array([bad, 2.5], np.float32))
    path = _lines(tmp_path, GOOD, {**GOOD, "inputs": {"x": "nan.npy"}})
    with pytest.raises(OfflineError, match=r"^d\.jsonl line 2: input 'x': 'nan\.npy' holds a "
                                           r"number that is not finite \(NaN or Infinity\)$"):
        read_dataset(path, _manifest({"type": "number"}))


# --- slice names --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a\x07b", "tab\there", "line\n", "\x1b[31mred"])
def test_slice_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    path = _lines(tmp_path, {**GOOD, "slice": name})
    with pytest.raises(OfflineError, match=r"^d\.jsonl line 1: 'slice' must not contain control "
                                           r"characters"):
        read_dataset(path, _manifest({"type": "number"}))


# --- json answers: the online equality rule -----------------------------------------------------

@pytest.mark.parametrize(("label", "answer", "same"), [
    ({"sum": 2, "n": 2}, {"sum": 2.0, "n": 2}, True),
    ({"n": 2, "sum": 2.0}, {"sum": 2, "n": 2}, True),
    ([1, {"a": 0.0}], [1.0, {"a": 0}], True),
    ({"sum": 2, "n": 2}, {"sum": 2.5, "n": 2}, False),
    ("2", 2, False),
])
def test_json_answers_match_labels_as_online(label: object, answer: object, same: bool) -> None:
    output = _manifest(JSON).output
    kept, given = truth(output, label, "line 1"), stored_answer(output, answer)
    assert (kept == given) is same
    assert kept == value_text(label, "json") and given == value_text(answer, "json")


JSON_STAGE = """import json
import numpy as np

def run(t):
    a, b = (float(v) for v in t["x"].ravel())
    out = np.empty(1, dtype=object)
    out[0] = json.dumps({"sum": a + b, "n": 2})
    return {"answer": out}
"""


def test_json_offline_test_counts_2_and_2_0_as_one(registry: Registry, models: Path,
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "js"
    folder.mkdir()
    (folder / "stage.py").write_text(JSON_STAGE)
    (folder / "candidate.toml").write_text(NUMBER_BUNDLE.replace('"num"', '"js"').replace(
        'type = "number"', 'type = "json"\nschema = {type = "object"}'))
    register_bundle(registry, models, folder)
    path = _lines(tmp_path, {"inputs": {"x": [1, 1]}, "label": {"sum": 2, "n": 2}, "slice": "lab"},
                  {"inputs": {"x": [1, 1]}, "label": {"n": 2, "sum": 2}, "slice": "lab"},
                  {"inputs": {"x": [1, 2]}, "label": {"sum": 4, "n": 2}})
    results = offline_test(registry, "js", path)
    assert results["overall"]["exact_match"] == round(2 / 3, 4)
    assert results["slices"]["lab"]["exact_match"] == 1.0


# --- an image pipeline's images -----------------------------------------------------------------

def _image_manifest() -> Manifest:
    return parse_manifest({
        "name": "reader", "version": "1", "backend": "torch",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1]}],
        "output": {"type": "latex"},
        "stages": [{"name": "ocr", "kind": "pipeline", "callable": "entry:open_pipeline"}]})


def test_an_image_pipelines_png_and_jpeg_files_are_read_as_served(tmp_path: Path) -> None:
    """A relabel export writes an image candidate's inputs as PNG files, which the offline test
    refused ("use a .npy file") for every line of the dataset abvoc had written itself."""
    from PIL import Image

    pixels = np.tile(np.arange(0, 240, 8, dtype=np.uint8), (20, 1))
    (tmp_path / "files").mkdir()
    Image.fromarray(pixels, mode="L").save(tmp_path / "files" / "a.png")
    Image.fromarray(pixels, mode="L").convert("RGB").save(tmp_path / "files" / "b.JPG")
    path = _lines(tmp_path, {"inputs": {"image": {"file": "files/a.png"}}, "label": "x"},
                  {"inputs": {"image": {"file": "files/b.JPG"}}, "label": "y"})
    png, jpeg = (ex.inputs["image"] for ex in read_dataset(path, _image_manifest()))
    assert png.dtype == np.uint8 and np.array_equal(png, pixels)
    assert jpeg.shape == pixels.shape and np.abs(jpeg.astype(int) - pixels).max() <= 8
    (tmp_path / "files" / "bad.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n")
    bad = _lines(tmp_path, {"inputs": {"image": {"file": "files/bad.png"}}, "label": "x"})
    with pytest.raises(OfflineError, match=r"^d\.jsonl line 1: input 'image': image "
                                           r"'files/bad\.png': the image is not a PNG or JPEG"):
        read_dataset(bad, _image_manifest())
    # A tensor candidate's UINT8 input still takes no image file: its datatype is the model's.
    (tmp_path / "files" / "c.png").write_bytes((tmp_path / "files" / "a.png").read_bytes())
    tensor = _lines(tmp_path, {"inputs": {"x": {"file": "files/c.png"}}, "label": 1})
    with pytest.raises(OfflineError, match=r"only a BYTES input takes; this input is UINT8 "
                                           r"\(use a \.npy file\)$"):
        read_dataset(tensor, _manifest({"type": "number"}, datatype="UINT8"))


@pytest.mark.parametrize(("given", "size"), [([[]], "0x1"), ("empty.npy", "40x0"),
                                             ([[0, 1], [1, 0]], "2x2")])
def test_an_image_array_too_small_to_upload_is_the_lines_to_fix(tmp_path: Path, given: object,
                                                                 size: str) -> None:
    """An image pipeline's image given as an array is held to an upload's size rule: an empty
    one was scored as the candidate's failure (the OCR detector's IndexError), counted wrong in
    the stored figures, where /v1/predict refuses such an image with a 400."""
    np.save(tmp_path / "empty.npy", np.zeros((0, 40), np.uint8))
    path = _lines(tmp_path, {"inputs": {"image": np.full((8, 9), 7, np.uint8).tolist()},
                             "label": "x"},
                  {"inputs": {"image": given}, "label": "x"})
    with pytest.raises(OfflineError, match=rf"^d\.jsonl line 2: input 'image': the image is "
                                           rf"{size} pixels; each side must be at least 8$"):
        read_dataset(path, _image_manifest())
