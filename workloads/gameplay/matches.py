"""Matches between a bot and a scripted opponent, played move by move.

The bot is any callable from the feature vector to an action (a label or an index), so the
same loop drives a local model, a scripted player or — in a league — one `/v2` infer call per
move. `Match` exposes the single steps for callers that drive the moves themselves;
`play_matches` plays many matches in lockstep so a batched policy answers one batch per turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from workloads.gameplay.features import features
from workloads.gameplay.game import ACTIONS, IDLE, RULES, Rules, State, start, step
from workloads.gameplay.players import OPPONENTS, SCRIPTED, Player

Action = int | str
Bot = Callable[[np.ndarray], Action]
BatchBot = Callable[[np.ndarray], Sequence[Action]]
RESULTS = ("win", "loss", "draw")


@dataclass(frozen=True)
class Outcome:
    """What a match gives the product: the bot's result, how often it idled, how long it ran."""

    opponent: str
    seed: int
    result: str
    idle_share: float
    length: int
    hp: int
    their_hp: int

    def to_dict(self) -> dict:
        return asdict(self)


def action_index(action: Action) -> int:
    """An action given as a label ("attack") or an index (5) as its index; a clear error else."""
    if isinstance(action, str | bytes):
        label = action.decode() if isinstance(action, bytes) else action
        if label not in ACTIONS:
            raise ValueError(f"action {label!r} is not one of {ACTIONS}")
        return ACTIONS.index(label)
    index = int(action)
    if not 0 <= index < len(ACTIONS):
        raise ValueError(f"action {index} is not one of 0..{len(ACTIONS) - 1}")
    return index


class Match:
    """One seeded match against a named scripted opponent; the caller supplies the bot's moves.

    The seed fixes the start cells and the opponent's random choices, so the same seed and the
    same bot moves replay the same match."""

    def __init__(self, opponent: str, seed: int, rules: Rules = RULES) -> None:
        if opponent not in SCRIPTED:
            raise ValueError(f"opponent {opponent!r} is unknown; use one of {sorted(SCRIPTED)}")
        self.opponent, self.seed = opponent, seed
        self._player: Player = SCRIPTED[opponent]
        self._rng = np.random.default_rng([seed, 1])
        self.state: State = start(np.random.default_rng([seed, 0]), rules)
        self.moves: list[int] = []

    @property
    def over(self) -> bool:
        return self.state.over

    def features(self) -> np.ndarray:
        """What the bot sees now."""
        return features(self.state, 0)

    def move(self, action: Action) -> None:
        """Play one turn: the bot's action against the opponent's reply to the same state."""
        mine = action_index(action)
        theirs = self._player(self.state, 1, self._rng)
        self.state = step(self.state, (mine, theirs))
        self.moves.append(mine)

    def outcome(self) -> Outcome:
        if not self.over:
            raise ValueError("the match is still being played")
        winner = self.state.winner()
        result = "draw" if winner is None else ("win" if winner == 0 else "loss")
        me, them = self.state.units
        idle = sum(m == IDLE for m in self.moves) / len(self.moves)
        return Outcome(self.opponent, self.seed, result, idle, len(self.moves),
                       max(me.hp, 0), max(them.hp, 0))


def play_match(bot: Bot, opponent: str, seed: int, rules: Rules = RULES) -> Outcome:
    """A full match; `bot` is asked for every move."""
    match = Match(opponent, seed, rules)
    while not match.over:
        match.move(bot(match.features()))
    return match.outcome()


def play_matches(bot: BatchBot, schedule: Sequence[tuple[str, int]],
                 rules: Rules = RULES) -> list[Outcome]:
    """Every (opponent, seed) match of the schedule, in lockstep: each turn `bot` gets the
    features of all matches still running, (n, FEATURES), and answers one action each."""
    matches = [Match(opponent, seed, rules) for opponent, seed in schedule]
    while running := [m for m in matches if not m.over]:
        actions = bot(np.stack([m.features() for m in running]))
        if len(actions) != len(running):
            raise ValueError(f"the bot answered {len(actions)} actions for {len(running)} "
                             "matches")
        for match, action in zip(running, actions, strict=True):
            match.move(action)
    return [m.outcome() for m in matches]


def schedule(n: int, seed: int = 0, opponents: Sequence[str] = tuple(OPPONENTS)) -> list[
        tuple[str, int]]:
    """n matches spread evenly over the opponents' styles, with distinct seeds."""
    return [(opponents[i % len(opponents)], seed * 1_000_003 + i) for i in range(n)]


def wilson(successes: int, n: int) -> list[float] | None:
    """The Wilson score 95% interval of a proportion (statsmodels), None without matches."""
    if n == 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return [round(float(low), 4), round(float(high), 4)]


def summarize(outcomes: Sequence[Outcome]) -> dict:
    """Win/loss/draw counts, the win rate with its Wilson 95% interval, the move-weighted idle
    share and the mean length, in all and by opponent style."""
    def row(items: Sequence[Outcome]) -> dict:
        n = len(items)
        moves = sum(o.length for o in items)
        counts = {r: sum(o.result == r for o in items) for r in RESULTS}
        return {"matches": n, "wins": counts["win"], "losses": counts["loss"],
                "draws": counts["draw"],
                "win_rate": counts["win"] / n if n else None,
                "win_rate_ci95": wilson(counts["win"], n),
                "idle_share": sum(o.idle_share * o.length for o in items) / moves if moves
                else None,
                "mean_length": moves / n if n else None}

    styles = sorted({o.opponent for o in outcomes})
    return {"overall": row(outcomes),
            "by_opponent": {s: row([o for o in outcomes if o.opponent == s]) for s in styles}}
