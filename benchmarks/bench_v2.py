"""/v2/models/{scope}/infer against onnxruntime bare, and the latency added by a remote candidate.

(a) abvoc's API runs under granian, as `abvoc serve` serves it (one worker process, 8 threads;
`--workers 2` as `abvoc up` runs it on two cores, the bare wrapper below getting as many;
`--server werkzeug` for the threaded development server instead), with the example ONNX bundle
and a copy of it registered through POST /v1/candidates and split 50/50 by a running experiment
on scope `flowers`: auth, router, bundle (ONNX + the Python label stage, dynamic batching),
PredictionMade event and served-ledger row committed to the outbox in SQLite. A bare WSGI wrapper
(no Flask) around one onnxruntime InferenceSession runs under the same server in its own process.
The anchor is that InferenceSession called bare in the client process, HTTP-free, on the same
rows with the same C threads. A second pair of copies with batching off (max_batch_size 1, scope
`flowers-unbatched`) shows what the batching window costs. Where (b)'s servers run, MLServer
and KServe serving the same model to the same requests say what a well-known V2 server alone
does with them (no routing, record or event); each runs one process (MLServer 1.7.1's parallel
workers crash with current uvloop), so only with one worker is abvoc's ratio to them like with
like. The HTTP sides are driven by the
same libcurl client threads (benchmarks/http_load.py), so the server, not the client, sets their
rates. Rounds alternate the order (ABCD, DCBA, ...); figures are medians of the rounds.

(b) Real Seldon MLServer 1.7.1 serves the same model; two [remote] bundles point at it, split by
an experiment on scope `remote`. The same V2 request goes to MLServer directly and through
abvoc's /v2 route (one at a time by default: the added p50 is the figure that matters). The
floor beside it: a bare forwarding proxy under the same server (read the body, pass it to
MLServer through libcurl as abvoc's remote client does, return the answer; no auth, routing,
record or event) says what any Python hop in front of MLServer adds on this machine, so abvoc's
own share is the difference. KServe 0.21 serves the model too, called directly and through
abvoc (scope `remote-kserve`), V2 JSON both ways.

(b) runs twice. First each request goes the moment the last answer is in: MLServer direct then
gets its next request within tens of µs of its last answer, while through abvoc it waits a
millisecond between them, and on a VM whose idle vCPUs halt at once (no guest halt polling, as
on this machine) a server that has gone idle answers 0.1-0.15 ms slower; so this anchor is the
quicker of the two. Then requests arrive on a schedule, one every `--remote-pace-ms` (2 ms), as
independent callers do, and MLServer waits between requests on every side alike (its direct
p50 in the two runs shows what the wait costs it).

`--breakdown` also says where a request routed to MLServer spends its time (server-side wall
clock per request, means): in the app, and within it the input checks, the candidate call (and
the HTTP call to MLServer in it), the event and the durable write; the rest of the whole request
is the client's, the HTTP server's and the wire's (the client's share is in MLServer direct too).

`--free-write` is a what-if, not a service abvoc ships: the server skips the answers' durable
write (nothing is stored), which bounds what any cheaper request-path write could gain. The
server appends answers to the request spool as `abvoc serve` does on SQLite (core/store/spool.py);
with ABVOC_REQUEST_SPOOL=off in the environment each answer waits for its own commit instead.

Last, a cProfile of --profile requests through the app (test client, this thread only: time the
request spends waiting on the batcher shows as a wait) says where abvoc's time goes.

    python benchmarks/bench_v2.py [--requests 400] [--concurrency 8] [--rounds 4]
                                  [--remote-requests 300] [--remote-concurrency 1]
                                  [--remote-pace-ms 2] [--profile 300]
                                  [--server granian|werkzeug] [--breakdown] [--free-write]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.counts import positive_int  # noqa: E402
from benchmarks.http_load import load  # noqa: E402
from benchmarks.paired_rounds import medians, ratio, rounds  # noqa: E402
from benchmarks.stage_timer import per_request  # noqa: E402
from benchmarks.v2_breakdown import print_breakdown, time_stages  # noqa: E402
from benchmarks.v2_servers import (  # noqa: E402
    ort_load,
    run_server,
    same_model_line,
    serve_bare,
    setup_keys,
    wait_ready,
)
from tests.support.ports import free_port  # noqa: E402
from tests.support.v2 import experiment, infer_body, remote_bundle, upload  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "bundles" / "iris-onnx"
MODEL = EXAMPLE / "model.onnx"


def bundle_copy(root: Path, name: str, batch: int = 32, model: bytes | None = None) -> Path:
    """The example bundle under another candidate name (an experiment needs two candidates);
    `batch` 1 turns its dynamic batching off; `model`: another ONNX model of the same
    signature in place of the example's."""
    folder = Path(shutil.copytree(EXAMPLE, root / name))
    if model is not None:
        (folder / "model.onnx").write_bytes(model)
    toml = folder / "candidate.toml"
    toml.write_text(toml.read_text().replace('name = "iris-onnx"', f'name = "{name}"')
                    .replace("max_batch_size = 32", f"max_batch_size = {batch}"))
    return folder


