"""/v2 against onnxruntime bare as the model's own cost grows: where abvoc's overhead is small.

bench_v2 compares /v2/models/{scope}/infer with onnxruntime called bare on the iris example, a
model onnxruntime runs in 20-40 µs: a small fraction of what any HTTP request costs, so that
ratio (0.03-0.05×) says more about the model's size than about abvoc. Here the same comparison
runs on models with the iris bundle's signature (features [-1, 4] FP32 in, probabilities
[-1, 3] out) whose cost grows: `depth` dense layers of width 1024 with tanh between them, built
with onnx's helper (the layers share one weight matrix, so each bundle stays at 4 MB; the cost
is measured, not assumed). Each model is registered through POST /v1/candidates (the example's
label stage after it) twice per batching mode and split 50/50 by an experiment per mode:
`--batch 1` has dynamic batching off, so each request is one onnxruntime call of one row, as
the anchor's are (abvoc's own cost, like with like); a larger size lets abvoc merge concurrent
requests into one call, which the anchor does not (what a team gets by turning it on). abvoc
serves them under granian as `abvoc up` does, with the router, the event and the durable write
on. The anchor is an InferenceSession of the same model called bare in the client process,
without HTTP, on the same rows from the same C threads, with onnxruntime's default options
(threads that spin, one per core), as a team would call it: the session options abvoc chooses
(serving/backends/ort_options.py) are part of what is measured. Each run is warmed up once
before the rounds; rounds alternate the order (ABC, CBA, ...); the figures are medians over
rounds.

Per model and mode it prints the anchor's calls/s and the machine time one call takes (the
model's cost: 1 / calls/s), abvoc's requests/s, their ratio, and the machine time abvoc adds per
request (1 / abvoc's rate - 1 / the anchor's); the cost at which that added time is 5 %
follows. `--plot PATH` draws the overhead against the model's cost, a line per mode (PNG).

    python benchmarks/bench_v2_model_cost.py [--depths 0,8,32,96,320,1000] [--batch 1,32]
                                             [--requests 300] [--concurrency 8] [--rounds 3]
                                             [--plot PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.bench_v2 import bundle_copy, fresh_store, serve  # noqa: E402
from benchmarks.counts import positive_int  # noqa: E402
from benchmarks.http_load import load  # noqa: E402
from benchmarks.paired_rounds import rounds  # noqa: E402
from benchmarks.v2_servers import ort_load, setup_keys, wait_ready  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.v2 import experiment, infer_body, upload  # noqa: E402

WIDTH = 1024
GOAL = 0.05


def dense_model(depth: int, width: int = WIDTH, seed: int = 0) -> bytes:
    """An ONNX model of the iris signature costing about `depth` matrix-vector products of
    `width` a row: features -> width -> (`depth` x shared width x width, tanh) -> 3 -> softmax."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {"w_in": rng.normal(0, 0.5, (4, width)),
               "w": rng.normal(0, 1 / np.sqrt(width), (width, width)),
               "w_out": rng.normal(0, 1 / np.sqrt(width), (width, 3))}
    nodes = [helper.make_node("MatMul", ["features", "w_in"], ["z0"]),
             helper.make_node("Tanh", ["z0"], ["a0"])]
    for i in range(depth):
        nodes += [helper.make_node("MatMul", [f"a{i}", "w"], [f"z{i + 1}"]),
                  helper.make_node("Tanh", [f"z{i + 1}"], [f"a{i + 1}"])]
    nodes += [helper.make_node("MatMul", [f"a{depth}", "w_out"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes, f"dense-{depth}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what the installed onnxruntime reads
    return model.SerializeToString()


def prepare(out: mp.Queue, data_dir: str, models: dict[int, bytes],
            batches: list[int]) -> None:
    """Registers two copies of each model per max_batch_size through the API in a fresh store,
    starts an experiment for each on scope `cost-<depth>-b<size>`, and puts the predict key in
    `out`."""
    with fresh_store(data_dir) as (client, admin, key), \
            tempfile.TemporaryDirectory(prefix="abvoc-bench-cost-bundles-") as scratch:
        for depth, model in models.items():
            for batch in batches:
                names = [f"dense-{depth}-b{batch}-{arm}" for arm in "ab"]
                for name in names:
                    upload(client, admin, bundle_copy(Path(scratch), name, batch, model))
                experiment(client, admin, f"cost-{depth}-b{batch}", *names)
    out.put(key)


def _mode(batch: int) -> str:
    return "batching off" if batch == 1 else f"batches of up to {batch}"


def plot(rows: list[dict[str, float]], path: Path) -> None:
    """The overhead against the model's cost, a line per batching mode, the 5 % goal marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for batch in sorted({r["batch"] for r in rows}):
        mine = [r for r in rows if r["batch"] == batch]
        ax.plot([r["cost_ms"] for r in mine], [100 * r["overhead"] for r in mine], "o-",
                label=f"abvoc /v2, {_mode(batch)}")
    ax.axhline(100 * GOAL, color="tab:red", linestyle="--", linewidth=1, label="5 % goal")
    ax.axhline(0, color="black", linewidth=0.6)
    for r in rows:
        if r["batch"] == rows[0]["batch"]:
            ax.annotate(f"depth {r['depth']:.0f}", (r["cost_ms"], 100 * r["overhead"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("the model's cost: onnxruntime bare, ms of machine time per call")
    ax.set_ylabel("throughput below onnxruntime bare (%)")
    ax.set_title("/v2 overhead against the model's own cost", fontsize=10)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summarize(figures: dict[int, dict[str, list]], batches: list[int]) -> list[dict[str, float]]:
    """Per depth and batching mode: medians over rounds of each side's rate, their ratio and
    the time abvoc adds; each round's figures taken together."""
    out = []
    for depth, runs in figures.items():
        bare_runs, *routed = runs.values()
        for batch, routed_runs in zip(batches, routed, strict=True):
            pairs = list(zip(bare_runs, routed_runs, strict=True))
            row = {"depth": depth, "batch": batch,
                   "bare": statistics.median(b[0] for b, _ in pairs),
                   "abvoc": statistics.median(r[0] for _, r in pairs),
                   "ratio": statistics.median(r[0] / b[0] for b, r in pairs),
                   "added_ms": statistics.median(1000 / r[0] - 1000 / b[0] for b, r in pairs)}
            row["cost_ms"] = 1000 / row["bare"]
            row["overhead"] = 1 - row["ratio"]
            out.append(row)
    return out


def report(results: list[dict[str, float]]) -> None:
    for batch in sorted({r["batch"] for r in results}):
        mine = [r for r in results if r["batch"] == batch]
        print(f"\n{_mode(batch)}:\n  depth  bare calls/s  model cost ms  abvoc req/s  "
              "abvoc/bare  overhead  added ms")
        for r in mine:
            print(f"  {r['depth']:5d}  {r['bare']:12.1f}  {r['cost_ms']:13.3f}  "
                  f"{r['abvoc']:11.1f}  {r['ratio']:10.4f}  {r['overhead']:8.1%}  "
                  f"{r['added_ms']:8.3f}")
        met = ", ".join(str(r["depth"]) for r in mine if r["overhead"] < GOAL) or "none"
        if batch == 1:  # like with like: the added time is abvoc's own
            added = statistics.median(r["added_ms"] for r in mine)
            print(f"  abvoc adds a median {added:.3f} ms of machine time per request: under "
                  f"{GOAL:.0%} for a model costing {added / GOAL * (1 - GOAL):.1f} ms a call or "
                  "more")
        print(f"  goal < 5 % below onnxruntime bare: met at depth {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="0,8,32,96,320,1000",
                        help="comma-separated layer counts, one model each")
    parser.add_argument("--batch", default="1,32",
                        help="comma-separated max_batch_size values, one mode each (1: off)")
    parser.add_argument("--requests", type=positive_int, default=300)
    parser.add_argument("--concurrency", type=positive_int, default=8)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--server", choices=("granian", "werkzeug"), default="granian")
    parser.add_argument("--plot", type=Path, help="write the overhead plot here (PNG)")
    args = parser.parse_args()

    import onnxruntime as ort

    depths = sorted({int(d) for d in args.depths.split(",")})
    batches = sorted({int(b) for b in args.batch.split(",")})
    models = {depth: dense_model(depth) for depth in depths}
    ctx = mp.get_context("spawn")
    data_dir = tempfile.mkdtemp(prefix="abvoc-bench-cost-")
    server = None
    figures: dict[int, dict[str, list]] = {}
    try:
        keys: mp.Queue = ctx.Queue()
        setup = ctx.Process(target=prepare, args=(keys, data_dir, models, batches), daemon=True)
        setup.start()
        key = setup_keys(keys, setup)
        setup.join(60)
        port = free_port()
        server = ctx.Process(target=serve, args=(data_dir, port, key, 0, args.server))
        server.start()
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", server)
        headers = {"Authorization": f"Bearer {key}"}
        rows = np.random.default_rng(1).normal(5.0, 1.8, (args.requests, 4)).astype(np.float32)
        bodies = [infer_body(row, f"user-{i}") for i, row in enumerate(rows)]
        for depth in depths:
            session = ort.InferenceSession(models[depth], providers=["CPUExecutionProvider"])
            runs = {f"onnxruntime bare, depth {depth}":
                    lambda session=session: ort_load(session, rows, args.concurrency)}
            for batch in batches:
                url = f"{base}/v2/models/cost-{depth}-b{batch}/infer"
                runs[f"abvoc, depth {depth}, batch {batch}"] = \
                    lambda url=url: load(url, headers, bodies, args.concurrency)
            for run in runs.values():  # warm-up: the sessions, the batchers, the writer
                run()
            figures[depth] = rounds(runs, args.rounds, f"depth {depth:4d}")
    finally:
        if server is not None and server.is_alive():
            server.terminate()
            server.join(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    results = summarize(figures, batches)
    print(f"\nmedians of {args.rounds} rounds, {args.requests} requests of 1 row, "
          f"{args.concurrency} concurrent")
    report(results)
    if args.plot:
        plot(results, args.plot)
        print(f"  plot: {args.plot}")


if __name__ == "__main__":
    main()
