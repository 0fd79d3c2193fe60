"""A simulated league against a running abvoc: every move of the bot is one `/v2` infer call.

Players (the randomisation units) each play a few matches against the scripted opponents. abvoc
routes each player's moves to one arm (sticky by unit id), the answer is the bot's move, and
after each match the player reports what happened as outcomes (won, idle share, match length)
tied to its unit. Some players also complain when the bot stood still with the opponent in
reach ("it should have attacked"): a correction of that move to `attack`. Nothing here touches
abvoc's store; it uses the public API only, as a team's game server would.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

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
    matches: int = 0
    """Matches in all, spread over the players (0: players x matches_per_player)."""
    run: str = ""
    """This league's identity in its player ids (``player-{run or seed}-{p}``): the commands
    pass a new one each run (`run_name`), so a league played beside or after others on one
    experiment names new players and its outcomes are new ones instead of replays of old ids,
    however far behind the worker is. The outcome event ids carry the experiment too, so
    another experiment never meets them. Empty: the plain seed, the same players every time."""

    def __post_init__(self) -> None:
        if self.total < self.players:
            raise ValueError(league_size_problem(self.total, self.players))

    @property
    def total(self) -> int:
        """The matches this league plays."""
        return self.matches or self.players * self.matches_per_player

    def player_matches(self, p: int) -> tuple[int, int]:
        """Player `p`'s first match index and match count: the total split as evenly as it
        goes, so exactly `total` matches are played."""
        base, extra = divmod(self.total, self.players)
        return p * base + min(p, extra), base + (p < extra)


def league_size_problem(matches: int, players: int) -> str:
    """Why a league of `matches` cannot give each of `players` a match, and what to change."""
    return (f"--matches {matches} is fewer than --players {players}: every player plays at "
            f"least one match; raise --matches to {players} or more, or lower --players")


NAME_CHARS = 91
"""The longest name the league gives its experiment: names hold 100 characters, and a name a
finished experiment holds is retried with 9 more (`ServiceClient.running_experiment`)."""


def league_name(scope: str) -> str:
    """The league's experiment name on `scope`, cut to fit: a scope of up to 100 characters is
    valid, but "gameplay league on " and a long one were over the names' limit, and the league
    was refused with a message about a 'name' its user never gave."""
    name = f"gameplay league on {scope}"
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1].rstrip() + "…"


def ensure_experiment(client: ServiceClient, scope: str = SCOPE, control: str = CONTROL,
                      treatment: str = TREATMENT) -> dict[str, Any]:
    """The experiment running on `scope`, or a new one (control vs treatment, 50/50, per
    player) with the league's outcome metrics, started."""
    return client.running_experiment({
        "name": league_name(scope), "scope": scope, "unit": "user",
        "salt": "gameplay-league",  # fixed: the same players land in the same arms every run
        "arms": [{"name": "control", "candidate": control, "weight": 1, "control": True},
                 {"name": "treatment", "candidate": treatment, "weight": 1}]}, METRICS)


def _player(client: ServiceClient, experiment_id: int, config: LeagueConfig, player: str,
            matches: list[tuple[str, int]], reports: bool,
            on_match: Callable[[], None]) -> list[Outcome]:
    outcomes = []
    for index, (opponent, seed) in enumerate(matches):
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
            client.outcome(experiment_id, player, metric, value,
                           f"e{experiment_id}.{player}.{index}.{metric}")
        outcomes.append(outcome)
        on_match()
    return outcomes


def run_league(client: ServiceClient, experiment_id: int, config: LeagueConfig,
               on_match: Callable[[], None] | None = None) -> dict[str, Any]:
    """Play the league; the players' own view of it (they do not know their arm)."""
    games = schedule(config.total, config.seed)
    rng = np.random.default_rng([config.seed, 7])
    reporters = rng.random(config.players) < config.reporting_share
    done = on_match or (lambda: None)
    outcomes: list[Outcome] = []
    spans = [config.player_matches(p) for p in range(config.players)]
    with ThreadPoolExecutor(config.threads) as pool:
        futures = [pool.submit(_player, client, experiment_id, config,
                               player, games[first:first + count], bool(reporters[p]), done)
                   for p, (player, (first, count)) in enumerate(zip(player_ids(config), spans,
                                                                    strict=True))]
        for future in as_completed(futures):
            outcomes += future.result()
    return summarize(outcomes)


def run_name(seed: int) -> str:
    """A new league run's name: the seed (which schedules the matches and picks who complains)
    and 64 random bits, so no two runs share players, whether they play at once or the worker
    has not counted the earlier one yet (a name from the counted players repeated then)."""
    return f"{seed}.{secrets.token_hex(8)}"


def player_ids(config: LeagueConfig) -> dict[str, int]:
    """The league's players, each with the matches it plays (so the `won` outcomes it sends)."""
    return {f"player-{config.run or config.seed}-{p}": config.player_matches(p)[1]
            for p in range(config.players)}


def wait_counted(client: ServiceClient, experiment_id: int, players: dict[str, int],
                 timeout_s: float) -> bool:
    """Wait until the evaluation worker has counted every `won` outcome of these players (id:
    matches), asking for each player itself: a total of units also grows with other leagues'
    players, counted before this one's."""
    import time

    deadline = time.monotonic() + timeout_s
    waiting = dict(players)
    while True:
        for player, matches in list(waiting.items()):
            counted = client.call("GET", f"/v1/experiments/{experiment_id}/unit-outcomes?"
                                  + urlencode({"unit_id": player}))
            if (counted["outcomes"].get("won") or {}).get("n", 0) < matches:
                break  # not yet: ask again in a second, not for every other player now
            del waiting[player]
        if not waiting:
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


__all__ = ["ACTIONS", "CANDIDATES", "LeagueConfig", "ensure_experiment", "league_size_problem",
           "player_ids", "run_league", "run_name", "verdict", "wait_counted"]
