"""The onnxruntime session options every serving session gets (serving.backends.ort_options)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from serving.backends.ort_options import cpu_session_options, threads_sharing
from tests.support.onnx_identity import identity_model


def test_intra_op_threads_sleep_between_calls_instead_of_spinning() -> None:
    options = cpu_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 0  # onnxruntime's own count
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_a_thread_count_is_kept_and_the_options_load_a_session() -> None:
    options = cpu_session_options(intra_op_threads=1)
    assert options.intra_op_num_threads == 1
    session = ort.InferenceSession(identity_model(), options,
                                   providers=["CPUExecutionProvider"])
    x = np.array([[1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x)


def test_callers_side_by_side_share_the_cores(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    assert threads_sharing(1) is None  # one caller: onnxruntime's own count
    assert threads_sharing(4) == 2
    assert threads_sharing(16) == 1  # never none


def test_an_unbatched_bundle_runs_its_workers_on_a_share_of_the_cores() -> None:
    from serving.bundles.manifest import UNBATCHED_WORKERS, Batching

    assert Batching(max_batch_size=1).workers == UNBATCHED_WORKERS
    assert Batching(max_batch_size=8, max_batch_time_ms=2).workers == 1
