"""The admin API for experiments: create, list, show, and steer (start, pause, resume, kill,
stop, advance the canary, pause or resume one arm)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.auth import require
from app.inputs import optional_json
from app.path_ints import row_id
from core.errors import AbvocError
from core.text import quoted_names, shown
from serving.experiments import KILL_SWITCH, OPERATOR_PAUSE, check_reason

bp = Blueprint("experiments", __name__)
# 0 and ids beyond a 64-bit integer cannot exist: the router answers their 404.
EXP = row_id("experiment", "experiment_id")
STATUSES = ("draft", "running", "paused", "killed", "stopped")


def _experiments():  # noqa: ANN202
    return current_app.extensions["abvoc_serving"].experiments


def _changed(view: dict):  # noqa: ANN202
    current_app.extensions["abvoc_serving"].router.refresh()
    return jsonify(view)


@bp.get("/v1/experiments")
@require("admin")
def list_experiments():  # noqa: ANN201
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise AbvocError(f"'status' must be one of {quoted_names(STATUSES)}")
    return jsonify({"experiments": _experiments().list(status)})


@bp.post("/v1/experiments")
@require("admin")
def create_experiment():  # noqa: ANN201
    spec = request.get_json(silent=True)
    if spec is None:
        raise AbvocError("send the experiment as a JSON object")
    return _changed(_experiments().create(spec)), 201


@bp.get(f"/v1/experiments/{EXP}")
@require("admin")
def show_experiment(experiment_id: int):  # noqa: ANN201
    return jsonify(_experiments().get(experiment_id))


ACTIONS = {
    "start": lambda e, i, body: e.start(i),
    "pause": lambda e, i, body: e.pause(i, body.get("reason") or OPERATOR_PAUSE),
    "resume": lambda e, i, body: e.resume(i),
    "kill": lambda e, i, body: e.kill(i, body.get("reason") or KILL_SWITCH),
    "stop": lambda e, i, body: e.stop(i),
    "advance": lambda e, i, body: e.advance(i),
}
REASONED = frozenset({"pause", "kill"})  # the actions above that record the body's reason


def _body(takes_reason: bool) -> dict:
    """The action's body: `reason` where the action records one, nothing else (a typo such as
    'reson' stored the default reason, unsaid)."""
    body = optional_json()
    if not isinstance(body, dict):
        raise AbvocError("the body, if any, must be a JSON object (Content-Type: "
                         "application/json)")
    taken = {"reason"} if takes_reason else set()
    if unknown := sorted(set(body) - taken):
        raise AbvocError(f"unknown field(s) {shown(unknown)}: this action takes "
                         + ("'reason' (why, in words) or no body" if takes_reason
                            else "no body"))
    check_reason(body.get("reason"))
    return body


ACTION_RULE = f"/v1/experiments/{EXP}/<any(start, pause, resume, kill, stop, advance):action>"


@bp.post(ACTION_RULE)
@require("admin")
def act(experiment_id: int, action: str):  # noqa: ANN201
    return _changed(ACTIONS[action](_experiments(), experiment_id,
                                    _body(action in REASONED)))


@bp.post(f"/v1/experiments/{EXP}/arms/<arm>/<any(pause, resume):action>")
@require("admin")
def act_on_arm(experiment_id: int, arm: str, action: str):  # noqa: ANN201
    experiments = _experiments()
    if action == "pause":
        reason = _body(True).get("reason") or OPERATOR_PAUSE
        return _changed(experiments.pause_arm(experiment_id, arm, reason))
    _body(False)
    return _changed(experiments.resume_arm(experiment_id, arm))
