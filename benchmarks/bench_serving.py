"""Serving throughput and latency per candidate and backend, and the dynamic batching gain.

Run: python benchmarks/bench_serving.py [--rounds 3] [--seconds 1.0] [--models-dir DIR]
         [--backends torch,onnxruntime,tensorrt] [--no-probes] [--json out.json]

Candidates are the trained OCR pipelines in the model store (``--models-dir``, default the
settings' model store); where none are trained, small ones are trained into a temporary folder
first (300 formulas, 2 epochs: accuracy is poor, speed is what the network size makes it). Two
probe classifiers (serving/backends/probe.py) run as well, as single-network reference points.

For each candidate and each backend that runs on this host:
  * images/s and latency p50/p99 per call at batch sizes 1, 8 and 32 (whole pipeline for OCR
    candidates: detector, recognizer, aligner, converter), medians over rounds;
  * the batching gain, in the same run: 32 client threads each send one image at a time, to
    the backend without batching and with the dynamic batcher, interleaved round by round.
    OCR candidates are batched as the service batches them: whole requests (images) merged
    into one pipeline call over an unbatched backend ("requests <= N"); batching only their
    networks ("networks <= N crops") is shown beside it. Every batched configuration is
    compared with the unbatched one that has the same intra-op threads per call, on every
    backend: ONNX Runtime sets them per session, torch per process (``torch.set_num_threads``,
    switched before each measurement), so "1 thread" means one thread a call on both. The gain
    against the best unbatched configuration of any thread count is shown beside it.
Target (shared/PERFORMANCE.md): >= 3x with 32 concurrent requests.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.torch_threads import TorchThreads  # noqa: E402
from serving.backends import (  # noqa: E402
    BACKEND_NAMES,
    Backend,
    BackendSettings,
    Networks,
    UnknownBackend,
    get_backend,
    unavailable_reason,
)
from serving.backends.probe import ProbeCNN, make_shapes, train_probe  # noqa: E402

BATCH_SIZES = (1, 8, 32)
CLIENTS = 32


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config:
    """One way to serve a workload: the backend's settings and, for OCR, request batching."""

    backend: BackendSettings
    requests: tuple[int, float] | None = None  # whole requests: max images, max wait (ms)

    @property
    def threads(self) -> int | None:
        """Intra-op threads per call (None: the library's default)."""
        return self.backend.intra_op_threads


@dataclass
class Bound:
    """A workload served one way: how one call runs, the batchers to read, how to stop."""

    run: Callable[[Any], int]  # batch -> images served
    batchers: list[Any]
    close: Callable[[], None]


@dataclass
class Workload:
    """A candidate as the benchmark drives it: its networks, inputs and how one call runs."""

    name: str
    networks: Networks
    make_batch: Callable[[int], Any]
    bind: Callable[[Backend, Config], Bound]
    batch_settings: dict[str, Config]  # the batched configurations to compare
    unbatched: dict[str, Config] = field(
        default_factory=lambda: {"unbatched": Config(BackendSettings())})


def probe_workloads() -> list[Workload]:
    """Two real classifiers on 32x32 crops: small and trained, wider and random."""
    images, _ = make_shapes(64, seed=99)
    small, accuracy = train_probe(width=16, steps=150)
    progress(f"trained probe-small (held-out accuracy {accuracy:.3f})")
    configs = {
        "max 8": Config(BackendSettings(max_batch_size=8, max_batch_time_ms=2.0)),
        "max 32": Config(BackendSettings(max_batch_size=32, max_batch_time_ms=2.0)),
        "max 32, 1 thread": Config(BackendSettings(max_batch_size=32, max_batch_time_ms=2.0,
                                                   intra_op_threads=1)),
    }
    unbatched = {
        "unbatched": Config(BackendSettings()),
        "unbatched, 1 thread": Config(BackendSettings(intra_op_threads=1)),
    }

    def bind(backend: Backend, config: Config) -> Bound:
        return Bound(lambda batch: len(backend.run("classifier", batch)),
                     list(backend._batchers.values()), lambda: None)

    return [
        Workload(
            name,
            {"classifier": (module, images[:1])},
            lambda n: np.ascontiguousarray(images[:n]),
            bind,
            configs,
            unbatched,
        )
        for name, module in (("probe-small", small), ("probe-wide", ProbeCNN(width=48).eval()))
    ]


