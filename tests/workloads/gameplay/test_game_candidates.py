"""The two candidates tell the workload's story: the one fitted to idle-heavy logs is about 99%
right offline yet idles far more online than its offline labels and loses; the one fitted to
play-like logs scores poorly on the idle-heavy log and wins. The figures come from the exported
bundles (ONNX and the Python post stage) playing 200 seeded matches each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workloads.gameplay.build import SUMMARY_NAME
from workloads.gameplay.bundle import BundleSpec, bundle_bot, write_bundle
from workloads.gameplay.logs import PLAY_LOGS, log_play
from workloads.gameplay.matches import play_matches, schedule, summarize
from workloads.gameplay.training import TrainConfig, train

IDLE, PLAY = "gameplay-idle-logs", "gameplay-play-logs"


def test_the_idle_trained_candidate_is_right_offline(built: tuple[Path, dict[str, Any]]) -> None:
    _, summary = built
    assert summary["candidates"][IDLE]["offline_accuracy"] >= 0.97
    assert summary["candidates"][PLAY]["offline_accuracy"] < 0.5


def test_online_it_idles_far_more_than_its_offline_labels(
        built: tuple[Path, dict[str, Any]]) -> None:
    _, summary = built
    offline_idle = summary["dataset"]["idle_share"]
    online = summary["candidates"][IDLE]["online"]["overall"]
    assert online["matches"] == 200
    assert online["idle_share"] >= offline_idle + 0.05  # about 0.98 against about 0.91
    assert summary["candidates"][PLAY]["online"]["overall"]["idle_share"] < 0.4


def test_it_loses_more_than_the_playing_candidate(built: tuple[Path, dict[str, Any]]) -> None:
    _, summary = built
    idle = summary["candidates"][IDLE]["online"]["overall"]
    play = summary["candidates"][PLAY]["online"]["overall"]
    assert play["win_rate"] - idle["win_rate"] >= 0.25
    assert idle["win_rate_ci95"][1] < play["win_rate_ci95"][0]  # the intervals do not meet
    assert idle["losses"] >= play["losses"] + 50


def test_the_figures_replay_from_the_bundles(built: tuple[Path, dict[str, Any]]) -> None:
    out, summary = built
    assert (out / SUMMARY_NAME).is_file()
    games = schedule(200, seed=4)  # the build's evaluation schedule (seed 0 * 10 + 4)
    with bundle_bot(out / IDLE) as bot:
        assert summarize(play_matches(bot, games)) == summary["candidates"][IDLE]["online"]


def test_the_same_network_gives_the_same_bundle_version(tmp_path: Path) -> None:
    net = train(log_play(*PLAY_LOGS, 8, seed=1), TrainConfig(epochs=1))
    spec = BundleSpec("gameplay-test", "a test policy")
    assert write_bundle(net, tmp_path / "a", spec) == write_bundle(net, tmp_path / "b", spec)
    other = train(log_play(*PLAY_LOGS, 8, seed=2), TrainConfig(epochs=1))
    assert write_bundle(other, tmp_path / "c", spec) != write_bundle(net, tmp_path / "a", spec)
