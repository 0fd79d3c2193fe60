"""The arena's rules, its determinism, what a policy sees, and matches played through a bot
callable (one move at a time, or many matches in lockstep)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workloads.gameplay import post
from workloads.gameplay.features import FEATURES, features
from workloads.gameplay.game import (
    ACTIONS,
    ATTACK,
    DEFEND,
    DOWN,
    IDLE,
    LEFT,
    RIGHT,
    RULES,
    UP,
    State,
    Unit,
    start,
    step,
)
from workloads.gameplay.matches import (
    Match,
    action_index,
    play_match,
    play_matches,
    schedule,
    summarize,
)
from workloads.gameplay.players import OPPONENTS, duelist, idle_heavy


def state(a: tuple[int, int], b: tuple[int, int], **kw: int) -> State:
    """Two units at cells a and b; `a_hp=3`, `b_cooldown=1` ... set one unit's fields."""
    def unit(cell: tuple[int, int], prefix: str) -> Unit:
        fields = {"hp": RULES.hp, **{k[2:]: v for k, v in kw.items() if k.startswith(prefix)}}
        return Unit(cell[0], cell[1], **fields)

    return State(units=(unit(a, "a_"), unit(b, "b_")))


def cells(s: State) -> list[tuple[int, int]]:
    return [u.cell for u in s.units]


def test_moves_stop_at_walls_and_at_each_other() -> None:
    assert cells(step(state((0, 0), (5, 5)), (UP, LEFT))) == [(0, 0), (4, 5)]
    assert cells(step(state((2, 2), (4, 2)), (RIGHT, LEFT))) == [(2, 2), (4, 2)]  # same cell
    assert cells(step(state((2, 2), (3, 2)), (RIGHT, LEFT))) == [(2, 2), (3, 2)]  # a swap
    assert cells(step(state((2, 2), (3, 2)), (RIGHT, IDLE))) == [(2, 2), (3, 2)]  # occupied
    assert cells(step(state((2, 2), (3, 2)), (DOWN, RIGHT))) == [(2, 3), (4, 2)]


def test_attacks_reach_guard_and_cooldown() -> None:
    s = step(state((0, 0), (1, 1)), (ATTACK, IDLE))  # distance 2: within reach
    assert [u.hp for u in s.units] == [10, 10 - RULES.damage]
    assert s.units[0].cooldown == RULES.cooldown and s.units[0].last == ATTACK
    again = step(s, (ATTACK, IDLE))  # during the cooldown: nothing, and it counts down
    assert again.units[1].hp == s.units[1].hp and again.units[0].cooldown == RULES.cooldown - 1
    guarded = step(state((0, 0), (1, 0)), (ATTACK, DEFEND))
    assert guarded.units[1].hp == 10 - RULES.guarded and guarded.units[1].defending
    missed = step(state((0, 0), (2, 1)), (ATTACK, IDLE))  # distance 3: out of reach
    assert missed.units[1].hp == 10 and missed.units[0].cooldown == RULES.cooldown
    into = step(state((0, 0), (3, 0)), (ATTACK, LEFT))  # the step lands within reach first
    assert into.units[1].hp == 10 - RULES.damage


def test_the_match_ends_by_a_kill_a_double_kill_or_the_clock() -> None:
    s = step(state((0, 0), (1, 0), b_hp=2), (ATTACK, IDLE))
    assert s.over and s.winner() == 0
    both = step(state((0, 0), (1, 0), a_hp=3, b_hp=3), (ATTACK, ATTACK))
    assert both.over and both.winner() is None
    late = State(units=(Unit(0, 0, 9), Unit(5, 5, 10)), turn=RULES.max_turns - 1)
    late = step(late, (IDLE, IDLE))
    assert late.over and late.winner() == 1
    with pytest.raises(ValueError, match="the match is over"):
        step(late, (IDLE, IDLE))
    with pytest.raises(ValueError, match="action 9"):
        step(state((0, 0), (5, 5)), (9, IDLE))


def test_starts_are_seeded_and_apart() -> None:
    for seed in range(50):
        s = start(np.random.default_rng(seed))
        a, b = s.units
        assert abs(a.x - b.x) + abs(a.y - b.y) >= RULES.min_start_distance
        assert s == start(np.random.default_rng(seed))


