"""The op as an ONNX Runtime custom-op library (csrc/ort): scipy's labels and stats from ORT.

Run through a one-node model written with onnx.helper and through the torch op's own ONNX
export, on the offline test's ink masks and on hypothesis' random masks; edge shapes; wrong
inputs refused with ORT's error and a message; the library registered in two fresh sessions.
"""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from onnx import TensorProto

from tests.workloads.ocr.ccl_cases import (
    assert_like_scipy,
    export_torch_op,
    masks,
    offline_masks,
)
from workloads.ocr import ort_ops
from workloads.ocr.ort_ops import one_node_model

REASON = ort_ops.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"ORT op library: {REASON}")
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module", autouse=True)
def library() -> Path:
    return ort_ops.build()  # incremental: no work when csrc/ort and csrc/ccl are unchanged


def session(model: bytes, quiet: bool = False) -> ort.InferenceSession:
    options = ort_ops.session_options()
    if quiet:
        options.log_severity_level = 4  # the refused runs below would log their error too
    return ort.InferenceSession(model, sess_options=options, providers=CPU)


@pytest.fixture(scope="module")
def helper_session() -> ort.InferenceSession:
    return session(one_node_model())


@pytest.fixture(scope="module")
def torch_session() -> ort.InferenceSession:
    return session(export_torch_op())


def run(sess: ort.InferenceSession, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, stats = sess.run(None, {"mask": mask})
    return labels, stats


def test_every_offline_test_mask_labels_as_scipy_does(helper_session: ort.InferenceSession,
                                                      torch_session: ort.InferenceSession
                                                      ) -> None:
    for mask in offline_masks():
        assert_like_scipy(*run(helper_session, mask), mask)
        assert_like_scipy(*run(torch_session, mask), mask)


@settings(max_examples=300, deadline=None)
@given(masks)
def test_random_masks_label_as_scipy_does(helper_session: ort.InferenceSession,
                                          torch_session: ort.InferenceSession,
                                          mask: np.ndarray) -> None:
    assert_like_scipy(*run(helper_session, mask), mask)
    assert_like_scipy(*run(torch_session, mask), mask)


def test_a_uint8_mask_labels_as_its_bool_mask_does() -> None:
    mask = np.random.default_rng(1).random((50, 60)) < 0.4
    assert_like_scipy(*run(session(one_node_model(TensorProto.UINT8)),
                           mask.astype(np.uint8) * 255), mask)


@pytest.mark.parametrize("shape", [(5, 7), (0, 4), (3, 0)])
def test_an_empty_mask_has_no_components(helper_session: ort.InferenceSession,
                                         shape: tuple[int, int]) -> None:
    labels, stats = run(helper_session, np.zeros(shape, dtype=bool))
    assert labels.shape == shape and not labels.any()
    assert stats.shape == (0, 5) and stats.dtype == np.int64


def test_a_full_mask_is_one_component(helper_session: ort.InferenceSession) -> None:
    labels, stats = run(helper_session, np.ones((6, 9), dtype=bool))
    assert (labels == 1).all()
    np.testing.assert_array_equal(stats, [[0, 0, 9, 6, 54]])


@pytest.mark.parametrize("shape", [(1, 257), (257, 1)])
def test_one_pixel_wide_masks_label_as_scipy_does(helper_session: ort.InferenceSession,
                                                  shape: tuple[int, int]) -> None:
    mask = np.random.default_rng(2).random(shape) < 0.5
    assert_like_scipy(*run(helper_session, mask), mask)


def test_a_mask_of_another_type_is_refused_with_what_to_fix() -> None:
    sess = session(one_node_model(TensorProto.FLOAT), quiet=True)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match="mask must be a bool or uint8 tensor, got float"):
        sess.run(None, {"mask": np.ones((3, 4), dtype=np.float32)})


def test_a_mask_of_another_rank_is_refused_with_what_to_fix() -> None:
    sess = session(one_node_model(dims=("h", "w", "c")), quiet=True)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=r"mask must be 2-D \(H, W\), got shape \[2, 3, 4\]"):
        sess.run(None, {"mask": np.ones((2, 3, 4), dtype=bool)})
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="2-D"):
        sess.run(None, {"mask": np.ones((1, 2, 2), dtype=bool)})  # refused again, no crash


def test_the_library_registers_in_fresh_sessions_again_and_again() -> None:
    mask = np.random.default_rng(3).random((40, 30)) < 0.45
    first = session(one_node_model())
    assert_like_scipy(*run(first, mask), mask)
    del first
    gc.collect()  # the first session and its options are gone before the next registration
    for _ in range(2):
        assert_like_scipy(*run(session(one_node_model()), mask), mask)
    options = ort_ops.session_options()
    assert ort_ops.session_options(options) is options  # ORT would refuse the domain twice
    twice = ort.InferenceSession(one_node_model(), sess_options=options, providers=CPU)
    assert_like_scipy(*run(twice, mask), mask)


def test_sessions_run_the_op_from_many_threads_at_once(helper_session: ort.InferenceSession
                                                       ) -> None:
    rng = np.random.default_rng(4)
    batch = [rng.random((int(h), int(w))) < p
             for h, w, p in zip(rng.integers(1, 120, 64), rng.integers(1, 120, 64),
                                rng.random(64), strict=True)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda m: run(helper_session, m), batch))
    for mask, result in zip(batch, results, strict=True):
        assert_like_scipy(*result, mask)


def test_a_missing_library_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setattr(ort_ops, "LIBRARY", tmp_path / "_ccl_ort.so")
    with pytest.raises(FileNotFoundError, match="install-python.sh"):
        ort_ops.session_options()
    monkeypatch.setattr(ort_ops, "find_cargo", lambda: None)
    assert ort_ops.unavailable() == ort_ops.NO_CARGO
    with pytest.raises(RuntimeError, match="cargo"):
        ort_ops.build()
