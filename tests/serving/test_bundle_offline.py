"""A team's own offline test: its JSONL dataset run through a local bundle (and a remote one on
the real MLServer), stored by slice in the shape the divergence report reads; results computed
elsewhere imported after the same checks. Every refusal names the line or key and stores
nothing."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from evaluation import aggregation as agg
from evaluation.divergence import candidate_divergence
from evaluation.online import ALL, Cell
from serving.bundles import register_bundle
from serving.bundles.offline import import_results, offline_test
from serving.bundles.offline_metrics import OfflineError
from serving.registry import Registry
from tests.support import inference_servers
from tests.support.bundles import EXAMPLE, copy_example

DATASET = EXAMPLE / "offline.jsonl"
CLASSES = ("setosa", "versicolor", "virginica")




@pytest.fixture
def iris(registry: Registry, models: Path, tmp_path: Path) -> str:
    register_bundle(registry, models, copy_example(tmp_path))
    return "iris-onnx"


def expected_by_slice() -> dict[str, tuple[int, float]]:
    """(n, accuracy) per slice and overall, from onnxruntime called bare on the dataset."""
    session = ort.InferenceSession(str(EXAMPLE / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    rows = [json.loads(line) for line in DATASET.read_text().splitlines()]
    x = np.array([r["inputs"]["features"] for r in rows], np.float32)
    (p,) = session.run(["probabilities"], {"features": x})
    right = [CLASSES[int(k)] == r["label"] for k, r in zip(p.argmax(-1), rows, strict=True)]
    out = {"overall": (len(rows), sum(right) / len(rows))}
    for name in {r["slice"] for r in rows}:
        hits = [h for h, r in zip(right, rows, strict=True) if r["slice"] == name]
        out[name] = (len(hits), sum(hits) / len(hits))
    return out


def test_example_dataset_is_scored_by_slice_and_stored(registry: Registry, iris: str) -> None:
    seen: list[tuple[int, int]] = []
    results = offline_test(registry, iris, DATASET, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (60, 60) and [d for d, _ in seen] == list(range(1, 61))
    expected = expected_by_slice()
    rows = {"overall": results["overall"], **results["slices"]}
    assert sorted(results["slices"]) == ["field", "lab"]
    for name, (n, accuracy) in expected.items():
        assert rows[name]["n"] == n
        assert rows[name]["accuracy"] == rows[name]["exact_match"] == round(accuracy, 4)
        assert rows[name]["latency_p50_ms"] <= rows[name]["latency_p99_ms"]
    assert results["slices"]["field"]["accuracy"] < results["slices"]["lab"]["accuracy"]
    assert results["label_shares"] == {c: pytest.approx(1 / 3, abs=1e-6) for c in CLASSES}
    assert math.isclose(sum(results["overall"]["output_shares"].values()), 1, abs_tol=1e-5)
    assert results["test_set"]["n"] == 60 and results["output_type"] == "label"
    assert registry.get(iris).offline_results == json.loads(json.dumps(results))


def _cell(n: int, corrected: int, outputs: dict[str, int]) -> Cell:
    cell = Cell()
    cell.add(agg.PREDICTIONS, "", [n, n, n])
    cell.add(agg.CORRECTED, "", [n, corrected, corrected])
    cell.add(agg.EXACT_MATCH, "", [corrected, 0, 0])  # each correction changed the answer
    for label, count in outputs.items():
        cell.add(agg.OUTPUT, label, [count, count, count])
    return cell


def test_divergence_reads_the_stored_results(registry: Registry, iris: str) -> None:
    """The report holds online figures against exactly what the offline test stored."""
    offline = offline_test(registry, iris, DATASET)
    cells = {ALL: _cell(200, 60, {"setosa": 40, "versicolor": 60, "virginica": 100}),
             "lab": _cell(20, 2, {"setosa": 7, "versicolor": 6, "virginica": 7}),
             "field": _cell(180, 58, {"setosa": 33, "versicolor": 54, "virginica": 93})}
    rows, mix, shift = candidate_divergence(iris, registry.get(iris).offline_results, cells,
                                            0.05, 0.02)
    by_slice = {r["slice"]: r for r in rows}
    assert by_slice["field"]["offline"]["exact_match"] == offline["slices"]["field"]["accuracy"]
    assert by_slice[ALL]["offline"]["n"] == 60
    assert by_slice["field"]["gap"] == pytest.approx(
        1 - 58 / 180 - offline["slices"]["field"]["accuracy"])
    assert mix is not None and mix["offline_shares"] == {"field": 0.5, "lab": 0.5}
    assert mix["decomposition"] is not None
    assert shift is not None and shift["offline_labels"]["top_label"] == "virginica"


def test_npy_files_and_the_batch_axis(registry: Registry, iris: str, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    (folder / "arrays").mkdir(parents=True)
    np.save(folder / "arrays" / "a.npy", np.array([5.0, 3.4, 1.5, 0.2], np.float32))
    lines = [{"inputs": {"features": "arrays/a.npy"}, "label": "setosa", "slice": "files"},
             {"inputs": {"features": {"file": "arrays/a.npy"}}, "label": "setosa"},
             {"inputs": {"features": [[6.6, 3.0, 5.6, 2.0]]}, "label": "virginica",
              "slice": "batched"}]
    (folder / "set.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    results = offline_test(registry, iris, folder / "set.jsonl")
    assert results["overall"]["n"] == 3 and results["overall"]["accuracy"] == 1.0
    assert {k: v["n"] for k, v in results["slices"].items()} == {"batched": 1, "files": 1}


GOOD = {"inputs": {"features": [5.0, 3.4, 1.5, 0.2]}, "label": "setosa", "slice": "lab"}
DATASET_REFUSALS = [
    ("{not json", r"line 2 is not JSON"),
    ({**GOOD, "weight": 2}, r"line 2: unknown key\(s\) \['weight'\]"),
    ({**GOOD, "inputs": {"x": [1, 2, 3, 4]}}, r"line 2: 'inputs' must name the inputs \['features"),
    ({**GOOD, "inputs": {"features": [1, 2, 3, 4, 5]}}, r"line 2: input 'features' has shape \[1,"
                                                         r" 5\]; the candidate takes \[-1, 4\]"),
    ({**GOOD, "inputs": {"features": [[1, 2, 3, 4], [1, 2, 3, 4]]}}, r"holds 2 items along the"),
    ({**GOOD, "inputs": {"features": [1, 2, "x", 4]}}, r"'features': FP32 data must be JSON num"),
    ({**GOOD, "inputs": {"features": [1, 2, 1e39, 4]}}, r"'features': its values must lie within"),
    ({**GOOD, "inputs": {"features": [[1, 2], [3]]}}, r"'features': its nested data is ragged"),
    ({**GOOD, "inputs": {"features": "gone.npy"}}, r"file 'gone.npy' does not exist beside"),
    ({**GOOD, "inputs": {"features": "/etc/x.npy"}}, r"must be a relative path beside"),
    ({**GOOD, "inputs": {"features": "out.npy"}}, r"must be a relative path beside"),
    ({**GOOD, "inputs": {"features": {"file": "post.txt"}}}, r"only a BYTES input takes"),
    ({**GOOD, "label": "rose"}, r"line 2: label 'rose' is not one of the candidate's classes"),
    ({k: v for k, v in GOOD.items() if k != "label"}, r"line 2: 'label' is missing"),
    ({**GOOD, "slice": "all"}, r"line 2: 'slice' must be a name .* other than 'all'"),
    ([1, 2], r"line 2 must be an object"),
    ({**GOOD, "slice": "\ud800"}, r"^set.jsonl line 2: 'slice' must be valid Unicode text .*"
                                  r"surrogate.*, got '\\ud800'$"),
    ({**GOOD, "slice": "a\x00b"}, r"line 2: 'slice' must not contain NUL"),
    ('{"inputs": {"features": ' + "[" * 5000 + "]" * 5000 + '}, "label": "setosa"}',
     r"^set.jsonl line 2 is nested too deeply$"),
    ({**GOOD, "inputs": {"features": "complex.npy"}},
     r"^set.jsonl line 2: input 'features' must be FP32, got complex128$"),
    ({**GOOD, "inputs": {"features": "words.npy"}},
     r"^set.jsonl line 2: input 'features' must be FP32, got BYTES$"),
]


@pytest.mark.parametrize(("bad", "fragment"), DATASET_REFUSALS,
                         ids=[c[1][:32] for c in DATASET_REFUSALS])
def test_dataset_refusals_name_the_line_and_store_nothing(
        registry: Registry, iris: str, tmp_path: Path, bad: object, fragment: str) -> None:
    path = tmp_path / "set.jsonl"
    (tmp_path / "post.txt").write_text("bytes")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.npy"
    np.save(outside, np.array([5.0, 3.4, 1.5, 0.2], np.float32))
    (tmp_path / "out.npy").symlink_to(outside)  # a link that leads out of the dataset's folder
    np.save(tmp_path / "complex.npy", np.array([5.0, 3.4, 1.5, 0.2], np.complex128))
    np.save(tmp_path / "words.npy", np.array(list("abcd")))
    second = bad if isinstance(bad, str) else json.dumps(bad)
    path.write_text(json.dumps(GOOD) + "\n" + second + "\n")
    with pytest.raises(OfflineError, match=fragment):
        offline_test(registry, iris, path)
    assert registry.get(iris).offline_results == {}


def test_a_dataset_that_is_not_utf8_says_so(registry: Registry, iris: str,
                                            tmp_path: Path) -> None:
    """Not the json module's guess from the first bytes ('utf-16-le' codec can't decode...)."""
    path = tmp_path / "set.jsonl"
    path.write_bytes(b"\xff\xfe" + json.dumps(GOOD).encode() + b"\n")
    with pytest.raises(OfflineError, match=r"^set.jsonl line 1 is not UTF-8 text: byte 0xff at "
                                           r"position 0$"):
        offline_test(registry, iris, path)
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")  # a UTF-8 BOM
    assert offline_test(registry, iris, path)["overall"]["n"] == 1


def test_text_labels_must_be_valid_unicode(registry: Registry, models: Path,
                                           tmp_path: Path) -> None:
    register_bundle(registry, models, _python_bundle(tmp_path, "text"))
    for label, fragment in (("\ud800", "must be valid Unicode text"),
                            ("a\x00", "must not contain NUL")):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps({"inputs": {"words": ["a"]}, "label": label}) + "\n")
        with pytest.raises(OfflineError, match=rf"^bad.jsonl line 1: label {fragment}"):
            offline_test(registry, "words-text", path)
    assert registry.get("words-text").offline_results == {}


def test_empty_and_missing_datasets_and_non_bundles(registry: Registry, iris: str,
                                                   tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(OfflineError, match="holds no examples"):
        offline_test(registry, iris, tmp_path / "empty.jsonl")
    with pytest.raises(OfflineError, match="does not exist"):
        offline_test(registry, iris, tmp_path / "nope.jsonl")
    registry.register("ocr-small", "1", artifacts=str(tmp_path))
    with pytest.raises(OfflineError, match=r"not a registered bundle .* without --dataset"):
        offline_test(registry, "ocr-small", DATASET)


# --- other output types, through a bundle of one Python stage ------------------------------------

STAGE = """import json
import numpy as np