def _profile_route(app, key: str, profile: int) -> None:  # noqa: ANN001 - a Flask app
    """POST /bench/profile?scope=S: a cProfile of `profile` requests through the app's test
    client (this thread only: time spent waiting on the batcher shows as a wait)."""
    import cProfile
    import pstats

    from flask import jsonify, request

    @app.post("/bench/profile")
    def run_profile():  # noqa: ANN202
        scope = request.args.get("scope", "flowers")
        headers = {"Authorization": f"Bearer {key}"}
        rows = np.random.default_rng(7).normal(5.0, 1.8, size=(profile, 4)).astype(np.float32)
        client = app.test_client()
        profiler = cProfile.Profile()
        profiler.enable()
        for i, row in enumerate(rows):
            client.post(f"/v2/models/{scope}/infer", headers=headers,
                        json=infer_body(row, f"p-{i}"))
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(10)
        stats.sort_stats("cumulative").print_stats(re.escape(str(REPO)), 22)
        return jsonify({"text": text.getvalue()})


def _settings(data_dir: str):  # noqa: ANN202
    from core.settings import load_settings

    # ABVOC_REQUEST_SPOOL=off in the environment: each answer waits for its own commit.
    return load_settings(env={"ABVOC_DATA_DIR": data_dir, "ABVOC_LOG_LEVEL": "WARNING",
                              "ABVOC_REQUEST_SPOOL": os.environ.get("ABVOC_REQUEST_SPOOL", "on")})


@contextlib.contextmanager
def fresh_store(data_dir: str) -> Iterator[tuple[Any, dict[str, str], str]]:
    """The app over a fresh store in `data_dir`: its test client, an admin key's header and a
    predict key; the app closed after."""
    from app import close_app, create_app
    from app.auth import create_key

    app = create_app(_settings(data_dir))
    db = app.extensions["abvoc"].db
    admin = {"Authorization": f"Bearer {create_key(db, ['admin'])['key']}"}
    try:
        yield app.test_client(), admin, create_key(db, ["predict"])["key"]
    finally:
        close_app(app)


