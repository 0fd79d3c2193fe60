"""Serve the example iris model on Seldon MLServer as a team's own V2 server would, for the
README's remote candidate (examples/bundles/iris-remote calls http://127.0.0.1:8081):

    scripts/install-inference-servers.sh          # once: MLServer 1.7.1 in its own venv
    python examples/mlserver/serve_iris.py        # serves model "iris" on 127.0.0.1:8081

Ctrl-C stops it. `--port` serves elsewhere (edit the bundle's `url` to match).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_folder import write_model_folder  # noqa: E402 - beside this script

EXAMPLES = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("ABVOC_CACHE", Path.home() / ".cache" / "abvoc")) / "servers" / \
    "mlserver-1.7.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8081, help="HTTP port (default 8081)")
    parser.add_argument("--grpc-port", type=int, default=8091)
    parser.add_argument("--metrics-port", type=int, default=8092)
    args = parser.parse_args()
    mlserver = VENV / "bin" / "mlserver"
    if not mlserver.exists():
        sys.exit(f"{VENV} has no MLServer: run scripts/install-inference-servers.sh first")
    folder = Path(tempfile.mkdtemp(prefix="iris-mlserver-")) / "models"
    model_dir = write_model_folder(folder, EXAMPLES / "bundles" / "iris-onnx" / "model.onnx",
                                   http_port=args.port, grpc_port=args.grpc_port,
                                   metrics_port=args.metrics_port)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = str(model_dir)  # where MLServer finds the runtime module
    print(f"MLServer serving model 'iris' on http://127.0.0.1:{args.port} (from {folder})",
          flush=True)
    os.execve(str(mlserver), [str(mlserver), "start", str(folder)], env)


if __name__ == "__main__":
    main()
