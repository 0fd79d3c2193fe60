"""Candidate bundles: every refusal names what to fix and stores nothing; a valid bundle registers
(CLI and function, folder and .tar.gz), runs, gets new versions and retires."""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import main
from core.errors import AbvocError, Conflict, NotFound
from core.store import Database
from serving.bundles import BundleRunner, register_bundle
from serving.bundles.archive import Limits
from serving.bundles.manifest import parse_manifest
from serving.bundles.stages import StageExited
from serving.bundles.tensors import TensorError, from_v2, to_v2, v2_json
from serving.registry import Registry
from tests.support.bundles import FLOWERS, edit, refused

# --- the manifest and the files it names ---------------------------------------------------

MANIFEST_CASES = [
    ('name = "iris-onnx"', 'name = "iris-onnx"\ncolour = "red"',
     r"unknown key\(s\) 'colour'; known keys are 'backend'"),
    ('path = "model.onnx"', 'path = "model.onnx"\nweights = "w.bin"',
     r"stages\[0\]: unknown key\(s\) 'weights'"),
    ("[batching]", "[batching]\nmax_batch = 3", r"batching: unknown key"),
    ('path = "model.onnx"', 'path = "missing.onnx"', r"'missing.onnx' is missing"),
    ('path = "model.onnx"', 'path = "../model.onnx"', r"relative path inside the bundle"),
    ('path = "model.onnx"', 'path = "/etc/passwd"', r"relative path inside the bundle"),
    ('path = "model.onnx"', 'path = "model.onnx"\noutputs = ["p"]', r"only for torchscript"),
    ('shape = [-1, 4]', 'shape = [-1, 5]',
     r"dimension 1 is declared 5 but the first stage 'classifier'"),
    ('shape = [-1, 4]', 'shape = [-1, -1]', r"dimension 1 is declared -1 \(any size\)"),
    ('shape = [-1, 4]', 'shape = [4]', r"takes 2 dimensions"),
    ('datatype = "FP32"', 'datatype = "FP64"',
     r"declared FP64 but the first stage 'classifier' takes FP32"),
    ('datatype = "FP32"', 'datatype = "FLOAT"', r"not a V2 datatype"),
    ('name = "features"', 'name = "x"', r"inputs 'x' do not match .* 'features'"),
    ('callable = "post:to_label"', 'callable = "nope:to_label"', r"module 'nope' is missing"),
    ('callable = "post:to_label"', 'callable = "post:nothing"', r"'post' has no function"),
    ('callable = "post:to_label"', 'callable = "post"', r"must be 'module:function'"),
    ('backend = "onnxruntime"', 'backend = "tflite"', r"backend 'tflite' is unknown"),
    ('backend = "onnxruntime"', 'backend = "torch"', r"onnx stage, which backend 'torch'"),
    ('kind = "onnx"', 'kind = "keras"', r"kind 'keras' is unknown"),
    ('type = "label"', 'type = "image"', r"output.type 'image' is unknown"),
    ('classes = ["setosa", "versicolor", "virginica"]', "", r"output.classes must list"),
    ('type = "label"\nclasses = ["setosa", "versicolor", "virginica"]', 'type = "json"',
     r"needs a JSON Schema"),
    ('type = "label"\nclasses = ["setosa", "versicolor", "virginica"]',
     'type = "json"\nschema = {type = "nonsense"}', r"not a valid JSON Schema"),
    # The schema's references are resolved within it: no file of this host, no URL is read.
    ('type = "label"\nclasses = ["setosa", "versicolor", "virginica"]',
     'type = "json"\nschema = {"$ref" = "file:///etc/hostname"}', r"no external references"),
    ('type = "label"\nclasses = ["setosa", "versicolor", "virginica"]',
     'type = "json"\nschema = {"$ref" = "http://127.0.0.1:9/s.json"}', r"no external references"),
    ("p99_ms = 20", "p99 = 20", r"\[requirements\]: unknown requirement"),
    ("p99_ms = 20", "p99_ms = nan", r"'p99_ms' must be positive and finite, got nan"),
    ("model_size_mb = 1", "model_size_mb = 1e400", r"'model_size_mb' must be positive and fin"),
    ('classes = ["setosa", "versicolor", "virginica"]', 'classes = ["a\\u0000b", "c"]',
     r"output.classes 'a\\x00b' must not contain NUL"),
    ('classes = ["setosa", "versicolor", "virginica"]', 'classes = ["a\\u001bb", "c"]',
     r"output.classes 'a\\x1bb' must not contain control characters"),
    ("target_accuracy = 0.9", "target_accuracy = 90", r"between 0 and 1"),
    ("max_batch_size = 32", "max_batch_size = 0", r"between 1 and 4096"),
    ("max_batch_size = 32", "max_batch_size = 32\ntimeout_ms = 0",
     r"batching.timeout_ms must be between 1 and 600000, got 0"),
    ("max_batch_size = 32", "max_batch_size = 32\ntimeout_ms = 2",
     r"batching.timeout_ms \(2\) must be longer than batching.max_batch_time_ms \(2\)"),
    ("max_batch_size = 32", 'max_batch_size = 32\ntimeout_ms = "1s"',
     r"batching.timeout_ms must be a int or float, got '1s'"),
    ('version = "1"', 'version = "1 beta"', r"version '1 beta'"),
    ('name = "iris-onnx"', 'name = "Iris Classifier"', r"name 'Iris Classifier'"),
    ('name = "iris-onnx"\n', "", r"name is missing"),
    ('path = "model.onnx"', 'path = "model.onnx"\nanswer = "scores"',
     r"stages\[0\].answer 'scores' is not an output of stage 'classifier'; it gives"),
    ('path = "model.onnx"', 'path = "model.onnx"\nanswer = ""', r"stages\[0\].answer must not"),
    ('path = "model.onnx"', 'path = "model.onnx"\nanswer = 3', r"stages\[0\].answer must be a"),
    ('callable = "post:to_label"', 'callable = "post:to_label"\nanswer = "label"',
     r"stages\[1\].answer: the last stage's answer is the candidate's output"),
    ('name = "to_label"', 'name = "correct"', r"stages\[1\].name 'correct' is reserved"),
    ('kind = "python"\ncallable = "post:to_label"', 'kind = "onnx"\npath = "model.onnx"',
     r"stages\[1\] 'to_label' takes 'features', which stage 'classifier' before it does not"),
    # `device` is the torch backend's (test_bundle_device.py runs it)
    ('backend = "onnxruntime"', 'backend = "onnxruntime"\ndevice = "cuda"',
     r"device is the torch backend's setting; backend 'onnxruntime' picks its own"),
    ('backend = "onnxruntime"', 'backend = "tensorrt"\ndevice = "cpu"',
     r"backend 'tensorrt' picks its own"),
    ('backend = "onnxruntime"', 'backend = "torch"\ndevice = "gpu"',
     r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
    ('backend = "onnxruntime"', 'backend = "torch"\ndevice = "cuda:x"', r"got 'cuda:x'"),
    ('backend = "onnxruntime"', 'backend = "torch"\ndevice = 0', r"device must be a str"),
]


@pytest.mark.parametrize(("old", "new", "fragment"), MANIFEST_CASES,
                         ids=[c[2][:40] for c in MANIFEST_CASES])
def test_manifest_refusals_name_what_to_fix(registry: Registry, models: Path, bundle: Path,
                                            old: str, new: str, fragment: str) -> None:
    edit(bundle, old, new)
    refused(registry, models, bundle, fragment)


def test_artifacts_that_do_not_load_arerefused(registry: Registry, models: Path,
                                                bundle: Path) -> None:
    (bundle / "model.onnx").write_bytes(b"not an onnx graph")
    refused(registry, models, bundle, r"'model.onnx' does not load as ONNX")
    edit(bundle, 'backend = "onnxruntime"', 'backend = "torch"')
    edit(bundle, 'kind = "onnx"', 'kind = "torchscript"')
    refused(registry, models, bundle, r"'model.onnx' does not load as TorchScript")


def test_broken_python_stage_isrefused(registry: Registry, models: Path, bundle: Path) -> None:
    (bundle / "post.py").write_text("raise ImportError('numpy2 needed')\n")
    refused(registry, models, bundle, r"importing post.py failed: ImportError: numpy2 needed")


@pytest.mark.parametrize("exits", ["import sys; sys.exit(3)", "raise KeyboardInterrupt"])
def test_a_python_stage_that_exits_on_import_is_refused(registry: Registry, models: Path,
                                                        bundle: Path, exits: str) -> None:
    (bundle / "post.py").write_text(exits + "\n")
    refused(registry, models, bundle, r"importing post.py failed: (SystemExit|KeyboardInterrupt)")


def test_a_python_stage_that_exits_when_run_fails_that_request_only(bundle: Path) -> None:
    """sys.exit() in the team's post-processing once ended the batcher's thread: that request
    and every later one waited for ever (and soon every API thread)."""
    post = bundle / "post.py"
    post.write_text(post.read_text() + "\n\ndef exits(tensors):\n"
                    "    import sys\n    if tensors['probabilities'].shape[0] == 2:\n"
                    "        sys.exit(1)\n    return to_label(tensors)\n")
    edit(bundle, 'callable = "post:to_label"', 'callable = "post:exits"')
    with BundleRunner.open(bundle) as runner:
        for _ in range(3):  # more than once: the thread that ran it is still there
            with pytest.raises(StageExited, match="raised SystemExit"):
                runner.predict({"features": FLOWERS[:2]})
            assert len(runner.predict({"features": FLOWERS[:1]})["label"]) == 1


def test_tensorrt_without_tensorrt_says_the_backend_is_unavailable(
        registry: Registry, models: Path, bundle: Path) -> None:
    from serving.backends import unavailable_reason

    edit(bundle, 'backend = "onnxruntime"', 'backend = "tensorrt"')
    edit(bundle, 'kind = "onnx"\npath = "model.onnx"', 'kind = "tensorrt"\npath = "model.onnx"')
    if unavailable_reason("tensorrt") is None:  # a TensorRT host: the ONNX file is no engine
        refused(registry, models, bundle, r"is not a TensorRT engine")
    else:
        from serving.backends import BackendUnavailable

        refused(registry, models, bundle, r"tensorrt backend is unavailable on this host",
                 kind=BackendUnavailable)


def test_torchscript_bundle_checks_argument_names(registry: Registry, models: Path,
                                                  bundle: Path) -> None:
    import torch

    class Net(torch.nn.Module):
        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return torch.softmax(features[:, :3], dim=-1)

    with warnings.catch_warnings():  # torch 2.15 marks TorchScript deprecated; teams still ship it
        warnings.filterwarnings("ignore", message="`torch.jit.(script|save)` is deprecated")
        torch.jit.script(Net()).save(str(bundle / "model.pt"))
    edit(bundle, 'backend = "onnxruntime"', 'backend = "torch"')
    edit(bundle, 'kind = "onnx"\npath = "model.onnx"',
          'kind = "torchscript"\npath = "model.pt"\noutputs = ["probabilities"]')
    edit(bundle, 'name = "features"', 'name = "measurements"')
    refused(registry, models, bundle, r"'measurements' do not match .* 'features'")
    edit(bundle, 'name = "measurements"', 'name = "features"')
    info = register_bundle(registry, models, bundle)
    with BundleRunner.open(Path(info.artifacts)) as runner:
        assert runner.predict({"features": FLOWERS})["label"].shape == (3,)


def test_no_manifest_and_not_a_bundle(registry: Registry, models: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    refused(registry, models, tmp_path / "empty", r"no candidate.toml")
    (tmp_path / "model.zip").write_bytes(b"PK")
    refused(registry, models, tmp_path / "model.zip", r"neither a folder nor a .tar.gz")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b garbage")
    refused(registry, models, tmp_path / "broken.tar.gz", r"not a readable .tar.gz")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "candidate.toml").write_text("name = ")
    refused(registry, models, tmp_path / "bad", r"not valid TOML")


def test_folder_links_outside_the_bundle_arerefused(registry: Registry, models: Path,
                                                     bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.onnx"
    shutil.copy(bundle / "model.onnx", outside)
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(outside)
    refused(registry, models, bundle, r"'model.onnx' links to .*outside the bundle")


def test_links_cannot_copy_without_end_or_past_the_size_limit(registry: Registry, models: Path,
                                                              bundle: Path) -> None:
    (bundle / "loop").symlink_to(".")  # copied as it was, this never ended
    refused(registry, models, bundle, r"'loop' links to a folder")
    (bundle / "loop").unlink()
    (bundle / "blob.bin").write_bytes(b"x" * 100_000)
    for i in range(30):  # 30 copies of one file: each counts towards the limit
        (bundle / f"copy-{i}.bin").symlink_to("blob.bin")
    refused(registry, models, bundle, r"more than 1000000 bytes",
            Limits(max_unpacked_bytes=1_000_000))


# --- registering, versions, retiring -------------------------------------------------------

def test_register_by_cli_then_run_version_and_retire(settings, bundle: Path,  # noqa: ANN001
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     request: pytest.FixtureRequest) -> None:
    from core.store import schema

    with Database(settings.database_url) as database:
        schema.upgrade(database)
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    result = runner.invoke(main, ["candidates", "register", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["name"], info["version"], info["backend"]) == ("iris-onnx", "1", "onnxruntime")
    assert info["pipeline"]["output"] == {"type": "label",
                                          "classes": ["setosa", "versicolor", "virginica"]}
    assert info["requirements"]["p99_ms"] == 20
    stored = Path(info["artifacts"])
    assert stored.is_relative_to(settings.models_dir) and (stored / "model.onnx").is_file()
    with BundleRunner.open(stored) as bundle_runner:
        out = bundle_runner.predict({"features": FLOWERS})
    assert list(out["label"]) == ["setosa", "versicolor", "virginica"]

    again = runner.invoke(main, ["candidates", "register", str(bundle)])
    assert again.exit_code != 0 and "already registered" in again.output
    edit(bundle, 'version = "1"', 'version = "2"')
    assert runner.invoke(main, ["candidates", "register", str(bundle)]).exit_code == 0
    database = Database(settings.database_url)
    request.addfinalizer(database.dispose)
    registry = Registry(database)
    assert registry.get("iris-onnx").version == "2"

    result = runner.invoke(main, ["candidates", "retire", "iris-onnx", "--version", "2"])
    assert result.exit_code == 0 and "retired iris-onnx v2" in result.output
    assert registry.get("iris-onnx").version == "1"  # the latest active version
    assert registry.get("iris-onnx", "2").retired  # still there for its experiments
    listed = json.loads(runner.invoke(main, ["candidates", "list", "--json"]).output)
    assert [(c["name"], c["version"]) for c in listed] == [("iris-onnx", "1")]
    everything = json.loads(runner.invoke(main, ["candidates", "list", "--all", "--json"]).output)
    assert len(everything) == 2
    assert runner.invoke(main, ["candidates", "retire", "nope"]).exit_code != 0


def test_duplicate_version_is_a_conflict_and_changes_nothing(registry: Registry, models: Path,
                                                             bundle: Path) -> None:
    first = register_bundle(registry, models, bundle)
    (bundle / "post.py").write_text("def to_label(t):\n    return t\n")
    with pytest.raises(Conflict, match="already registered"):
        register_bundle(registry, models, bundle)
    assert "CLASSES" in (Path(first.artifacts) / "post.py").read_text()
    assert [d.name for d in (models / "bundles").iterdir()] == ["iris-onnx"]
    assert [d for d in (models / "bundles" / "iris-onnx" / "1").iterdir()] == \
        [Path(first.artifacts)]


def test_racing_registrations_of_one_version_leave_one_winner(registry: Registry, models: Path,
                                                              bundle: Path) -> None:
    outcomes: list[object] = []
    barrier = threading.Barrier(3)

    def register() -> None:
        barrier.wait()
        try:
            outcomes.append(register_bundle(registry, models, bundle))
        except AbvocError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=register) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [o for o in outcomes if not isinstance(o, AbvocError)]
    assert len(winners) == 1 and len(outcomes) == 3
    assert all(isinstance(o, Conflict) for o in outcomes if o not in winners), outcomes
    stored = list((models / "bundles" / "iris-onnx" / "1").iterdir())
    assert stored == [Path(winners[0].artifacts)]
    assert registry.get("iris-onnx", "1").artifacts == winners[0].artifacts


def test_retire_unknown_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.retire("nope")


# --- running ------------------------------------------------------------------------------------

def test_runner_checks_inputs_and_batches_concurrent_requests(bundle: Path) -> None:
    import onnxruntime as ort

    bare = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    requests = [rng.normal(5, 1.5, size=(1 + i % 3, 4)).astype(np.float32) for i in range(24)]
    results: list = [None] * len(requests)
    with BundleRunner.open(bundle) as runner:
        with pytest.raises(TensorError, match=r"shape \[-1, 4\]"):
            runner.predict({"features": np.zeros((2, 5), np.float32)})
        with pytest.raises(TensorError, match=r"inputs must be 'features', got"):
            runner.predict({"x": FLOWERS})
        with pytest.raises(TensorError, match=r"must be FP32, got complex"):
            runner.predict({"features": FLOWERS.astype(np.complex64)})

        def call(i: int) -> None:
            results[i] = runner.predict({"features": requests[i]})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        batches = runner._batcher.batch_sizes if runner._batcher else {}
    for request, result in zip(requests, results, strict=True):
        (expected,) = bare.run(["probabilities"], {"features": request})
        np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-7)
        assert len(result["label"]) == len(request)
    assert sum(n * c for n, c in batches.items()) == len(requests)


def test_v2_tensors_round_trip_bytes_and_numbers() -> None:
    words = np.array([[b"\x00\xffraw", "héllo".encode()]], dtype=object)
    tensor = to_v2("words", words)
    assert tensor["parameters"] == {"content_type": "base64"} and tensor["shape"] == [1, 2]
    assert from_v2(tensor).tolist() == words.tolist()
    assert from_v2({"name": "t", "datatype": "BYTES", "shape": [1], "data": ["plain"]})[0] == \
        b"plain"
    # As text where asked: plain strings when every value is UTF-8, else base64, marked so.
    text = to_v2("w", np.array(["héllo", b"x\x00y"], dtype=object), text=True)
    assert text["data"] == ["héllo", "x\x00y"] and text["parameters"] == {"content_type": "str"}
    assert from_v2(text).tolist() == ["héllo".encode(), b"x\x00y"]
    assert to_v2("words", words, text=True) == tensor
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(from_v2(to_v2("f", floats)), floats)
    with pytest.raises(TensorError, match="holds 6 values, data has 5"):
        from_v2({"name": "f", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5]})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.uint8,
                                   np.int8, bool])