def prepare(out: mp.Queue, data_dir: str, remote_url: str | None,
            kserve_url: str | None = None) -> None:
    """Registers the bundles and experiments in a fresh store through the API and puts the
    keys in `out`; a process of its own, so the serving process starts with no model loaded
    (a server's parent process must not hold onnxruntime's threads when it forks its worker)."""
    with fresh_store(data_dir) as (client, admin, key), \
            tempfile.TemporaryDirectory(prefix="abvoc-bench-v2-bundles-") as scratch:
        root = Path(scratch)  # the uploads copy the bundles into the store
        upload(client, admin, EXAMPLE)
        upload(client, admin, bundle_copy(root, "iris-onnx-b"))
        experiment(client, admin, "flowers", "iris-onnx", "iris-onnx-b")
        for name in ("iris-unbatched-a", "iris-unbatched-b"):
            upload(client, admin, bundle_copy(root, name, batch=1))
        experiment(client, admin, "flowers-unbatched", "iris-unbatched-a", "iris-unbatched-b")
        if remote_url:
            for name in ("iris-mlserver-a", "iris-mlserver-b"):
                upload(client, admin, remote_bundle(root, name, remote_url))
            experiment(client, admin, "remote", "iris-mlserver-a", "iris-mlserver-b")
        if kserve_url:
            for name in ("iris-kserve-a", "iris-kserve-b"):
                upload(client, admin, remote_bundle(root, name, kserve_url))
            experiment(client, admin, "remote-kserve", "iris-kserve-a", "iris-kserve-b")
    out.put((key, admin))


def serve(data_dir: str, port: int, key: str, profile: int, server: str,
          breakdown: bool = False, workers: int = 1, free_write: bool = False) -> None:
    """The app over the prepared store: under granian (the server `abvoc up` runs; its worker
    builds the app) or werkzeug's threaded development server. `free_write`: a what-if, the
    answers' durable write skipped (nothing stored), to bound what a cheaper write could gain."""
    from app import create_app
    from core.store.groupcommit import GroupCommitter
    from core.store.spool import Spool

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if free_write:
        for writer in (GroupCommitter, Spool):
            writer.insert_many = lambda _self, units: [None] * len(units)  # type: ignore

    def factory(settings):  # noqa: ANN001, ANN202
        app = create_app(settings)
        _profile_route(app, key, profile)
        if breakdown:
            time_stages(app)
        return app

    run_server(factory, _settings(data_dir), port, server, workers)


