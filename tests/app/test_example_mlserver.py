"""The README's remote candidate as a reader runs it: `python examples/mlserver/serve_iris.py`
serves the example model on real MLServer 1.7.1, and `abvoc candidates register` takes a copy
of examples/bundles/iris-remote whose url points at it (the check asks the server whether it
serves the model ready, with these inputs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from tests.support.inference_servers import clean_env
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
REMOTE = REPO / "examples" / "bundles" / "iris-remote"


def _ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/v2/models/iris/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"MLServer not ready:\n{log.read_text()[-3000:]}")


def test_the_example_server_serves_what_the_remote_bundle_calls(cli: CliRunner,
                                                                 tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "mlserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "examples" / "mlserver" / "serve_iris.py"), "--port",
             str(port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=clean_env(tmp_path))
    try:
        url = f"http://127.0.0.1:{port}"
        _ready(url, proc, log)
        body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32",
                                       "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]})
        request = urllib.request.Request(f"{url}/v2/models/iris/infer", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200 and json.load(r)["outputs"]
        bundle = Path(shutil.copytree(REMOTE, tmp_path / "my-iris-remote"))
        manifest = bundle / "candidate.toml"
        manifest.write_text(manifest.read_text().replace("http://127.0.0.1:8081", url, 1))
        registered = cli.invoke(main, ["candidates", "register", str(bundle)])
        assert registered.exit_code == 0, registered.output
        assert "iris-mlserver" in registered.output
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
