"""The gameplay bundles go through the public path on SQLite and PostgreSQL: `abvoc candidates
register`, `abvoc offline-test NAME --dataset` on the held-out log (results stored by slice),
`abvoc workloads gameplay build --register` and `abvoc workloads gameplay play`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database
from serving.registry import Registry
from tests.support.bundles import EXAMPLE
from workloads.gameplay.build import CANDIDATES, HELDOUT_NAME


def registry_row(settings: Settings, name: str) -> Any:
    with Database(settings.database_url) as database:
        return Registry(database).get(name)


def test_register_and_offline_test_through_the_cli(cli: CliRunner, settings: Settings,
                                                   built: tuple[Path, dict[str, Any]]) -> None:
    out, summary = built
    for name in CANDIDATES:
        result = cli.invoke(main, ["candidates", "register", str(out / name), "--json"])
        assert result.exit_code == 0, result.output
        info = json.loads(result.stdout)
        assert info["version"] == summary["candidates"][name]["version"]
        assert info["pipeline"]["output"]["classes"][0] == "idle"
    dataset = out / HELDOUT_NAME
    result = cli.invoke(main, ["offline-test", "gameplay-idle-logs", "--dataset", str(dataset),
                               "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert results["overall"]["accuracy"] >= 0.97
    expected = summary["candidates"]["gameplay-idle-logs"]["offline_accuracy"]
    assert results["overall"]["accuracy"] == pytest.approx(expected, abs=1e-4)  # 4 places
    assert set(results["slices"]) == {"near", "far"}
    assert 0.87 <= results["label_shares"]["idle"] <= 0.94
    # What is stored is the offline results; the requirement checks are printed beside them.
    checks = results.pop("requirement_checks")
    assert {c["requirement"] for c in checks} == {"model_size_mb"}
    assert all(c["passed"] for c in checks)
    assert registry_row(settings, "gameplay-idle-logs").offline_results == results
    shown = cli.invoke(main, ["candidates", "show", "gameplay-idle-logs"]).stdout
    assert "label shares: idle 0.9" in shown

    again = cli.invoke(main, ["candidates", "register", str(out / "gameplay-idle-logs")])
    assert again.exit_code == 2 and "already registered" in again.stderr


def test_build_registers_and_tests_both_candidates(cli: CliRunner, settings: Settings,
                                                   tmp_path: Path) -> None:
    args = ["workloads", "gameplay", "build", "--out", str(tmp_path / "b"), "--train-matches",
            "10", "--heldout-matches", "4", "--eval-matches", "8", "--epochs", "2", "--register"]
    result = cli.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "training gameplay-idle-logs: 2/2 (100%)" in result.stderr  # progress, off a tty
    assert "registered gameplay-play-logs v1+" in result.stderr
    for name in CANDIDATES:
        stored = registry_row(settings, name)
        assert stored.version == summary["candidates"][name]["version"]
        assert stored.offline_results == summary["registered"][name]["offline"]
        own = summary["candidates"][name]["offline_test_set"]
        assert stored.offline_results["test_set"]["n"] == own["states"]
        assert summary["candidates"][name]["online"]["overall"]["matches"] == 8
    rerun = cli.invoke(main, args)  # the same seed: the same versions, kept and tested again
    assert rerun.exit_code == 0, rerun.output
    assert "gameplay-idle-logs v" in rerun.stdout and "is already registered" in rerun.stdout

    played = cli.invoke(main, ["workloads", "gameplay", "play", str(tmp_path / "b" /
                                                                     "gameplay-play-logs"),
                               "--matches", "8"])
    assert played.exit_code == 0, played.output
    assert played.stdout.splitlines()[-1].startswith("overall")
    assert {line.split()[0] for line in played.stdout.splitlines()[1:-1]} == {
        "aggressive", "defensive", "kiting", "random"}


def test_playing_a_bundle_that_is_not_a_game_policy_says_so(cli: CliRunner) -> None:
    result = cli.invoke(main, ["workloads", "gameplay", "play", str(EXAMPLE)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "holds candidate 'iris-onnx', not a game policy: a policy takes" in result.output
    assert "`abvoc workloads gameplay build`" in result.output
