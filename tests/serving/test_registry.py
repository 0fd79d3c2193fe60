from pathlib import Path

import pytest

from core.errors import AbvocError, ConfigError, NotFound
from core.store import Base, Database
from serving.registry import Registry


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    db = Database(f"sqlite:///{tmp_path / 'reg.db'}")
    Base.metadata.create_all(db.engine)
    return Registry(db)


REQS = {"p99_ms": 25.0, "target_accuracy": 0.8, "target_qps": 200.0, "model_size_mb": 1.0,
        "serving_method": "dynamic-batching", "hardware": "cpu"}


def test_round_trip(registry: Registry) -> None:
    registry.register("ocr-a", "1", description="small", pipeline={"recognizer": {"hidden": 64}},
                      artifacts="/models/ocr-a", requirements=REQS)
    registry.set_offline_results("ocr-a", "1", {"overall": {"exact_match": 0.9},
                                                "slices": {"printed/elementary": {"n": 3}}})
    got = registry.get("ocr-a")
    assert got.requirements == REQS and got.pipeline == {"recognizer": {"hidden": 64}}
    assert got.offline_results["slices"]["printed/elementary"] == {"n": 3}
    assert got.to_dict()["created_at"]


def test_reregistering_updates_and_keeps_results(registry: Registry) -> None:
    registry.register("ocr-a", "1", requirements=REQS)
    registry.set_offline_results("ocr-a", "1", {"overall": {"n": 1}})
    registry.register("ocr-a", "1", description="again", backend="onnxruntime")
    registry.register("ocr-a", "2")
    got = registry.get("ocr-a", "1")
    assert got.description == "again" and got.backend == "onnxruntime"
    assert got.offline_results == {"overall": {"n": 1}}
    assert registry.get("ocr-a").version == "2"
    assert [(c.name, c.version) for c in registry.list()] == [("ocr-a", "1"), ("ocr-a", "2")]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"requirements": {"p99": 3}}, "unknown requirement"),
    ({"requirements": {"p99_ms": "fast"}}, "must be a number"),
    ({"requirements": {"target_accuracy": 80}}, "between 0 and 1"),
    ({"backend": "tflite"}, "backend"),
])
def test_bad_registrations_say_what_to_fix(registry: Registry, kwargs: dict,
                                           fragment: str) -> None:
    with pytest.raises(AbvocError, match=fragment):
        registry.register("ocr-a", "1", **kwargs)
    assert registry.list() == []


def test_unknown_candidate_and_missing_table(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        registry.get("nope")
    bare = Registry(Database(f"sqlite:///{tmp_path / 'bare.db'}"))
    with pytest.raises(ConfigError, match="migrations"):
        bare.list()