def test_v2_json_writes_arrays_as_the_v2_tensors_they_are(dtype: type) -> None:
    """The fast writer (orjson, from memory) reads back as the same values, in flat and nested
    row-major data alike."""
    values = np.random.default_rng(3).normal(0, 50, size=(2, 3, 4)).astype(dtype)
    written = json.loads(v2_json({"inputs": [to_v2("x", values, arrays=True)]}))
    tensor = written["inputs"][0]
    assert tensor["datatype"] == to_v2("x", values)["datatype"] and tensor["shape"] == [2, 3, 4]
    np.testing.assert_array_equal(from_v2(tensor), values)
    nested = dict(tensor, data=np.asarray(tensor["data"]).reshape(2, 12).tolist())
    np.testing.assert_array_equal(from_v2(nested), values)


def test_v2_json_writes_nan_as_v2_servers_read_it_and_bytes_as_base64() -> None:
    """orjson would write NaN as null: a tensor holding one goes to the standard library."""
    floats = np.array([[1.5, np.nan, -np.inf]], dtype=np.float32)
    words = np.array([b"\x00raw"], dtype=object)
    text = v2_json([to_v2("f", floats, arrays=True), to_v2("w", words, arrays=True)])
    assert b"NaN" in text and b"-Infinity" in text and b"null" not in text
    f, w = json.loads(text)
    np.testing.assert_array_equal(from_v2(f, finite=False), floats)
    assert from_v2(w).tolist() == [b"\x00raw"]


