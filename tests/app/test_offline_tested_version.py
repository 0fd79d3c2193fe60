"""`abvoc offline-test NAME --dataset` without `--version` tests the newest version when it
starts; a version registered while it runs (another CI job) must not change the requirements
it checks, nor its exit status, which release scripts read. The output names the version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database
from serving.bundles import offline, register_bundle
from serving.registry import Registry
from tests.support.bundles import EXAMPLE, copy_example, edit

FLOOR = "[requirements]\n"


def bundle(tmp_path: Path, version: str, floor: float | None) -> Path:
    """The example bundle as `version`, with an accuracy floor (the example scores 0.9)."""
    path = copy_example(tmp_path / f"v{version}")
    edit(path, 'version = "1"', f'version = "{version}"')
    if floor is not None:
        edit(path, FLOOR, f"{FLOOR}accuracy_floor = {floor}\n")
    return path


@pytest.mark.parametrize("tested_floor, newer_floor, status", [
    (0.99, None, 1),  # the tested version fails its floor: the newer one has none
    (None, 0.99, 0),  # the tested version has no floor: the newer one's is not its
])
def test_the_checks_are_the_tested_versions(cli: CliRunner, settings: Settings, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tested_floor: float | None,
                                            newer_floor: float | None, status: int) -> None:
    tested = bundle(tmp_path, "1", tested_floor)
    assert cli.invoke(main, ["candidates", "register", str(tested)]).exit_code == 0
    newer = bundle(tmp_path, "2", newer_floor)
    real = offline.evaluate

    def meanwhile(*args: Any, **kwargs: Any) -> dict[str, Any]:
        results = real(*args, **kwargs)
        with Database(settings.database_url) as db:  # another job registers v2 meanwhile
            register_bundle(Registry(db), settings.models_dir, newer)
        return results

    monkeypatch.setattr(offline, "evaluate", meanwhile)
    dataset = EXAMPLE / "offline.jsonl"
    result = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(dataset), "--json"])
    assert result.exit_code == status, result.output
    out = json.loads(result.stdout)
    assert out["version"] == "1"
    floors = [c for c in out["requirement_checks"] if c["requirement"] == "accuracy_floor"]
    if tested_floor is None:
        assert floors == []
    else:
        assert floors == [{"requirement": "accuracy_floor", "limit": tested_floor,
                           "measured": out["overall"]["accuracy"], "passed": False}]
    with Database(settings.database_url) as db:
        registry = Registry(db)
        assert registry.get("iris-onnx", "1").offline_results["overall"] == out["overall"]
        assert registry.get("iris-onnx", "2").offline_results == {}
        assert registry.get("iris-onnx").version == "2"  # the newest now

    monkeypatch.setattr(offline, "evaluate", real)
    text = cli.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(dataset),
                             "--version", "1"])
    assert text.exit_code == status and text.stdout.startswith("offline test of iris-onnx v1\n")
