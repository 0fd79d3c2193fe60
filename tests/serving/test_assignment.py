"""Traffic assignment: sticky, weighted, independent across salts, minimal movement on change."""

from __future__ import annotations

import functools
import json
import random
import uuid

import numpy as np
import pytest
from scipy import stats

from serving.assignment import (
    NUM_BUCKETS,
    Allocation,
    Assigner,
    allocate,
    assign,
    bucket_of,
    moved_share,
    reallocate,
    remove_arm,
    tv_distance,
)

N_UNITS = 100_000
P_MIN = 0.001


def unit_ids(count: int, seed: int = 7) -> list[str]:
    """Reproducible 36-character UUID strings."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


@functools.cache
def sampled_buckets(salt: str = "exp-sample") -> np.ndarray:
    return np.array([bucket_of(u, salt) for u in unit_ids(N_UNITS)])


def arms_of(allocation: Allocation, buckets: np.ndarray) -> np.ndarray:
    return np.frombuffer(allocation.table, dtype=np.uint8)[buckets]


def random_weights(rng: random.Random, arms: int) -> list[float]:
    weights = [rng.random() for _ in range(arms)]
    if rng.random() < 0.3:  # sometimes switch an arm off
        weights[rng.randrange(arms)] = 0.0
    return weights


# --- stickiness and stability ------------------------------------------------------------------


def test_bucket_is_a_stable_hash_pinned_across_releases() -> None:
    # Golden values: changing them reshuffles every running experiment.
    assert bucket_of("00000000-0000-0000-0000-000000000000", "exp-1") == 1152
    assert bucket_of("3f2b8c1e-9d4a-4e57-8a6b-0c1d2e3f4a5b", "exp-1") == 3354


def test_same_unit_same_arm_every_time() -> None:
    allocation = reallocate(allocate([0.5, 0.25, 0.25]), [0.4, 0.3, 0.3])
    ids = unit_ids(2_000)
    first = [Assigner(allocation, "exp-sticky").assign(u) for u in ids]
    rebuilt = Assigner(Allocation.from_json(allocation.to_json()), "exp-sticky")
    assert [rebuilt.assign(u) for u in ids] == first
    assert [assign(allocation, u, "exp-sticky") for u in ids] == first


def test_salt_separator_is_unambiguous() -> None:
    assert bucket_of("b", "a:", 2**31) != bucket_of(":b", "a", 2**31)


# --- distribution and independence -------------------------------------------------------------


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.5, 0.3, 0.2], [0.05, 0.15, 0.2, 0.25, 0.35]])
def test_split_matches_weights(weights: list[float]) -> None:
    allocation = allocate(weights)
    observed = np.bincount(arms_of(allocation, sampled_buckets()), minlength=len(weights))
    expected = np.array(allocation.counts()) / NUM_BUCKETS * N_UNITS
    assert stats.chisquare(observed, expected).pvalue > P_MIN


def test_buckets_are_uniform() -> None:
    observed = np.bincount(sampled_buckets() % 100, minlength=100)
    assert stats.chisquare(observed).pvalue > P_MIN


def test_experiments_with_different_salts_are_independent() -> None:
    a = arms_of(allocate([0.5, 0.3, 0.2]), sampled_buckets("exp-A"))
    b = arms_of(allocate([1, 1, 1]), sampled_buckets("exp-B"))
    table = np.zeros((3, 3), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    assert stats.chi2_contingency(table).pvalue > P_MIN


# --- minimal movement --------------------------------------------------------------------------


def test_three_arm_change_moves_exactly_ten_percent() -> None:
    old = allocate([0.5, 0.25, 0.25])
    new = reallocate(old, [0.4, 0.3, 0.3])
    assert new.counts() == [4000, 3000, 3000]
    assert moved_share(old, new) == pytest.approx(0.1, abs=1e-12)
    assert tv_distance(old.weights, new.weights) == pytest.approx(0.1)


@pytest.mark.parametrize("arms", range(2, 9))
def test_random_changes_move_exactly_the_minimum(arms: int) -> None:
    rng = random.Random(arms)
    buckets = sampled_buckets()
    old = allocate(random_weights(rng, arms))
    for _ in range(6):
        new = reallocate(old, random_weights(rng, arms))
        before, after = old.counts(), new.counts()
        minimum = sum(max(0, b - a) for b, a in zip(before, after, strict=True))
        changed = [i for i in range(NUM_BUCKETS) if old.table[i] != new.table[i]]
        assert len(changed) == minimum
        # Buckets only flow from shrinking arms to growing arms.
        assert all(after[old.table[i]] < before[old.table[i]] for i in changed)
        assert all(after[new.table[i]] > before[new.table[i]] for i in changed)
        # Each arm is within one bucket of its weight, so the share is the TV distance.
        assert all(abs(c - w * NUM_BUCKETS) < 1 for c, w in zip(after, new.weights, strict=True))
        tv = tv_distance(old.weights, new.weights)
        assert abs(moved_share(old, new) - tv) <= arms / NUM_BUCKETS
        unit_share = float(np.mean(arms_of(old, buckets) != arms_of(new, buckets)))
        sigma = max(tv * (1 - tv), 1e-4) ** 0.5 / N_UNITS**0.5
        assert abs(unit_share - tv) <= 5 * sigma + arms / NUM_BUCKETS
        old = new


def test_reallocate_is_deterministic_and_unchanged_weights_move_nothing() -> None:
    old = allocate([0.2, 0.3, 0.5])
    assert reallocate(old, [0.35, 0.35, 0.3]) == reallocate(old, [0.35, 0.35, 0.3])
    assert reallocate(old, [2, 3, 5]).table == old.table


def test_canary_ramp_keeps_earlier_treatment_units() -> None:
    allocation = allocate([0.99, 0.01])
    previous = set(np.flatnonzero(arms_of(allocation, sampled_buckets()) == 1))
    for share in (0.05, 0.25, 0.5):
        ramped = reallocate(allocation, [1 - share, share])
        treated = set(np.flatnonzero(arms_of(ramped, sampled_buckets()) == 1))
        assert previous <= treated
        assert moved_share(allocation, ramped) == pytest.approx(share - allocation.weights[1])
        allocation, previous = ramped, treated


def test_adding_an_arm_takes_only_what_it_needs() -> None:
    old = allocate([0.5, 0.5])
    new = reallocate(old, [0.4, 0.4, 0.2])
    assert new.counts() == [4000, 4000, 2000]
    assert moved_share(old, new) == pytest.approx(0.2)
    assert {new.table[i] for i in range(NUM_BUCKETS) if old.table[i] != new.table[i]} == {2}


def test_removing_an_arm_moves_only_its_units_and_shifts_later_arms() -> None:
    old = allocate([0.4, 0.3, 0.2, 0.1])
    new = remove_arm(old, 1)
    assert new.num_arms == 3
    assert new.weights == pytest.approx((4 / 7, 2 / 7, 1 / 7))
    renamed = {0: 0, 2: 1, 3: 2}
    for before, after in zip(old.table, new.table, strict=True):
        if before != 1:
            assert after == renamed[before]
    explicit = remove_arm(old, 0, [0.5, 0.25, 0.25])
    assert explicit.counts() == [5000, 2500, 2500]


# --- serialisation -----------------------------------------------------------------------------


def test_json_round_trip_is_exact_and_compact() -> None:
    rng = random.Random(3)
    allocation = allocate([0.5, 0.25, 0.25])
    for arms in (3, 4, 5):
        allocation = reallocate(allocation, random_weights(rng, arms) + [0.1])
        text = allocation.to_json()
        assert Allocation.from_json(text) == allocation
        assert " " not in text and len(text) < 600
    assert json.loads(allocate([1, 1]).to_json()) == {
        "v": 1,
        "weights": [0.5, 0.5],
        "runs": [[0, 5000], [1, 5000]],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not an allocation document"),
        ('{"v": 2, "weights": [1], "runs": [[0, 10]]}', "format version"),
        ('{"v": 1, "weights": [1]}', "not an allocation document"),
        ('{"v": 1, "weights": [1], "runs": [[0, -1]]}', "bad run"),
        ('{"v": 1, "weights": [1], "runs": [[1, 10]]}', "names arm 1"),
        ('{"v": 1, "weights": [1], "runs": [[-1, 10]]}', "bad run"),
        ('{"v": 1, "weights": [1], "runs": [[300, 10]]}', "bad run"),
        ('{"v": 1, "weights": [0.5, 0.2], "runs": [[0, 10]]}', "sum to 1"),
        ('{"v": 1, "weights": [1], "runs": []}', "at least one bucket"),
    ],
)
def test_from_json_rejects_bad_documents(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Allocation.from_json(text)


# --- errors, overrides -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.5, -0.1], "weight of arm 1 must not be negative"),
        ([0, 0, 0], "all weights are zero"),
        ([0.5, float("nan")], "weight of arm 1 must be a finite number"),
        ([float("inf"), 1], "weight of arm 0 must be a finite number"),
        ([], "at least one arm"),
        (["0.5", "0.5"], "must be numbers"),
        ([1] * 256, "at most 255 arms"),
    ],
)
def test_bad_weights_raise_clear_errors(weights: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allocate(weights)
    if weights:
        with pytest.raises(ValueError, match=message):
            reallocate(allocate([1]), weights)


def test_wrong_number_of_weights_raises() -> None:
    allocation = allocate([0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="expected at least 3 weights, one per existing arm"):
        reallocate(allocation, [0.5, 0.5])
    with pytest.raises(ValueError, match="expected 2 weights, one per arm, got 3"):
        remove_arm(allocation, 1, [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="arm 3 does not exist"):
        remove_arm(allocation, 3)
    with pytest.raises(ValueError, match="cannot remove the only arm"):
        remove_arm(allocate([1]), 0)
    with pytest.raises(ValueError, match="num_buckets must be at least 1"):
        allocate([1], num_buckets=0)


def test_force_and_kill_switch() -> None:
    allocation = allocate([0.2, 0.4, 0.4])
    assigner = Assigner(allocation, "exp-override", control=1)
    ids = unit_ids(200)
    assert {assigner.assign(u, killed=True) for u in ids} == {1}
    assert {assigner.assign(u, force=2, killed=True) for u in ids} == {2}
    assert assign(allocation, ids[0], "exp-override", force=0) == 0
    assert assign(allocation, ids[0], "exp-override", killed=True) == 0
    with pytest.raises(ValueError, match="forced arm 3 does not exist"):
        assigner.assign(ids[0], force=3)
    with pytest.raises(ValueError, match="control arm 5 does not exist"):
        Assigner(allocation, "exp-override", control=5)
