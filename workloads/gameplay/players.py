"""Scripted players: the opponents' styles, the competent duelist whose play the playing
candidate learns from, and the idle-heavy player whose logs are the offline dataset.

A player is `player(state, side, rng) -> action index`; every choice is a pure function of the
state and the match's random generator, so a seeded match always plays out the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workloads.gameplay.game import (
    ACTIONS,
    ATTACK,
    DEFEND,
    IDLE,
    STEPS,
    State,
    Unit,
    distance,
)

# How often a wanderer steps toward the other player: 0.1 makes the idle-heavy logs ~90% idle.
WANDER_DRIFT = 0.1
Player = Callable[[State, int, np.random.Generator], int]


def toward(me: Unit, them: Unit) -> int:
    """The step that closes the larger of the two gaps (x first on a tie)."""
    dx, dy = them.x - me.x, them.y - me.y
    if dx == 0 and dy == 0:
        return IDLE
    if abs(dx) >= abs(dy):
        return [k for k, s in STEPS.items() if s == (int(np.sign(dx)), 0)][0]
    return [k for k, s in STEPS.items() if s == (0, int(np.sign(dy)))][0]


def away(me: Unit, them: Unit, size: int) -> int:
    """The step inside the arena that leaves the most distance (idle when none gains any)."""
    best, best_d = IDLE, distance(me, them)
    for action, (sx, sy) in STEPS.items():
        x, y = me.x + sx, me.y + sy
        if 0 <= x < size and 0 <= y < size and (x, y) != them.cell:
            d = abs(x - them.x) + abs(y - them.y)
            if d > best_d:
                best, best_d = action, d
    return best


def approached(unit: Unit, other: Unit) -> bool:
    """Whether `unit`'s last action was a step that brought it closer to `other`."""
    if unit.last not in STEPS:
        return False
    sx, sy = STEPS[unit.last]
    before = abs(unit.x - sx - other.x) + abs(unit.y - sy - other.y)
    return before > distance(unit, other)


def aggressive(state: State, side: int, rng: np.random.Generator) -> int:
    """Presses in to its reach and swings every time it can; never guards, never backs off."""
    me, them = state.view(side)
    d = distance(me, them)
    if me.cooldown == 0 and d <= state.rules.reach:
        return ATTACK
    return toward(me, them) if d > state.rules.reach else IDLE


def defensive(state: State, side: int, rng: np.random.Generator) -> int:
    """Keeps out of reach; guards when caught, hits back only from a guarded position."""
    me, them = state.view(side)
    d, reach = distance(me, them), state.rules.reach
    if d <= reach:
        if me.cooldown == 0 and them.cooldown > 0:
            return ATTACK
        step = away(me, them, state.rules.size)
        return step if step != IDLE and them.cooldown > 0 else DEFEND
    return away(me, them, state.rules.size) if d == reach + 1 else IDLE


def kiting(state: State, side: int, rng: np.random.Generator) -> int:
    """Steps in to the edge of its reach to hit, then backs off while its attack recharges."""
    me, them = state.view(side)
    d, reach = distance(me, them), state.rules.reach
    if me.cooldown == 0:
        if d <= reach:
            return ATTACK
        return toward(me, them)
    return away(me, them, state.rules.size) if d <= reach else IDLE


def random_player(state: State, side: int, rng: np.random.Generator) -> int:
    """Any action, uniformly."""
    return int(rng.integers(len(ACTIONS)))


def wanderer(state: State, side: int, rng: np.random.Generator) -> int:
    """A lobby player: walks about, drifting toward the other player, and now and then swings
    at whatever is near."""
    me, them = state.view(side)
    if me.cooldown == 0 and distance(me, them) <= state.rules.reach and rng.random() < 0.3:
        return ATTACK
    if distance(me, them) > 1 and rng.random() < WANDER_DRIFT:
        return toward(me, them)
    return int(rng.choice((IDLE, *STEPS)))


def duelist(state: State, side: int, rng: np.random.Generator) -> int:
    """A competent player: lets a ready opponent come and swings into its step, hits whenever
    it reaches, guards while recharging if the other can hit soon."""
    me, them = state.view(side)
    d, reach = distance(me, them), state.rules.reach
    if me.cooldown == 0:
        coming = them.cooldown == 0 and approached(them, me)
        if d <= reach or (d == reach + 1 and coming):
            return ATTACK
        return IDLE if d == reach + 2 and coming else toward(me, them)
    if d <= reach:
        return DEFEND if them.cooldown <= 1 else IDLE
    return toward(me, them) if d > reach + 1 else IDLE


def idle_heavy(state: State, side: int, rng: np.random.Generator, noise: float = 0.01) -> int:
    """The logged player: stands still unless someone is right next to it, then swings (or
    guards while recharging); about one move in a hundred is a slip of the hand."""
    if rng.random() < noise:
        return int(rng.integers(len(ACTIONS)))
    me, them = state.view(side)
    if distance(me, them) == 1:
        return ATTACK if me.cooldown == 0 else DEFEND
    return IDLE


OPPONENTS: dict[str, Player] = {
    "aggressive": aggressive,
    "defensive": defensive,
    "kiting": kiting,
    "random": random_player,
}
SCRIPTED: dict[str, Player] = {**OPPONENTS, "wanderer": wanderer, "duelist": duelist,
                               "idle-heavy": idle_heavy}
