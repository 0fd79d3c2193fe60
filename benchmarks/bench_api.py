"""/v1/predict with the router and events on, against the same candidate called bare.

Both run in one server worker process in the same run, under granian as `abvoc up` serves the API
(8 threads; `--server werkzeug` for Werkzeug's threaded server): `/v1/predict` (auth, router,
candidate, PredictionMade event and served-ledger row committed to the outbox in SQLite) and a
bare route that parses the same JSON body through the same input checks, decodes the base64 and
the image the same way and calls the same loaded candidate; the full path adds auth, its field
checks, routing, the input hash, the event, the durable write, the receipt and its metrics. A
separate client process sends the same bodies to both with the same C concurrent connections
(libcurl: benchmarks/http_load.py), after a warm-up of each; rounds alternate which goes first
(ABBA), so drift in a shared machine's load falls on both.
Per round it records requests/s, p50/p99 latency and the server's CPU time per request (all its
worker process's threads: the HTTP server's, the batcher and the group-commit writers included).
The figures are medians of the rounds' paired ratios: the throughput overhead of the full path
over the bare one, and the CPU-per-request overhead, with the middle half of the rounds' CPU
ratios beside it (on this shared host one round's pair moved from +2 % to +21 %, and medians of
three rounds as much; sixteen rounds gave +13.0 % and +13.8 % twice running).

The headline is the CPU-per-request overhead: on a machine whose cores other processes share,
throughput moves with their load from one run to the next, while the CPU the server spends per
request does not. Throughput is the same figure where the server has the cores to itself.

`--breakdown` also says where the full path's CPU goes, per request: the request threads' CPU
time (`time.thread_time`) in the whole request on each path, and on the full path in the serving
path outside the candidate call; the candidate's batcher threads' CPU on each path, and within
the full path's the answers' records (`PredictService._recorded`: the event, the ledger row, the
kept input) and their durable write (`PredictService._commit`: the request spool's append, or
with ABVOC_REQUEST_SPOOL=off one group commit per batch), both made
there before the callers wake; the requests its batch calls merged (the same batcher runs both
paths: a path whose requests reach it more spread out gets smaller batches, and the candidate
costs more per request) and the requests per commit; the spool's mover thread, which commits
the appended answers; the rest of the process (the HTTP server's own work, other threads); and
the context switches per request on each path, the batcher's and the mover's apart (on a busy
VM each time a thread blocks and is woken again costs tens of µs of CPU). The timing itself
costs a few µs per request: quote the headline from a run without it.

The full path appends its answers to the request spool, as `abvoc serve` does on SQLite (a
mover thread of the same process commits them, its CPU counted); ABVOC_REQUEST_SPOOL=off in the
environment makes each batch wait for its own commit instead.

`--input-retention-hours 0` serves with no inputs kept for annotators, as a deployment that sets
ABVOC_INPUT_RETENTION_HOURS=0 does: the full path then writes no kept-input row (four of its
durable write's ten B-trees, and the image's bytes), which says what keeping inputs costs.

`--candidate` picks the OCR candidate both paths call (ocr-small-mixed, the issue's figure, by
default; ocr-large-mixed, the newest a fresh `scripts/serve` registers, answers its /v1/predict
outside experiments): the full path's extra work is the same per request, so its share falls as
the candidate's own cost grows.

    python benchmarks/bench_api.py [--requests 400] [--concurrency 8] [--rounds 6]
                                   [--server granian|werkzeug] [--breakdown]
                                   [--input-retention-hours 72] [--candidate ocr-small-mixed]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.counts import positive_int  # noqa: E402
from benchmarks.http_load import load  # noqa: E402
from benchmarks.stage_timer import StageTimer, per_request  # noqa: E402
from benchmarks.v2_servers import run_server, wait_ready  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CANDIDATE = "ocr-small-mixed"  # the figure; --candidate another OCR candidate
OCR_CANDIDATES = ("ocr-small-printed", "ocr-small-mixed", "ocr-large-mixed")  # not imported:
# workloads.ocr.candidates would load torch into this, the client's, process


def _settings(data_dir: str, models: str | None = None, keep_hours: float = 72):  # noqa: ANN202
    from core.settings import load_settings

    spool = os.environ.get("ABVOC_REQUEST_SPOOL", "on")
    settings = load_settings(env={"ABVOC_DATA_DIR": data_dir, "ABVOC_LOG_LEVEL": "WARNING",
                                  "ABVOC_REQUEST_SPOOL": spool,
                                  "ABVOC_INPUT_RETENTION_HOURS": str(keep_hours)})
    return settings.with_overrides(model_store=Path(models)) if models else settings


def prepare(out: mp.Queue, data_dir: str, models_dir: str | None,
            candidate: str = CANDIDATE) -> None:
    """Trains the candidate if the model store lacks it, registers it in a fresh store and puts
    (the model store, a predict key) in `out`; a process of its own, so the server's parent
    holds no torch threads when it forks its worker."""
    from app import close_app, create_app
    from app.auth import create_key
    from workloads.ocr.bundle import register_trained
    from workloads.ocr.candidates import train_candidate

    settings = _settings(data_dir)
    models = Path(models_dir) if models_dir else settings.models_dir
    if not (models / candidate / "candidate.toml").exists():
        print(f"training {candidate} (on a small set, for timing only) ...", flush=True)
        train_candidate(candidate, models, n_train=300, epochs=3, seed=0)
    app = create_app(settings.with_overrides(model_store=models))
    register_trained(app.extensions["abvoc_serving"].registry, models, models / candidate)
    key = create_key(app.extensions["abvoc"].db, ["predict"])["key"]
    close_app(app)
    out.put((str(models), key))


def prepared(data_dir: str, models_dir: str | None,
             candidate: str = CANDIDATE) -> tuple[str, str]:
    """(the model store, a predict key) from :func:`prepare`, run in a spawned process."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    setup = ctx.Process(target=prepare, args=(out, data_dir, models_dir, candidate))
    setup.start()
    models, key = out.get(timeout=900)
    setup.join()
    return models, key


