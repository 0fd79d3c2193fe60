"""Rounds of paired runs: each run's requests/s and p50/p99 latency, every other round in the
reverse order (so drift in a shared machine's load falls on every run alike), and the medians
over rounds that the /v2 benchmarks print."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np


def summary(rate: float, lat: list[float]) -> tuple[float, float, float]:
    return rate, float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def rounds(runs: dict[str, Callable[[], tuple[float, list[float]]]], n: int,
           label: str) -> dict[str, list[tuple[float, float, float]]]:
    """`n` rounds of every run, the order reversed every other round."""
    names = list(runs)
    figures: dict[str, list] = {name: [] for name in names}
    for r in range(n):
        for name in names if r % 2 == 0 else names[::-1]:
            f = summary(*runs[name]())
            figures[name].append(f)
            print(f"{label} round {r + 1} {name:23s}: {f[0]:8.1f} req/s  p50 {f[1]:7.3f} ms  "
                  f"p99 {f[2]:7.3f} ms", flush=True)
    return figures


def medians(figures: dict[str, list]) -> dict[str, list[float]]:
    return {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in figures.items()}


def ratio(figures: dict[str, list], a: str, b: str, i: int = 0) -> float:
    """Median over rounds of a/b for figure i, each round's two taken together."""
    return statistics.median(x[i] / y[i] for x, y in zip(figures[a], figures[b], strict=True))