def _added(b: dict[str, list], name: str, anchor: str = "MLServer direct") -> float:
    """Median over rounds of the p50 `name` adds to calling `anchor` directly."""
    return statistics.median(x[1] - y[1] for x, y in zip(b[name], b[anchor], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=positive_int, default=400)
    parser.add_argument("--concurrency", type=positive_int, default=8)
    parser.add_argument("--rounds", type=positive_int, default=4)
    parser.add_argument("--remote-requests", type=positive_int, default=300)
    parser.add_argument("--remote-concurrency", type=positive_int, default=1)
    parser.add_argument("--remote-pace-ms", type=float, default=2.0,
                        help="(b) once more with one request sent every this many ms (0: not)")
    parser.add_argument("--no-remote", action="store_true",
                        help="skip (b), MLServer and KServe")
    parser.add_argument("--profile", type=int, default=300, help="0: no cProfile")
    parser.add_argument("--server", choices=("granian", "werkzeug"), default="granian",
                        help="the HTTP server of abvoc and of the bare wrapper alike")
    parser.add_argument("--breakdown", action="store_true",
                        help="where a request routed to MLServer spends its time")
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes, abvoc's and the bare wrapper's alike")
    parser.add_argument("--free-write", action="store_true",
                        help="what if the durable write cost nothing: skipped, nothing stored")
    args = parser.parse_args()
    if args.workers < 1 or (args.workers > 1 and (args.breakdown or args.server != "granian")):
        parser.error("--workers takes 1 or more, and more than 1 only under granian without "
                     "--breakdown (each worker times its own requests)")

    import onnxruntime as ort
    import requests

    mlserver = kserve = None
    if not args.no_remote:
        from tests.support.inference_servers import kserve as make_kserve
        from tests.support.inference_servers import mlserver as make_mlserver

        print("starting MLServer 1.7.1 and KServe 0.21 ...", flush=True)
        mlserver = make_mlserver(MODEL).start()
        kserve = make_kserve(MODEL).start()
    children: list[mp.Process] = []  # stopped whatever happens: server parents outlive us
    data_dir = tempfile.mkdtemp(prefix="abvoc-bench-v2-")  # removed at the end
    try:
        ctx = mp.get_context("spawn")
        ports: mp.Queue = ctx.Queue()
        setup = ctx.Process(target=prepare, daemon=True,
                            args=(ports, data_dir, mlserver.url if mlserver else None,
                                  kserve.url if kserve else None))
        setup.start()
        key, admin = setup_keys(ports, setup)
        setup.join(60)
        port, bare_port = free_port(), free_port()
        server = ctx.Process(target=serve, daemon=False,
                             args=(data_dir, port, key, args.profile, args.server,
                                   args.breakdown, args.workers, args.free_write))
        upstream = f"{mlserver.url}/v2/models/iris/infer" if mlserver else None
        bare = ctx.Process(target=serve_bare, daemon=False,
                           args=(MODEL, bare_port, args.server, upstream, args.workers))
        children += [server, bare]
        server.start()
        bare.start()
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", server)
        wait_ready(f"http://127.0.0.1:{bare_port}/healthz", bare)
        headers = {"Authorization": f"Bearer {key}"}
        rows = np.random.default_rng(1).normal(5.0, 1.8, size=(args.requests, 4)).astype(np.float32)
        bodies = [infer_body(row, f"user-{i}") for i, row in enumerate(rows)]
        check = requests.post(f"{base}/v2/models/flowers/infer", json=bodies[0], headers=admin,
                              timeout=30).json()["parameters"]
        print(f"flowers is served by {check['candidate']} ({check['arm']} arm, experiment "
              f"{check['experiment_id']})", flush=True)
        session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
        runs = {
            "onnxruntime bare": lambda: ort_load(session, rows, args.concurrency),
            "bare WSGI + ort": lambda: load(f"http://127.0.0.1:{bare_port}/",
                                                 {}, bodies, args.concurrency),
            "abvoc /v2 (router+ev)": lambda: load(f"{base}/v2/models/flowers/infer",
                                                       headers, bodies, args.concurrency),
            "abvoc /v2, batch size 1": lambda: load(
                f"{base}/v2/models/flowers-unbatched/infer", headers, bodies, args.concurrency),
        }
        plain = [{"inputs": x["inputs"]} for x in bodies]
        for known, started in (("MLServer", mlserver), ("KServe", kserve)):
            if started:  # a well-known V2 server on the same model, the same requests
                runs[f"{known}, same model"] = (
                    lambda url=f"{started.url}/v2/models/iris/infer": load(
                        url, {}, plain, args.concurrency))
        for run in runs.values():  # the same warm-up for each: sessions, the batcher, the writer
            run()
        a = rounds(runs, args.rounds, "(a)")
        b: dict[float, dict] = {}
        if mlserver:
            remote_bodies = bodies[:args.remote_requests]
            direct_bodies = [{"inputs": x["inputs"]} for x in remote_bodies]
            stages: list[dict[str, float]] = []

            def remote_runs(pace_ms: float) -> dict[str, Callable]:
                def through_abvoc() -> tuple[float, list[float]]:
                    timed = f"{base}/bench/stages" if args.breakdown and not pace_ms else None
                    before = requests.get(timed, timeout=30).json() if timed else {}
                    rate, lat = load(f"{base}/v2/models/remote/infer", headers, remote_bodies,
                                     args.remote_concurrency, pace_ms)
                    if timed:
                        after = requests.get(timed, timeout=30).json()
                        stages.append({**per_request(before, after, len(lat)),
                                       "whole": float(np.mean(lat))})
                    return rate, lat

                return {
                    "MLServer direct": lambda: load(
                        f"{mlserver.url}/v2/models/iris/infer", {}, direct_bodies,
                        args.remote_concurrency, pace_ms),
                    "bare proxy -> MLServer": lambda: load(
                        f"http://127.0.0.1:{bare_port}/forward", {}, direct_bodies,
                        args.remote_concurrency, pace_ms),
                    "abvoc /v2 -> MLServer": through_abvoc,
                    "KServe direct": lambda: load(
                        f"{kserve.url}/v2/models/iris/infer", {}, direct_bodies,
                        args.remote_concurrency, pace_ms),
                    "abvoc /v2 -> KServe": lambda: load(
                        f"{base}/v2/models/remote-kserve/infer", headers, remote_bodies,
                        args.remote_concurrency, pace_ms),
                }

            for pace_ms in sorted({0.0, args.remote_pace_ms}):
                remote = remote_runs(pace_ms)
                for run in remote.values():
                    run()
                if not pace_ms:
                    stages.clear()  # the warm-up's (only the first pass is timed)
                b[pace_ms] = rounds(remote, args.rounds, f"(b, pace {pace_ms:g} ms)")
        profiles = {}
        for scope in ("flowers", "remote") if mlserver else ("flowers",):
            if args.profile:
                profiles[scope] = requests.post(f"{base}/bench/profile?scope={scope}",
                                                timeout=600).json()["text"]
    finally:
        for process in children:
            if process.is_alive():
                process.terminate()
                process.join(30)
        for started in (mlserver, kserve):
            if started:
                started.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    med = medians(a)
    if args.free_write:
        print("\n--free-write: a what-if, abvoc's durable write skipped (nothing was stored)")
    print(f"\n(a) medians of {args.rounds} rounds, {args.requests} requests of 1 row, "
          f"{args.concurrency} concurrent, {args.workers} server worker process(es):")
    for name, (rate, p50, p99) in med.items():
        print(f"  {name:24s} {rate:8.1f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")
    r_ort = ratio(a, "abvoc /v2 (router+ev)", "onnxruntime bare")
    r_wsgi = ratio(a, "abvoc /v2 (router+ev)", "bare WSGI + ort")
    print(f"  throughput abvoc/onnxruntime bare {r_ort:.4f}: {1 - r_ort:.1%} below (goal < 5%)")
    print(f"  throughput abvoc/bare WSGI wrapper {r_wsgi:.3f}: {1 - r_wsgi:.1%} below")
    for known in ("MLServer", "KServe"):
        if f"{known}, same model" in a:
            r_srv = ratio(a, "abvoc /v2 (router+ev)", f"{known}, same model")
            print(same_model_line(known, r_srv, args.workers))
    r_unb = ratio(a, "abvoc /v2, batch size 1", "bare WSGI + ort")
    print(f"  throughput abvoc batch size 1/bare WSGI wrapper {r_unb:.3f}: {1 - r_unb:.1%} below")
    for pace_ms, figures in b.items():
        print(f"\n(b) medians of {args.rounds} rounds, {len(remote_bodies)} requests, "
              f"{args.remote_concurrency} concurrent, " + (
                  f"one sent every {pace_ms:g} ms:" if pace_ms else "each sent when the last "
                  "answer is in:"))
        for name, (rate, p50, p99) in medians(figures).items():
            print(f"  {name:24s} {rate:8.1f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")
        added = _added(figures, "abvoc /v2 -> MLServer")
        floor = _added(figures, "bare proxy -> MLServer")
        print(f"  p50 added by routing through abvoc {added:.3f} ms (goal < 1 ms)")
        print(f"  p50 added by the bare proxy under the same server {floor:.3f} ms: abvoc's own "
              f"share {added - floor:.3f} ms")
        print(f"  p50 added by routing through abvoc to KServe "
              f"{_added(figures, 'abvoc /v2 -> KServe', 'KServe direct'):.3f} ms (goal < 1 ms)")
        if args.breakdown and not pace_ms:
            print_breakdown(stages)
    for scope, text in profiles.items():
        print(f"\ncProfile of {args.profile} /v2/models/{scope}/infer requests through the app "
              f"(test client, the request thread only), by own time, then abvoc's code by "
              f"cumulative time:\n{text}")


if __name__ == "__main__":
    main()