def serve(data_dir: str, models: str, port: int, server: str, breakdown: bool = False,
          keep_hours: float = 72, candidate: str = CANDIDATE) -> None:
    """The app over the prepared store, with the bare route and the CPU counters, under
    `server` (granian as `abvoc up` runs it: its worker builds the app; or werkzeug's)."""
    def factory(settings):  # noqa: ANN001, ANN202
        import torch
        from flask import jsonify, request

        from app import create_app
        from serving.images import decode_image

        torch.set_num_threads(1)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = create_app(settings)
        serving = app.extensions["abvoc_serving"]
        cpu_in = StageTimer(time.thread_time)
        if breakdown:  # the serving path, the candidate call and the durable write, each timed
            from serving.predict import PredictService
            cpu_in.wrap(PredictService, "predict", "service")
            cpu_in.wrap(PredictService, "_call", "candidate")
            # on the candidate's batcher (batching.Finish): each answer's event and rows, and
            # the batch's one commit
            cpu_in.wrap(PredictService, "_recorded", "record")
            cpu_in.wrap(PredictService, "_commit", "durable write")
            # The app's whole WSGI call: create_app wrapped its wsgi_app in this middleware.
            from app.compressed import InflateBodies
            cpu_in.wrap(InflateBodies, "__call__", "request")
        batches = _count_batches() if breakdown else {}

        @app.post("/bench/bare")
        def bare():  # noqa: ANN202
            body = request.get_json(silent=True)  # parsed and checked once, as for /v1/predict
            image = decode_image(base64.b64decode(body["image_base64"], validate=True))
            answer = serving.pool.get(candidate).predict(image)
            return jsonify({"output": answer.output, "confidence": answer.confidence})

        @app.get("/bench/cpu")
        def cpu():  # noqa: ANN202 - the server's CPU seconds so far, all threads
            switches = _switches()
            return jsonify({"cpu_s": time.process_time(),
                            "in": {**cpu_in.totals(), "batchers": _thread_cpu("batcher-"),
                                   "mover": _thread_cpu("spool:"),
                                   "switches": sum(switches.values()) / 1000,
                                   "batcher switches": switches["batcher"] / 1000,
                                   "mover switches": switches["spool"] / 1000},
                            "batches": dict(batches)})

        serving.pool.get(candidate)  # loaded before the clock
        return app

    run_server(factory, _settings(data_dir, models, keep_hours), port, server)


def _thread_cpu(prefix: str) -> float:
    """CPU seconds so far of this process's threads whose names start with `prefix`."""
    total = 0.0
    for t in threading.enumerate():
        if t.name.startswith(prefix) and t.ident:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                total += time.clock_gettime(time.pthread_getcpuclockid(t.ident))
    return total


def _switches() -> dict[str, int]:
    """Context switches so far, all the process's threads, by kind (the candidate's batchers,
    the spool's mover, the rest): each time a thread blocks (a lock, the GIL, a sleep, I/O) and
    is woken again costs the server CPU of its own."""
    kinds = {t.native_id: ("batcher" if t.name.startswith("batcher-") else
                           "spool" if t.name.startswith("spool:") else "rest")
             for t in threading.enumerate()}
    totals = {"batcher": 0, "spool": 0, "rest": 0}
    for status in Path("/proc/self/task").glob("*/status"):
        kind = kinds.get(int(status.parent.name), "rest")
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.split(":")[0].endswith("ctxt_switches"):  # voluntary and not
                    totals[kind] += int(line.split()[1])
    return totals


