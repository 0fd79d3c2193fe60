"""onnxruntime's session options for a serving process, one place for the ONNX backend and for
bundles' ONNX stages."""

from __future__ import annotations

import os
from typing import Any


def cpu_session_options(intra_op_threads: int | None = None) -> Any:
    """Options for a CPU InferenceSession that shares its process with the service.

    onnxruntime's intra-op threads spin by default after each call, waiting for the next; that
    pays off in a process that does nothing but inference. Here the HTTP server's threads, the
    batcher and the durable writer need the same cores between calls, and the spinning threads
    took them: `benchmarks/bench_v2_model_cost.py` served a model of about 1 ms a call at
    300-400 requests/s with spinning, 400-500 without (8 connections, 2 cores). So they sleep
    instead. `intra_op_threads` None leaves onnxruntime's own count (one per physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    return options


def threads_sharing(callers: int) -> int | None:
    """Intra-op threads for a session that `callers` threads call at once: one caller gets
    onnxruntime's own count (None); several share the cores among them. Each caller's call
    otherwise wakes a thread per core for every operator, and with more callers than cores the
    wakes outnumber the work (bench_v2_model_cost: a 9 ms model unbatched, 4 workers on 2
    cores, added 1.8 ms a request with onnxruntime's count, 0.4 ms with one thread each)."""
    if callers <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // callers)
