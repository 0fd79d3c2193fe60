"""The TensorRT backend against torch, on hosts with tensorrt and a CUDA GPU; skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from serving.backends import BackendSettings, get_backend, unavailable_reason

REASON = unavailable_reason("tensorrt")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def test_tensorrt_agrees_with_torch_and_caches_its_engine(trained_probe, crops, tmp_path):
    model, _ = trained_probe
    images, _ = crops
    settings = BackendSettings(device="cuda", max_engine_batch=64)
    reference = get_backend("torch", settings)
    reference.load({"classifier": (model, images[:2])})
    expected = reference.run("classifier", images)
    reference.unload()

    backend = get_backend("tensorrt", settings)
    backend.load({"classifier": (model, images[:2])}, tmp_path)
    engine_file = backend.engine_files["classifier"]
    got = backend.run("classifier", images)  # 2,000 rows: split into chunks of 64
    backend.unload()
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.995
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3)

    stamp = engine_file.stat().st_mtime_ns
    again = get_backend("tensorrt", settings)
    again.load({"classifier": (model, images[:2])}, tmp_path)
    assert again.engine_files["classifier"] == engine_file
    assert engine_file.stat().st_mtime_ns == stamp
    again.unload()