def run(tensors):
    words = [w.decode() for w in tensors["words"].ravel()]
    if "boom" in words:
        raise ValueError("cannot read boom")
    answer = {"text": " ".join(words), "number": float(len(words[0])),
              "json": json.dumps({"first": words[0]})}[KIND]
    out = np.empty(1, dtype=object)
    out[0] = answer
    return {KIND: out}
"""


def _python_bundle(tmp_path: Path, kind: str, extra: str = "") -> Path:
    folder = tmp_path / f"words-{kind}"
    folder.mkdir()
    (folder / "stage.py").write_text(STAGE.replace("KIND", repr(kind)))
    (folder / "candidate.toml").write_text(f"""name = "words-{kind}"\nversion = "1"
backend = "onnxruntime"\n[[inputs]]\nname = "words"\ndatatype = "BYTES"\nshape = [-1, -1]
[output]\ntype = "{kind}"\n{extra}[[stages]]\nname = "read"\nkind = "python"
callable = "stage:run"\n""")
    return folder


def _run(registry: Registry, models: Path, folder: Path, tmp_path: Path,
         lines: list[dict]) -> dict:
    info = register_bundle(registry, models, folder)
    path = tmp_path / f"{info.name}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return offline_test(registry, info.name, path)


def test_text_output_exact_match_and_word_edit_distance(registry: Registry, models: Path,
                                                        tmp_path: Path) -> None:
    lines = [{"inputs": {"words": ["a", "b", "c"]}, "label": "a b c", "slice": "s"},
             {"inputs": {"words": ["a", "b"]}, "label": "a x b c", "slice": "s"},
             {"inputs": {"words": [["q"]]}, "label": "q", "slice": "t"}]
    results = _run(registry, models, _python_bundle(tmp_path, "text"), tmp_path, lines)
    assert results["overall"]["exact_match"] == round(2 / 3, 4)
    # "a b" against "a x b c": two words missing out of four
    assert results["overall"]["token_edit_distance"] == round((0 + 2 / 4 + 0) / 3, 4)
    assert results["slices"]["s"]["exact_match"] == 0.5 and "label_shares" not in results


def test_number_output_mae_and_rmse(registry: Registry, models: Path, tmp_path: Path) -> None:
    lines = [{"inputs": {"words": ["abc"]}, "label": 3, "slice": "s"},     # error 0
             {"inputs": {"words": ["abcdef"]}, "label": 2.0, "slice": "s"},  # error +4
             {"inputs": {"words": ["a"]}, "label": 3, "slice": "t"}]     # error -2
    results = _run(registry, models, _python_bundle(tmp_path, "number"), tmp_path, lines)
    overall = results["overall"]
    assert overall["mae"] == 2.0 and overall["mean_error"] == round(2 / 3, 4)
    assert overall["rmse"] == round(math.sqrt(20 / 3), 4)
    assert results["slices"]["s"]["mae"] == 2.0 and results["slices"]["t"]["rmse"] == 2.0


def test_json_output_checked_against_its_schema(registry: Registry, models: Path,
                                                tmp_path: Path) -> None:
    schema = 'schema = {type = "object", required = ["first"]}\n'
    folder = _python_bundle(tmp_path, "json", schema)
    lines = [{"inputs": {"words": ["x"]}, "label": {"first": "x"}},
             {"inputs": {"words": ["y"]}, "label": {"first": "z"}}]
    assert _run(registry, models, folder, tmp_path, lines)["overall"]["exact_match"] == 0.5
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"inputs": {"words": ["x"]}, "label": {"second": 1}}) + "\n")
    with pytest.raises(OfflineError, match="line 1: label does not match the output schema"):
        offline_test(registry, "words-json", path)


def test_a_stage_failing_on_every_line_stores_nothing(registry: Registry, models: Path,
                                                      tmp_path: Path) -> None:
    lines = [{"inputs": {"words": ["boom"]}, "label": "boom"}] * 2
    with pytest.raises(OfflineError, match=r"^line 1: the candidate failed: ValueError: cannot "
                                           r"read boom; the candidate failed on every example"):
        _run(registry, models, _python_bundle(tmp_path, "text"), tmp_path, lines)
    assert registry.get("words-text").offline_results == {}


# --- a remote candidate on the real MLServer ----------------------------------------------------

@pytest.fixture(scope="module")
def mlserver() -> Iterator[inference_servers.InferenceServer]:
    running = inference_servers.mlserver(EXAMPLE / "model.onnx").start()
    yield running
    running.stop()


def test_remote_candidate_on_mlserver_scores_like_the_local_bundle(
        registry: Registry, models: Path, iris: str, tmp_path: Path,
        mlserver: inference_servers.InferenceServer) -> None:
    folder = tmp_path / "remote"
    folder.mkdir()
    (folder / "candidate.toml").write_text(f"""name = "iris-remote"\nversion = "1"
