"""Capacity planning: the pure math with hand-computed figures, profile intake, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from serving.backends.probe import ProbeCNN
from serving.capacity import (
    CandidateProfile,
    CapacityError,
    best_batch,
    format_table,
    instances_that_fit,
    load_profiles,
    measure_latency_by_batch,
    module_size_bytes,
    parse_size,
    plan_capacity,
    profile_from_record,
)

GB = 10**9
LATENCY = {1: 4.0, 8: 10.0, 32: 40.0}  # items/s: 250, 800, 800 -> batch 8 wins the tie


def profile(name: str, size: float, latency=LATENCY) -> CandidateProfile:
    return CandidateProfile(name, int(size), latency)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10GB", 10 * GB),
        ("10 gb", 10 * GB),
        ("512MiB", 512 * 2**20),
        ("1.5GiB", 3 * 2**29),
        ("800MB", 800 * 10**6),
        ("4096", 4096),
        (".5G", GB // 2),
        (2048, 2048),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "10XB", "-1GB", "ten GB", "1e3GB"])
def test_parse_size_rejects_what_it_cannot_read(text):
    with pytest.raises(CapacityError, match="not understood"):
        parse_size(text)


def test_a_10gb_gpu_holds_one_model_above_5gb_however_much_it_shrinks():
    sizes = [9.9 * GB, 9 * GB, 7 * GB, 5.5 * GB, 5 * GB + 1]
    rows = plan_capacity([profile(f"m{i}", s) for i, s in enumerate(sizes)], 10 * GB)
    assert {row.instances for row in rows} == {1}
    assert {row.qps for row in rows} == {800.0}  # one instance x 8 items / 10 ms
    assert {row.next_step_bytes for row in rows} == {5 * GB}  # shrinking pays only at 5 GB


def test_qps_steps_only_where_one_more_instance_fits():
    sizes = [5 * GB, 4 * GB, 10 * GB / 3 + 1, 10 * GB / 3, 2.5 * GB, 1 * GB]
    rows = plan_capacity([profile(f"m{i}", s) for i, s in enumerate(sizes)], 10 * GB)
    assert [row.instances for row in rows] == [2, 2, 2, 3, 4, 10]
    assert [row.qps for row in rows] == [1600.0, 1600.0, 1600.0, 2400.0, 3200.0, 8000.0]


def test_reserve_is_taken_off_before_dividing():
    assert instances_that_fit(10 * GB, 5 * GB) == 2
    assert instances_that_fit(10 * GB, 5 * GB, reserve_bytes=1) == 1
    rows = plan_capacity([profile("m", 3 * GB)], 10 * GB, reserve_bytes=2 * GB)
    assert rows[0].instances == 2 and rows[0].next_step_bytes == 8 * GB // 3


def test_best_batch_respects_the_p99_target():
    assert best_batch(LATENCY) == (8, 10.0)
    assert best_batch({1: 2.0, 8: 8.0, 32: 20.0}) == (32, 20.0)
    assert best_batch({1: 2.0, 8: 8.0, 32: 20.0}, p99_target_ms=10) == (8, 8.0)
    assert best_batch({1: 2.0, 8: 8.0}, p99_target_ms=1.5) is None
    [row] = plan_capacity([profile("m", GB, {1: 2.0, 8: 8.0, 32: 20.0})], 10 * GB, p99_target_ms=10)
    assert (row.batch_size, row.latency_ms, row.qps_per_instance) == (8, 8.0, 1000.0)
    assert row.qps == 10_000.0


def test_degenerate_rows_say_why_their_qps_is_zero():
    rows = plan_capacity(
        [profile("huge", 12 * GB), profile("slow", GB, {1: 50.0})], 10 * GB, p99_target_ms=20
    )
    assert rows[0].instances == 0 and rows[0].qps == 0 and "does not fit" in rows[0].note
    assert rows[0].next_step_bytes is None
    assert rows[1].instances == 10 and rows[1].qps == 0 and rows[1].batch_size is None
    assert "no batch size meets the 20 ms target (fastest 50 ms)" in rows[1].note


def test_plan_rejects_impossible_inputs():
    with pytest.raises(CapacityError, match="GPU memory"):
        plan_capacity([], 0)
    with pytest.raises(CapacityError, match="reserve"):
        plan_capacity([], 10 * GB, reserve_bytes=10 * GB)
    with pytest.raises(CapacityError, match="p99 target"):
        plan_capacity([], 10 * GB, p99_target_ms=0)
    with pytest.raises(CapacityError, match="latency at batch 8"):
        CandidateProfile("m", GB, {1: 2.0, 8: -1.0})
    with pytest.raises(CapacityError, match="no latency"):
        CandidateProfile("m", GB, {})


def test_table_lists_every_candidate():
    rows = plan_capacity([profile("big", 9 * GB), profile("small", 5 * GB)], 10 * GB)
    table = format_table(rows, 10 * GB)
    lines = table.splitlines()
    assert lines[0] == "GPU memory 10.00 GB, reserve 0 B"
    assert lines[1].split()[:3] == ["candidate", "footprint", "instances"]
    assert lines[2].split()[:5] == ["big", "9.00", "GB", "1", "8"]
    assert lines[3].split()[:8] == ["small", "5.00", "GB", "2", "8", "10.00", "800", "1,600"]


def test_profiles_from_registry_records_and_files(tmp_path):
    record = {"model_size_bytes": 5_500_000_000, "latency_by_batch": {"1": 3.0, "8": 9.0}}
    prof = profile_from_record("cand", record)
    assert prof.footprint_bytes == 5_500_000_000 and prof.latency_ms_by_batch == {1: 3.0, 8: 9.0}
    measured = profile_from_record("cand", {**record, "footprint_bytes": "6GB"})
    assert measured.footprint_bytes == 6 * GB and measured.model_size_bytes == 5_500_000_000
    offline = {"model": {"size_bytes": 300_000}, "latency_by_batch": {"1": 2.0}}
    assert profile_from_record("ocr", offline).footprint_bytes == 300_000
    with pytest.raises(CapacityError, match="no latency_by_batch"):
        profile_from_record("cand", {"model_size_bytes": 1})
    with pytest.raises(CapacityError, match="neither footprint_bytes nor model_size_bytes"):
        profile_from_record("cand", {"latency_by_batch": {"1": 2}})

    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"name": "a", **record}]))
    as_map = tmp_path / "map.json"
    as_map.write_text(json.dumps({"a": record, "b": record}))
    assert [p.name for p in load_profiles(as_list)] == ["a"]
    assert [p.name for p in load_profiles(as_map)] == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(CapacityError, match="must hold"):
        load_profiles(bad)
    with pytest.raises(CapacityError, match="cannot be read"):
        load_profiles(tmp_path / "missing.json")
    named = tmp_path / "named.json"  # one record meant as a list's, written as an object
    named.write_text(json.dumps({"name": "a", **record}))
    with pytest.raises(CapacityError, match="the record of 'name' must be an object"):
        load_profiles(named)  # was an AttributeError traceback


def test_measured_latency_and_size_of_a_real_network():
    import torch

    net = ProbeCNN(width=8).eval()
    example = np.zeros((1, 1, 32, 32), np.float32)
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        with torch.inference_mode():
            return net(torch.from_numpy(batch)).numpy()

    latency = measure_latency_by_batch(
        run, lambda n: np.repeat(example[:1], n, axis=0), (1, 8), repeats=5, warmup=1
    )
    assert set(latency) == {1, 8} and all(ms > 0 for ms in latency.values())
    assert set(seen) == {1, 8}
    params = sum(p.numel() for p in net.parameters())
    assert module_size_bytes(net) >= 4 * params


def test_capacity_command(tmp_path):
    from app.cli import Context
    from app.commands.capacity import capacity

    profiles = tmp_path / "profiles.json"
    profiles.write_text(
        json.dumps(
            [
                {"name": "big", "model_size_bytes": "9GB", "latency_by_batch": {"1": 4, "8": 10}},
                {"name": "small", "model_size_bytes": "5GB", "latency_by_batch": {"1": 4}},
            ]
        )
    )
    runner = CliRunner()
    args = ["--gpu-mem", "10GB", "--profiles", str(profiles), "--per-instance", "0"]
    result = runner.invoke(capacity, [*args, "--json"], obj=Context(None))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["gpu_mem_bytes"] == 10 * GB
    assert [(r["candidate"], r["instances"], r["qps"]) for r in data["rows"]] == [
        ("big", 1, 800.0),
        ("small", 2, 500.0),
    ]
    # By default each instance also holds 500 MB of runtime: two 5 GB models no longer fit.
    default = runner.invoke(capacity, [*args[:4], "--json"], obj=Context(None))
    rows = json.loads(default.output)["rows"]
    assert [(r["candidate"], r["instances"]) for r in rows] == [("big", 1), ("small", 1)]
    human = runner.invoke(capacity, [*args, "--reserve", "10%"], obj=Context(None))
    assert human.exit_code == 0 and "reserve 1.00 GB" in human.output
    assert "small" in human.output.splitlines()[-1]


def test_capacity_command_errors_say_what_to_fix(tmp_path):
    from app.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["capacity", "--gpu-mem", "10XB", "--profiles", "x.json"])
    assert result.exit_code == 2 and "size '10XB' is not understood" in result.output
    result = runner.invoke(
        main, ["capacity", "--gpu-mem", "10GB", "--reserve", "120%", "--profiles", "x.json"]
    )
    assert result.exit_code == 2 and "below 100%" in result.output


def test_per_instance_overhead_counts_against_every_instance():
    rows = plan_capacity([profile("m", 2 * GB)], 10 * GB, instance_overhead_bytes=GB // 2)
    assert rows[0].footprint_bytes == 2.5 * GB and rows[0].instances == 4
    with pytest.raises(CapacityError, match="overhead"):
        plan_capacity([profile("m", GB)], 10 * GB, instance_overhead_bytes=-1)


def test_capacity_command_reads_the_registry(tmp_path):
    from app.cli import Context
    from app.commands.capacity import capacity
    from core.settings import load_settings
    from core.store import Database, schema
    from serving.registry import Registry

    env = {"ABVOC_DATA_DIR": str(tmp_path)}
    settings = load_settings(env=env)
    database = Database(settings.database_url)
    schema.upgrade(database, "head")
    registry = Registry(database)
    for name, size in (("ocr-large", 6 * GB), ("ocr-small", 4 * GB)):
        registry.register(name, "1")
        registry.set_offline_results(
            name, "1", {"model": {"size_bytes": size}, "latency_by_batch": {"1": 5, "8": 20}}
        )
    ctx = Context(None)
    ctx._settings = settings
    result = CliRunner().invoke(capacity, ["--gpu-mem", "10GB", "--json"], obj=ctx)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert [(r["candidate"], r["instances"], r["qps"]) for r in rows] == [
        ("ocr-large", 1, 400.0),
        ("ocr-small", 2, 800.0),
    ]
