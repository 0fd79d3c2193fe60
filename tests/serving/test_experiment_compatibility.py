"""An experiment's arms and shadows must take the same requests and answer in one output type:
a unit stuck to an arm whose candidate takes other inputs failed on every request, unseen by
the figures and the guardrails."""

from __future__ import annotations

import pytest

from core.errors import AbvocError
from core.store.db import Database
from serving.experiments import Experiments
from serving.registry import Registry

FLOWERS = {"kind": "bundle", "takes": "tensors", "output": {"type": "label"},
           "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]}


def _spec(*candidates: str, shadow: str | None = None) -> dict:
    spec = {"name": "-".join(candidates), "scope": "s",
            "arms": [{"name": f"arm{i}", "candidate": c, "weight": 1, "control": i == 0}
                     for i, c in enumerate(candidates)]}
    if shadow:
        spec["shadows"] = [{"candidate": shadow}]
    return spec


def test_arms_that_take_other_requests_or_answer_otherwise_are_refused(db: Database) -> None:
    registry = Registry(db)
    registry.register("iris", "1", pipeline=FLOWERS)
    registry.register("iris-copy", "1", pipeline=FLOWERS)
    registry.register("player", "1", pipeline={
        **FLOWERS, "inputs": [{"name": "state", "datatype": "FP32", "shape": [-1, 9]}]})
    registry.register("ocr", "1", pipeline={
        "kind": "bundle", "takes": "image", "output": {"type": "latex"},
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1]}]})
    registry.register("scorer", "1", pipeline={**FLOWERS, "output": {"type": "number"}})
    experiments = Experiments(db)

    assert experiments.create(_spec("iris", "iris-copy"))["status"] == "draft"
    for spec, what in ((_spec("iris", "player"), "inputs"), (_spec("iris", "ocr"), "inputs"),
                       (_spec("iris", "scorer"), "output type"),
                       (_spec("iris", "iris-copy", shadow="player"), "inputs")):
        with pytest.raises(AbvocError, match=f"differ in their {what}") as refused:
            experiments.create(spec)
        assert refused.value.status == 400
        assert "arm arm0 (iris v1)" in refused.value.message
        if "shadows" in spec:  # a shadow is named as one, not as an arm
            assert refused.value.message.startswith("shadow player v1 and arm arm0 (iris v1)")
    assert [e["name"] for e in experiments.list()] == ["iris-iris-copy"]  # nothing else stored
