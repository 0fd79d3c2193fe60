"""The OCR workload's own ONNX Runtime sessions (the int8 mobile and one-graph candidates run
them, not the serving backend's) take the serving process's options: intra-op threads sleep
between calls instead of spinning on cores the HTTP server and the batcher need."""

from __future__ import annotations

from pathlib import Path

from tests.support.onnx_identity import identity_model
from workloads.ocr.onnx_runner import OnnxFileRunner

SPINNING = "session.intra_op.allow_spinning"


def test_the_file_runner_s_sessions_sleep_between_calls(tmp_path: Path) -> None:
    (tmp_path / "net.onnx").write_bytes(identity_model())
    runner = OnnxFileRunner({"net": tmp_path / "net.onnx"}, threads=1)
    options = runner.sessions["net"].get_session_options()
    assert options.get_session_config_entry(SPINNING) == "0"  # unset before: it spun
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
