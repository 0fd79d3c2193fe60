"""A bundle whose stage is a TensorRT engine: built here from the example's ONNX file, it
answers as the ONNX bundle does, a batch past the engine's profile too (run in chunks). Only
where tensorrt imports and a GPU is present (elsewhere test_bundles.py checks the refusal that
says why)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.backends import unavailable_reason
from serving.bundles import BundleRunner, register_bundle
from serving.registry import Registry
from tests.support.bundles import FLOWERS, edit

REASON = unavailable_reason("tensorrt")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"TensorRT engine stage: {REASON}")
MOST_ROWS = 16


def engine_bundle(bundle: Path) -> Path:
    """The example bundle with its classifier as an engine for 1..MOST_ROWS rows."""
    import tensorrt as trt

    from serving.backends.tensorrt_backend import build_engine

    engine = build_engine(trt, trt.Logger(trt.Logger.ERROR), (bundle / "model.onnx").read_bytes(),
                          {"features": ((1, 4), (8, 4), (MOST_ROWS, 4))}, "the example")
    (bundle / "model.engine").write_bytes(engine)
    edit(bundle, 'backend = "onnxruntime"', 'backend = "tensorrt"')
    edit(bundle, 'kind = "onnx"\npath = "model.onnx"', 'kind = "tensorrt"\npath = "model.engine"')
    return bundle


def test_an_engine_stage_answers_as_the_onnx_stage(registry: Registry, models: Path,
                                                   bundle: Path) -> None:
    many = np.repeat(FLOWERS, 6, axis=0)  # 18 rows: past the engine's 16, so two chunks
    with BundleRunner.open(bundle) as runner:
        expected = [runner.run_stages({"features": rows}) for rows in (FLOWERS, many)]
    info = register_bundle(registry, models, engine_bundle(bundle))
    with BundleRunner.open(Path(info.artifacts)) as runner:
        for rows, want in zip((FLOWERS, many), expected, strict=True):
            got = runner.run_stages({"features": rows})
            assert got["label"].tolist() == want["label"].tolist()
            np.testing.assert_allclose(got["probabilities"], want["probabilities"],
                                       rtol=1e-3, atol=1e-5)
