"""An API process serving an ONNX bundle never imports torch (about 600 MB a serving process):
the backends import it where a torch network is loaded, not at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.bundles import EXAMPLE

SERVE_ONE = """
import sys
from pathlib import Path
from app import close_app, create_app
from app.auth import create_key
from core.settings import load_settings
from serving.bundles import register_bundle

settings = load_settings(env={"ABVOC_DATA_DIR": sys.argv[1]})
app = create_app(settings, test_config={"TESTING": True})
register_bundle(app.extensions["abvoc_serving"].registry, settings.models_dir, Path(sys.argv[2]))
key = create_key(app.extensions["abvoc"].db, ["admin"])["key"]
answer = app.test_client().post(
    "/v2/models/default/infer", headers={"Authorization": f"Bearer {key}"},
    json={"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                      "data": [5.1, 3.5, 1.4, 0.2]}], "parameters": {"unit_id": "u1"}})
close_app(app)
print(answer.status_code, "torch" in sys.modules)
"""


def test_serving_an_onnx_bundle_does_not_load_torch(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", SERVE_ONE, str(tmp_path / "data"), str(EXAMPLE)],
                         capture_output=True, text=True, check=True, cwd=repo,
                         env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin"}).stdout
    assert out.splitlines()[-1] == "200 False", out
