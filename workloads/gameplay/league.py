"""A simulated league against a running abvoc: every move of the bot is one `/v2` infer call.

Players (the randomisation units) each play a few matches against the scripted opponents. abvoc
routes each player's moves to one arm (sticky by unit id), the answer is the bot's move, and
after each match the player reports what happened as outcomes (won, idle share, match length)
tied to its unit. Some players also complain when the bot stood still with the opponent in
reach ("it should have attacked"): a correction of that move to `attack`. Nothing here touches
abvoc's store; it uses the public API only, as a team's game server would.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.client import ServiceClient
from workloads.gameplay.build import CANDIDATES
from workloads.gameplay.game import ACTIONS
from workloads.gameplay.logs import slice_of
from workloads.gameplay.matches import Match, Outcome, schedule, summarize

SCOPE = "gameplay"
INPUT = "state"
CONTROL, TREATMENT = "gameplay-play-logs", "gameplay-idle-logs"
# Outcome metrics, per player (the unit): the win rate decides.
METRICS = (
    {"name": "won", "kind": "mean", "direction": "higher", "combine": "mean", "primary": True},
    {"name": "idle_share", "kind": "mean", "direction": "lower", "combine": "mean"},
    {"name": "match_length", "kind": "mean", "direction": "lower", "combine": "mean"},
)
COMPLAINT = "the bot stood still with the opponent in reach: it should have attacked"


@dataclass(frozen=True)
class LeagueConfig:
    players: int = 40
    matches_per_player: int = 3
    seed: int = 0
    reporting_share: float = 0.3  # players who complain about idle moves
    threads: int = 8
    scope: str = SCOPE


def ensure_experiment(client: ServiceClient, scope: str = SCOPE, control: str = CONTROL,
                      treatment: str = TREATMENT) -> dict[str, Any]:
    """The experiment running on `scope`, or a new one (control vs treatment, 50/50, per
    player) with the league's outcome metrics, started."""
    return client.running_experiment({
        "name": f"gameplay league on {scope}", "scope": scope, "unit": "user",
        "salt": "gameplay-league",  # fixed: the same players land in the same arms every run
        "arms": [{"name": "control", "candidate": control, "weight": 1, "control": True},
                 {"name": "treatment", "candidate": treatment, "weight": 1}]}, METRICS)


def _player(client: ServiceClient, experiment_id: int, config: LeagueConfig, player: str,
            matches: list[tuple[str, int]], reports: bool,
            on_match: Callable[[], None]) -> list[Outcome]:
    outcomes = []
    for opponent, seed in matches:
        match = Match(opponent, seed)
        complained = False
        while not match.over:
            where = slice_of(match)
            answer = client.infer(config.scope, INPUT, match.features(), player, where)
            if reports and not complained and answer.output == "idle" and where == "near":
                client.correct(answer, "attack", COMPLAINT)
                complained = True
            match.move(answer.output)
        outcome = match.outcome()
        for metric, value in (("won", float(outcome.result == "win")),
                              ("idle_share", outcome.idle_share),
                              ("match_length", float(outcome.length))):
            client.outcome(experiment_id, player, metric, value, f"{player}.{seed}.{metric}")
        outcomes.append(outcome)
        on_match()
    return outcomes


def run_league(client: ServiceClient, experiment_id: int, config: LeagueConfig,
               on_match: Callable[[], None] | None = None) -> dict[str, Any]:
    """Play the league; the players' own view of it (they do not know their arm)."""
    games = schedule(config.players * config.matches_per_player, config.seed)
    rng = np.random.default_rng([config.seed, 7])
    reporters = rng.random(config.players) < config.reporting_share
    done = on_match or (lambda: None)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(config.threads) as pool:
        futures = [pool.submit(_player, client, experiment_id, config,
                               f"player-{config.seed}-{p}",
                               games[p * config.matches_per_player:
                                     (p + 1) * config.matches_per_player],
                               bool(reporters[p]), done)
                   for p in range(config.players)]
        for future in as_completed(futures):
            outcomes += future.result()
    return summarize(outcomes)


def wait_counted(client: ServiceClient, experiment_id: int, units: int,
                 timeout_s: float) -> bool:
    """Wait until the evaluation worker has counted the `won` outcomes of `units` players."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        results = client.call("GET", f"/v1/experiments/{experiment_id}/results")
        arms = ((results.get("outcomes") or {}).get("won") or {}).get("arms") or {}
        if sum(arm.get("units") or 0 for arm in arms.values()) >= units:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def verdict(client: ServiceClient, experiment_id: int) -> dict[str, Any]:
    """What abvoc says after the league: per arm the win rate with its interval, the win-rate
    comparison (its always-valid p-value), the idle share each arm answered, the decision and
    the divergence report's first finding."""
    results = client.call("GET", f"/v1/experiments/{experiment_id}/results")
    divergence = client.call("GET", f"/v1/experiments/{experiment_id}/divergence")
    won = next((r for r in results["comparisons"] if r["metric"] == "won"), None)
    return {"outcomes": results.get("outcomes"), "won": won,
            "decision": results["decision"],
            "first_finding": (divergence.get("findings") or [None])[0],
            "answers": {arm: _idle_answers(block) for arm, block in
                        (results.get("label_metrics") or {}).items()}}


def _idle_answers(block: dict[str, Any]) -> dict[str, Any] | None:
    """The idle class's online answer share against its offline label share, in slice all."""
    shift = ((block.get("slices") or {}).get("all") or {}).get("prediction_shift") or {}
    idle = next((c for c in shift.get("classes") or [] if c["label"] == "idle"), None)
    if idle is None:
        return None
    return {"candidate": block.get("candidate"), "online_share": idle["online_share"],
            "offline_share": idle["offline_share"], "shifted": idle["shifted"],
            "p_value_holm": idle["p_value_holm"]}


__all__ = ["ACTIONS", "CANDIDATES", "LeagueConfig", "ensure_experiment", "run_league",
           "verdict"]
