"""The same allocation and assignments come out of separate fresh processes.

Each child runs with a different PYTHONHASHSEED, so anything that leaned on Python's per-process
``hash()`` would disagree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, random, uuid
from serving.assignment import Assigner, allocate, reallocate

rng = random.Random(11)
ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
allocation = allocate([0.5, 0.25, 0.25])
for weights in ([0.4, 0.3, 0.3], [0.2, 0.3, 0.3, 0.2], [0.1, 0.6, 0.1, 0.2]):
    allocation = reallocate(allocation, weights)
assigner = Assigner(allocation, "exp-processes")
print(json.dumps({
    "hash": hash("exp-processes"),
    "allocation": allocation.to_json(),
    "arms": [assigner.assign(u) for u in ids],
}))
"""


def run_children(seeds: list[str]) -> list[dict]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_separate_processes_agree() -> None:
    first, second = run_children(["1", "2"])
    assert first["hash"] != second["hash"], "children should differ in hash() randomisation"
    assert first["allocation"] == second["allocation"]
    assert first["arms"] == second["arms"]
    assert set(first["arms"]) == {0, 1, 2, 3}

    namespace: dict = {}
    exec(compile(CHILD.replace("print(", "result = ("), "<child>", "exec"), namespace)
    here = json.loads(namespace["result"])
    assert here["allocation"] == first["allocation"]
    assert here["arms"] == first["arms"]
