"""Logged play: the idle-heavy offline dataset is about nine idle moves in ten, seeded, and
written in the JSONL shape `abvoc offline-test --dataset` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.bundles import load_manifest
from serving.bundles.offline import read_dataset
from workloads.gameplay.build import HELDOUT_NAME
from workloads.gameplay.features import FEATURES
from workloads.gameplay.game import ACTIONS
from workloads.gameplay.logs import IDLE_LOGS, PLAY_LOGS, log_play, write_jsonl
from workloads.gameplay.training import class_weights


def test_the_idle_heavy_logs_are_about_ninety_percent_idle() -> None:
    log = log_play(*IDLE_LOGS, matches=120, seed=1)
    assert log.states.shape == (len(log), FEATURES) and len(log) > 5000
    assert 0.87 <= log.idle_share <= 0.94
    shares = np.bincount(log.actions, minlength=len(ACTIONS)) / len(log)
    assert shares[ACTIONS.index("attack")] > 0.02 and shares[ACTIONS.index("defend")] > 0.02
    assert set(log.slices) == {"near", "far"}
    play = log_play(*PLAY_LOGS, matches=40, seed=1)
    assert play.idle_share < 0.4  # the duelist's games look like online play


def test_logs_are_seeded() -> None:
    a, b = log_play(*IDLE_LOGS, 10, seed=5), log_play(*IDLE_LOGS, 10, seed=5)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)
    assert not np.array_equal(a.actions, log_play(*IDLE_LOGS, 10, seed=6).actions)
    with pytest.raises(ValueError, match="player 'afk' is unknown"):
        log_play("afk", ("random",), 1, 0)


def test_the_held_out_jsonl_reads_as_an_offline_dataset(built: tuple[Path, dict[str, Any]],
                                                        tmp_path: Path) -> None:
    out, summary = built
    manifest = load_manifest(out / "gameplay-idle-logs")
    examples = read_dataset(out / HELDOUT_NAME, manifest)
    assert len(examples) == summary["dataset"]["states"]
    idle = np.mean([e.label == "idle" for e in examples])
    assert idle == pytest.approx(summary["dataset"]["idle_share"]) and 0.87 <= idle <= 0.94
    assert examples[0].inputs["state"].shape == (1, FEATURES)
    first = json.loads((out / HELDOUT_NAME).read_text().splitlines()[0])
    assert set(first) == {"inputs", "label", "slice"}

    small = log_play(*IDLE_LOGS, 2, seed=9)
    assert write_jsonl(small, tmp_path / "small.jsonl") == len(small)
    assert [e.label for e in read_dataset(tmp_path / "small.jsonl", manifest)] == \
        [ACTIONS[a] for a in small.actions]


def test_class_weights_even_out_the_classes() -> None:
    actions = np.array([0] * 90 + [5] * 10)
    plain = class_weights(actions, 0.0)
    assert np.allclose(plain, 1.0)
    even = class_weights(actions, 1.0)
    assert even[5] == pytest.approx(9 * even[0]) and even[3] == even[5]  # absent: the largest
    assert even[actions].mean() == pytest.approx(1.0)