def test_from_v2_refuses_ragged_and_non_numeric_data_naming_the_tensor() -> None:
    assert from_v2({"name": "s", "datatype": "FP32", "shape": [1], "data": 2.5}).tolist() == [2.5]
    with pytest.raises(TensorError, match="tensor 'r': its nested data is ragged"):
        from_v2({"name": "r", "datatype": "FP32", "shape": [3], "data": [[1, 2], [3]]})
    for data in ([1, "x", 2], [{"a": 1}, 1, 2]):
        with pytest.raises(TensorError, match="tensor 'r': FP32 data must be JSON numbers"):
            from_v2({"name": "r", "datatype": "FP32", "shape": [3], "data": data})


def test_parse_manifest_is_pure() -> None:
    manifest = parse_manifest({
        "name": "n", "version": 2, "backend": "onnxruntime",
        "inputs": [{"name": "x", "datatype": "BYTES", "shape": [-1]}],
        "output": {"type": "json", "schema": {"type": "object"}},
        "stages": [{"name": "s", "kind": "python", "callable": "pkg.mod:run"}],
    })
    assert manifest.version == "2" and manifest.output.schema == {"type": "object"}
    assert manifest.describe()["stages"] == [{"name": "s", "kind": "python",
                                              "callable": "pkg.mod:run"}]
