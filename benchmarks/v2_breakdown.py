"""bench_v2 --breakdown: where a request routed to a remote candidate spends its time.

The server wraps a few stages of its serving path in wall-clock timers and answers their totals
on GET /bench/stages; the client reads them before and after each timed pass and prints the
medians of the rounds' means per request beside the whole request's time at the client.
"""

from __future__ import annotations

import statistics

from benchmarks.stage_timer import StageTimer


def time_stages(app) -> None:  # noqa: ANN001 - a Flask app
    """GET /bench/stages: the wall seconds spent so far in each stage of the serving path."""
    from flask import jsonify

    from app.api.v2_lane import V2Lane
    from app.compressed import InflateBodies
    from serving.predict import PredictService
    from serving.remote import RemoteClient

    timer = StageTimer()
    for owner, method, name in (
            # The app's whole WSGI call: create_app wrapped its wsgi_app in this middleware,
            # then the V2 lane's checks and its serving (the Flask route's steps).
            (InflateBodies, "__call__", "app"), (V2Lane, "_take", "checks"),
            (V2Lane, "_serve", "view"), (PredictService, "_call", "candidate"),
            (RemoteClient, "_attempt", "remote"), (PredictService, "_event", "event"),
            (PredictService, "_commit", "write")):
        timer.wrap(owner, method, name)
    app.get("/bench/stages")(lambda: jsonify(timer.totals()))


def print_breakdown(stages: list[dict[str, float]]) -> None:
    """Where a request routed to MLServer spends its time: wall ms per request (means), the
    medians of the rounds."""
    m = {k: statistics.median(r.get(k, 0.0) for r in stages) for k in stages[0]}
    rows = [
        ("the whole request, at the client", m["whole"]),
        ("  outside the app (the client, the HTTP server, the wire)", m["whole"] - m["app"]),
        ("  in the app (from the WSGI call to the answer)", m["app"]),
        ("    the V2 lane's checks (the headers, the key, the JSON body)", m["checks"]),
        ("    the route's steps (app.api.v2_lane's _serve)", m["view"]),
        ("      the candidate call, its answer recorded (batch_request.Finish)",
         m["candidate"]),
        ("        the HTTP call to MLServer", m["remote"]),
        ("        the PredictionMade event", m["event"]),
        ("        the durable write (event, ledger row, kept input)", m["write"]),
        ("        abvoc's side of the call (V2 tensors in and out, the rows)",
         m["candidate"] - m["remote"] - m["event"] - m["write"]),
        ("      the rest (rate, the request's fields, routing, receipt, answer)",
         m["view"] - m["candidate"]),
        ("    around them (reading the body, counting, compressing, the WSGI answer)",
         m["app"] - m["checks"] - m["view"]),
    ]
    print("  where a request routed to MLServer spends its time (server-side wall ms per "
          "request, means; medians of the rounds):")
    for label, value in rows:
        print(f"    {label:68s} {value:7.3f}")
    print(f"    abvoc's own time in the app (all but the HTTP call to MLServer) "
          f"{m['app'] - m['remote']:.3f} ms")
