"""Image-sized V2 tensors through abvoc: one 1×3×224×224 FP32 input (150,528 values, about 3 MB
of V2 JSON) to a small ONNX classifier, one request at a time, p50 of each side:

- "MLServer direct": real Seldon MLServer 1.7.1 serving the model (the anchor for remote);
- "abvoc /v2 -> MLServer": abvoc's /v2 route, under granian as `abvoc up` serves it, routing to
  that server ([remote] bundles, split by an experiment on scope `images-remote`);
- "abvoc /v2, local bundle": the same model as a local bundle (scope `images`);
- "abvoc /v2, local, binary": the same, the tensor sent with the binary tensor data extension
  (as Triton's clients send it by default: a JSON header, then the 602 kB of FP32 bytes);
- "parse + onnxruntime bare": what any Python service in front of the model must do, in this
  process without HTTP: the standard library's parse of the same body, the array, the session;
- "onnxruntime bare": the session alone on the array (the anchor for the binary request);
- "KServe direct, binary" and "abvoc /v2 -> KServe, binary": real KServe 0.21 serving the model,
  called directly and through abvoc ([remote] bundles with `binary_data = true`, scope
  `images-kserve`), binary tensors on every hop.

abvoc checks every value of the body (finite, in range), reads the tensor, keeps the input for
annotators (V2 JSON, in the store), writes it again for the remote server and reads its answer;
this shows what that costs on a large input. Rounds alternate the order; medians of the rounds.

    python benchmarks/bench_v2_tensors.py [--requests 40] [--rounds 3] [--server granian|werkzeug]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.bench_v2 import EXAMPLE  # noqa: E402
from benchmarks.counts import positive_int  # noqa: E402
from benchmarks.http_load import load  # noqa: E402
from benchmarks.paired_rounds import medians, rounds  # noqa: E402
from benchmarks.v2_servers import run_server, wait_ready  # noqa: E402
from serving.bundles.binary import HEADER  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

SHAPE = (1, 3, 224, 224)
CLASSES = ["setosa", "versicolor", "virginica"]  # the example bundle's label stage names these


def make_model(path: Path) -> None:
    """A classifier over images: channel means, a 3×3 linear layer, softmax (ONNX, opset 17)."""
    import onnx
    from onnx import TensorProto, helper

    weights = np.array([[2.0, -1.0, 0.5], [-1.0, 2.0, 0.5], [0.5, 0.5, -2.0]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "images",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *SHAPE[1:]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 3], weights.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def bundle(root: Path, name: str, model: Path, remote_url: str | None = None,
           binary: bool = False) -> Path:
    """A bundle of the model: local (the ONNX file and the example's label stage) or remote."""
    folder = root / name
    folder.mkdir()
    backend = "" if remote_url else 'backend = "onnxruntime"\n'
    head = f"""name = "{name}"
version = "1"
{backend}[[inputs]]
name = "image"
datatype = "FP32"
shape = [-1, {SHAPE[1]}, {SHAPE[2]}, {SHAPE[3]}]
[output]
type = "label"
classes = {json.dumps(CLASSES)}
"""
    if remote_url:
        body = f'[remote]\nurl = "{remote_url}"\nmodel = "images"\ntimeout_ms = 10000\n'
        body += "binary_data = true\n" if binary else ""
    else:
        shutil.copy(model, folder / "model.onnx")
        shutil.copy(EXAMPLE / "post.py", folder / "post.py")
        body = """[[stages]]
name = "classifier"
kind = "onnx"
path = "model.onnx"
[[stages]]
name = "to_label"
kind = "python"
callable = "post:to_label"
"""
    (folder / "candidate.toml").write_text(head + body)
    return folder


def _settings(data_dir: str):  # noqa: ANN202
    from core.settings import load_settings

    return load_settings(env={"ABVOC_DATA_DIR": data_dir, "ABVOC_LOG_LEVEL": "WARNING"})


def prepare(out: mp.Queue, data_dir: str, model: str, remote_url: str, kserve_url: str) -> None:
    """Registers the bundles and both experiments through the API; puts a predict key."""
    from app import close_app, create_app
    from app.auth import create_key
    from tests.support.v2 import experiment, upload

    app = create_app(_settings(data_dir))
    db = app.extensions["abvoc"].db
    admin = {"Authorization": f"Bearer {create_key(db, ['admin'])['key']}"}
    client = app.test_client()
    with tempfile.TemporaryDirectory(prefix="abvoc-bench-tensors-") as scratch:
        root = Path(scratch)
        for name in ("images-a", "images-b"):
            upload(client, admin, bundle(root, name, Path(model)))
        experiment(client, admin, "images", "images-a", "images-b")
        for name in ("images-remote-a", "images-remote-b"):
            upload(client, admin, bundle(root, name, Path(model), remote_url))
        experiment(client, admin, "images-remote", "images-remote-a", "images-remote-b")
        for name in ("images-kserve-a", "images-kserve-b"):
            upload(client, admin, bundle(root, name, Path(model), kserve_url, binary=True))
        experiment(client, admin, "images-kserve", "images-kserve-a", "images-kserve-b")
    out.put(create_key(db, ["predict"])["key"])
    close_app(app)


def serve(data_dir: str, port: int, server: str) -> None:
    from app import create_app

    run_server(create_app, _settings(data_dir), port, server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=positive_int, default=40)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--server", choices=("granian", "werkzeug"), default="granian")
    args = parser.parse_args()

    import onnxruntime as ort

    from tests.support.inference_servers import kserve as make_kserve
    from tests.support.inference_servers import mlserver as make_mlserver

    scratch = Path(tempfile.mkdtemp(prefix="abvoc-bench-tensors-"))
    model = scratch / "images.onnx"
    make_model(model)
    print("starting MLServer 1.7.1 ...", flush=True)
    server_proc = None
    remote = make_mlserver(model, model="images").start()
    print("starting KServe 0.21 ...", flush=True)
    kserve = make_kserve(model, model="images").start()
    try:
        ctx = mp.get_context("spawn")
        keys: mp.Queue = ctx.Queue()
        setup = ctx.Process(target=prepare, args=(keys, str(scratch / "data"), str(model),
                                                  remote.url, kserve.url))
        setup.start()
        key = keys.get(timeout=600)
        setup.join(60)
        port = free_port()
        server_proc = ctx.Process(target=serve, args=(str(scratch / "data"), port, args.server))
        server_proc.start()
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", server_proc)
        images = np.random.default_rng(1).random((args.requests, *SHAPE), dtype=np.float32)
        tensors = [{"name": "image", "datatype": "FP32", "shape": list(SHAPE),
                    "data": image.ravel().tolist()} for image in images]
        direct = [{"inputs": [t]} for t in tensors]
        bodies = [{"inputs": [t], "parameters": {"unit_id": f"user-{i:05d}"}}
                  for i, t in enumerate(tensors)]
        binaries = [binary_body(image, f"user-{i:05d}") for i, image in enumerate(images)]
        binary_headers = {"Authorization": f"Bearer {key}",
                          HEADER: str(len(binaries[0]) - images[0].nbytes),
                          "Content-Type": "application/octet-stream"}
        # Straight to KServe, asking for binary outputs as abvoc's remote client does.
        to_kserve = [binary_body(image, None) for image in images]
        kserve_headers = {HEADER: str(len(to_kserve[0]) - images[0].nbytes),
                          "Content-Type": "application/octet-stream"}
        print(f"one request body: {len(json.dumps(bodies[0])) / 1e6:.1f} MB of V2 JSON",
              flush=True)
        headers = {"Authorization": f"Bearer {key}"}
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        encoded = [json.dumps(b).encode() for b in direct]

        def bare() -> tuple[float, list[float]]:
            took = []
            start = time.perf_counter()
            for raw in encoded:
                t = time.perf_counter()
                tensor = json.loads(raw)["inputs"][0]
                image = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
                session.run(["probabilities"], {"image": image})
                took.append((time.perf_counter() - t) * 1000)
            return len(encoded) / (time.perf_counter() - start), took

        def ort_bare() -> tuple[float, list[float]]:
            took = []
            start = time.perf_counter()
            for image in images:
                t = time.perf_counter()
                session.run(["probabilities"], {"image": image})
                took.append((time.perf_counter() - t) * 1000)
            return len(images) / (time.perf_counter() - start), took

        runs = {
            "MLServer direct": lambda: load(f"{remote.url}/v2/models/images/infer", {}, direct,
                                            1),
            "abvoc /v2 -> MLServer": lambda: load(f"{base}/v2/models/images-remote/infer",
                                                  headers, bodies, 1),
            "abvoc /v2, local bundle": lambda: load(f"{base}/v2/models/images/infer", headers,
                                                    bodies, 1),
            "abvoc /v2, local, binary": lambda: load(f"{base}/v2/models/images/infer",
                                                     binary_headers, binaries, 1),
            "KServe direct, binary": lambda: load(f"{kserve.url}/v2/models/images/infer",
                                                  kserve_headers, to_kserve, 1),
            "abvoc /v2 -> KServe, binary": lambda: load(
                f"{base}/v2/models/images-kserve/infer", binary_headers, binaries, 1),
            "parse + onnxruntime bare": bare,
            "onnxruntime bare": ort_bare,
        }
        for run in runs.values():  # warm-up
            run()
        figures = rounds(runs, args.rounds, "")
    finally:
        if server_proc is not None and server_proc.is_alive():
            server_proc.terminate()
            server_proc.join(30)
        remote.stop()
        kserve.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    med = medians(figures)
    print(f"\nmedians of {args.rounds} rounds, {args.requests} requests of {SHAPE} FP32, "
          "one at a time:")
    for name, (rate, p50, p99) in med.items():
        print(f"  {name:26s} {rate:7.1f} req/s  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms")

    def added(name: str, anchor: str) -> float:
        return statistics.median(x[1] - y[1] for x, y in zip(figures[name], figures[anchor],
                                                             strict=True))

    print(f"  p50 added by routing through abvoc to MLServer "
          f"{added('abvoc /v2 -> MLServer', 'MLServer direct'):.2f} ms")
    print(f"  p50 of the local bundle beyond a bare parse + onnxruntime "
          f"{added('abvoc /v2, local bundle', 'parse + onnxruntime bare'):.2f} ms")
    print(f"  p50 of the local bundle, binary tensor, beyond onnxruntime bare "
          f"{added('abvoc /v2, local, binary', 'onnxruntime bare'):.2f} ms")
    print(f"  p50 added by routing through abvoc to KServe, binary tensors both hops "
          f"{added('abvoc /v2 -> KServe, binary', 'KServe direct, binary'):.2f} ms")


def binary_body(image: np.ndarray, unit: str | None) -> bytes:
    """One image as a binary-extension request: the JSON header, then the FP32 bytes; with no
    unit (to the server directly), asking for binary outputs."""
    parameters = {"unit_id": unit} if unit else {"binary_data_output": True}
    head = json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": list(SHAPE),
                                   "parameters": {"binary_data_size": image.nbytes}}],
                       "parameters": parameters}).encode()
    return head + image.astype("<f4").tobytes()


if __name__ == "__main__":
    main()
