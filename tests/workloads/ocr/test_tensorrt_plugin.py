"""The TensorRT plugin gives the CPU op's labels and stats (only where TensorRT and a GPU are)."""

from __future__ import annotations

import numpy as np
import pytest

from workloads.ocr import tensorrt_plugin
from workloads.ocr.components import label_scipy
from workloads.ocr.dataset import OFFLINE_MIX, generate
from workloads.ocr.detector import ink_mask, ink_of

REASON = tensorrt_plugin.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"TensorRT plugin: {REASON}")
MAX_SHAPE = (512, 1024)


def engine_and_context():  # type: ignore[no-untyped-def]
    import tensorrt as trt

    creator = tensorrt_plugin.register()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    mask = network.add_input("mask", trt.bool, (-1, -1))
    plugin = creator.create_plugin("ccl", trt.PluginFieldCollection([]),
                                   trt.TensorRTPhase.BUILD)
    layer = network.add_plugin_v3([mask], [], plugin)
    for i, name in enumerate(("labels", "stats", "count")):
        layer.get_output(i).name = name
        network.mark_output(layer.get_output(i))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("mask", (1, 1), (64, 256), MAX_SHAPE)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    return engine, engine.create_execution_context()


def test_the_plugin_agrees_with_the_cpu_op() -> None:
    import tensorrt as trt
    import torch

    class Allocator(trt.IOutputAllocator):
        """Holds the data-dependent stats output; TensorRT asks for its size at run time."""

        def __init__(self) -> None:
            super().__init__()
            self.buffer = torch.empty(0, dtype=torch.int32, device="cuda")
            self.shape: tuple[int, ...] = ()

        def reallocate_output(self, name, memory, size, alignment):  # type: ignore[no-untyped-def]
            self.buffer = torch.empty(max(size // 4, 1), dtype=torch.int32, device="cuda")
            return self.buffer.data_ptr()

        def notify_shape(self, name, shape):  # type: ignore[no-untyped-def]
            self.shape = tuple(shape)

    engine, context = engine_and_context()
    rng = np.random.default_rng(7)
    masks = [ink_mask(ink_of(s.image)) for s in generate(100, OFFLINE_MIX, 0, "offline-test")]
    masks += [rng.random((int(h), int(w))) < 0.5
              for h, w in zip(rng.integers(1, 300, 50), rng.integers(1, 300, 50), strict=True)]
    stream = torch.cuda.Stream()
    for mask in masks:
        assert mask.shape[0] <= MAX_SHAPE[0] and mask.shape[1] <= MAX_SHAPE[1]
        m = torch.from_numpy(mask).cuda()
        labels = torch.empty(mask.shape, dtype=torch.int32, device="cuda")
        count = torch.zeros((), dtype=torch.int32, device="cuda")
        allocator = Allocator()
        context.set_input_shape("mask", tuple(mask.shape))
        context.set_tensor_address("mask", m.data_ptr())
        context.set_tensor_address("labels", labels.data_ptr())
        context.set_tensor_address("count", count.data_ptr())
        context.set_output_allocator("stats", allocator)
        assert context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        ref_labels, ref_stats = label_scipy(mask)
        n = int(count.item())
        np.testing.assert_array_equal(labels.cpu().numpy(), ref_labels)
        assert allocator.shape == (n, 5)
        got = allocator.buffer[: n * 5].view(n, 5).cpu().numpy()
        np.testing.assert_array_equal(got, ref_stats)
