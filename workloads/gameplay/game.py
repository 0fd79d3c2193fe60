"""The arena: a small deterministic 1v1 game on a square grid, played in simultaneous turns.

Each turn both players pick one of `ACTIONS` from the same state; the turn resolves in a fixed
order, so a match is a pure function of its seed (start cells) and the actions chosen:

1. `defend` guards the player for this turn: a hit on a guarded player does `GUARDED` damage.
2. moves: a step off the arena, into the other player's cell, onto the same cell as the other
   player's step, or through the other player (a swap) leaves the mover where it was.
3. attacks: a player whose cooldown is 0 hits when the other player is within `REACH` steps
   (Manhattan) after the moves; an attack, hit or miss, restarts its cooldown. An attack during
   the cooldown does nothing.
4. cooldowns of players that did not attack count down by one.

The match ends when a player's hp reaches 0 (both at once: a draw) or after `max_turns` turns,
when the higher hp wins and equal hp is a draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

ACTIONS = ("idle", "up", "down", "left", "right", "attack", "defend")
IDLE, UP, DOWN, LEFT, RIGHT, ATTACK, DEFEND = range(len(ACTIONS))
STEPS = {UP: (0, -1), DOWN: (0, 1), LEFT: (-1, 0), RIGHT: (1, 0)}


@dataclass(frozen=True)
class Rules:
    """The game's constants; the defaults are the reference game the candidates are trained on."""

    size: int = 7
    hp: int = 10
    damage: int = 3
    guarded: int = 1
    reach: int = 2
    cooldown: int = 2
    max_turns: int = 80
    min_start_distance: int = 4


RULES = Rules()


@dataclass(frozen=True)
class Unit:
    """One player's state. `last` is the action it took last turn (IDLE before the first)."""

    x: int
    y: int
    hp: int
    cooldown: int = 0
    defending: bool = False
    last: int = IDLE

    @property
    def cell(self) -> tuple[int, int]:
        return (self.x, self.y)


@dataclass(frozen=True)
class State:
    """Both players and the turn number; `units[0]` is the bot, `units[1]` its opponent."""

    units: tuple[Unit, Unit]
    turn: int = 0
    rules: Rules = field(default=RULES)

    def view(self, side: int) -> tuple[Unit, Unit]:
        """(me, them) from `side`'s point of view."""
        return self.units[side], self.units[1 - side]

    @property
    def over(self) -> bool:
        return min(u.hp for u in self.units) <= 0 or self.turn >= self.rules.max_turns

    def winner(self) -> int | None:
        """The side that won (0 or 1), or None for a draw; only meaningful once `over`."""
        a, b = (max(u.hp, 0) for u in self.units)
        if a == b:
            return None
        return 0 if a > b else 1


def distance(a: Unit, b: Unit) -> int:
    return abs(a.x - b.x) + abs(a.y - b.y)


def start(rng: np.random.Generator, rules: Rules = RULES) -> State:
    """Two players on distinct cells at least `min_start_distance` apart, drawn from `rng`."""
    while True:
        cells = rng.integers(0, rules.size, size=(2, 2))
        if abs(cells[0] - cells[1]).sum() >= rules.min_start_distance:
            units = tuple(Unit(int(x), int(y), rules.hp) for x, y in cells)
            return State(units=units, rules=rules)  # type: ignore[arg-type]


def step(state: State, actions: tuple[int, int]) -> State:
    """The state after one turn in which side 0 plays actions[0] and side 1 plays actions[1]."""
    if state.over:
        raise ValueError("the match is over")
    rules = state.rules
    for a in actions:
        if not 0 <= a < len(ACTIONS):
            raise ValueError(f"action {a} is not one of 0..{len(ACTIONS) - 1}")
    units = [replace(u, defending=a == DEFEND) for u, a in zip(state.units, actions, strict=True)]
    targets = [_target(u, a, rules) for u, a in zip(units, actions, strict=True)]
    blocked = (targets[0] == targets[1]
               or (targets[0] == units[1].cell and targets[1] == units[0].cell))
    for i in (0, 1):
        other = units[1 - i].cell
        if not blocked and targets[i] != other:
            units[i] = replace(units[i], x=targets[i][0], y=targets[i][1])
    hits = [0, 0]
    attacked = [False, False]
    for i, a in enumerate(actions):
        if a == ATTACK and units[i].cooldown == 0:
            attacked[i] = True
            if distance(units[0], units[1]) <= rules.reach:
                target = units[1 - i]
                hits[1 - i] = rules.guarded if target.defending else rules.damage
    for i in (0, 1):
        cooldown = rules.cooldown if attacked[i] else max(units[i].cooldown - 1, 0)
        units[i] = replace(units[i], hp=units[i].hp - hits[i], cooldown=cooldown,
                           last=actions[i])
    return State(units=(units[0], units[1]), turn=state.turn + 1, rules=rules)


def _target(unit: Unit, action: int, rules: Rules) -> tuple[int, int]:
    dx, dy = STEPS.get(action, (0, 0))
    x, y = unit.x + dx, unit.y + dy
    if 0 <= x < rules.size and 0 <= y < rules.size:
        return (x, y)
    return unit.cell
