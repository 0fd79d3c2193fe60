"""Logged play: what a scripted player saw and did, move by move — the candidates' training data
and the held-out offline test set (a JSONL file in the shape `abvoc offline-test --dataset`
reads: `{"inputs": {"state": [...]}, "label": "idle", "slice": "far"}`).

The offline dataset is the idle-heavy player's lobby games against wanderers, where about nine
moves in ten are `idle`; the playing candidate learns from the duelist's games against the
league's opponent styles instead, which look like online play.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.gameplay.features import FEATURES
from workloads.gameplay.game import ACTIONS, IDLE, RULES, Rules, distance
from workloads.gameplay.matches import Match, Outcome
from workloads.gameplay.players import OPPONENTS, SCRIPTED

INPUT_NAME = "state"
IDLE_LOGS = ("idle-heavy", ("wanderer",))
PLAY_LOGS = ("duelist", tuple(OPPONENTS))


@dataclass(frozen=True)
class Log:
    """Rows of (features, action) with the slice each row belongs to, and the matches' ends."""

    states: np.ndarray  # (n, FEATURES) float32
    actions: np.ndarray  # (n,) int64
    slices: tuple[str, ...]
    outcomes: tuple[Outcome, ...]

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def idle_share(self) -> float:
        return float(np.mean(self.actions == IDLE))


def slice_of(match: Match) -> str:
    """`near` when the opponent can be hit from here, `far` otherwise."""
    me, them = match.state.units
    return "near" if distance(me, them) <= match.state.rules.reach else "far"


def log_play(player: str, opponents: Sequence[str], matches: int, seed: int,
             rules: Rules = RULES) -> Log:
    """`matches` seeded games of the scripted `player` (as the bot) against `opponents` in turn."""
    if player not in SCRIPTED:
        raise ValueError(f"player {player!r} is unknown; use one of {sorted(SCRIPTED)}")
    act = SCRIPTED[player]
    states, actions, slices, outcomes = [], [], [], []
    for i in range(matches):
        match_seed = seed * 1_000_003 + i
        match = Match(opponents[i % len(opponents)], match_seed, rules)
        rng = np.random.default_rng([match_seed, 2])
        while not match.over:
            action = act(match.state, 0, rng)
            states.append(match.features())
            actions.append(action)
            slices.append(slice_of(match))
            match.move(action)
        outcomes.append(match.outcome())
    return Log(np.asarray(states, np.float32).reshape(-1, FEATURES),
               np.asarray(actions, np.int64), tuple(slices), tuple(outcomes))


def write_jsonl(log: Log, path: Path) -> int:
    """The log as an offline-test dataset, one state a line; returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row, action, slice_ in zip(log.states, log.actions, log.slices, strict=True):
            item = {"inputs": {INPUT_NAME: [round(float(v), 6) for v in row]},
                    "label": ACTIONS[int(action)], "slice": slice_}
            out.write(json.dumps(item) + "\n")
    return len(log)