def ocr_workloads(models_dir: Path | None, scratch: Path) -> list[Workload]:
    """The OCR candidates as whole pipelines on generated online-traffic formula images."""
    try:
        from workloads.ocr.candidates import candidate_names, train_candidate
        from workloads.ocr.dataset import ONLINE_MIX, generate
        from workloads.ocr.pipeline import Pipeline
    except ImportError as exc:
        progress(f"OCR pipeline not importable ({exc}); probes only")
        return []
    names = candidate_names()
    if models_dir is None or not all((models_dir / n / "candidate.json").exists() for n in names):
        models_dir = scratch / "models"
        for name in names:
            progress(f"training {name} quickly for the benchmark (300 formulas, 2 epochs)")
            train_candidate(name, models_dir, 300, 2, 0, None)
    images = [s.image for s in generate(64, ONLINE_MIX, 0, "online")]
    one_thread = BackendSettings(intra_op_threads=1)
    configs = {
        # Whole requests, as serving/pool.py serves them: images merged into one predict().
        "requests <= 8": Config(BackendSettings(), (8, 2.0)),
        "requests <= 32": Config(BackendSettings(), (32, 2.0)),
        "requests <= 32, 1 thread": Config(one_thread, (32, 2.0)),
        # Only the networks: a request's crops are the items (~7 a formula, 32 requests ~ 220).
        "networks <= 1024 crops": Config(BackendSettings(max_batch_size=1024,
                                                         max_batch_time_ms=2.0)),
    }
    unbatched = {
        "unbatched": Config(BackendSettings()),
        "unbatched, 1 thread": Config(one_thread, None),
    }
    out = []
    for name in names:
        pipe = Pipeline.load(models_dir / name)

        def bind(backend: Backend, config: Config, pipe: Pipeline = pipe) -> Bound:
            served = pipe.with_runner(backend)
            batchers = list(backend._batchers.values())
            if config.requests is not None:
                served = served.batched(*config.requests)
                batchers = [served.batcher]
            return Bound(lambda batch: len(served.predict(batch)), batchers, served.close)

        out.append(Workload(name, pipe.networks(), lambda n: images[:n], bind, configs,
                            unbatched))
    return out


def timed_rate(call: Callable[[], int], seconds: float) -> tuple[float, list[float]]:
    """Images/s over repeated calls for about `seconds`, and each call's latency in ms."""
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
    work: Workload, backend_name: str, cache: Path, rounds: int, seconds: float
) -> dict[int, dict[str, float]]:
    backend = get_backend(backend_name, BackendSettings())
    backend.load(work.networks, cache)
    bound = work.bind(backend, Config(BackendSettings()))
    run = bound.run
    out = {}
    try:
        for size in BATCH_SIZES:
            batch = work.make_batch(size)
            for _ in range(2):
                run(batch)
            rates, p50s, p99s = [], [], []
            for _ in range(rounds):
                rate, latencies = timed_rate(lambda b=batch: run(b), seconds)
                rates.append(rate)
                p50s.append(float(np.percentile(latencies, 50)))
                p99s.append(float(np.percentile(latencies, 99)))
            out[size] = {
                "images_per_s": statistics.median(rates),
                "p50_ms": statistics.median(p50s),
                "p99_ms": statistics.median(p99s),
            }
    finally:
        backend.unload()
    return out


