"""The mobile target: the int8 candidate is smaller, holds int8 weights, reads formulas about as
well as its float base, was calibrated on training data only, is held against its size limit and
accuracy floor by `abvoc offline-test`, and serves through /v1/predict like any OCR bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from core.errors import AbvocError
from core.settings import Settings
from core.store import Database
from serving.bundles.model_size import network_bytes
from serving.registry import Registry, offline_checks, validate_requirements
from tests.workloads.ocr.derived import DerivedCli, served_answers
from workloads.ocr.candidates import MIXES, validation_data
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.mobile import ArrayReader, CalibrationSet, quantize_candidate
from workloads.ocr.offline import evaluate
from workloads.ocr.pipeline import Pipeline
from workloads.ocr.recognizer import crop_set

NAME = "ocr-mobile-int8"
# Quantization may cost the int8 model at most this much exact match (and symbol accuracy)
# against its float base on the same offline images.
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def made(tiny_candidate: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What quantizing the tiny candidate made, as `abvoc train` reports it."""
    return quantize_candidate(NAME, tiny_candidate, tmp_path_factory.mktemp("mobile"))


@pytest.fixture(scope="module")
def mobile(made: dict) -> Path:
    return Path(made["artifacts"])


def test_the_int8_model_reports_its_own_validation_beside_its_base_s(
        made: dict, mobile: Path, tiny_candidate: Path) -> None:
    base_spec = json.loads((tiny_candidate / "candidate.json").read_text())
    base, spec = base_spec["validation"], json.loads((mobile / "candidate.json").read_text())
    assert made["float_validation"] == base == spec["derived_from"]["validation"]
    assert made["validation"] == spec["validation"] and set(made["validation"]) == set(base)
    # Measured on the int8 networks: the recognizer's own int8 session on the same crops.
    crops, _, _ = validation_data(base_spec)
    session = ort.InferenceSession(str(mobile / spec["onnx"]["recognizer"]))
    predicted = session.run(None, {"input": crops.x.astype(np.float32)})[0].argmax(axis=1)
    assert made["validation"]["recognizer_accuracy"] == round(float(np.mean(
        predicted == crops.y)), 4)
    for key, value in made["validation"].items():
        assert abs(value - base[key]) <= TOLERANCE, (key, value, base[key])


