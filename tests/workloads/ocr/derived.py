"""The command line on a store whose model store holds a trained float base (the
`derived_cli` fixture of this folder's conftest)."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result

from core.settings import Settings


@dataclass
class DerivedCli:
    """`abvoc` run on an empty SQLite store whose model store holds the trained float base
    (ocr-small-mixed), which the derived candidates (int8, one graph) are made from."""

    url: str
    env: dict[str, str]

    def __call__(self, *args: str) -> Result:
        from app.cli import main

        return CliRunner().invoke(main, list(args), env=self.env)


def served_answers(settings: Settings, folder: Path, name: str,
                   n: int = 3) -> list[tuple[np.ndarray, dict]]:
    """`n` online formulas sent to /v1/predict (admin key) with the trained candidate `name`
    in `folder` registered as the service's default: each image with the answer's JSON."""
    from app import close_app, create_app
    from app.auth import create_key
    from serving.images import encode_png
    from workloads.ocr.bundle import register_trained
    from workloads.ocr.dataset import ONLINE_MIX, sample_requests

    settings = settings.with_overrides(model_store=Path(tempfile.mkdtemp(prefix="store-")),
                                       default_candidate=name)
    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    try:
        register_trained(app.extensions["abvoc_serving"].registry, settings.models_dir, folder)
        key = create_key(app.extensions["abvoc"].db, ["admin"], name="test")["key"]
        client = app.test_client()
        out = []
        for seed in range(n):
            image = next(sample_requests(1, ONLINE_MIX, seed=seed)).image
            body = {"image_base64": base64.b64encode(encode_png(image)).decode(),
                    "unit_id": f"unit-{seed}"}
            answer = client.post("/v1/predict", json=body,
                                 headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.get_json()
            out.append((image, answer.get_json()))
        return out
    finally:
        close_app(app)
