"""The league against a fake service: outcome ids are new for every experiment and every run,
--matches is the number of matches played, and the verdict waits for this run's players."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import main
from app.commands.workloads import _league
from workloads.gameplay.league import LeagueConfig, run_league


class FakeService:
    """Answers every move with `attack`; accepts each outcome event id once, as the service
    does, and counts a `won` outcome for its player once the worker gets to it: at once, or,
    with `counting` off (a worker behind, or none), when `catch_up` is called."""

    def __init__(self, counting: bool = True) -> None:
        self.event_ids: list[str] = []
        self.won: dict[str, int] = {}  # player -> `won` outcomes counted
        self.behind: list[str] = []  # players of `won` outcomes accepted, not counted yet
        self.counting, self.lock = counting, threading.Lock()
        self.on_outcome: Callable[[], None] | None = None

    def infer(self, scope: str, name: str, row: np.ndarray, unit_id: str,
              slice_: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(output="attack")

    def correct(self, answer: Any, corrected: Any, comment: str = "") -> dict[str, Any]:
        return {}

    def outcome(self, experiment_id: int, unit_id: str, metric: str, value: float,
                event_id: str) -> dict[str, Any]:
        with self.lock:
            duplicate = event_id in self.event_ids
            self.event_ids.append(event_id)
            if self.on_outcome is not None:  # the worker catches up on earlier outcomes
                self.on_outcome()
                self.on_outcome = None
            if metric == "won" and not duplicate:
                self.behind.append(unit_id)
                if self.counting:
                    self.catch_up()
        return {"duplicate": duplicate}

    def catch_up(self, players: Any = None) -> None:
        """The worker counts the waiting `won` outcomes (of `players` only, if given)."""
        kept = []
        for player in self.behind:
            if players is None or player in players:
                self.won[player] = self.won.get(player, 0) + 1
            else:
                kept.append(player)
        self.behind = kept

    def running_experiment(self, spec: dict[str, Any], metrics: Any = ()) -> dict[str, Any]:
        return {"id": 7}

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        url = urlsplit(path)
        if url.path == "/v1/experiments/7/unit-outcomes":
            unit = parse_qs(url.query)["unit_id"][0]
            n = self.won.get(unit, 0)
            return {"outcomes": {"won": {"arms": {"control": n}, "n": n}} if n else {}}
        arms = {"control": {"units": len(self.won)}}
        return {"outcomes": {"won": {"arms": arms}}, "comparisons": [],
                "decision": {"action": "continue", "reasons": []}, "findings": []}


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
    """A league after another that the worker has not counted yet: counting the earlier
    league's players (as many as this one's) is not this league's verdict."""
    service = FakeService(counting=False)
    _league(service, 4, 2, "gameplay", 0, 2, 0)
    service.on_outcome = lambda: service.catch_up(set(service.behind[:4]))  # the earlier's
    _, seen, _ = _league(service, 4, 2, "gameplay", 0, 2, 1)
    assert len(service.won) == 2 and seen is None  # only the earlier league is counted
    service.counting = True
    _, seen, _ = _league(service, 4, 2, "gameplay", 0, 2, 5)
    assert seen is not None


def test_two_leagues_at_once_or_behind_the_worker_both_count() -> None:
    """Two runs with one seed on one experiment, the worker behind, then two at once: every
    run names its own players, so all their outcomes count (a run name from the counted
    players was the same for both: their ids and outcome ids repeated and were merged)."""
    service = FakeService(counting=False)
    runs = [_league(service, 6, 3, "gameplay", 0, 1, 0)[0]["run"] for _ in range(2)]
    service.counting = True
    service.catch_up()
    with ThreadPoolExecutor(2) as pool:
        both = [pool.submit(_league, service, 6, 3, "gameplay", 0, 2, 30) for _ in range(2)]
        played = [future.result() for future in both]
    runs += [summary["run"] for summary, _, _ in played]
    assert len(set(runs)) == 4 and all(run.startswith("0.") for run in runs)
    assert all(seen is not None for _, seen, _ in played)
    assert len(service.won) == 4 * 3 and sum(service.won.values()) == 4 * 6
    assert len(set(service.event_ids)) == len(service.event_ids) == 4 * 6 * 3


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