def test_features_are_fixed_size_and_seen_from_each_side() -> None:
    s = state((1, 2), (4, 2), b_cooldown=1)
    mine, theirs = features(s, 0), features(s, 1)
    assert mine.shape == (FEATURES,) and mine.dtype == np.float32
    assert mine[0] == pytest.approx(-theirs[0]) and mine[2] == theirs[2]
    assert mine[8] == pytest.approx(0.5) and theirs[7] == pytest.approx(0.5)
    assert np.all(np.abs(mine) <= 1.0)


def test_the_same_seed_and_bot_replay_the_same_match() -> None:
    def bot(x: np.ndarray) -> str:
        return "attack" if x[3] else ("right" if x[0] > 0 else "left")

    for opponent in OPPONENTS:
        first = play_match(bot, opponent, seed=11)
        assert play_match(bot, opponent, seed=11) == first
    assert [play_match(bot, "random", s) for s in range(5)] != \
        [play_match(bot, "random", s) for s in range(5, 10)]


def test_lockstep_play_equals_one_match_at_a_time() -> None:
    def one(x: np.ndarray) -> int:
        return ATTACK if x[3] else int(np.argmax(np.abs(x[:2]))) + UP

    games = schedule(12, seed=3)
    together = play_matches(lambda xs: [one(x) for x in xs], games)
    assert together == [play_match(one, o, s) for o, s in games]
    assert {o.opponent for o in together} == set(OPPONENTS)
    with pytest.raises(ValueError, match="answered 0 actions for 12"):
        play_matches(lambda xs: [], games)


def test_outcome_figures() -> None:
    outcome = play_match(lambda x: "idle", "aggressive", seed=1)
    assert outcome.result == "loss" and outcome.idle_share == 1.0 and outcome.hp == 0
    assert 0 < outcome.length < RULES.max_turns
    calm = play_match(lambda x: "idle", "defensive", seed=1)
    assert calm.result == "draw" and calm.length == RULES.max_turns
    summary = summarize([outcome, calm])
    assert summary["overall"] == {"matches": 2, "wins": 0, "losses": 1, "draws": 1,
                                  "win_rate": 0.0, "win_rate_ci95": [0.0, 0.6576],
                                  "idle_share": 1.0,
                                  "mean_length": (outcome.length + calm.length) / 2}
    assert set(summary["by_opponent"]) == {"aggressive", "defensive"}


def test_a_league_can_drive_the_moves_itself() -> None:
    match = Match("kiting", seed=4)
    assert match.features().shape == (FEATURES,)
    with pytest.raises(ValueError, match="still being played"):
        match.outcome()
    while not match.over:
        match.move(b"defend")  # a V2 BYTES answer works as well as a str
    assert match.outcome().idle_share == 0.0
    with pytest.raises(ValueError, match="'jump' is not one of"):
        action_index("jump")
    with pytest.raises(ValueError, match="unknown"):
        Match("nobody", 0)


def test_scripted_styles_differ_in_strength() -> None:
    """The duelist beats every style or draws; the idle-heavy player loses to those that hit
    from the edge of their reach."""
    for name in OPPONENTS:
        for seed in range(5):
            for player, bad in ((duelist, "loss"), (idle_heavy, "win")):
                match = Match(name, seed)
                rng = np.random.default_rng(seed)
                while not match.over:
                    match.move(player(match.state, 0, rng))
                result = match.outcome().result
                if name != "random":
                    assert result != bad, (name, player.__name__, seed)


def test_the_game_is_fast() -> None:
    """Thousands of moves a second in plain Python (CPU time, so a busy machine does not
    matter): a league's cost is its inference calls, not the game."""
    def bot(x: np.ndarray) -> int:
        return IDLE

    started, moves = time.process_time(), 0
    for seed in range(40):
        moves += play_match(bot, "defensive", seed).length
    assert moves / (time.process_time() - started) > 2000


def test_the_post_stage_maps_logits_to_actions() -> None:
    assert tuple(post.CLASSES) == ACTIONS
    out = post.to_action({"logits": np.array([[0.0, 0, 0, 0, 0, 5.0, 0], [9.0, 0, 0, 0, 0, 0,
                                                                          0]], np.float32)})
    assert list(out["label"]) == ["attack", "idle"]
    assert out["confidence"][1] > out["confidence"][0] > 0.9
    assert np.allclose(out["probabilities"].sum(-1), 1.0)
