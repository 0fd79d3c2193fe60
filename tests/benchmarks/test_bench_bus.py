"""bench_bus's summary gives the CPU ratio as it gives the events/s one: the median of each run's
own ratio, as its docstring says. Before, it divided the anchor's median CPU per event by abvoc's
median, pairing figures from different runs: with the anchor at 100, 200 and 300 µs and abvoc at
300, 250 and 900 µs in the same three runs it printed 0.67, where the runs' own ratios are 0.33,
0.80 and 0.33."""

from __future__ import annotations

from benchmarks.bus_summary import ANCHOR, summary

SIDE = "abvoc kafka bus + sqlite store, outbox→bus→store"


def test_cpu_ratio_is_the_median_of_each_runs_ratio() -> None:
    rates = {ANCHOR: [10_000.0, 9_000.0, 11_000.0], SIDE: [4_000.0, 4_500.0, 3_000.0]}
    ratios = {SIDE: [0.40, 0.50, 0.27]}
    cpus = {ANCHOR: [100.0, 200.0, 300.0], SIDE: [300.0, 250.0, 900.0]}
    lines = summary(3, 20_000, rates, ratios, cpus)
    assert lines[0] == "\nmedians of 3 runs (20000 events each):"
    assert lines[2].endswith(
        "ratio to raw kafka-python: events/s 0.40, CPU per event (the anchor's over abvoc's) 0.33")
