"""The league against a fake service: outcome ids are new for every experiment and every run,
--matches is the number of matches played, and the verdict waits for this run's players."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import main
from app.commands.workloads import _league
from workloads.gameplay.league import LeagueConfig, run_league


class FakeService:
    """Answers every move with `attack`; counts a player once its `won` outcome arrives
    (unless `counting` is off, as when no worker runs), on top of `prior` players."""

    def __init__(self, prior: int = 0, counting: bool = True) -> None:
        self.event_ids: list[str] = []
        self.players: set[str] = set()
        self.prior, self.counting, self.lock = prior, counting, threading.Lock()

    def infer(self, scope: str, name: str, row: np.ndarray, unit_id: str,
              slice_: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(output="attack")

    def correct(self, answer: Any, corrected: Any, comment: str = "") -> dict[str, Any]:
        return {}

    def outcome(self, experiment_id: int, unit_id: str, metric: str, value: float,
                event_id: str) -> dict[str, Any]:
        with self.lock:
            self.event_ids.append(event_id)
            if metric == "won" and self.counting:
                self.players.add(unit_id)
        return {}

    def running_experiment(self, spec: dict[str, Any], metrics: Any = ()) -> dict[str, Any]:
        return {"id": 7}

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        units = self.prior + len(self.players)
        return {"outcomes": {"won": {"arms": {"control": {"units": units}}}},
                "comparisons": [], "decision": {"action": "continue", "reasons": []},
                "findings": []}


def test_outcome_ids_are_new_across_runs_and_experiments() -> None:
    service = FakeService()
    for _ in range(2):  # the command twice on one experiment (7), with the same seed
        _league(service, 2, 2, "gameplay", 0, 1, 0)
    # The same league on another experiment.
    run_league(service, 2, LeagueConfig(players=2, matches_per_player=1, seed=0,
                                        threads=1))  # type: ignore[arg-type]
    assert len(service.event_ids) == 3 * 2 * 3
    assert len(set(service.event_ids)) == len(service.event_ids)
    assert all(len(event_id) <= 64 for event_id in service.event_ids)


@pytest.mark.parametrize(("matches", "players"), [(5, 2), (7, 3), (3, 3)])
def test_matches_is_the_number_played(matches: int, players: int) -> None:
    summary, _, _ = _league(FakeService(), matches, players, "gameplay", 0, 2, 0)
    assert summary["overall"]["matches"] == matches


def test_the_verdict_waits_for_this_runs_players() -> None:
    stalled = FakeService(prior=50, counting=False)  # earlier leagues counted, this one not
    _, seen, _ = _league(stalled, 4, 2, "gameplay", 0, 2, 1)
    assert seen is None
    _, seen, _ = _league(FakeService(prior=50), 4, 2, "gameplay", 0, 2, 5)
    assert seen is not None


def test_fewer_matches_than_players_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    for command in (["simulate", "gameplay", "--key", "k", "--url", "http://127.0.0.1:1"],
                    ["demo", "--port", "1"]):
        result = CliRunner().invoke(main, [*command, "--matches", "3", "--players", "10"])
        assert result.exit_code == 2, result.output
        assert "--matches 3 is fewer than --players 10" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "models").exists()
