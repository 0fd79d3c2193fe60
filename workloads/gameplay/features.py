"""What a policy sees: one fixed-size float vector per state, from one player's point of view.

The same vector is the candidates' `state` input ([-1, FEATURES] FP32), the logged dataset's
rows and what a league sends to `/v2/models/{scope}/infer` each move, so one function makes it.
"""

from __future__ import annotations

import numpy as np

from workloads.gameplay.game import ATTACK, State, distance

FEATURE_NAMES = (
    "dx", "dy", "distance", "in_reach", "adjacent",
    "my_hp", "their_hp", "my_cooldown", "their_cooldown", "they_defended",
    "my_x", "my_y", "their_x", "their_y", "turn", "they_attacked",
)
FEATURES = len(FEATURE_NAMES)


def features(state: State, side: int = 0) -> np.ndarray:
    """The state as `side` sees it: positions, distances, hp, cooldowns, each scaled to about
    [-1, 1], float32 of shape (FEATURES,)."""
    me, them = state.view(side)
    rules = state.rules
    span = rules.size - 1
    d = distance(me, them)
    return np.array([
        (them.x - me.x) / span, (them.y - me.y) / span, d / (2 * span),
        float(d <= rules.reach), float(d == 1),
        me.hp / rules.hp, them.hp / rules.hp,
        me.cooldown / rules.cooldown, them.cooldown / rules.cooldown, float(them.defending),
        me.x / span, me.y / span, them.x / span, them.y / span,
        state.turn / rules.max_turns, float(them.last == ATTACK),
    ], dtype=np.float32)
