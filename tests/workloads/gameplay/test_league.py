"""The game-player story end to end, against `abvoc up` and through its public API only: the
candidate that is 99% right offline answers idle online far more than its offline labels did,
the divergence report names that shift first, its players' win rate is lower with an
always-valid test, and the decision says stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app.auth import create_key
from app.cli import main as abvoc
from app.commands.workloads import verdict_lines
from core.store import schema
from core.store.db import Database
from serving.registry import Registry
from tests.support.ports import free_port
from workloads.client import ServiceClient
from workloads.gameplay.build import register_and_test
from workloads.gameplay.league import TREATMENT

REPO = Path(__file__).resolve().parents[3]
PLAYERS, MATCHES = 80, 160


@pytest.fixture
def service(tmp_path: Path, built: tuple[Path, dict[str, Any]]):  # noqa: ANN201
    """`abvoc up` on a fresh data folder holding the two gameplay bundles; its URL and an
    admin key."""
    out, _ = built
    data = tmp_path / "data"
    with Database(f"sqlite:///{data / 'abvoc.db'}") as db:
        schema.upgrade(db)
        register_and_test(Registry(db), data / "models", out)
        key = create_key(db, ["admin"], name="league")["key"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(data), PYTHONPATH=str(REPO))
    log = tmp_path / "up.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "app", "up", "--no-train", "--workers",
                                 "2", "--threads", "4", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    client = ServiceClient(base, key)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()[-4000:]
            try:
                client.call("GET", "/readyz")
                break
            except Exception:  # not listening yet
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.5)
        yield base, key, client
    finally:
        client.close()
        proc.terminate()
        proc.wait(60)


def test_the_idle_bot_is_caught_online(service: tuple[str, str, ServiceClient]) -> None:
    base, key, client = service
    ran = CliRunner().invoke(abvoc, ["simulate", "gameplay", "--url", base, "--key", key,
                                     "--matches", str(MATCHES), "--players", str(PLAYERS),
                                     "--run", "0", "--json"])
    assert ran.exit_code == 0, ran.output
    print(ran.stderr)  # the progress, for a person running it with -s
    played = json.loads(ran.stdout)
    assert played["overall"]["matches"] == MATCHES
    # The command waited for the worker to count every player's outcomes, then asked abvoc.
    seen = played["verdict"]
    assert seen is not None, ran.stderr
    print("\n".join(verdict_lines(seen)))  # abvoc's verdict, for a person running with -s
    offline = client.call("GET", f"/v1/candidates/{TREATMENT}")["offline_results"]
    assert offline["overall"]["accuracy"] >= 0.97
    # It answers idle online far more than its offline labels were idle.
    idle = seen["answers"]["treatment"]
    assert idle["online_share"] > idle["offline_share"] + 0.05 and idle["shifted"], idle
    # The divergence report names that shift first.
    first = seen["first_finding"]
    assert (first["kind"], first["candidate"], first.get("label")) == \
        ("prediction_shift", TREATMENT, "idle"), first
    # Its players win less, by an always-valid (sequential) test.
    won = seen["won"]
    assert won["treatment"] == "treatment" and won["verdict"] == "worse", won
    assert won["sequential_p_value"] < 0.05
    figures = seen["outcomes"]["won"]["arms"]
    assert figures["treatment"]["mean"] < figures["control"]["mean"]
    # And the decision stops it, saying why.
    decision = seen["decision"]
    assert decision["arms"]["treatment"] == "stop", decision
    assert any("won" in reason for reason in decision["reasons"]), decision
    # A second league on the same experiment, same seed: new players, counted on top.
    again = CliRunner().invoke(abvoc, ["simulate", "gameplay", "--url", base, "--key", key,
                                       "--matches", "4", "--players", "2", "--json"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    # --run named the first (its players and their arms as every time); the second is new.
    assert played["run"] == "0" and second["run"].startswith("0.")
    assert second["overall"]["matches"] == 4
    arms = second["verdict"]["outcomes"]["won"]["arms"]
    assert sum(arm["units"] for arm in arms.values()) == PLAYERS + 2


def test_an_untested_win_rate_is_said_not_a_crash() -> None:
    """Every player of both arms lost: the comparison has no difference or p-value, and the
    verdict's lines raised a TypeError (with --json too, as the lines were built first)."""
    seen = {"outcomes": {"won": {"arms": {"control": {"units": 5, "mean": 0.0,
                                                      "interval": [None, None]},
                                          "treatment": {"units": 5, "mean": None}}}},
            "answers": {}, "won": {"difference": None, "sequential_p_value": None,
                                   "verdict": "inconclusive",
                                   "error": "both arms have zero variance"},
            "first_finding": None, "decision": {"action": "continue", "reasons": ["more data"]}}
    lines = verdict_lines(seen)
    assert "  won: not tested (both arms have zero variance), verdict inconclusive" in lines
    assert any("win rate -" in line for line in lines)


def test_a_long_or_empty_scope_is_the_scope_s_to_fix(
        service: tuple[str, str, ServiceClient]) -> None:
    """A scope of up to 100 characters is valid, but the league named its experiment "gameplay
    league on <scope>", over the names' 100, and was refused about a 'name' never given."""
    base, key, client = service
    scope = "s" * 100
    for _ in range(2):  # the second: a finished experiment holds the name, retried longer
        ran = CliRunner().invoke(abvoc, ["simulate", "gameplay", "--url", base, "--key", key,
                                         "--matches", "2", "--players", "2", "--wait", "0",
                                         "--scope", scope, "--json"])
        assert ran.exit_code == 0, ran.output
        played = json.loads(ran.stdout)["experiment_id"]
        experiment = client.call("GET", f"/v1/experiments/{played}")
        assert experiment["scope"] == scope and len(experiment["name"]) <= 100
        client.call("POST", f"/v1/experiments/{experiment['id']}/stop")
    empty = CliRunner().invoke(abvoc, ["simulate", "gameplay", "--url", base, "--key", key,
                                       "--scope", " "])
    assert empty.exit_code == 2 and "--scope" in empty.output and "'name'" not in empty.output