def _count_batches() -> dict[str, int]:
    """Batch calls and the requests they merged, counted as the batchers run them."""
    from serving.batching import _Batcher

    counts = {"calls": 0, "requests": 0}
    run = _Batcher._run

    def counted(self, merged: list) -> list:  # noqa: ANN001
        counts["calls"] += 1
        counts["requests"] += len(merged)
        return run(self, merged)

    _Batcher._run = counted

    from core.store.groupcommit import GroupCommitter
    write = GroupCommitter._commit

    def committed(self, batch: list) -> None:  # noqa: ANN001
        counts["commits"] = counts.get("commits", 0) + 1
        counts["writes"] = counts.get("writes", 0) + sum(len(p.units) for p in batch)
        write(self, batch)

    GroupCommitter._commit = committed

    from core.store.spool import Spool
    moved = Spool._commit

    def spooled(self, batch: list, *, skip: bool = False) -> None:  # noqa: ANN001
        counts["commits"] = counts.get("commits", 0) + 1
        counts["writes"] = counts.get("writes", 0) + len(batch)
        moved(self, batch, skip=skip)

    Spool._commit = spooled
    return counts


def measured(base: str, path: str, headers: dict, bodies: list[dict],
             concurrency: int) -> tuple[float, float, float, float, dict[str, float]]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per request, and with `--breakdown` the
    request threads' CPU ms per request in each timed method) for one pass over `bodies`."""
    import requests

    before = requests.get(f"{base}/bench/cpu", timeout=30).json()
    rate, lat = load(base + path, headers, bodies, concurrency)
    after = requests.get(f"{base}/bench/cpu", timeout=30).json()
    within = per_request(before["in"], after["in"], len(bodies))
    calls = after["batches"].get("calls", 0) - before["batches"].get("calls", 0)
    if calls:
        within["requests per batch"] = (after["batches"]["requests"]
                                        - before["batches"]["requests"]) / calls
    commits = after["batches"].get("commits", 0) - before["batches"].get("commits", 0)
    if commits:
        within["writes per commit"] = (after["batches"]["writes"]
                                       - before["batches"].get("writes", 0)) / commits
    return (rate, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)),
            (after["cpu_s"] - before["cpu_s"]) * 1000 / len(bodies), within)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=positive_int, default=400)
    parser.add_argument("--concurrency", type=positive_int, default=8)
    parser.add_argument("--rounds", type=positive_int, default=6)
    parser.add_argument("--models", default=None, help="a model store with trained candidates")
    parser.add_argument("--server", choices=("granian", "werkzeug"), default="granian",
                        help="the HTTP server (both paths run under it)")
    parser.add_argument("--breakdown", action="store_true",
                        help="say where the full path's CPU goes (the durable write, the rest)")
    parser.add_argument("--input-retention-hours", type=float, default=72,
                        help="as ABVOC_INPUT_RETENTION_HOURS (72, as served by default): 0 keeps "
                             "no served inputs, so the full path writes no kept-input row")
    parser.add_argument("--candidate", choices=OCR_CANDIDATES, default=CANDIDATE,
                        help="the candidate both paths call: the same work per request costs a "
                             "smaller share of a dearer candidate (ocr-large-mixed serves "
                             "/v1/predict on a fresh scripts/serve)")
    args = parser.parse_args()

    from serving.images import encode_png
    from workloads.ocr.dataset import ONLINE_MIX, sample_requests

    ctx = mp.get_context("spawn")
    data_dir = tempfile.mkdtemp(prefix="abvoc-bench-api-")
    models, key = prepared(data_dir, args.models, args.candidate)
    port = free_port()
    server = ctx.Process(target=serve, args=(data_dir, models, port, args.server,
                                             args.breakdown, args.input_retention_hours,
                                             args.candidate))
    server.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", server)
        images = [encode_png(s.image) for s in sample_requests(args.requests, ONLINE_MIX, seed=1)]
        bodies = [{"image_base64": base64.b64encode(img).decode(), "unit_id": f"user-{i}",
                   "slice": "handwritten/middle"} for i, img in enumerate(images)]
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        paths = {"bare": "/bench/bare", "full": "/v1/predict"}
        for path in paths.values():  # warm up both: caches, the batcher, the group-commit writer
            load(base + path, headers, bodies[:100], args.concurrency)
        figures: dict[str, list] = {"bare": [], "full": []}
        for r in range(args.rounds):
            for name in ("bare", "full") if r % 2 == 0 else ("full", "bare"):
                f = measured(base, paths[name], headers, bodies, args.concurrency)
                figures[name].append(f)
                print(f"round {r + 1} {name:4s}: {f[0]:7.1f} req/s  p50 {f[1]:6.2f} ms  "
                      f"p99 {f[2]:6.2f} ms  server CPU {f[3]:5.2f} ms/request", flush=True)
    finally:
        server.terminate()
        server.join(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in figures.items()}
    print(f"\nmedians of {args.rounds} rounds, {args.requests} requests, "
          f"{args.concurrency} concurrent, candidate {args.candidate}, served inputs kept "
          f"{args.input_retention_hours:g} h:")
    for name, label in (("bare", "candidate called bare"),
                        ("full", "/v1/predict, router + events on")):
        rate, p50, p99, cpu = med[name]
        print(f"  {label:34s} {rate:7.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"CPU {cpu:5.2f} ms/request")
    pairs = list(zip(figures["full"], figures["bare"], strict=True))  # the same round's two
    ratio = statistics.median(f[0] / b[0] for f, b in pairs)
    cpu_ratios = [f[3] / b[3] for f, b in pairs]
    cpu_ratio = statistics.median(cpu_ratios)
    print(f"  server CPU per request full/bare {cpu_ratio:.3f}: overhead {cpu_ratio - 1:.1%} "
          "(the headline; goal < 5%)")
    if len(cpu_ratios) >= 4:  # how far the host's noise moves one round's pair
        low, _, high = statistics.quantiles(cpu_ratios, n=4)
        print(f"    the rounds' middle half: {low - 1:+.1%} to {high - 1:+.1%}; a few rounds "
              "on a shared host can land anywhere in it, so quote a run of 12 or more")
    print(f"  throughput ratio full/bare {ratio:.3f}: overhead {1 - ratio:.1%} (goal < 5%)")
    if args.breakdown:
        print_breakdown(figures, med)


def print_breakdown(figures: dict[str, list[tuple]], med: dict[str, list[float]]) -> None:
    """Where the full path's extra CPU per request goes, medians over the rounds: the app's WSGI
    call (the serving path within it), the candidate's batchers (the records and their commit
    within them), and the rest of the process."""
    m = {name: {k: statistics.median(f[4].get(k, 0.0) for f in rounds) for k in rounds[0][4]}
         for name, rounds in figures.items()}
    full, bare = m["full"], m["bare"]
    cpu = {name: med[name][3] for name in med}
    print(f"  where the full path's CPU goes (ms per request; the bare candidate's whole CPU "
          f"{cpu['bare']:.2f} ms, the full path's {cpu['full']:.2f}: "
          f"+{cpu['full'] - cpu['bare']:.3f}):")
    rows = [
        ("the app (the WSGI call, request threads): full / bare", full["request"],
         bare["request"]),
        ("the candidate's batcher threads: full / bare", full["batchers"], bare["batchers"]),
        ("the spool's mover (commits the answers): full / bare", full["mover"],
         bare["mover"]),
        ("the HTTP server and the rest: full / bare",
         cpu["full"] - full["request"] - full["batchers"] - full["mover"],
         cpu["bare"] - bare["request"] - bare["batchers"] - bare["mover"]),
    ]
    for label, f, b in rows:
        print(f"    {label:54s} {f:6.3f} / {b:6.3f}  ({f - b:+.3f}, "
              f"{(f - b) / cpu['bare']:.1%} of the bare CPU)")
    parts = [
        ("in the request threads, the serving path less the candidate call (routing, "
         "receipt, guardrails)", full.get("service", 0.0) - full.get("candidate", 0.0)),
        ("on the batcher, each answer's event, ledger row and kept input",
         full.get("record", 0.0)),
        ("on the batcher, their durable write (the spool's append; with "
         "ABVOC_REQUEST_SPOOL=off, the commit)", full.get("durable write", 0.0)),
    ]
    for label, v in parts:
        print(f"      {label}: {v:.3f} ({v / cpu['bare']:.1%})")
    print(f"      requests merged per batch call: full {full.get('requests per batch', 0):.2f}"
          f" / bare {bare.get('requests per batch', 0):.2f}; requests per commit "
          f"{full.get('writes per commit', 0):.2f}")
    print(f"      context switches per request: all threads {full['switches']:.2f} / "
          f"{bare['switches']:.2f}, of which the batcher's {full['batcher switches']:.2f} / "
          f"{bare['batcher switches']:.2f} and the spool mover's {full['mover switches']:.2f}")


if __name__ == "__main__":
    main()
