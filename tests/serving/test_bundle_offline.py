"""A team's own offline test: its JSONL dataset run through a local bundle (and a remote one on
the real MLServer), stored by slice in the shape the divergence report reads. Every refusal
names the line and stores nothing. Imported results: test_offline_import.py (number results
here, beside the number bundle they need)."""

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
from serving.bundles.offline import offline_test
from serving.bundles.offline_metrics import OfflineError
from serving.registry import Registry
from tests.serving.test_offline_import import imported
from tests.support import inference_servers
from tests.support.bundles import EXAMPLE

DATASET = EXAMPLE / "offline.jsonl"
CLASSES = ("setosa", "versicolor", "virginica")




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
    ({**GOOD, "weight": 2}, r"line 2: unknown key\(s\) 'weight'"),
    ({**GOOD, "inputs": {"x": [1, 2, 3, 4]}}, r"line 2: 'inputs' must name the inputs 'features'"),
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
    ({**GOOD, "slice": "overall"}, r"line 2: 'slice' must be a name .* 'overall' \(the names"),
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


def test_import_number_results_check_rmse_against_mae(registry: Registry, models: Path,
                                                      tmp_path: Path) -> None:
    register_bundle(registry, models, _python_bundle(tmp_path, "number"))
    good = {"slices": {"a": {"n": 10, "mae": 1.0, "rmse": 2.0},
                       "b": {"n": 30, "mae": 3.0, "rmse": 4.0}}}
    overall = imported(registry, "words-number", tmp_path, good)["overall"]
    assert overall == {"n": 40, "mae": 2.5, "rmse": round(math.sqrt((10 * 4 + 30 * 16) / 40), 4)}
    bad = {"slices": {"a": {"n": 10, "mae": 2.0, "rmse": 1.0}}}
    with pytest.raises(OfflineError, match=r"rmse 1 is below mae 2"):
        imported(registry, "words-number", tmp_path, bad)
    with pytest.raises(OfflineError, match=r"'label_shares' is only for label outputs"):
        imported(registry, "words-number", tmp_path, {**good, "label_shares": {"a": 1}})
