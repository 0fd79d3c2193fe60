"""The relabeling rules: which predictions become annotation work, in which queue, how urgent.

Shared ground for the evaluation worker (which applies the rules to the event stream) and the
feedback package (which serves the queues to annotators and stores the rules people set), so
both read one definition. Rules are data, kept per experiment or per candidate (``relabel_rules``);
the most specific one applies: the experiment's, else the candidate's, else the default.

Queues are per purpose: ``verification`` (is the customer's correction right?), ``training``
(hard or disputed inputs for the next training set), ``offline-test`` (the uniform audit sample:
unbiased test data), and ``stage:<name>`` (a staged pipeline's errors routed to the dataset of
the stage that was blamed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import AbvocError

VERIFICATION, TRAINING, OFFLINE_TEST = "verification", "training", "offline-test"
PURPOSES = (VERIFICATION, TRAINING, OFFLINE_TEST)
STAGE_PREFIX = "stage:"
MAX_STAGE_NAME = 50  # a stage dataset's name, as the rules' ``stage_datasets`` bound it

CORRECTION, LOW_CONFIDENCE, SHADOW_DISAGREEMENT = "correction", "low_confidence", \
    "shadow_disagreement"
DIVERGENT_SLICE, AUDIT, STAGE_BLAME = "divergent_slice", "audit", "stage_blame"
REASONS = (CORRECTION, LOW_CONFIDENCE, SHADOW_DISAGREEMENT, DIVERGENT_SLICE, AUDIT, STAGE_BLAME)
# The queue each reason feeds.
QUEUE_OF = {CORRECTION: VERIFICATION, LOW_CONFIDENCE: TRAINING, SHADOW_DISAGREEMENT: TRAINING,
            DIVERGENT_SLICE: TRAINING, AUDIT: OFFLINE_TEST}
DEFAULT_WEIGHTS = {CORRECTION: 3.0, SHADOW_DISAGREEMENT: 2.0, DIVERGENT_SLICE: 1.5,
                   LOW_CONFIDENCE: 1.0, AUDIT: 1.0, STAGE_BLAME: 1.0}
DEFAULT_QUOTAS = {VERIFICATION: 10_000, TRAINING: 5_000, OFFLINE_TEST: 5_000}
MAX_QUOTA = 10_000_000


@dataclass(frozen=True)
class RelabelRules:
    """One scope's rules. Rates are shares in [0, 1], decided by a hash of the prediction id, so
    a replayed event makes the same decision and the audit is independent of the customer."""

    corrections: bool = True
    low_confidence_below: float | None = 0.5
    shadow_disagreements: bool = True
    # Number answers that differ by no more than this share of the larger one (or by this much
    # near zero) agree: a regression's shadow differs from its twin in the last digits.
    shadow_number_tolerance: float = 0.0
    divergent_slice_rate: float = 0.1
    audit_rate: float = 0.01
    second_annotator_share: float = 0.1
    stage_datasets: tuple[str, ...] = ("recognizer", "aligner")
    quotas: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stage_datasets"] = list(self.stage_datasets)
        out["quotas"], out["weights"] = dict(self.quotas), dict(self.weights)
        return out

    def priority(self, reasons: list[str], confidence: float | None = None) -> float:
        """Sum of the reasons' weights, plus up to 1 for a low confidence (less is more urgent)."""
        score = sum(float(self.weights.get(r, 1.0)) for r in dict.fromkeys(reasons))
        if LOW_CONFIDENCE in reasons and confidence is not None:
            score += max(0.0, min(1.0, 1.0 - confidence))
        return round(score, 6)

    def quota(self, queue: str) -> int:
        purpose = TRAINING if queue.startswith(STAGE_PREFIX) else queue
        return int(self.quotas.get(purpose, DEFAULT_QUOTAS.get(purpose, 1000)))


RULE_FIELDS = set(RelabelRules.__dataclass_fields__)


def _rate(body: Mapping[str, Any], key: str) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise AbvocError(f"'{key}' must be a number from 0 to 1 (a share), got {value!r}")
    return float(value)


