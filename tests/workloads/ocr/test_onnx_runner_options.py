"""The OCR workload's own ONNX Runtime sessions (the int8 mobile and one-graph candidates run
them, not the serving backend's) take the serving process's options: intra-op threads sleep
between calls instead of spinning on cores the HTTP server and the batcher need."""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper

from workloads.ocr.onnx_runner import OnnxFileRunner

SPINNING = "session.intra_op.allow_spinning"


def _identity(path: Path) -> Path:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_the_file_runner_s_sessions_sleep_between_calls(tmp_path: Path) -> None:
    runner = OnnxFileRunner({"net": _identity(tmp_path / "net.onnx")}, threads=1)
    options = runner.sessions["net"].get_session_options()
    assert options.get_session_config_entry(SPINNING) == "0"  # unset before: it spun
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
