"""An MLServer model repository for one ONNX model: the folder `mlserver start FOLDER` serves.

Shared by `serve_iris.py` (the README's remote candidate, run by hand) and the test suite's
servers, so both run MLServer the same way. Standard library only: abvoc's environment writes
the folder, MLServer's own environment serves it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent / "onnx_runtime.py"


def write_model_folder(folder: Path, model_path: Path, *, model: str = "iris",
                       version: str = "1", http_port: int, grpc_port: int, metrics_port: int,
                       inputs: list[dict] | None = None) -> Path:
    """Write `folder` (settings.json, and `<model>/` with the ONNX file, the runtime and its
    model-settings.json) and return the model's own folder, which the server must find the
    runtime module in (its PYTHONPATH). `inputs` (V2 tensor metadata) are declared, so the
    server's metadata route names them."""
    model_dir = folder / model
    model_dir.mkdir(parents=True)
    shutil.copy(model_path, model_dir / "model.onnx")
    shutil.copy(RUNTIME, model_dir / RUNTIME.name)
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
        "metrics_endpoint": None, "metrics_port": metrics_port,
        # MLServer 1.7.1's parallel inference workers crash at start with uvloop >= 0.22.
        "parallel_workers": 0,
    }))
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": model, "implementation": f"{RUNTIME.stem}.OnnxModel",
        "parameters": {"uri": "./model.onnx", "version": version},
        **({"inputs": inputs} if inputs else {}),
    }))
    return model_dir