def parse_rules(body: Any, base: RelabelRules | None = None) -> RelabelRules:
    """Rules from a JSON object (fields left out keep `base`'s values), or a 400 saying why."""
    if not isinstance(body, dict):
        raise AbvocError("the rules must be a JSON object with some of "
                         f"{sorted(RULE_FIELDS)}")
    unknown = sorted(set(body) - RULE_FIELDS)
    if unknown:
        raise AbvocError(f"unknown rule field(s) {unknown}; allowed: {sorted(RULE_FIELDS)}")
    values = (base or RelabelRules()).as_dict()
    for key in ("corrections", "shadow_disagreements"):
        if key in body:
            if not isinstance(body[key], bool):
                raise AbvocError(f"'{key}' must be true or false")
            values[key] = body[key]
    for key in ("divergent_slice_rate", "audit_rate", "second_annotator_share",
                "shadow_number_tolerance"):
        if key in body:
            values[key] = _rate(body, key)
    if "low_confidence_below" in body:
        values["low_confidence_below"] = None if body["low_confidence_below"] is None \
            else _rate(body, "low_confidence_below")
    if "stage_datasets" in body:
        stages = body["stage_datasets"]
        if not isinstance(stages, list) or not all(
                isinstance(s, str) and 0 < len(s) <= MAX_STAGE_NAME for s in stages) \
                or len(stages) > 20:
            raise AbvocError("'stage_datasets' must be a list of stage names (at most 20)")
        values["stage_datasets"] = tuple(dict.fromkeys(stages))
    if "quotas" in body:
        quotas = body["quotas"]
        if not isinstance(quotas, dict) or set(quotas) - set(PURPOSES) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_QUOTA
                for v in quotas.values()):
            raise AbvocError(f"'quotas' maps some of {list(PURPOSES)} to a count of open items "
                             f"from 0 to {MAX_QUOTA}")
        values["quotas"] = {**values["quotas"], **quotas}
    if "weights" in body:
        weights = body["weights"]
        if not isinstance(weights, dict) or set(weights) - set(REASONS) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1000
                for v in weights.values()):
            raise AbvocError(f"'weights' maps some of {list(REASONS)} to a number from 0 to 1000")
        values["weights"] = {**values["weights"], **{k: float(v) for k, v in weights.items()}}
    values["stage_datasets"] = tuple(values["stage_datasets"])
    return RelabelRules(**values)


def queue_problem(name: Any) -> str | None:
    """Why `name` is not a queue abvoc fills (None when it is one). The one check of queue names:
    the command line, the API and the feedback functions all ask it, so an item is never stored
    under (and no listing or export filters by) a queue that nobody works."""
    if isinstance(name, str):
        stage = name.removeprefix(STAGE_PREFIX)
        if name in PURPOSES or (stage != name and 0 < len(stage) <= MAX_STAGE_NAME):
            return None
        shown = repr(name if len(name) <= 60 else name[:57] + "...")
    else:
        shown = f"a {type(name).__name__}"
    return (f"{shown} is not a queue: use one of {', '.join(PURPOSES)} or {STAGE_PREFIX}<stage> "
            f"(a stage dataset's name of 1 to {MAX_STAGE_NAME} characters)")


def check_queue(name: Any) -> str:
    """`name` when it is a known queue, else a 400 that lists the valid names."""
    problem = queue_problem(name)
    if problem is not None:
        raise AbvocError(problem)
    return name


def check_queues(names: Iterable[Any] | None) -> list[str] | None:
    """Each of `names` checked, once each and sorted, so a dataset's version.json names a
    selection one way however it was typed (None or empty: every queue, as None)."""
    return sorted({check_queue(n) for n in names}) if names else None


def scope_key(experiment_id: int | None = None, candidate: str | None = None) -> str:
    """The key rules are stored under: ``experiment:<id>``, ``candidate:<name>`` or ``default``."""
    if experiment_id is not None and candidate is not None:
        raise AbvocError("rules belong to an experiment or a candidate, not both")
    if experiment_id is not None:
        return f"experiment:{int(experiment_id)}"
    if candidate is not None:
        return f"candidate:{candidate}"
    return "default"


def share_of(*parts: str) -> float:
    """A uniform number in [0, 1) from a hash of `parts`: the same input, the same number."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def audited(prediction_id: str, rate: float) -> bool:
    """Whether a served prediction is in the audit sample at `rate` (by its id alone)."""
    return rate > 0 and share_of("audit", prediction_id) < rate
