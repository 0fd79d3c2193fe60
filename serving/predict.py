"""Serving one prediction, for every endpoint and every kind of candidate: route, run the
candidate, record the event, run the shadows, feed the guardrails.

/v1/predict (an image) and /v2/models/{scope}/infer (V2 tensors) both call `predict`; what
differs is only the payload, and each loaded candidate says which kind it accepts (Servable).
The PredictionMade event and the served-prediction ledger row are written in one transaction
(the outbox), so an answer the caller got is an event the evaluation will see. For a local
candidate that record is made and committed on its batcher's thread, one commit for the batch's
answers, before the callers wake (batch_request.Finish): a caller then blocks once, as it would
for the candidate alone, where a commit of its own on the request thread made it block twice,
and each block and wake-up costs the server CPU. A candidate that
fails (a model error, a remote server's 5xx or timeout) is recorded too, with its latency and
error, and counted by the error-rate guardrail; the caller gets the failure's status (502, 503,
504). Bad input (a 4xx) is the caller's and is neither recorded nor counted. Shadow candidates
run on the same payload after the answer is ready, on a small thread pool, and are recorded as
events of their own (shadow=true); their outputs never reach the caller. The shadow queue is
bounded: when shadows fall behind, new shadow runs are dropped (and counted), never the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from core import events, receipts
from core.errors import AbvocError, NotFound
from core.ids import time_ordered_id
from core.output_types import OutputKind
from core.settings import Settings
from core.store.db import Database, store_unreachable
from core.store.groupcommit import Unit
from core.store.request_writer import request_writer
from core.store.spool import Spool
from serving.answer_rows import answer_rows
from serving.batch_request import Finish, FinishingBacklog
from serving.guardrails import GuardrailMonitor
from serving.pool import DEFAULT_SHADOW_QUEUE, CandidatePool, ShadowQueue
from serving.remote import RETRY_STATUSES
from serving.router import Route, Router, Shadow
from serving.servable import IMAGE, Answer, Servable

log = logging.getLogger(__name__)

DEFAULT_REFRESH_S = 5.0
DEFAULT_SCOPE = "default"
# What the 404 for a scope nothing serves suggests, unless its route knows better (pages).
SCOPE_REMEDY = ("start an experiment on that scope, register a candidate of that name, or set "
                "ABVOC_DEFAULT_CANDIDATE")
"""The scope a request names when it names none (/v1/predict's default)."""
_STRING_TYPES = ("label", "text", "latex")
_TAKES = {IMAGE: "an image: send it to POST /v1/predict",
          "tensors": "V2 tensors: send them to POST /v2/models/{scope}/infer"}


class CandidateFailed(AbvocError):
    """The candidate failed to answer; recorded, counted by the guardrails. Its status is the
    failure's: 502 for a remote server's error, 503 when none answers, 504 for a timeout, 500 for
    a local stage that raised (its own defect: the same input fails again, so no retry), 502
    for an answer, local or remote, that is no valid value of its output type (no retry
    either: serving.outputs.CandidateOutputError)."""

    status = 500
    candidate = ""
    # The failure's own words (a server's body, an exception, a path): for admin keys, the log
    # and the event; `message` is what any caller may read.
    detail = ""


@dataclass(frozen=True)
class PredictRequest:
    """One request: the payload (a decoded image, or named numpy arrays) and who sent it."""

    payload: Any
    input_hash: str
    # None: none sent, which only a `request`-unit experiment serves (serving/router.py).
    unit_id: str | None
    scope: str = "default"
    slice: str | None = None
    force_arm: str | None = None
    kind: str = IMAGE
    request_id: str | None = None
    # What the caller knows of where the input came from (e.g. the page and box a formula was
    # cut from), recorded with the candidate's own stages.
    context: dict[str, Any] | None = None
    # The input as annotators will see it (an image's bytes, V2 tensors in core.v2_binary's
    # kept form), kept with the served prediction for the input retention
    # (settings.input_retention_hours); `raw_kind` names its form when it is not `kind`.
    raw_input: bytes | None = None
    raw_kind: str | None = None
    # Where the caller sends the unit id, for the refusal that asks for it.
    unit_from: str = "'unit_id'"


@dataclass(frozen=True)
class _Run:
    output_type: str
    answer: Answer | None
    latency_ms: float
    version: str
    error: str | None = None
    failure: AbvocError | None = None


@dataclass
class _Recorded:
    """A served answer's run, event and rows, made on the candidate's batcher; `error` is its
    commit's, if that failed."""

    run: _Run
    event: dict[str, Any]
    rows: Unit
    error: Exception | None = None


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _failed_run(model: Servable, version: str, start: float, failure: AbvocError) -> _Run:
    return _Run(model.output_type, None, _ms_since(start), version, failure.message[:2000],
                failure)


class PredictService:
    def __init__(self, db: Database, settings: Settings, router: Router, pool: CandidatePool,
                 monitor: GuardrailMonitor, *, shadow_workers: int = 2,
                 shadow_queue: int = DEFAULT_SHADOW_QUEUE) -> None:
        self.db = db
        self.settings = settings
        self.router = router
        self.pool = pool
        self.monitor = monitor
        self.shadows = ShadowQueue(shadow_workers, shadow_queue)
        self.on_shadow_lost: Callable[[], None] | None = None  # a shadow run not recorded
        self._writes = request_writer(db, settings.request_spool)
        self._listed: tuple[float, frozenset[str], str | None] | None = None

    def default_candidate(self, scope: str = DEFAULT_SCOPE, remedy: str = SCOPE_REMEDY) -> str:
        """The candidate serving a scope no experiment runs in: the one named as the scope (a
        V2 client's model name), else the configured default, else, for the `default` scope
        alone, the newest registered one that is no page extraction candidate (which serves
        /v1/pages' page scope, not formulas or tensors). Any other scope is a 404 that suggests
        `remedy`: a model name nobody serves is not answered by whichever candidate was
        registered last. The names are looked up at most every DEFAULT_REFRESH_S seconds, not
        on every request."""
        names, newest = self._names()
        if scope in names:
            return scope
        if self.settings.default_candidate:
            if self.settings.default_candidate not in names and \
                    self.settings.default_candidate not in self._names(fresh=True)[0]:
                # Not named: only admin keys learn which candidate serves.
                raise NotFound(f"no experiment runs in scope {scope!r}, and the candidate the "
                               "service's ABVOC_DEFAULT_CANDIDATE names is not registered: ask "
                               "its operator to correct the setting or register it")
            return self.settings.default_candidate
        if scope != DEFAULT_SCOPE:
            if scope in self._names(fresh=True)[0]:  # registered since the last read
                return scope
            if any(c.name == scope for c in self.pool.registry.list(include_retired=True)):
                raise NotFound(f"no experiment runs in scope {scope!r}, and candidate {scope!r} "
                               "is retired (every version of it): register a new version of "
                               "it, or start an experiment on that scope")
            raise NotFound(f"no experiment runs in scope {scope!r} and no candidate is named "
                           f"{scope!r}: {remedy}")
        if newest is None:
            raise AbvocError("no candidate that reads formulas or tensors is registered (a page "
                             "extraction candidate serves only /v1/pages' page scope); run "
                             "`abvoc train --all`", status=503)
        return newest

    def _names(self, *, fresh: bool = False) -> tuple[frozenset[str], str | None]:
        """The registered names and the newest that may serve `default`, read at most every
        DEFAULT_REFRESH_S seconds (`fresh`: now)."""
        now = time.monotonic()
        if fresh or self._listed is None or now - self._listed[0] > DEFAULT_REFRESH_S:
            listed = self.pool.registry.list()
            # A page extraction candidate serves pages (/v1/pages' page scope): as the newest,
            # it would have answered the formula images sent to `default` with page boxes.
            eligible = [c for c in listed if not OutputKind.of_pipeline(c.pipeline).page_boxes]
            newest = max(eligible, key=lambda c: c.created_at).name if eligible else None
            self._listed = (now, frozenset(c.name for c in listed), newest)
        return self._listed[1], self._listed[2]

    def _model(self, candidate: str, req: PredictRequest,
               version: str | None) -> tuple[str, Servable]:
        version, model = self.pool.versioned(candidate, version)
        if model.accepts != req.kind:
            # Not named: only admin keys learn which candidate serves a unit.
            raise AbvocError(f"the candidate serving scope {req.scope!r} to this unit takes "
                             + _TAKES.get(model.accepts, model.accepts).format(scope=req.scope))
        return version, model

    def _run(self, candidate: str, req: PredictRequest, version: str | None = None) -> _Run:
        """Run one candidate; bad input raises (not recorded), a failure is returned as data."""
        version, model = self._model(candidate, req, version)
        start = time.perf_counter()
        answer, failure = self._call(model, candidate, req.payload)
        return _failed_run(model, version, start, failure) if failure else \
            _Run(model.output_type, answer, _ms_since(start), version)

    def _call(self, model: Servable, candidate: str, payload: Any,
              finish: Finish | None = None) -> tuple[Any, AbvocError | None]:
        """What the candidate answered (or `finish` made of it), or its failure."""
        try:
            return model.predict(payload, finish), None
        except AbvocError as exc:
            # Bad input is the caller's, a backlog of records the store's: neither is recorded
            # nor counted against the candidate.
            if exc.status < 500 or isinstance(exc, FinishingBacklog):
                raise
            return None, exc
        except Exception as exc:  # a candidate's failure is data for its guardrails
            log.exception("candidate %s failed", candidate)
            return None, CandidateFailed(f"{type(exc).__name__}: {exc}")

    def _serve(self, req: PredictRequest, route: Route,
               watched: bool) -> tuple[_Run, dict[str, Any]]:
        """Run the routed candidate and record its prediction durably; the run and its event.

        An answer's event and rows are made and committed on the candidate's batcher, together
        with its batch-mates' (batch_request.Finish), so the caller wakes once with its answer
        recorded; a failure is recorded here."""
        version, model = self._model(route.candidate, req, route.version)
        start = time.perf_counter()
        each = partial(self._recorded, req, route, watched, version, start)
        done, failure = self._call(model, route.candidate, req.payload,
                                   Finish(each, self._commit))
        if failure is None:
            if done.error is not None:
                raise done.error
            return done.run, done.event
        run = _failed_run(model, version, start, failure)
        event = self._event(req, route, route.candidate, run, False)
        self._record(event, watched, req)
        return run, event

    def _recorded(self, req: PredictRequest, route: Route, watched: bool, version: str,
                  start: float, answer: Answer) -> _Recorded:
        run = _Run(answer.output_type, answer, _ms_since(start), version)
        event = self._event(req, route, route.candidate, run, False)
        return _Recorded(run, event, answer_rows(event, self.settings, watched, req))

    def _commit(self, recorded: list[_Recorded]) -> None:
        """Commit a batch's records in one write; each keeps its own error."""
        errors = self._writes.insert_many([r.rows for r in recorded])
        for r, error in zip(recorded, errors, strict=True):
            r.error = error

    def _event(self, req: PredictRequest, route: Route, candidate: str, run: _Run,
               shadow: bool) -> dict[str, Any]:
        answer = run.answer
        output_type = answer.output_type if answer else run.output_type
        fields: dict[str, Any] = {}
        if req.request_id is not None:
            fields["request_id"] = req.request_id[:200]
        # An admin's forced arm (a QA request) and the traffic of a paused or killed experiment
        # (all to control) are outside the split its figures compare: kept out, saying where.
        excluded = None if shadow or route.experiment_id is None else (
            "forced" if route.forced else route.held)
        if excluded:
            fields["excluded"] = {"experiment_id": route.experiment_id, "arm": route.arm,
                                  "reason": excluded}
        return events.make_event(
            events.PREDICTION_MADE,
            prediction_id=time_ordered_id(),
            experiment_id=None if excluded else route.experiment_id,
            arm=None if shadow or excluded else route.arm,
            candidate=candidate,
            candidate_version=run.version,
            shadow=shadow,
            # A `request`-unit experiment counts each request as its unit (serving/router.py).
            unit_id=route.unit_id or req.unit_id,
            slice=req.slice or (answer.slice if answer else None) or "all",
            input_hash=req.input_hash,
            output=answer.output if answer else ("" if output_type in _STRING_TYPES else None),
            output_type=output_type,
            confidence=answer.confidence if answer else None,
            latency_ms=round(run.latency_ms, 3),
            error=run.error,
            stages={**(answer.stages if answer else {}), **(req.context or {})},
            **fields,
        )

    def _record(self, event: dict[str, Any], watched: bool = False,
                req: PredictRequest | None = None) -> None:
        """Commit the event and the ledger row together; returns once they are durable."""
        self._writes.insert(answer_rows(event, self.settings, watched, req))

    def predict(self, req: PredictRequest) -> dict[str, Any]:
        """Serve one request; the answer with its prediction id and receipt, or the candidate's
        failure (recorded first) raised with its status."""
        route = self.router.route(req.scope, req.unit_id,
                                  partial(self.default_candidate, req.scope), req.force_arm,
                                  req.unit_from)
        experiment = self.router.experiment(req.scope) if route.experiment_id else None
        # A request outside any experiment is the candidate's real traffic too: its ledger row
        # keeps its latency and failure for Operations (no guardrail reads it: they read an
        # experiment's arms). Only an admin's forced (QA) request keeps neither.
        watched = not route.forced
        run, event = self._serve(req, route, watched)
        if watched and experiment is not None:
            self._watch(experiment, route.arm or "", run)
        for shadow in () if route.forced else route.shadows:  # no shadows for QA requests
            self.shadows.submit(self._shadow, req, route, shadow)
        if run.failure is not None:
            raise self._failed(req, route.candidate, event["prediction_id"], run.failure)
        assert run.answer is not None
        return {
            "prediction_id": event["prediction_id"],
            "output": event["output"],
            "output_type": event["output_type"],
            "confidence": event["confidence"],
            "receipt": receipts.sign(self.settings.secret_key, event["prediction_id"]),
            "slice": event["slice"],
            "latency_ms": event["latency_ms"],
            "candidate": route.candidate,
            "arm": route.arm,
            # As stored: a forced or held request counts in no experiment, and says why.
            "experiment_id": event["experiment_id"],
            "excluded": event.get("excluded"),
            "tensors": run.answer.tensors,
        }

    def _watch(self, experiment: dict[str, Any], arm: str, run: _Run) -> None:
        """Feed the guardrails; a check that fails (the store, a race with a stop) is logged:
        the answer is recorded already, and the caller gets it."""
        try:
            self.monitor.observe(experiment, arm, run.latency_ms, run.error is not None)
        except Exception:
            log.exception("the guardrail check of experiment %s failed", experiment["id"])

    def _failed(self, req: PredictRequest, candidate: str, prediction_id: str,
                failure: AbvocError) -> CandidateFailed:
        """The caller's error: what anyone may act on in `message` (no candidate internals: a
        predict key must not learn a remote's URL or body, or a stage's paths), the rest in
        `detail` and the log."""
        # A failure that repeats on the same input (a remote's refusal) is not worth a retry.
        retry = "; try again" if failure.status in RETRY_STATUSES \
            and not getattr(failure, "repeats", False) else ""
        asked = "" if req.request_id is None else f" (request id {req.request_id[:200]!r})"
        shown = (f"the candidate failed to answer; prediction {prediction_id} was recorded as "
                 f"its failure{retry}{asked}")
        # The receipt lets the caller still give the input's truth (a correction) or an outcome.
        receipt = receipts.sign(self.settings.secret_key, prediction_id)
        failed = CandidateFailed(shown, status=failure.status,
                                 details={"prediction_id": prediction_id, "receipt": receipt})
        failed.candidate = candidate
        failed.detail = (f"the candidate failed to answer: {failure.message} (prediction "
                         f"{prediction_id} recorded as its failure){retry}{asked}")
        log.warning("candidate %s failed on prediction %s: %s", candidate, prediction_id,
                    failure.message)
        return failed

    def _shadow(self, req: PredictRequest, route: Route, shadow: Shadow) -> None:
        """Run and record one shadow copy; one that cannot be recorded is lost, and counted
        (`on_shadow_lost`, a Prometheus counter): its arm's figures fall short otherwise
        unexplained (a store restarting took one)."""
        try:
            run = self._run(shadow.candidate, req, shadow.version)
            self._record(self._event(req, route, shadow.candidate, run, True))
        except Exception as exc:
            if self.on_shadow_lost is not None:
                self.on_shadow_lost()
            if store_unreachable(exc):
                log.warning("shadow candidate %s: its answer was not recorded, the store is "
                            "unavailable (%s)", shadow.candidate, type(exc).__name__)
            else:
                log.exception("shadow candidate %s failed to record", shadow.candidate)

    def unrecorded(self) -> tuple[int, float] | None:
        """Answers given whose rows are not in the store yet (in the request spool), and how
        long the oldest has waited (s); None where each answer waits for its commit."""
        writes = self._writes
        return writes.pending() if isinstance(writes, Spool) else None

    def close(self) -> None:
        self.shadows.close()
        self._writes.close()
