"""Serving throughput and latency per candidate and backend, and the dynamic batching gain.

Run: python benchmarks/bench_serving.py [--rounds 3] [--backends torch,onnxruntime,tensorrt]
         [--seconds 1.0] [--json out.json]

For each candidate's neural networks and each backend that runs on this host: images/s and batch
latency p50/p99 at batch sizes 1, 8 and 32 (medians over rounds). Then the batching gain, measured
in the same run: 32 client threads send single-image requests to one backend without batching and
then with the dynamic batcher (max batch 8 and 32, 2 ms max delay), interleaved round by round;
the ratio of their images/s is the gain.
Target (shared/PERFORMANCE.md): >= 3x with 32 concurrent requests.

Candidates: the trained OCR candidates where serving/registry.py can load them, else two probe
classifiers (a small trained one and a wider one) from serving/backends/probe.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.backends import (  # noqa: E402
    BACKEND_NAMES,
    Backend,
    BackendSettings,
    Networks,
    get_backend,
    unavailable_reason,
)
from serving.backends.probe import ProbeCNN, make_shapes, train_probe  # noqa: E402

BATCH_SIZES = (1, 8, 32)
CLIENTS = 32


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def probe_candidates() -> dict[str, Networks]:
    """Two real classifiers standing in for candidates: small and trained, wider and random."""
    images, _ = make_shapes(64, seed=99)
    small, accuracy = train_probe(width=16, steps=150)
    progress(f"trained probe-small (held-out accuracy {accuracy:.3f})")
    wide = ProbeCNN(width=48).eval()
    return {
        "probe-small": {"classifier": (small, images[:1])},
        "probe-wide": {"classifier": (wide, images[:1])},
    }


def registry_candidates() -> dict[str, Networks]:
    """The trained OCR candidates' networks, where the registry and their artifacts exist."""
    try:
        from serving import registry  # type: ignore[attr-defined]
    except ImportError:
        return {}
    loader = getattr(registry, "benchmark_networks", None)
    if loader is None:
        return {}
    return dict(loader())


def timed_rate(call: Callable[[], int], seconds: float) -> tuple[float, list[float]]:
    """Items/s over repeated calls for about `seconds`, and each call's latency in ms."""
    latencies, items = [], 0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        items += call()
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000.0)
        if t1 - start >= seconds and len(latencies) >= 5:
            return items / (t1 - start), latencies


def batch_figures(
    backend: Backend, network: str, example: np.ndarray, rounds: int, seconds: float
) -> dict[int, dict[str, float]]:
    out = {}
    for size in BATCH_SIZES:
        batch = np.ascontiguousarray(np.concatenate([example] * size)[:size])
        for _ in range(3):
            backend.run(network, batch)
        rates, p50s, p99s = [], [], []
        for _ in range(rounds):
            rate, latencies = timed_rate(lambda b=batch: len(backend.run(network, b)), seconds)
            rates.append(rate)
            p50s.append(float(np.percentile(latencies, 50)))
            p99s.append(float(np.percentile(latencies, 99)))
        out[size] = {
            "images_per_s": statistics.median(rates),
            "p50_ms": statistics.median(p50s),
            "p99_ms": statistics.median(p99s),
        }
    return out


def concurrent_rate(backend: Backend, network: str, example: np.ndarray, seconds: float) -> float:
    """Images/s when CLIENTS threads each send one-image requests back to back."""
    stop = threading.Event()
    counts = [0] * CLIENTS
    barrier = threading.Barrier(CLIENTS + 1)

    def client(i: int) -> None:
        image = example[:1]
        barrier.wait()
        while not stop.is_set():
            backend.run(network, image)
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    done = sum(counts)
    elapsed = time.perf_counter() - start
    stop.set()
    for t in threads:
        t.join()
    return done / elapsed


