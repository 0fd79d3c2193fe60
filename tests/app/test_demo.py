"""`abvoc demo`, run as a newcomer runs it, on a data folder whose candidates are trained (small,
once per session) and offline-tested as the demo's first run leaves them: it prints the
dashboard's address and a key that logs in, serves, and within a few minutes its simulated
customers make the service's API and the dashboard's own callbacks show what the README
promises: a significant difference between the OCR arms, a divergence the offline test did not
predict, and a relabel queue that fills while the customers run."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from core.store import schema
from core.store.db import Database
from serving.registry import Registry
from tests.support.dash_tree import find, text
from tests.support.ports import free_port
from workloads.client import ServiceClient
from workloads.gameplay.build import BuildConfig, build, register_and_test
from workloads.ocr.bundle import register_trained
from workloads.ocr.offline import offline_test

REPO = Path(__file__).resolve().parents[2]
OCR = ("ocr-small-printed", "ocr-small-mixed", "ocr-large-mixed")
# Trained smaller than `abvoc demo` trains them (1,500 formulas), but enough that training on
# printed formulas only shows on handwriting, which is what the demo is about.
TRAIN_FORMULAS = 600
OFFLINE_FORMULAS = 300
GAMEPLAY = BuildConfig(train_matches=120, heldout_matches=40, eval_matches=0, epochs=10, seed=0)
REQUESTS = 600
DEADLINE_S = 420


@pytest.fixture(scope="module")
def demo_candidates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The OCR candidates trained and offline-tested, and the game players built."""
    import torch

    from workloads.ocr.candidates import train_candidate

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("demo-candidates")
    offline = {}
    for name in OCR:
        train_candidate(name, root / "ocr", n_train=TRAIN_FORMULAS, seed=0)
        offline[name] = offline_test(root / "ocr" / name, n=OFFLINE_FORMULAS, seed=0)
    build(root / "gameplay", GAMEPLAY)
    yield {"ocr": root / "ocr", "offline": offline, "gameplay": root / "gameplay"}


class Dashboard:
    """A logged-in browser session on the live dashboard, calling its callbacks as Dash does."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.http = base, requests.Session()
        page = self.http.get(f"{base}/dashboard/login", timeout=30)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:2000]
        done = self.http.post(f"{base}/dashboard/login", timeout=30, headers={"Origin": base},
                              data={"key": key, "csrf": csrf.group(1), "next": "/dashboard/"})
        assert done.status_code == 200 and "log in" not in done.text[:3000].lower(), done.text

    def call(self, outputs: list[str], inputs: dict[str, Any]) -> list[Any]:
        """The callback's answer for each of `outputs` ("id.property")."""
        pairs = [o.split(".") for o in outputs]
        specs = [{"id": i, "property": p} for i, p in pairs]
        body = {"output": outputs[0] if len(outputs) == 1 else ".." + "...".join(outputs) + "..",
                "outputs": specs[0] if len(outputs) == 1 else specs, "state": [],
                "inputs": [{"id": k.split(".")[0], "property": k.split(".")[1], "value": v}
                           for k, v in inputs.items()],
                "changedPropIds": [next(iter(inputs))]}
        answer = self.http.post(f"{self.base}/dashboard/_dash-update-component", json=body,
                                timeout=120, headers={"Origin": self.base, "X-CSRFToken":
                                                      self.http.cookies["abvoc_csrf"]})
        assert answer.status_code == 200, answer.text[:2000]
        response = answer.json()["response"]
        return [response[i][p] for i, p in pairs]


def _rows(table: dict[str, Any] | None) -> list[list[str]]:
    assert table is not None
    body = table["props"]["children"][1]["props"]["children"]
    return [[text(td) for td in tr["props"]["children"]] for tr in body]


def _items(queues: dict[str, Any]) -> int:
    return sum(q["items"] for q in queues["queues"])


