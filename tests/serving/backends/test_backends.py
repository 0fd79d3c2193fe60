"""Backend lifecycle, agreement between torch and ONNX Runtime, errors, and the TensorRT skip."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving.backends import (
    BACKEND_NAMES,
    BackendError,
    BackendNotReady,
    BackendSettings,
    BackendUnavailable,
    BadBatch,
    UnknownBackend,
    UnknownNetwork,
    get_backend,
    unavailable_reason,
)
from serving.backends.onnx_backend import OnnxBackend, weights_digest
from serving.backends.torch_backend import TorchBackend
from tests.support.flow import joined

CPU = ("torch", "onnxruntime")


def test_trained_probe_learned_its_task(trained_probe):
    _, accuracy = trained_probe
    assert accuracy > 0.85


@pytest.mark.parametrize("fixture", ["trained_probe", "random_net"])
def test_torch_and_onnxruntime_agree(request, fixture, crops, tmp_path):
    net = request.getfixturevalue(fixture)
    module = net[0] if isinstance(net, tuple) else net
    images, _ = crops
    outputs = {}
    for name in CPU:
        backend = get_backend(name, BackendSettings(device="cpu"))
        backend.load({"classifier": (module, images[:2])}, tmp_path)
        outputs[name] = backend.run("classifier", images)
        backend.unload()
    torch_out, ort_out = outputs["torch"], outputs["onnxruntime"]
    assert torch_out.shape == ort_out.shape == (len(images), 7)
    same = (torch_out.argmax(1) == ort_out.argmax(1)).mean()
    assert same >= 0.995
    np.testing.assert_allclose(ort_out, torch_out, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", CPU)
def test_lifecycle(name, random_net, crops, tmp_path):
    images, _ = crops
    backend = get_backend(name)
    assert not backend.ready
    with pytest.raises(BackendNotReady, match="not loaded"):
        backend.run("net", images[:1])
    backend.load({"net": (random_net, images[:1])}, tmp_path)
    assert backend.ready and backend.networks == ("net",)
    with pytest.raises(BackendError, match="already loaded"):
        backend.load({"net": (random_net, images[:1])}, tmp_path)
    assert backend.run("net", images[:5]).shape == (5, 7)
    backend.unload()
    assert not backend.ready
    backend.unload()  # idempotent
    with pytest.raises(BackendNotReady):
        backend.run("net", images[:1])
    with backend:  # reload after unload, and unload on leaving the block
        backend.load({"net": (random_net, images[:1])}, tmp_path)
        assert backend.run("net", images[:3]).shape == (3, 7)
    assert not backend.ready


@pytest.mark.parametrize("name", CPU)
def test_unknown_network_and_bad_batches(name, random_net, crops, tmp_path):
    images, _ = crops
    backend = get_backend(name)
    backend.load({"recognizer": (random_net, images[:1])}, tmp_path)
    try:
        with pytest.raises(UnknownNetwork, match="no network 'detector'.*recognizer") as err:
            backend.run("detector", images[:1])
        assert err.value.status == 404
        with pytest.raises(BadBatch, match=r"expects \(N, 1, 32, 32\) float32"):
            backend.run("recognizer", images[:2, :, :16])
        with pytest.raises(BadBatch, match="empty batch"):
            backend.run("recognizer", images[:0])
        with pytest.raises(BadBatch, match="expects float32, got complex64"):
            backend.run("recognizer", images[:2].astype(np.complex64))
        with pytest.raises(BadBatch, match="numpy array"):
            backend.run("recognizer", images[:2].tolist())
        # float64 is cast, read-only arrays are accepted
        frozen = images[:3].astype(np.float64)
        frozen.setflags(write=False)
        assert backend.run("recognizer", frozen).shape == (3, 7)
    finally:
        backend.unload()


def test_load_rejects_empty_and_multi_output_networks(tmp_path, crops):
    import torch

    class TwoHeads(torch.nn.Module):
        def forward(self, x):
            return x.mean((1, 2, 3)), x.amax((1, 2, 3))

    images, _ = crops
    for name in CPU:
        backend = get_backend(name)
        with pytest.raises(BackendError, match="no networks"):
            backend.load({}, tmp_path)
        with pytest.raises(BackendError, match="must return one tensor"):
            backend.load({"two": (TwoHeads(), images[:1])}, tmp_path)
        assert not backend.ready


def test_onnx_export_is_cached_by_weight_content(random_net, trained_probe, crops, tmp_path):
    images, _ = crops
    first = OnnxBackend()
    first.load({"net": (random_net, images[:1])}, tmp_path)
    path = first.onnx_files["net"]
    stamp = path.stat().st_mtime_ns
    first.unload()
    second = OnnxBackend()
    second.load({"net": (random_net, images[:1])}, tmp_path)
    assert second.onnx_files["net"] == path and path.stat().st_mtime_ns == stamp
    second.unload()
    other = trained_probe[0]
    assert weights_digest(other, images[:1], 17) != weights_digest(random_net, images[:1], 17)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1


def test_backend_without_cache_dir_cleans_up(random_net, crops):
    images, _ = crops
    backend = OnnxBackend()
    backend.load({"net": (random_net, images[:1])})
    scratch = backend.onnx_files["net"].parent.parent
    assert scratch.exists()
    backend.unload()
    assert not scratch.exists()


def test_torch_backend_leaves_caller_module_alone(random_net, crops):
    images, _ = crops
    before = {k: v.clone() for k, v in random_net.state_dict().items()}
    backend = TorchBackend(BackendSettings(device="cpu"))
    backend.load({"net": (random_net, images[:1])})
    backend.unload()
    after = random_net.state_dict()
    assert all((before[k] == after[k]).all() for k in before)


@pytest.mark.parametrize("name", CPU)
def test_backend_with_batching_serves_concurrent_callers(name, random_net, crops, tmp_path):
    images, _ = crops
    settings = BackendSettings(device="cpu", max_batch_size=16, max_batch_time_ms=20)
    backend = get_backend(name, settings)
    backend.load({"net": (random_net, images[:1])}, tmp_path)
    expected = backend._infer("net", images[:48])
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        results[i] = backend.run("net", images[i : i + 1])

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(48)]
    for t in threads:
        t.start()
    joined(threads, 120)
    batcher = backend._batchers["net"]
    backend.unload()
    for i in range(48):
        np.testing.assert_allclose(results[i][0], expected[i], rtol=1e-4, atol=1e-5)
    assert max(batcher.batch_sizes) > 1 and batcher.closed


def test_registry_and_settings():
    assert BACKEND_NAMES == ("torch", "onnxruntime", "tensorrt")
    assert isinstance(get_backend("onnx"), OnnxBackend)
    assert isinstance(get_backend("PyTorch"), TorchBackend)
    assert get_backend("trt").name == "tensorrt"
    with pytest.raises(UnknownBackend, match="unknown backend 'tflite'"):
        get_backend("tflite")
    assert unavailable_reason("torch") is None and unavailable_reason("onnxruntime") is None
    with pytest.raises(Exception, match="max_batch_size"):
        BackendSettings(max_batch_size=0)
    with pytest.raises(Exception, match="device"):
        BackendSettings(device="tpu")
    assert not BackendSettings().batching and BackendSettings(max_batch_size=2).batching


def test_tensorrt_refuses_clearly_where_it_cannot_run(random_net, crops, tmp_path):
    reason = unavailable_reason("tensorrt")
    if reason is None:
        pytest.skip("TensorRT can run here; the refusal path is not reachable")
    assert reason.startswith("TensorRT backend needs the tensorrt package and a CUDA GPU: ")
    backend = get_backend("tensorrt")
    with pytest.raises(BackendUnavailable) as err:
        backend.load({"net": (random_net, crops[0][:1])}, tmp_path)
    assert str(err.value) == reason and err.value.status == 503 and not backend.ready
