"""A bundle's TensorRT engine stage: the team's serialized engine, run on the GPU by tensor name.

The engine is deserialized once, at load (a file this TensorRT cannot read is refused at
registration); each run casts the stage's named inputs to the engine's types on the GPU, runs
the one execution context under its lock (a context serves one run at a time) and reads the
named outputs back. A batch of more rows than the engine's optimisation profile takes (merged
requests can make one) runs in chunks of the most it takes, their outputs joined by row. Only
where tensorrt imports and torch sees a CUDA GPU: elsewhere loading is refused saying why, and
the tests that run an engine skip with the reason.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from serving.bundles.manifest import ManifestError, Stage
from serving.bundles.stages import InputInfo, LoadedStage, Tensors, fixed_dims, needed


def load_engine_stage(stage: Stage, path: Path) -> LoadedStage:
    from serving.backends import BackendError, BackendUnavailable, unavailable_reason

    reason = unavailable_reason("tensorrt")
    if reason is not None:
        raise BackendUnavailable(f"stage {stage.name!r}: the tensorrt backend is unavailable "
                                 f"on this host ({reason}); register this bundle where "
                                 "TensorRT is installed")
    import tensorrt as trt
    import torch

    from serving.backends.tensorrt_backend import run_engine, torch_dtype

    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise ManifestError(f"stage {stage.name!r}: {stage.path!r} is not a TensorRT engine "
                            f"this TensorRT ({trt.__version__}) can load")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    types = {n: torch_dtype(trt, engine.get_tensor_dtype(n)) for n in names}
    outputs = {n: types[n] for n in names if n not in inputs}
    device = torch.device("cuda", torch.cuda.current_device())
    context = engine.create_execution_context()
    lock = threading.Lock()
    most = _most_rows(engine, inputs)

    # The default holds the runtime and the engine for as long as the stage's context runs.
    def once(feed: Tensors, _alive: tuple[Any, Any] = (runtime, engine)) -> Tensors:
        with lock, torch.cuda.device(device):
            on_gpu = {n: torch.from_numpy(np.ascontiguousarray(a)).to(device, types[n])
                      .contiguous() for n, a in feed.items()}
            out = run_engine(context, on_gpu, outputs, device)
            return {n: (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t)
                    .cpu().numpy() for n, t in out.items()}

    def run(tensors: Tensors) -> Tensors:
        feed = {n: tensors[n] for n in needed(stage, inputs, tensors)}
        rows = {a.shape[0] if a.ndim else None for a in feed.values()}
        total = rows.pop() if len(rows) == 1 else None
        if most is None or total is None or total <= most:
            return once(feed)
        parts = [once({n: a[start:start + most] for n, a in feed.items()})
                 for start in range(0, total, most)]
        for name, first in parts[0].items():
            if first.ndim == 0 or len(first) != min(most, total):
                raise BackendError(f"stage {stage.name!r}: output {name!r} has no row per input "
                                   f"row, so a batch past the engine's {most} rows cannot be "
                                   f"split; send at most {most} rows")
        return {n: np.concatenate([p[n] for p in parts]) for n in parts[0]}

    return LoadedStage(stage.name, run,
                       tuple(InputInfo(n, None, fixed_dims(engine.get_tensor_shape(n)))
                             for n in inputs),
                       outputs=tuple(outputs))


def _most_rows(engine: Any, inputs: list[str]) -> int | None:
    """The most rows (first dimension) a run may take: the smallest of the inputs' bounds in
    the engine's first optimisation profile; None where no input has a first dimension."""
    bounds = []
    for name in inputs:
        shape = tuple(engine.get_tensor_shape(name))
        if not shape:
            continue
        if shape[0] >= 0:
            bounds.append(shape[0])
        else:
            _, _, most = engine.get_tensor_profile_shape(name, 0)
            bounds.append(int(most[0]))
    return min(bounds) if bounds else None
