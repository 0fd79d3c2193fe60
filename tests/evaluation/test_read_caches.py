"""What the long-lived readers keep between reads stays bounded: the results' moments per
experiment, and the worker's flagged slices per experiment."""

from __future__ import annotations

import pytest

import evaluation.relabel_enqueue as enqueue
import evaluation.unit_moments as unit_moments
from core.store.db import Database
from evaluation.relabel_enqueue import cached_flagged_slices
from evaluation.unit_moments import load_moments


def test_the_moments_kept_are_those_of_the_experiments_read_last(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every experiment a process had read stayed held (a few KB per slice each)."""
    monkeypatch.setattr(unit_moments, "READ_KEPT", 8)
    with db.reading() as s:
        for experiment_id in range(1, 41):
            load_moments(s, experiment_id)
        load_moments(s, 35)  # read again: kept as the newest
        load_moments(s, 41)
        kept = unit_moments._READ[s.get_bind()]
    assert len(kept) == 8
    assert list(kept)[-2:] == [35, 41] and 33 not in kept


def test_flagged_slices_of_experiments_no_longer_read_expire(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry expired only when its own experiment was read again: a stopped one's stayed."""
    now = [1000.0]
    monkeypatch.setattr(enqueue.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(enqueue, "_flagged_cache", {})
    with db.reading() as s:
        for experiment_id in range(1, 31):
            assert cached_flagged_slices(s, experiment_id) == set()  # none of them exists
            now[0] += 60
        assert len(enqueue._flagged_cache) <= enqueue.FLAGGED_TTL_S / 60 + 1
        assert 30 in enqueue._flagged_cache and 1 not in enqueue._flagged_cache
