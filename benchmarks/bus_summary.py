"""bench_bus's summary lines, apart from the script so that their test needs neither the
broker's client nor psutil (the `bench` extra), which the script imports."""

from __future__ import annotations

import statistics

ANCHOR = "raw kafka-python, producing and consuming at once"


def summary(repeats: int, n: int, rates: dict[str, list[float]],
            ratios: dict[str, list[float]], cpus: dict[str, list[float]]) -> list[str]:
    """The summary's lines: per side the medians over runs, and its ratios to the anchor as the
    median of each run's own ratio (the machine's load moves both sides of a run alike, so the
    ratio within a run is the figure); `cpus` holds each run's µs per event, runs in order."""
    lines = [f"\nmedians of {repeats} runs ({n} events each):"]
    for name, values in rates.items():
        cpu_us = statistics.median(cpus[name])
        line = (f"  {name:58s} {statistics.median(values):10,.0f} events/s, "
                f"CPU {cpu_us:4.0f} µs/event")
        if name in ratios:
            cpu_ratio = statistics.median(
                a / c for a, c in zip(cpus[ANCHOR], cpus[name], strict=True))
            line += (f"\n    ratio to raw kafka-python: events/s "
                     f"{statistics.median(ratios[name]):.2f}, CPU per event (the anchor's over "
                     f"abvoc's) {cpu_ratio:.2f}")
        lines.append(line)
    return lines
