"""The mobile target: a float OCR candidate's networks quantized to int8 by ONNX Runtime.

Static quantization: activation ranges come from a calibration set run through the float
networks before any request, so nothing is measured at run time. The calibration set is drawn
from the float candidate's *training* split (its mix and seed, as its spec records them): the
offline test must stay unseen, or the accuracy it reports would flatter the quantized model.

Format: QDQ (QuantizeLinear/DequantizeLinear pairs around float operators), signed int8 for
weights (per output channel) and activations. QDQ is ONNX Runtime's recommended format: its CPU
provider fuses the pairs into integer kernels, and the execution providers phones use (NNAPI,
CoreML, XNNPACK) read QDQ graphs, while the older QOperator form (QLinearConv...) is only what
ORT's own CPU kernels take. The detector and converter are algorithms and stay as they are.
"""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from serving.backends.onnx_backend import INPUT_NAME, export_onnx
from serving.bundles.model_size import network_bytes
from workloads.ocr.aligner import relation_examples
from workloads.ocr.bundle import write_bundle
from workloads.ocr.candidates import MIXES, validation_data
from workloads.ocr.dataset import generate
from workloads.ocr.pipeline import SPEC_FILE, Pipeline
from workloads.ocr.recognizer import accuracy, crop_set

CALIBRATION_SPLIT = "train"
CALIBRATION_FORMULAS = 200
CALIBRATION_BATCH = 64
MOBILE: dict[str, dict[str, Any]] = {
    "ocr-mobile-int8": {
        "base": "ocr-small-mixed",
        "description": "ocr-small-mixed's networks quantized to int8 (ONNX Runtime, static, "
                       "QDQ) for phones",
        "requirements": {"serving_method": "mobile", "hardware": "cpu",
                         "model_size_mb": 0.25, "accuracy_floor": 0.5},
    },
}


def mobile_names() -> list[str]:
    return list(MOBILE)


@dataclass(frozen=True)
class CalibrationSet:
    """Inputs for each network, and where they came from (always the training split)."""

    split: str
    n_formulas: int
    seed: int
    inputs: dict[str, np.ndarray]

    @classmethod
    def from_training(cls, spec: dict[str, Any],
                      n_formulas: int = CALIBRATION_FORMULAS) -> CalibrationSet:
        """Recognizer crops and aligner pair features of the candidate's first training
        formulas (the same generator, mix and seed it was trained on)."""
        training = spec["training"]
        n = min(n_formulas, int(training["n_train"]))
        samples = generate(n, MIXES[training["mix"]], int(training["seed"]), CALIBRATION_SPLIT)
        pairs, _ = relation_examples(samples)
        return cls(CALIBRATION_SPLIT, n, int(training["seed"]),
                   {"recognizer": crop_set(samples).x, "aligner": pairs})

    def reader(self, network: str, input_name: str) -> ArrayReader:
        return ArrayReader(input_name, self.inputs[network], self.split)

    def describe(self) -> dict[str, Any]:
        return {"split": self.split, "n_formulas": self.n_formulas, "seed": self.seed,
                **{f"n_{name}": len(x) for name, x in self.inputs.items()}}


class ArrayReader(CalibrationDataReader):
    """Feeds ONNX Runtime's calibrator one batch at a time; refuses any split but training."""

    def __init__(self, input_name: str, data: np.ndarray, split: str,
                 batch: int = CALIBRATION_BATCH) -> None:
        if split != CALIBRATION_SPLIT:
            raise ValueError(f"calibration data must come from the {CALIBRATION_SPLIT!r} split, "
                             f"not {split!r}: the offline test must stay unseen")
        self.input_name, self.data, self.split, self.batch = input_name, data, split, batch
        self._start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._start >= len(self.data):
            return None
        chunk = self.data[self._start: self._start + self.batch]
        self._start += self.batch
        return {self.input_name: np.ascontiguousarray(chunk, dtype=np.float32)}

    def rewind(self) -> None:
        self._start = 0


def export_float(pipe: Pipeline, folder: Path) -> dict[str, Path]:
    """The float networks as ONNX files in `folder` (what quantization starts from)."""
    return {name: export_onnx(name, module, example, Path(folder) / f"{name}.onnx")
            for name, (module, example) in pipe.networks().items()}


def quantize_file(float_path: Path, out_path: Path, reader: ArrayReader) -> Path:
    """Static int8 QDQ quantization of one ONNX file, after ORT's recommended pre-processing
    (shape inference and graph clean-up, which let more operators be quantized)."""
    with tempfile.TemporaryDirectory(prefix="abvoc-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=CalibrationMethod.MinMax)
    return out_path


def quantize_candidate(name: str, base_folder: str | Path, models_dir: str | Path,
                       n_calibration: int = CALIBRATION_FORMULAS) -> dict[str, Any]:
    """Quantize the trained float candidate at `base_folder` into models_dir/name as a bundle
    (backend onnxruntime); returns what was made."""
    if name not in MOBILE:
        raise KeyError(f"unknown mobile candidate {name!r}; known: {', '.join(MOBILE)}")
    base = Pipeline.load(base_folder)
    if base.ships_onnx:
        raise ValueError(f"{base_folder} is already quantized; quantize a float candidate")
    calibration = CalibrationSet.from_training(base.spec, n_calibration)
    folder = Path(models_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="abvoc-float-") as scratch:
        for network, path in export_float(base, Path(scratch)).items():
            out = folder / f"{network}.int8.onnx"
            quantize_file(path, out, calibration.reader(network, INPUT_NAME))
            files[network] = out.name
    spec = _mobile_spec(name, base.spec, files, calibration)
    spec["validation"] = int8_validation(folder, files, base.spec)
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True))
    version = write_bundle(folder, spec, backend="onnxruntime")
    return {"name": name, "version": version, "artifacts": str(folder),
            "derived_from": spec["derived_from"], "calibration": calibration.describe(),
            "size_mb": round(network_bytes(folder) / 2**20, 4),
            "float_size_mb": round(network_bytes(base_folder) / 2**20, 4),
            "validation": spec["validation"],
            "float_validation": base.spec.get("validation", {})}


def int8_validation(folder: Path, files: dict[str, str],
                    base_spec: dict[str, Any]) -> dict[str, float]:
    """The quantized networks' own accuracies on the base's validation split (the figures the
    base reports for its float networks, so the two compare like with like)."""
    crops, pairs, relations = validation_data(base_spec)
    scores = {}
    for network, x, y in (("recognizer", crops.x, crops.y), ("aligner", pairs, relations)):
        session = ort.InferenceSession(str(folder / files[network]),
                                       providers=["CPUExecutionProvider"])
        logits = session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]
        scores[f"{network}_accuracy"] = round(accuracy(logits, y), 4)
    return scores


def _mobile_spec(name: str, base: dict[str, Any], files: dict[str, str],
                 calibration: CalibrationSet) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    spec.update({
        "name": name,
        "description": MOBILE[name]["description"],
        "requirements": dict(MOBILE[name]["requirements"]),
        "onnx": files,
        "derived_from": {"name": base["name"], "version": base["version"],
                         "validation": base.get("validation", {})},
        "quantization": {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                         "weights": "int8 per channel", "activations": "int8",
                         "calibration_method": "MinMax", "calibration": calibration.describe()},
    })
    return spec


__all__ = ["MOBILE", "ArrayReader", "CalibrationSet", "mobile_names", "quantize_candidate"]