def _prepare(data: Path, candidates: dict[str, Any]) -> None:
    """The store as the demo's first run leaves it: candidates registered with offline results."""
    with Database(f"sqlite:///{data / 'abvoc.db'}") as db:
        schema.upgrade(db)
        registry = Registry(db)
        for name in OCR:
            info = register_trained(registry, data / "models", candidates["ocr"] / name)
            registry.set_offline_results(info.name, info.version, candidates["offline"][name])
        register_and_test(registry, data / "models", candidates["gameplay"])


def test_demo_shows_a_difference_a_divergence_and_a_filling_queue(
        tmp_path: Path, demo_candidates: dict[str, Any]) -> None:
    data = tmp_path / "data"
    _prepare(data, demo_candidates)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(data), PYTHONPATH=str(REPO))
    log = tmp_path / "demo.log"
    started = time.monotonic()
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "app", "demo", "--port", str(port),
                                 "--requests", str(REQUESTS), "--matches", "20", "--players",
                                 "10", "--workers", "2", "--threads", "4"], cwd=tmp_path,
                                env=env, stdout=sink, stderr=subprocess.STDOUT)
    client = None
    try:
        def text() -> str:
            out = log.read_text()
            assert proc.poll() is None, out[-4000:]
            assert "customers stopped" not in out, out[-4000:]
            assert time.monotonic() - started < DEADLINE_S, out[-4000:]
            return out

        while "OCR customers on experiment" not in text():
            time.sleep(0.5)
        found = re.search(r"dashboard: (http://\S+/dashboard/)\s+\(log in with the key (\S+)\)",
                          text())
        assert found, text()[-4000:]
        base, key = f"http://127.0.0.1:{port}", found.group(2)
        assert found.group(1) == f"{base}/dashboard/"
        with urllib.request.urlopen(found.group(1), timeout=30) as page:  # to the login
            assert page.status == 200 and "<title>abvoc: log in</title>" in page.read().decode()
        client = ServiceClient(base, key)
        # The relabel queue fills while the customers run: two reads, the second larger.
        first = 0
        while first == 0:
            assert "formulas read" not in text(), "no relabel item before the customers ended"
            first = _items(client.call("GET", "/v1/relabel/queues"))
            time.sleep(0.5)
        grown = first
        while grown <= first and "formulas read" not in text():
            time.sleep(1)
            grown = _items(client.call("GET", "/v1/relabel/queues"))
        assert grown > first, (first, grown)

        while "matches played" not in text():
            time.sleep(1)
        out = text()
        assert f"{REQUESTS} formulas read" in out
        assert f"open the dashboard at {base}/dashboard/" in out  # said again at the end
        assert f"the service is up; dashboard: {base}/dashboard/" in out
        assert "Connection refused" not in out  # waiting for the service is quiet
        experiments = client.call("GET", "/v1/experiments")["experiments"]
        assert {e["scope"] for e in experiments} == {"formulas", "gameplay"}
        ocr = next(e for e in experiments if e["scope"] == "formulas")
        assert [a["candidate"] for a in ocr["arms"]] == list(OCR)
        assert ocr["shadows"][0]["candidate"] == "ocr-large-mixed"

        # Every answer reaches the evaluation store.
        results = client.call("GET", f"/v1/experiments/{ocr['id']}/results")
        while sum(results["metrics"][a["name"]]["all"]["predictions"]
                  for a in ocr["arms"]) < REQUESTS:
            time.sleep(1)
            text()
            results = client.call("GET", f"/v1/experiments/{ocr['id']}/results")
        time.sleep(3)  # the corrections follow their predictions
        results = client.call("GET", f"/v1/experiments/{ocr['id']}/results")
        divergence = client.call("GET", f"/v1/experiments/{ocr['id']}/divergence")
        shown = _check_api(results, divergence, client.call("GET", "/v1/relabel/queues"))
        _check_dashboard(Dashboard(base, key), ocr["id"], shown)
        print(f"demo test: {time.monotonic() - started:.0f} s from start to checked")
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        proc.wait(60)


