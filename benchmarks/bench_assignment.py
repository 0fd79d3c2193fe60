"""Assignment decisions/s and moved share on a weight change, against GrowthBook's Python SDK.

Run: python benchmarks/bench_assignment.py [--units 200000] [--repeats 5]
GrowthBook is a benchmark-only extra (pip install -e .[bench]); without it only our figures print.
Target (shared/PERFORMANCE.md): >= 5x GrowthBook evaluated per request, and exactly the minimum
moved share (10 %) for [.5, .25, .25] -> [.4, .3, .3], where contiguous ranges move 15 %.

Two anchors, both quoted: GrowthBook as its README uses it in a web framework (one instance per
request, which is most of its cost), and GrowthBook's bare decision, its hash and variation
choice with the bucket ranges computed once, which is what ``Assigner.assign`` does and so the
like-for-like figure.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.counts import positive_int  # noqa: E402
from serving.assignment import Assigner, allocate, assign, bucket_of, reallocate  # noqa: E402

try:
    import growthbook
    from growthbook import GrowthBook
    from growthbook.core import chooseVariation, gbhash, getBucketRanges
except ImportError:  # the bench extra is not installed
    growthbook = None

SALT = "exp-bench"
OLD, NEW = [0.5, 0.25, 0.25], [0.4, 0.3, 0.3]
FEATURE = "model-arm"
FEATURES = {
    FEATURE: {
        "defaultValue": "control",
        "rules": [
            {
                "key": "model-arm-exp",
                "seed": SALT,
                "hashAttribute": "id",
                "hashVersion": 2,
                "variations": ["control", "treatment-a", "treatment-b"],
                "weights": OLD,
            }
        ],
    }
}


def unit_ids(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def rate(decide: Callable[[str], object], ids: Sequence[str], repeats: int, label: str) -> float:
    """Median decisions/s over ``repeats`` passes through ``ids``."""
    rates = []
    for run in range(1, repeats + 1):
        start = time.perf_counter()
        for unit in ids:
            decide(unit)
        rates.append(len(ids) / (time.perf_counter() - start))
        print(f"    {label} run {run}/{repeats}: {rates[-1]:,.0f}/s", flush=True)
    return statistics.median(rates)


def growthbook_per_request(unit: str) -> str:
    """What the GrowthBook README shows for web frameworks: one instance per request."""
    gb = GrowthBook(attributes={"id": unit}, features=FEATURES)
    value = gb.get_feature_value(FEATURE, "control")
    gb.destroy()
    return value


def contiguous_moved_share(ids: Sequence[str]) -> float:
    """Share of units changing arm when ranges are laid end to end (GrowthBook's scheme)."""
    if growthbook is not None:
        old, new = getBucketRanges(3, 1, OLD), getBucketRanges(3, 1, NEW)
        hashes = [gbhash(SALT, unit, 2) for unit in ids]
        moved = sum(chooseVariation(n, old) != chooseVariation(n, new) for n in hashes)
        return moved / len(ids)

    def arm(share: float, weights: list[float]) -> int:
        edge = 0.0
        for index, w in enumerate(weights):
            edge += w
            if share < edge:
                return index
        return len(weights) - 1

    shares = [bucket_of(unit, SALT) / 10_000 for unit in ids]
    return sum(arm(s, OLD) != arm(s, NEW) for s in shares) / len(ids)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=positive_int, default=200_000, help="decisions per run")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="runs; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    steps = 6 if growthbook is not None else 3
    results: dict[str, float] = {}

    print(f"[1/{steps}] {args.units:,} random 36-char unit ids, 3 arms {OLD}", flush=True)
    ids = unit_ids(args.units)
    allocation = allocate(OLD)
    assigner = Assigner(allocation, SALT)

    print(f"[2/{steps}] ours: Assigner.assign (built once per experiment)", flush=True)
    results["ours_per_s"] = rate(assigner.assign, ids, args.repeats, "ours")
    one_off = [ids[i] for i in range(0, len(ids), 10)]
    results["ours_one_off_per_s"] = rate(
        lambda unit: assign(allocation, unit, SALT), one_off, args.repeats, "ours one-off assign()"
    )

    if growthbook is not None:
        print(
            f"[3/{steps}] GrowthBook {growthbook.__version__}: new instance per request", flush=True
        )
        results["growthbook_per_request_per_s"] = rate(
            growthbook_per_request, ids, args.repeats, "growthbook"
        )
        print(f"[4/{steps}] GrowthBook bare hash (gbhash v2)", flush=True)
        results["growthbook_hash_per_s"] = rate(
            lambda unit: gbhash(SALT, unit, 2), ids, args.repeats, "gbhash"
        )
        print(f"[5/{steps}] GrowthBook bare decision (gbhash + chooseVariation)", flush=True)
        ranges = getBucketRanges(3, 1, OLD)
        results["growthbook_bare_per_s"] = rate(
            lambda unit: chooseVariation(gbhash(SALT, unit, 2), ranges), ids, args.repeats,
            "gbhash+chooseVariation",
        )
        results["ratio_vs_per_request"] = (
            results["ours_per_s"] / results["growthbook_per_request_per_s"]
        )
        results["ratio_vs_bare_hash"] = results["ours_per_s"] / results["growthbook_hash_per_s"]
        results["ratio_vs_bare_decision"] = (
            results["ours_per_s"] / results["growthbook_bare_per_s"]
        )

    print(f"[{steps}/{steps}] moved share for {OLD} -> {NEW}", flush=True)
    moved = reallocate(allocation, NEW)
    moved_assigner = Assigner(moved, SALT)
    results["ours_moved_share"] = sum(
        assigner.assign(unit) != moved_assigner.assign(unit) for unit in ids
    ) / len(ids)
    results["ours_moved_share_buckets"] = sum(
        a != b for a, b in zip(allocation.table, moved.table, strict=True)
    ) / len(allocation.table)
    results["contiguous_moved_share"] = contiguous_moved_share(ids)

    print("\nresults (medians)")
    print(f"  ours Assigner.assign        {results['ours_per_s']:>12,.0f} decisions/s")
    print(f"  ours one-off assign()       {results['ours_one_off_per_s']:>12,.0f} decisions/s")
    if growthbook is not None:
        print(
            f"  GrowthBook per request      {results['growthbook_per_request_per_s']:>12,.0f}"
            f" decisions/s   ratio {results['ratio_vs_per_request']:.1f}x (target >= 5x)"
        )
        print(
            f"  GrowthBook bare decision    {results['growthbook_bare_per_s']:>12,.0f}"
            f" decisions/s   ratio {results['ratio_vs_bare_decision']:.1f}x (like for like)"
        )
        print(
            f"  GrowthBook bare hash only   {results['growthbook_hash_per_s']:>12,.0f}"
            f" hashes/s      ratio {results['ratio_vs_bare_hash']:.1f}x"
        )
        print(
            f"  headline: {results['ratio_vs_per_request']:.1f}x GrowthBook per request, "
            f"{results['ratio_vs_bare_decision']:.1f}x its bare hash and variation choice"
        )
    else:
        print("  GrowthBook not installed: pip install -e .[bench] for the anchor figures")
    print(
        f"  moved share, ours           {results['ours_moved_share']:.2%} of units"
        f" ({results['ours_moved_share_buckets']:.2%} of buckets; minimum 10.00%)"
    )
    print(f"  moved share, contiguous     {results['contiguous_moved_share']:.2%} of units")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
