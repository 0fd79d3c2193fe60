"""The pages' number format: four significant figures wrote a heartbeat 17 days old as
"1.521e+06" seconds ago, and would a 10-second latency as "1e+04" ms."""

from __future__ import annotations

import math

from dashboards.tables import fmt


def test_large_figures_are_whole_numbers_with_separators() -> None:
    assert fmt(1_521_000.3) == "1,521,000"
    assert fmt(10_000.0) == "10,000" and fmt(-25_000.4) == "-25,000"
    assert fmt(12_345.6) == "12,346"


def test_small_figures_keep_four_significant_figures() -> None:
    assert fmt(9_999.4) == "9999" and fmt(0.8123456) == "0.8123"
    assert fmt(0.000123) == "0.000123" and fmt(1.5e-9) == "1.5e-09"  # a p-value
    assert fmt(math.inf) == "inf" and fmt(0.25, percent=True) == "+25.0%"
    assert fmt(12_345) == "12,345" and fmt(None) == "–"