def concurrent_rate(run: Callable[[Any], int], one: Any, seconds: float) -> float:
    """Images/s when CLIENTS threads each send one-image requests back to back."""
    stop = threading.Event()
    counts = [0] * CLIENTS
    barrier = threading.Barrier(CLIENTS + 1)

    def client(i: int) -> None:
        barrier.wait()
        while not stop.is_set():
            counts[i] += run(one)

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
    work: Workload, backend_name: str, cache: Path, rounds: int, seconds: float
) -> dict[str, Any]:
    """Unbatched vs each batched configuration, CLIENTS concurrent clients, interleaved."""
    configs = {**work.unbatched, **work.batch_settings}
    backends = {key: get_backend(backend_name, c.backend) for key, c in configs.items()}
    for backend in backends.values():
        backend.load(work.networks, cache)
    bound = {key: work.bind(backend, configs[key]) for key, backend in backends.items()}
    one = work.make_batch(1)
    rates: dict[str, list[float]] = {key: [] for key in configs}
    threads = TorchThreads(backend_name)
    try:
        for key, b in bound.items():  # warm every configuration
            threads.use(configs[key].threads)
            concurrent_rate(b.run, one, 0.2)
        for b in bound.values():
            for batcher in b.batchers:
                batcher.batch_sizes.clear()
        for r in range(rounds):
            for key, b in bound.items():
                threads.use(configs[key].threads)
                rates[key].append(concurrent_rate(b.run, one, seconds))
            progress(
                f"round {r + 1}: "
                + ", ".join(f"{key} {values[-1]:,.0f}/s" for key, values in rates.items())
            )
        mean_batch = {}
        for key in configs:
            if key in work.unbatched:
                continue
            counts: dict[int, int] = {}
            for batcher in bound[key].batchers:
                for size, n in batcher.batch_sizes.items():
                    counts[size] = counts.get(size, 0) + n
            mean_batch[key] = sum(k * v for k, v in counts.items()) / max(sum(counts.values()), 1)
    finally:
        threads.restore()
        for key, backend in backends.items():
            bound[key].close()
            backend.unload()
    medians = {key: statistics.median(values) for key, values in rates.items()}
    unbatched_keys = [k for k in configs if k in work.unbatched]
    # Like for like: each batched configuration against the unbatched one with its threads.
    baseline = {key: next((u for u in unbatched_keys if configs[u].threads
                           == configs[key].threads), "unbatched") for key in mean_batch}
    gains = {key: medians[key] / medians[baseline[key]] for key in mean_batch}
    best = max(mean_batch, key=medians.__getitem__)
    best_unbatched = max(unbatched_keys, key=medians.__getitem__)
    return {
        "images_per_s": medians,
        "mean_items_per_batch": mean_batch,
        "baseline": baseline,
        "gains_same_threads": gains,
        "best": best,
        "gain": gains[best],
        "best_unbatched": best_unbatched,
        "gain_vs_best_unbatched": medians[best] / medians[best_unbatched],
    }


def print_row(row: dict[str, Any]) -> None:
    print(f"{row['candidate']} [{row['backend']}]")
    for size, f in row["by_batch"].items():
        print(
            f"    batch {size:>2}: {f['images_per_s']:>9,.0f} img/s  "
            f"p50 {f['p50_ms']:8.2f} ms  p99 {f['p99_ms']:8.2f} ms"
        )
    g = row["batching"]
    rates = g["images_per_s"]
    parts = [f"{key} {rates[key]:,.0f}" for key in rates
             if key not in g["mean_items_per_batch"]] + [
        f"{key} {rates[key]:,.0f} (mean batch {g['mean_items_per_batch'][key]:.0f})"
        for key in g["mean_items_per_batch"]
    ]
    print(f"    {CLIENTS} concurrent clients, img/s: " + "; ".join(parts))
    same = ", ".join(f"{key} {gain:.2f}x vs {g['baseline'][key]}"
                     for key, gain in g["gains_same_threads"].items())
    print(f"    gains at the same threads per call: {same}")
    base = g["baseline"][g["best"]]
    line = f"    batching gain {g['gain']:.2f}x with {g['best']} against {base} (target >= 3x)"
    if g["best_unbatched"] != g["baseline"][g["best"]]:
        line += f"; {g['gain_vs_best_unbatched']:.2f}x against {g['best_unbatched']}"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--backends", default=",".join(BACKEND_NAMES))
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("--no-ocr", action="store_true")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    # Checked before any candidate is trained: a bad value used to end minutes later in a
    # traceback (UnknownBackend, or no median of zero rounds).
    try:
        for name in args.backends.split(","):
            unavailable_reason(name)
    except UnknownBackend as error:
        parser.error(str(error))
    if args.rounds < 1 or not args.seconds > 0:
        parser.error(f"--rounds takes 1 or more and --seconds more than 0; got {args.rounds} "
                     f"and {args.seconds:g}")

    models_dir = args.models_dir
    if models_dir is None:
        from core.settings import load_settings

        models_dir = load_settings().models_dir
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-") as tmp:
        cache = Path(tmp)
        workloads = [] if args.no_ocr else ocr_workloads(models_dir, cache)
        if not args.no_probes:
            workloads += probe_workloads()
        for backend_name in args.backends.split(","):
            reason = unavailable_reason(backend_name)
            if reason is not None:
                print(f"[skip] {backend_name}: {reason}", flush=True)
                continue
            for work in workloads:
                progress(f"{work.name} on {backend_name}: batch sizes {BATCH_SIZES}")
                figures = batch_figures(work, backend_name, cache, args.rounds, args.seconds)
                progress(f"{work.name} on {backend_name}: {CLIENTS} concurrent clients")
                gain = batching_gain(work, backend_name, cache, args.rounds, args.seconds)
                row = {
                    "candidate": work.name,
                    "backend": backend_name,
                    "by_batch": figures,
                    "batching": gain,
                }
                results.append(row)
                print_row(row)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