def _int8_weights(path: Path) -> tuple[int, int, int]:
    """(Conv/Gemm weights fed by DequantizeLinear of an int8 initializer, Conv/Gemm nodes,
    float initializer elements / all initializer elements as a per mille)."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    layers = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    int8 = sum(1 for n in layers if n.input[1] in dequantized
               and inits.get(dequantized[n.input[1]]) is not None
               and inits[dequantized[n.input[1]]].data_type == TensorProto.INT8)
    sizes = {name: numpy_helper.to_array(i).size for name, i in inits.items()}
    floats = sum(sizes[n] for n, i in inits.items() if i.data_type == TensorProto.FLOAT)
    return int8, len(layers), 1000 * floats // max(sum(sizes.values()), 1)


def test_int8_model_is_smaller_and_holds_int8_weights(mobile: Path, tiny_candidate: Path) -> None:
    assert network_bytes(mobile) < network_bytes(tiny_candidate) / 2
    spec = json.loads((mobile / "candidate.json").read_text())
    assert spec["quantization"]["format"] == "QDQ"
    assert not list(mobile.glob("*.pt"))  # the float weights are not shipped
    for network in ("recognizer", "aligner"):
        path = mobile / spec["onnx"][network]
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        int8, layers, float_share = _int8_weights(path)
        assert layers and int8 == layers, f"{network}: {int8} of {layers} layers have int8 weights"
        assert float_share < 50, f"{network}: {float_share}‰ of initializer values are float"


def test_int8_accuracy_is_within_tolerance_of_the_float_model(mobile: Path,
                                                              tiny_candidate: Path) -> None:
    samples = generate(60, OFFLINE_MIX, seed=2, split="offline-test")
    float_pipe, int8_pipe = Pipeline.load(tiny_candidate), Pipeline.load(mobile)
    assert int8_pipe.ships_onnx and int8_pipe.networks() == {}
    got = {}
    for name, pipe in (("float", float_pipe), ("int8", int8_pipe)):
        got[name] = evaluate(pipe, samples, latency_samples=4)["overall"]
    for key in ("exact_match", "symbol_accuracy"):
        assert got["int8"][key] >= got["float"][key] - TOLERANCE, (key, got)
    agree = np.mean([a.latex == b.latex for a, b in zip(
        float_pipe.predict([s.image for s in samples]),
        int8_pipe.predict([s.image for s in samples]), strict=True)])
    assert agree >= 0.9


def test_calibration_comes_from_the_training_split_only(tiny_candidate: Path,
                                                        mobile: Path) -> None:
    spec = json.loads((tiny_candidate / "candidate.json").read_text())
    calibration = CalibrationSet.from_training(spec, n_formulas=40)
    training = spec["training"]
    train = generate(40, MIXES[training["mix"]], training["seed"], "train")
    assert calibration.split == "train"
    np.testing.assert_array_equal(calibration.inputs["recognizer"], crop_set(train).x)
    # Drawn from the offline test, the crops would be these instead (single symbols like '+'
    # render alike in both splits, so the whole set is compared, not crop by crop).
    offline = crop_set(generate(40, MIXES[training["mix"]], training["seed"], "offline-test")).x
    assert offline.shape != calibration.inputs["recognizer"].shape or not np.array_equal(
        offline, calibration.inputs["recognizer"])
    with pytest.raises(ValueError, match="offline test must stay unseen"):
        ArrayReader("input", calibration.inputs["aligner"], "offline-test")
    reader = calibration.reader("aligner", "input")
    fed = []
    while (batch := reader.get_next()) is not None:
        fed.append(batch["input"])
    np.testing.assert_array_equal(np.concatenate(fed), calibration.inputs["aligner"])
    made = json.loads((mobile / "candidate.json").read_text())["quantization"]["calibration"]
    assert made["split"] == "train" and made["n_recognizer"] > 0


def test_accuracy_floor_is_a_validated_requirement() -> None:
    assert validate_requirements({"accuracy_floor": 0.5})["accuracy_floor"] == 0.5
    for bad, words in ((1.5, "share between 0 and 1"), ("high", "must be a number"),
                       (0, "must be positive")):
        with pytest.raises(AbvocError, match=words):
            validate_requirements({"accuracy_floor": bad})
    results = {"overall": {"exact_match": 0.6}, "model": {"size_mb": 0.1}}
    checks = offline_checks({"model_size_mb": 0.2, "accuracy_floor": 0.7, "p99_ms": 5}, results)
    assert [(c["requirement"], c["passed"]) for c in checks] == [
        ("model_size_mb", True), ("accuracy_floor", False)]
    assert offline_checks({"accuracy_floor": 0.1}, {"overall": {}})[0]["passed"] is None


def test_train_quantizes_and_offline_test_holds_size_and_floor(derived_cli: DerivedCli) -> None:
    res = derived_cli("train", NAME)
    assert res.exit_code == 0, res.output
    assert "quantizing" in res.output and "MB int8" in res.output
    assert "validation aligner_accuracy " in res.output
    assert "(float base: aligner_accuracy " in res.output
    db = Database(derived_cli.url)
    info = Registry(db).get(NAME)
    assert info.backend == "onnxruntime" and info.requirements["serving_method"] == "mobile"

    res = derived_cli("offline-test", NAME, "--n", "8")
    assert res.exit_code == 0, res.output
    assert "requirement model_size_mb <= 0.25:" in res.output
    assert res.output.count("PASS") + res.output.count("FAIL") == 2

    Registry(db).register(NAME, info.version, description=info.description,
                          pipeline=info.pipeline, backend=info.backend,
                          artifacts=info.artifacts,
                          requirements={**info.requirements, "model_size_mb": 0.001,
                                        "accuracy_floor": 1.0})
    res = derived_cli("offline-test", NAME, "--n", "8", "--json")
    assert res.exit_code == 1, res.output  # a failed requirement fails the command
    checks = {c["requirement"]: c for c in json.loads(res.stdout)["requirement_checks"]}
    assert not checks["model_size_mb"]["passed"] and not checks["accuracy_floor"]["passed"]
    assert checks["model_size_mb"]["measured"] > 0.001
    res = derived_cli("offline-test", NAME, "--n", "8")
    assert "requirement model_size_mb <= 0.001:" in res.output and "FAIL" in res.output
    assert "requirement accuracy_floor >= 1:" in res.output
    assert "PASS" not in res.output


def test_int8_bundle_serves_through_v1_predict(settings: Settings, mobile: Path) -> None:
    for _image, answer in served_answers(settings, mobile, NAME):
        assert answer["candidate"] == NAME and answer["output"]
