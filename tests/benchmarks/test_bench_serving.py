"""bench_serving checks its arguments before training anything. Before, an unknown backend ended
in a UnknownBackend traceback and `--rounds 0` in "no median for empty data", after the
candidates had been trained and timed."""

from __future__ import annotations

import pytest

from benchmarks import bench_serving


@pytest.mark.parametrize(("argv", "says"), [
    (["--backends", "onnxruntime,nonsense"], "unknown backend 'nonsense'"),
    (["--rounds", "0"], "--rounds takes 1 or more"),
    (["--seconds", "0"], "--seconds more than 0"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], says: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        bench_serving.main(["--no-ocr", "--no-probes", *argv])
    assert stop.value.code == 2
    assert says in capsys.readouterr().err.splitlines()[-1]
