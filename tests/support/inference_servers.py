"""Real third-party Open Inference Protocol servers for the remote-candidate tests: Seldon
MLServer 1.7.1 and KServe 0.21, each run from its own virtual environment (made by
scripts/install-inference-servers.sh) on free 127.0.0.1 ports, serving an ONNX model through
a small runtime each (MLServer's in examples/mlserver/, which the README's remote candidate
uses too; KServe's in tests/support/inference_runtimes/); and Triton's Python HTTP client, run
from its own environment against abvoc.

A missing virtual environment is an error that says what to run, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from examples.mlserver.model_folder import write_model_folder
from tests.support.ports import free_port

RUNTIMES = Path(__file__).resolve().parent / "inference_runtimes"
SERVERS = Path(os.environ.get("ABVOC_CACHE", Path.home() / ".cache" / "abvoc")) / "servers"
MLSERVER_VENV = SERVERS / "mlserver-1.7.1"
KSERVE_VENV = SERVERS / "kserve-0.21"
TRITONCLIENT_VENV = SERVERS / "tritonclient-2.73"


class InferenceServer:
    """One server process on 127.0.0.1; `url` is its base URL for V2 REST calls."""

    def __init__(self, kind: str, cmd: list[str], workdir: Path, port: int, model: str,
                 env: dict[str, str]) -> None:
        self.kind = kind
        self.port = port
        self.model = model
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "server.log"
        self._cmd, self._env = cmd, env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120.0) -> InferenceServer:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self._cmd, cwd=self.workdir, env=self._env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        ready = f"{self.url}/v2/models/{self.model}/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} before it was"
                                   f" ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(ready, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.kind} not ready after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        shutil.rmtree(self.workdir, ignore_errors=True)


def venv_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{venv} is missing: run scripts/install-inference-servers.sh")
    return python


def clean_env(extra_path: Path) -> dict[str, str]:
    """The server's own environment: abvoc's PYTHONPATH and virtualenv left out."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = str(extra_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def mlserver(model_path: Path, model: str = "iris", version: str = "1",
             inputs: list[dict] | None = None) -> InferenceServer:
    """MLServer serving `model_path` (ONNX) as `model`, from the folder the README's example
    serves (examples/mlserver); not yet started. `inputs` (V2 tensor metadata) are declared
    in its model settings, so its metadata route names them."""
    python = venv_python(MLSERVER_VENV)
    workdir = Path(tempfile.mkdtemp(prefix="abvoc-mlserver-"))
    folder = workdir / "models"
    port = free_port()
    model_dir = write_model_folder(folder, model_path, model=model, version=version,
                                   http_port=port, grpc_port=free_port(),
                                   metrics_port=free_port(), inputs=inputs)
    cmd = [str(python.parent / "mlserver"), "start", str(folder)]
    return InferenceServer("MLServer", cmd, workdir, port, model, clean_env(model_dir))


def kserve(model_path: Path, model: str = "iris") -> InferenceServer:
    """KServe's Python model server serving `model_path` (ONNX) as `model`; not yet started.
    It binds 0.0.0.0; the tests send their traffic to 127.0.0.1 only."""
    python = venv_python(KSERVE_VENV)
    workdir = Path(tempfile.mkdtemp(prefix="abvoc-kserve-"))
    shutil.copy(model_path, workdir / "model.onnx")
    shutil.copy(RUNTIMES / "kserve_onnx.py", workdir / "kserve_onnx.py")
    port = free_port()
    cmd = [str(python), "kserve_onnx.py", "--model_name", model, "--model_path", "model.onnx",
           "--http_port", str(port), "--grpc_port", str(free_port()), "--enable_grpc", "false",
           "--workers", "1", "--configure_logging", "false"]
    return InferenceServer("KServe", cmd, workdir, port, model, clean_env(workdir))


def kserve_echo(model: str = "echo") -> InferenceServer:
    """KServe serving an echo model (inference_runtimes/kserve_echo.py): its answer is the text
    its model received for each BYTES input; not yet started."""
    python = venv_python(KSERVE_VENV)
    workdir = Path(tempfile.mkdtemp(prefix="abvoc-kserve-"))
    shutil.copy(RUNTIMES / "kserve_echo.py", workdir / "kserve_echo.py")
    port = free_port()
    cmd = [str(python), "kserve_echo.py", "--model_name", model, "--http_port", str(port),
           "--grpc_port", str(free_port()), "--enable_grpc", "false", "--workers", "1",
           "--configure_logging", "false"]
    return InferenceServer("KServe", cmd, workdir, port, model, clean_env(workdir))


def mlserver_echo(model: str = "echo") -> InferenceServer:
    """MLServer serving an echo model (inference_runtimes/mlserver_echo.py), its BYTES input
    decoded by MLServer's codecs; not yet started."""
    python = venv_python(MLSERVER_VENV)
    workdir = Path(tempfile.mkdtemp(prefix="abvoc-mlserver-"))
    folder, port = workdir / "models", free_port()
    model_dir = folder / model
    model_dir.mkdir(parents=True)
    shutil.copy(RUNTIMES / "mlserver_echo.py", model_dir / "mlserver_echo.py")
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "metrics_endpoint": None, "metrics_port": free_port(), "parallel_workers": 0}))
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": model, "implementation": "mlserver_echo.EchoModel"}))
    cmd = [str(python.parent / "mlserver"), "start", str(folder)]
    return InferenceServer("MLServer", cmd, workdir, port, model, clean_env(model_dir))


def triton_client(spec: dict) -> dict:
    """Runs Triton's Python HTTP client against `spec["url"]` (inference_runtimes/
    triton_http_client.py in its own environment); what its calls gave back."""
    return _client(TRITONCLIENT_VENV, "triton_http_client.py", "Triton's client", spec)


def kserve_client(spec: dict) -> dict:
    """Runs KServe's V2 REST client against `spec["url"]` (inference_runtimes/
    kserve_rest_client.py in KServe's environment); what its calls gave back."""
    return _client(KSERVE_VENV, "kserve_rest_client.py", "KServe's client", spec)


def _client(venv: Path, script: str, what: str, spec: dict) -> dict:
    done = subprocess.run([str(venv_python(venv)), str(RUNTIMES / script)],
                          input=json.dumps(spec), capture_output=True, text=True, timeout=300,
                          env=clean_env(RUNTIMES))
    if done.returncode != 0:
        raise AssertionError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)
