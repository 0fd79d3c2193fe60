"""The torch backend on a CUDA GPU against the same network on the CPU (GPU hosts only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serving.backends import BackendSettings, get_backend

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="torch backend on CUDA: torch sees no CUDA GPU here")


def test_the_torch_backend_runs_on_the_gpu_and_agrees_with_the_cpu(trained_probe, crops):
    model, _ = trained_probe
    images, _ = crops
    outputs = {}
    for device in ("cpu", "auto"):  # "auto" must pick the GPU here
        backend = get_backend("torch", BackendSettings(device=device))
        backend.load({"classifier": (model, images[:2])})
        outputs[backend.device.type] = backend.run("classifier", images)
        backend.unload()
    assert set(outputs) == {"cpu", "cuda"}
    cpu, gpu = outputs["cpu"], outputs["cuda"]
    assert gpu.shape == cpu.shape == (len(images), 7) and gpu.dtype == cpu.dtype
    assert (gpu.argmax(1) == cpu.argmax(1)).mean() >= 0.995
    np.testing.assert_allclose(gpu, cpu, rtol=1e-2, atol=1e-3)  # TF32 convolutions allowed
    assert next(model.parameters()).device.type == "cpu"  # the caller's module never moves


def test_batches_from_several_threads_are_answered_on_the_gpu(trained_probe, crops):
    """Each thread's batch gets the answer it gets alone (same shape, so the same kernels;
    a batch of another size may take other convolution algorithms, hence other roundings)."""
    from concurrent.futures import ThreadPoolExecutor

    model, _ = trained_probe
    images, _ = crops
    backend = get_backend("torch", BackendSettings(device="cuda"))
    backend.load({"classifier": (model, images[:2])})
    try:
        chunks = [images[i:i + 100] for i in range(0, len(images), 100)]
        alone = [backend.run("classifier", chunk) for chunk in chunks]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda c: backend.run("classifier", c), chunks))
    finally:
        backend.unload()
    for mine, expected in zip(together, alone, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)