def _check_api(results: dict[str, Any], divergence: dict[str, Any],
               queues: dict[str, Any]) -> dict[str, Any]:
    """The three promises through the API; what the dashboard must then show."""
    alpha = results["alpha"]
    arms = {v["name"] for v in results["variants"] if not v["shadow"]}
    significant = [r for r in results["comparisons"]
                   if r["metric"] == "correction_rate" and r["slice"] == "all"
                   and r["treatment"] in arms and r["p_holm"] is not None
                   and r["p_holm"] < alpha]
    assert significant, [(r["treatment"], r["metric"], r["slice"], r["p_holm"])
                         for r in results["comparisons"] if r["slice"] == "all"]
    assert results["trustworthy"], results["srm"]
    gaps = [f for f in divergence["findings"] if f["kind"] == "accuracy_gap"]
    rows = {(r["candidate"], r["slice"]): r for r in divergence["slices"]}
    beyond = [f for f in gaps
              if rows[(f["candidate"], f["slice"])]["offline"]["exact_match"]
              > rows[(f["candidate"], f["slice"])]["online"]["accuracy_ci"][1]]
    assert beyond, divergence["findings"]
    assert any(m["shifted"] for m in divergence["traffic_mix"]), divergence["traffic_mix"]
    verification = next(q for q in queues["queues"] if q["queue"] == "verification")
    assert verification["open"] > 0
    print("demo test: correction rate, Holm p:",
          {s["treatment"]: round(s["p_holm"], 6) for s in significant},
          "| first gap:", beyond[0]["explanation"][:160],
          "| queues:", {q["queue"]: q["items"] for q in queues["queues"]})
    return {"significant": significant, "finding": beyond[0], "queues": queues["queues"]}


def _check_dashboard(board: Dashboard, experiment_id: int, shown: dict[str, Any]) -> None:
    """The same, through the callbacks the dashboard's pages call."""
    page, _ = board.call(["exp-body.children", "exp-window.children"], {
        "exp-select.value": experiment_id, "exp-slice.value": "all", "exp-time.value": None})
    comparisons = _rows(find(page, "exp-comparisons"))
    holm = {(r[0], r[1]): r[7] for r in comparisons}
    for s in shown["significant"]:
        assert float(holm[(s["treatment"], "correction_rate")]) < 0.05
    assert find(page, "exp-decision") is not None

    report = board.call(["div-body.children", "div-slice.options", "div-slice.value"],
                        {"div-select.value": experiment_id})[0]
    findings = text(find(report, "div-findings"))
    assert shown["finding"]["explanation"] in findings

    overview, = board.call(["relabel-overview.children"], {"relabel-exp.id": "relabel-exp"})
    listed = {r[0]: int(r[1].replace(",", "")) for r in _rows(find(overview, "relabel-queues"))}
    assert listed["verification"] > 0
    assert sum(listed.values()) >= sum(q["items"] for q in shown["queues"])


def test_scripts_demo_passes_its_arguments_to_abvoc_demo(tmp_path: Path) -> None:
    """scripts/demo on a machine where the environment is installed: it runs `abvoc demo` with
    every argument as given (a stand-in `abvoc` in a stand-in environment records them)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    abvoc = venv / "bin" / "abvoc"
    record = f'for a in "$@"; do printf "%s\\n" "$a"; done > "{tmp_path}/args"'
    abvoc.write_text(f"#!/bin/sh\n{record}\n")
    for script in (python, abvoc):
        script.chmod(0o755)
    setup = b"".join((REPO / f).read_bytes() for f in ("setup.cfg", "setup.py", "pyproject.toml"))
    (venv / ".abvoc-installed").write_text(  # as scripts/install-python.sh stamps it
        f"{hashlib.sha256(setup).hexdigest()[:16]} {REPO}\n\n")
    args = ["--port", "9123", "--requests", "40", "--host", "127.0.0.1", "a b"]
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo"), *args], cwd=tmp_path,
                          env={**os.environ, "ABVOC_VENV": str(venv), "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing" not in done.stdout  # the installed environment is reused
    assert (tmp_path / "args").read_text().splitlines() == ["demo", *args]
