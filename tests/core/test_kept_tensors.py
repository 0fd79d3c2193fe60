"""Kept inputs of tensors in core.v2_binary's form read back as the V2 JSON tensors the readers
(annotation, exports, stage samples, Label Studio) always got, for every datatype; rows kept as
V2 JSON before the form existed read back the same way."""

from __future__ import annotations

import json

import numpy as np

from core.v2_binary import KEPT, LEGACY_JSON, V2_TO_NUMPY, kept_tensors
from serving.bundles.binary import kept
from serving.bundles.tensors import to_v2


def _arrays() -> dict[str, np.ndarray]:
    arrays = {f"t_{name.lower()}": (np.arange(6).reshape(2, 3) % 2).astype(dtype)
              for name, dtype in V2_TO_NUMPY.items() if name != "BYTES"}
    arrays["t_fp32"] = np.array([[0.1, -2.5e-8, 3e38]], np.float32)
    words = np.empty((2, 2), dtype=object)
    words[:] = [[b"a", b""], ["caf\u00e9", b"\x00\xff"]]
    arrays["t_bytes"] = words
    return arrays


def test_kept_tensors_read_back_as_their_v2_json() -> None:
    arrays = _arrays()
    data = kept(arrays)
    as_json = [to_v2(n, a) for n, a in sorted(arrays.items())]
    assert kept_tensors(KEPT, data) == as_json
    # The same values as a reader of the old form saw them.
    legacy = json.dumps(as_json).encode()
    assert kept_tensors(LEGACY_JSON, legacy) == json.loads(legacy)
    # A third of the bytes of their JSON, on an image-sized tensor a fifth.
    image = {"image": np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)}
    assert len(kept(image)) < len(json.dumps([to_v2("image", image["image"])])) / 5
