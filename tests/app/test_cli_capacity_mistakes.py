"""Profiles files `abvoc capacity --profiles` reads: numbers no GPU or model has are refused,
naming the candidate and the field, before they turn into an answer that is not JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main


@pytest.mark.parametrize(("record", "words"), [
    ({"latency_by_batch": {"1": 5e-324}}, "latency at batch 1"),
    ({"latency_by_batch": {"9" * 300: 1}}, "batch size 999"),
    ({"model_size_bytes": 10**40, "latency_by_batch": {"1": 1}}, "size 1000"),
    ({"footprint_bytes": 2**53 + 1, "latency_by_batch": {"1": 1}}, "2^53"),
])
def test_profiles_beyond_any_gpu_are_refused(fresh_cli: CliRunner, tmp_path: Path,
                                             record: dict[str, object], words: str) -> None:
    """A 5e-324 ms latency or a 300-digit batch printed "qps": Infinity, which is not JSON."""
    profiles = tmp_path / "p.json"
    profiles.write_text(json.dumps([{"name": "m", "model_size_bytes": 10, **record}]))
    result = fresh_cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--profiles",
                                     str(profiles), "--json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Infinity" not in result.output
    assert "candidate 'm'" in result.output and words in result.output, result.output


BIG = "1" + "0" * 400


@pytest.mark.parametrize(("record", "options"), [
    ({"model_size_bytes": 10, "latency_by_batch": {"1": int(BIG)}}, []),
    ({"model_size_bytes": int(BIG), "latency_by_batch": {"1": 1}}, []),
    ({"model_size_bytes": BIG + "GB", "latency_by_batch": {"1": 1}}, []),
    ({"model_size_bytes": 10, "latency_by_batch": {"1": 1}}, ["--reserve", BIG + "GB"]),
    ({"model_size_bytes": 10, "latency_by_batch": {"1": 1}}, ["--per-instance", BIG]),
    ({"model_size_bytes": 10, "latency_by_batch": {"1": 1}}, ["--per-instance", "10" + "0" * 30]),
])
def test_sizes_and_latencies_of_hundreds_of_digits_are_refused(
        fresh_cli: CliRunner, tmp_path: Path, record: dict[str, object],
        options: list[str]) -> None:
    """Each was an OverflowError traceback (int too large to convert to float), but the last: a
    per-instance overhead larger than the GPU, planned as an answer (exit 0)."""
    profiles = tmp_path / "p.json"
    profiles.write_text(json.dumps([{"name": "m", **record}]))
    result = fresh_cli.invoke(main, ["capacity", "--gpu-mem", "10GB", "--profiles",
                                     str(profiles), *options])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert any(words in result.output for words in ("out of range", "2^53", "malformed",
                                                    "--per-instance")), result.output