[[inputs]]\nname = "features"\ndatatype = "FP32"\nshape = [-1, 4]
[output]\ntype = "label"\nclasses = {json.dumps(list(CLASSES))}
[remote]\nurl = "{mlserver.url}"\nmodel = "iris"\ntimeout_ms = 5000\nretries = 1\n""")
    register_bundle(registry, models, folder)
    remote = offline_test(registry, "iris-remote", DATASET)
    local = offline_test(registry, iris, DATASET)
    for key in ("accuracy", "output_shares", "label_shares"):
        assert remote["overall"][key] == local["overall"][key]
        assert remote["slices"]["field"][key] == local["slices"]["field"][key]
    assert remote["environment"]["runner"] == "remote"
    shutil.rmtree(folder)


# --- importing results computed elsewhere -------------------------------------------------------

IMPORTED = {"slices": {
    "lab": {"n": 300, "accuracy": 0.96, "label_shares": {"setosa": 0.5, "versicolor": 0.25,
                                                         "virginica": 0.25}},
    "field": {"n": 100, "accuracy": 0.8, "label_shares": {"setosa": 0.1, "versicolor": 0.1,
                                                          "virginica": 0.8}}}}


def _import(registry: Registry, name: str, tmp_path: Path, data: object) -> dict:
    path = tmp_path / "results.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return import_results(registry, name, path)


def test_import_stores_the_same_shape(registry: Registry, iris: str, tmp_path: Path) -> None:
    results = _import(registry, iris, tmp_path, IMPORTED)
    overall = results["overall"]
    assert overall["n"] == 400 and overall["accuracy"] == overall["exact_match"] == 0.92
    assert results["label_shares"] == {"setosa": 0.4, "versicolor": 0.2125, "virginica": 0.3875}
    assert results["slices"]["field"] == {"n": 100, "accuracy": 0.8, "exact_match": 0.8,
                                          "label_shares": IMPORTED["slices"]["field"][
                                              "label_shares"]}
    assert results["test_set"]["source"] == "import"
    assert registry.get(iris).offline_results == results


def _with(path: tuple[str, ...], value: object) -> dict:
    data = json.loads(json.dumps(IMPORTED))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


IMPORT_REFUSALS = [
    ("{", r"results.json is not JSON"),
    ([], r"must hold a JSON object"),
    ({"slices": {}}, r"'slices' must be an object"),
    (_with(("extra",), 1), r"unknown key\(s\) \['extra'\]"),
    (_with(("slices", "lab", "accuracy"), KeyError), r"slices\['lab'\].accuracy is missing"),
    (_with(("slices", "lab", "accuracy"), 1.5), r"slices\['lab'\].accuracy is a share between"),
    (_with(("slices", "lab", "n"), 0), r"slices\['lab'\].n must be a positive whole number"),
    (_with(("slices", "lab", "mae"), 0.1), r"unknown key\(s\) \['mae'\] for a 'label' output"),
    (_with(("slices", "lab", "label_shares", "rose"), 0.1), r"names \['rose'\], which are not"),
    (_with(("slices", "lab", "label_shares", "setosa"), 0.9), r"must add up to 1, got 1.4000"),
    (_with(("slices", "all"), {"n": 1, "accuracy": 1}), r"slice name 'all' must be"),
    (_with(("mix_slices",), ["moon"]), r"'mix_slices' must list some of the slices"),
    (_with(("slices", "lab", "accuracy"), float("nan")), r"is not JSON|must be a finite number"),
    (_with(("slices", "\ud800"), {"n": 10, "accuracy": 0.9}),
     r"^slice name '\\ud800' must be valid Unicode text"),
    (_with(("slices", "a\x00"), {"n": 10, "accuracy": 0.9}), r"^slice name 'a\\x00' must not"),
    (_with(("slices", "a\x07b"), {"n": 10, "accuracy": 0.9}), r"^slice name 'a\\x07b' must"),
    (_with(("notes",), "fine \ud800"), r"^'notes' must be valid Unicode text"),
    (_with(("notes",), "a\x00b"), r"^'notes' must not contain NUL"),
    (_with(("mix_slices",), [["lab"]]), r"'mix_slices' must list some of the slices"),
    (_with(("mix_slices",), [{"a": 1}]), r"'mix_slices' must list some of the slices"),
    ('{"slices": ' + "[" * 3000 + "]" * 3000 + "}", r"^results.json is nested too deeply$"),
    (_with(("overall",), {"n": 3, "accuracy": 0.9}),
     r"^the slices' n add up to 400, more than the overall n of 3: each example belongs"),
    (_with(("overall",), {"n": 400, "accuracy": 0.2}),
     r"^overall.accuracy is 0.2, but its slices make 0.9200 of the overall n of 400; give"),
    (_with(("overall",), {"n": 1000, "accuracy": 0.2}),
     r"^overall.accuracy is 0.2, but its slices make 0.3680 to 0.9680 of the overall n of"),
    (_with(("slices", "lab", "n"), 10**29), r"^results.json: slices\['lab'\]\['n'\] must be a"
                                            r" finite number of at most 2\^53 .*\(30 digits\)$"),
]


@pytest.mark.parametrize(("data", "fragment"), IMPORT_REFUSALS,
                         ids=[c[1][:32] for c in IMPORT_REFUSALS])
def test_import_refusals_name_the_key_and_keep_what_was_stored(
        registry: Registry, iris: str, tmp_path: Path, data: object, fragment: str) -> None:
    before = _import(registry, iris, tmp_path, IMPORTED)
    with pytest.raises(OfflineError, match=fragment):
        _import(registry, iris, tmp_path, data)
    assert registry.get(iris).offline_results == before


def test_import_number_results_check_rmse_against_mae(registry: Registry, models: Path,
                                                      tmp_path: Path) -> None:
    register_bundle(registry, models, _python_bundle(tmp_path, "number"))
    good = {"slices": {"a": {"n": 10, "mae": 1.0, "rmse": 2.0},
                       "b": {"n": 30, "mae": 3.0, "rmse": 4.0}}}
    overall = _import(registry, "words-number", tmp_path, good)["overall"]
    assert overall == {"n": 40, "mae": 2.5, "rmse": round(math.sqrt((10 * 4 + 30 * 16) / 40), 4)}
    bad = {"slices": {"a": {"n": 10, "mae": 2.0, "rmse": 1.0}}}
    with pytest.raises(OfflineError, match=r"rmse 1.0 is below mae 2.0"):
        _import(registry, "words-number", tmp_path, bad)
    with pytest.raises(OfflineError, match=r"'label_shares' is only for label outputs"):
        _import(registry, "words-number", tmp_path, {**good, "label_shares": {"a": 1}})
