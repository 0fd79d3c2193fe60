"""The benchmarks refuse a count below 1 at the command line: exit 2 and one line naming the
option. Before, `--repeats 0` ended in "no median for empty data" (bench_stats, bench_assignment,
bench_ccl, bench_commit --rounds 0), bench_worker's in an UnboundLocalError, `--commits 0` or
`--units 0` in a ZeroDivisionError, most of them only after their data was built. The HTTP
benchmarks (bench_api, bench_v2 and the two beside it), bench_dashboard and bench_divergence
took any int: `--requests 0` or `--repeats 0` started servers or seeded a million predictions
first. Each script runs in a process of its own, so this module imports none of them (nor
kafka-python or psutil, which the bus and campaign benchmarks need)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.counts import positive_int

ROOT = Path(__file__).resolve().parents[2]


def test_positive_int_takes_whole_numbers_of_one_or_more() -> None:
    assert positive_int("3") == 3
    for text, says in (("0", "takes 1 or more; got 0"), ("-2", "got -2"),
                       ("2.5", "takes a whole number; got '2.5'")):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            positive_int(text)


@pytest.mark.parametrize(("script", "option"), [
    ("bench_stats.py", "--repeats"), ("bench_assignment.py", "--units"),
    ("bench_commit.py", "--commits"), ("bench_worker.py", "--repeats"),
    ("bench_ccl.py", "--repeats"), ("bench_mobile.py", "--epochs"),
    ("bench_record_placement.py", "--rounds"),
    ("bench_api.py", "--requests"), ("bench_api.py", "--rounds"),
    ("bench_v2.py", "--requests"), ("bench_v2.py", "--remote-concurrency"),
    ("bench_v2_model_cost.py", "--concurrency"), ("bench_v2_tensors.py", "--rounds"),
    ("bench_dashboard.py", "--repeats"), ("bench_dashboard.py", "--predictions"),
    ("bench_divergence.py", "--rows"), ("bench_divergence.py", "--repeats"),
])
def test_a_zero_count_exits_2_with_one_line(script: str, option: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), option, "0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.splitlines()[-1].endswith(
        f"error: argument {option}: takes 1 or more; got 0")