def batching_gain(
    name: str, networks: Networks, network: str, rounds: int, seconds: float, cache: Path
) -> dict[str, Any]:
    """Unbatched vs batched images/s with CLIENTS concurrent threads, interleaved per round.

    Batched runs twice, with max batch 8 and 32 (a per-candidate setting): on a CPU a mid-sized
    batch can beat the largest one, and both figures are printed.
    """
    example = networks[network][1]
    configs = {
        "unbatched": BackendSettings(),
        "max8": BackendSettings(max_batch_size=8, max_batch_time_ms=2.0),
        "max32": BackendSettings(max_batch_size=CLIENTS, max_batch_time_ms=2.0),
    }
    backends = {key: get_backend(name, settings) for key, settings in configs.items()}
    for backend in backends.values():
        backend.load(networks, cache)
    rates: dict[str, list[float]] = {key: [] for key in configs}
    try:
        for backend in backends.values():  # warm every configuration
            concurrent_rate(backend, network, example, 0.2)
        for r in range(rounds):
            for key, backend in backends.items():
                rates[key].append(concurrent_rate(backend, network, example, seconds))
            progress(
                f"round {r + 1}: "
                + ", ".join(f"{key} {values[-1]:,.0f}/s" for key, values in rates.items())
            )
        mean_batch = {}
        for key in ("max8", "max32"):
            sizes = backends[key]._batchers[network].batch_sizes
            mean_batch[key] = sum(k * v for k, v in sizes.items()) / max(sum(sizes.values()), 1)
    finally:
        for backend in backends.values():
            backend.unload()
    medians = {key: statistics.median(values) for key, values in rates.items()}
    best = max(("max8", "max32"), key=medians.__getitem__)
    return {
        "unbatched_images_per_s": medians["unbatched"],
        "batched_max8_images_per_s": medians["max8"],
        "batched_max32_images_per_s": medians["max32"],
        "mean_batch": mean_batch,
        "best": best,
        "gain_max8": medians["max8"] / medians["unbatched"],
        "gain_max32": medians["max32"] / medians["unbatched"],
        "gain": medians[best] / medians["unbatched"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--backends", default=",".join(BACKEND_NAMES))
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)

    candidates = registry_candidates() or probe_candidates()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-") as tmp:
        cache = Path(tmp)
        for backend_name in args.backends.split(","):
            reason = unavailable_reason(backend_name)
            if reason is not None:
                print(f"[skip] {backend_name}: {reason}")
                continue
            for candidate, networks in candidates.items():
                for network, (_, example) in networks.items():
                    progress(f"{candidate}/{network} on {backend_name}: batch sizes")
                    backend = get_backend(backend_name, BackendSettings())
                    backend.load(networks, cache)
                    try:
                        figures = batch_figures(
                            backend, network, example, args.rounds, args.seconds
                        )
                    finally:
                        backend.unload()
                    progress(f"{candidate}/{network} on {backend_name}: {CLIENTS} clients")
                    gain = batching_gain(
                        backend_name, networks, network, args.rounds, args.seconds, cache
                    )
                    row = {
                        "candidate": candidate,
                        "network": network,
                        "backend": backend_name,
                        "by_batch": figures,
                        "batching": gain,
                    }
                    results.append(row)
                    print_row(row)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


def print_row(row: dict[str, Any]) -> None:
    head = f"{row['candidate']}/{row['network']} [{row['backend']}]"
    cells = [
        f"b={size}: {f['images_per_s']:,.0f} img/s, "
        f"p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms"
        for size, f in row["by_batch"].items()
    ]
    g = row["batching"]
    print(head)
    for cell in cells:
        print(f"    {cell}")
    print(
        f"    {CLIENTS} concurrent clients: unbatched {g['unbatched_images_per_s']:,.0f} img/s; "
        f"batched max 8: {g['batched_max8_images_per_s']:,.0f} img/s "
        f"(mean batch {g['mean_batch']['max8']:.1f}, {g['gain_max8']:.2f}x); "
        f"max 32: {g['batched_max32_images_per_s']:,.0f} img/s "
        f"(mean batch {g['mean_batch']['max32']:.1f}, {g['gain_max32']:.2f}x) "
        f"-> gain {g['gain']:.2f}x (target >= 3x)",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
