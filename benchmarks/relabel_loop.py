"""The relabeling loop's figures on real events: the iris bundle in two arms with a shadow,
served through /v2 on SQLite and the embedded bus, a simulated truth (a share of answers wrong,
customers correcting half of the wrong ones), two annotators labeling every queued item through
the API with that truth. Prints the queues, the agreement, and per variant the unbiased audit
accuracy beside the correction bound and the exact match among truths, with the simulated true
accuracy on all served traffic to hold them against.

    ~/.cache/abvoc/venv/bin/python benchmarks/relabel_loop.py --n 300 --audit-rate 0.2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import close_app, create_app  # noqa: E402
from app.auth import create_key  # noqa: E402
from core.relabel import share_of  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.store import Database, schema  # noqa: E402
from tests.support.bundles import EXAMPLE, copy_example, edit  # noqa: E402
from tests.support.v2 import CLASSES, drain, experiment, flowers, infer_body, output_of, upload  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="served predictions")
    parser.add_argument("--audit-rate", type=float, default=0.2)
    parser.add_argument("--wrong", type=float, default=0.2, help="simulated share of errors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abvoc-relabel-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    """The loop in a scratch folder `tmp` (removed afterwards) for its store and bundles."""
    settings = load_settings(env={"ABVOC_DATA_DIR": str(tmp / "data"), "ABVOC_SECRET_KEY": "k",
                                  "ABVOC_DATABASE_URL": f"sqlite:///{tmp / 'abvoc.db'}"})
    with Database(settings.database_url) as db:
        schema.upgrade(db)
    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    db = app.extensions["abvoc"].db

    def key(scope: str, name: str = "") -> dict[str, str]:
        return {"Authorization": "Bearer " + create_key(db, [scope], name)["key"]}

    client = app.test_client()
    admin, corrector = key("admin"), key("correct")
    annotators = [key("annotate", "ann-a"), key("annotate", "ann-b")]
    upload(client, admin, EXAMPLE)
    shadow = copy_example(tmp)
    edit(shadow, 'name = "iris-onnx"', 'name = "iris-shadow"')
    upload(client, admin, shadow)
    exp = experiment(client, admin, "flowers", "iris-onnx", "iris-onnx",
                     shadows=[{"candidate": "iris-shadow"}])
    client.put(f"/v1/relabel/rules?experiment_id={exp['id']}", headers=admin, json={
        "audit_rate": args.audit_rate, "low_confidence_below": 0.6,
        "second_annotator_share": 0.2})
    served: dict[str, str] = {}
    truth: dict[str, str] = {}
    for i, row in enumerate(flowers(args.n, seed=5)):
        answer = client.post("/v2/models/flowers/infer", headers=admin,
                             json=infer_body(row[None], f"u{i}")).get_json()
        pid = answer["parameters"]["prediction_id"]
        served[pid] = output_of(answer)
        wrong = share_of("truth", pid) < args.wrong
        truth[pid] = next(c for c in CLASSES if c != served[pid]) if wrong else served[pid]
        if wrong and share_of("customer", pid) < 0.5:
            client.post("/v1/corrections", headers=corrector, json={
                "prediction_id": pid, "receipt": answer["parameters"]["receipt"],
                "corrected_output": truth[pid]})
    drain(app, 2 * args.n)
    labels, idle = 0, 0
    while idle < len(annotators):
        idle = 0
        for who in annotators:
            item = client.post("/v1/relabel/claim", headers=who, json={}).get_json()["item"]
            if item is None:
                idle += 1
                continue
            client.post(f"/v1/relabel/items/{item['id']}/label", headers=who,
                        json={"label": truth[item["prediction_id"]]})
            labels += 1
    for q in client.get("/v1/relabel/queues", headers=admin).get_json()["queues"]:
        print(f"queue {q['queue']:<14} items {q['items']:>4}  done {q['done']:>4}")
    agreement = client.get("/v1/relabel/agreement", headers=admin).get_json()
    print(f"labels given {labels}; items with two labels {agreement['items_with_two_labels']}, "
          f"exact agreement {agreement['exact_agreement']}, kappa {agreement['kappa']}")
    results = client.get(f"/v1/experiments/{exp['id']}/results", headers=admin).get_json()
    for name, v in results["online_accuracy"]["variants"].items():
        a = v["slices"]["all"]
        print(f"{name:<20} audit n={a['audit']['n']} accuracy={a['audit']['accuracy']:.3f} "
              f"CI={json.dumps([round(x, 3) for x in a['audit']['ci']])}  "
              f"bound={a['correction_bound']['accuracy']}  "
              f"exact_match_among_truths={results['metrics'][name]['all']['exact_match']}")
    true = sum(truth[p] == served[p] for p in served) / args.n
    print(f"simulated true accuracy on all served: {true:.3f}")
    close_app(app)


if __name__ == "__main__":
    main()
