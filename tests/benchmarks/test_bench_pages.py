"""bench_pages refuses what it cannot time and names what it skips. Before, `--pages 4` timed
no batch of 8 and printed "0.0 pages/s, 0.00x anchor" for it, a backend that does not run here
(`tensorrt` without a GPU) was dropped from the table without a word, and an unknown one ended
in a traceback."""

from __future__ import annotations

import pytest

from benchmarks import bench_pages


@pytest.mark.parametrize(("argv", "says"), [
    (["--pages", "4"], "--pages takes at least 8"),
    (["--rounds", "0"], "--rounds takes 1 or more"),
    (["--backends", "torch,nonsense"], "unknown backend 'nonsense'"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], says: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        bench_pages.main(argv)
    assert stop.value.code == 2
    assert says in capsys.readouterr().err.splitlines()[-1]


def test_a_backend_that_does_not_run_here_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    reason = bench_pages.unavailable_reason("tensorrt")
    if reason is None:
        pytest.skip("TensorRT runs on this host")
    assert bench_pages.usable_backends("onnxruntime,tensorrt") == ["onnxruntime"]
    assert f"[skip] tensorrt: {reason}" in capsys.readouterr().out
