"""What `abvoc workloads gameplay build` does, as a plain function: log play, train the two
policy candidates, export them as label bundles, write the held-out idle-heavy log as an
offline-test dataset, and play each bundle against the scripted opponents.

The two candidates tell the workload's story: `gameplay-idle-logs` fits the idle-heavy logs
(about 99% offline accuracy on the held-out log) and stands still online; `gameplay-play-logs`
learns from a competent player's games against the league's styles, class-reweighted, scores
poorly on the idle-heavy log and wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from serving.bundles import load_manifest, register_bundle
from serving.bundles.offline import Progress, offline_test
from serving.registry import Registry
from workloads.gameplay.bundle import BundleSpec, bundle_bot, write_bundle
from workloads.gameplay.logs import IDLE_LOGS, PLAY_LOGS, Log, log_play, write_jsonl
from workloads.gameplay.matches import play_matches, schedule, summarize
from workloads.gameplay.training import TrainConfig, accuracy, train

Say = Callable[[str], None]
EpochProgress = Callable[[str], Callable[[int, int], None] | None]
HELDOUT_NAME = "heldout-idle-logs.jsonl"
# Each candidate's own offline test: a held-out log of the play it learned from.
HELDOUT_BY_LOGS = {"idle": HELDOUT_NAME, "play": "heldout-play-logs.jsonl"}
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class Candidate:
    """One policy candidate: which logs it learns from and how far the loss evens the classes."""

    logs: str  # "idle" or "play"
    class_weighting: float
    description: str


CANDIDATES = {
    "gameplay-idle-logs": Candidate(
        "idle", 0.0, "Game policy fitted to an idle-heavy player's logged games (~90% idle)"),
    "gameplay-play-logs": Candidate(
        "play", 0.5, "Game policy fitted to a competent player's games against the league's "
                     "styles, class-reweighted"),
}


@dataclass(frozen=True)
class BuildConfig:
    train_matches: int = 400
    heldout_matches: int = 100
    eval_matches: int = 200
    epochs: int = 30
    seed: int = 0


def make_logs(config: BuildConfig) -> dict[str, Log]:
    """The training logs of both kinds and the held-out idle-heavy log, on distinct seeds."""
    base = config.seed * 10
    return {"idle": log_play(*IDLE_LOGS, config.train_matches, base + 1),
            "play": log_play(*PLAY_LOGS, config.train_matches, base + 2),
            "heldout": log_play(*IDLE_LOGS, config.heldout_matches, base + 3),
            "heldout-play": log_play(*PLAY_LOGS, config.heldout_matches, base + 5)}


def build(out: Path, config: BuildConfig | None = None, say: Say | None = None,
          epoch_progress: EpochProgress | None = None) -> dict[str, Any]:
    """Everything into `out`: one bundle folder per candidate, the held-out JSONL and a
    `summary.json` of the figures, which is also returned."""
    config = config or BuildConfig()
    say = say or (lambda _: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say(f"logging play: {config.train_matches} training matches of each kind, "
        f"{config.heldout_matches} held out")
    logs = make_logs(config)
    dataset = out / HELDOUT_NAME
    write_jsonl(logs["heldout"], dataset)
    write_jsonl(logs["heldout-play"], out / HELDOUT_BY_LOGS["play"])
    say(f"held-out idle-heavy log: {len(logs['heldout'])} states, idle share "
        f"{logs['heldout'].idle_share:.3f} -> {dataset}")
    summary: dict[str, Any] = {
        "config": asdict(config),
        "dataset": {"path": str(dataset), "states": len(logs["heldout"]),
                    "idle_share": logs["heldout"].idle_share},
        "training_logs": {k: {"states": len(logs[k]), "idle_share": logs[k].idle_share}
                          for k in ("idle", "play")},
        "candidates": {},
    }
    games = schedule(config.eval_matches, config.seed * 10 + 4)
    for name, cand in CANDIDATES.items():
        tc = TrainConfig(epochs=config.epochs, class_weighting=cand.class_weighting,
                         seed=config.seed)
        net = train(logs[cand.logs], tc, epoch_progress(f"training {name}")
                    if epoch_progress else None)
        folder = out / name
        version = write_bundle(net, folder, BundleSpec(name, cand.description))
        own = logs["heldout" if cand.logs == "idle" else "heldout-play"]
        row: dict[str, Any] = {"folder": str(folder), "version": version,
                               "offline_accuracy": accuracy(net, logs["heldout"]),
                               "offline_test_set": {"path": str(out / HELDOUT_BY_LOGS[cand.logs]),
                                                    "states": len(own),
                                                    "accuracy": accuracy(net, own)}}
        say(f"{name} v{version}: accuracy {row['offline_accuracy']:.3f} on the held-out "
            f"idle-heavy log, {row['offline_test_set']['accuracy']:.3f} on the held-out log of "
            f"the play it learned from (its offline test) -> {folder}")
        if games:
            with bundle_bot(folder) as bot:
                row["online"] = summarize(play_matches(bot, games))
            overall = row["online"]["overall"]
            low, high = overall["win_rate_ci95"]
            say(f"{name}: {overall['matches']} matches against the scripted opponents: "
                f"win rate {overall['win_rate']:.3f} (95% {low:.3f}-{high:.3f}; "
                f"{overall['wins']}W {overall['losses']}L {overall['draws']}D), idle share "
                f"{overall['idle_share']:.3f}")
        summary["candidates"][name] = row
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def register_and_test(registry: Registry, models_dir: Path, out: Path, say: Say | None = None,
                      progress: Callable[[str], Progress | None] | None = None
                      ) -> dict[str, Any]:
    """Register each built bundle in `out` (a version already registered is kept) and run its
    offline test on a held-out log of the play it learned from, as `abvoc candidates register`
    and `abvoc offline-test --dataset` do; returns each candidate's version and stored offline
    results."""
    say = say or (lambda _: None)
    out = Path(out)
    results = {}
    for name, cand in CANDIDATES.items():
        dataset = out / HELDOUT_BY_LOGS[cand.logs]
        manifest = load_manifest(out / name)
        if registry.exists(manifest.name, manifest.version):
            retired = registry.get(manifest.name, manifest.version).retired
            say(f"{name} v{manifest.version} is already registered" + (
                " and retired: it stays retired, so it is neither listed nor served; build "
                "with another --seed to make a new version" if retired else ""))
        else:
            info = register_bundle(registry, models_dir, out / name)
            say(f"registered {info.name} v{info.version} -> {info.artifacts}")
        tested = offline_test(registry, name, dataset, manifest.version,
                              progress(f"{name} on {dataset.name}") if progress else None)
        say(f"{name}: offline accuracy {tested['overall']['accuracy']:.3f} stored")
        results[name] = {"version": manifest.version, "offline": tested}
    return results
