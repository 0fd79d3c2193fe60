"""Sticky, weighted traffic assignment with minimal movement when weights change.

A unit id (user, session or request id) and the experiment salt are hashed with BLAKE2b into one
of ``num_buckets`` buckets; an :class:`Allocation` maps each bucket to an arm. The hash is stable
across processes and restarts (never Python's ``hash()``, which is salted per process), so a unit
keeps its arm for as long as its bucket keeps its arm.

The allocation is a table rather than contiguous ranges because ranges laid end to end move more
units than needed when weights change ([.5, .25, .25] -> [.4, .3, .3] moves 15 % with ranges).
:func:`reallocate` hands buckets only from shrinking arms to growing arms, so the share of units
that change arm is the total-variation distance between the old and new bucket counts: the least
any scheme can move. Ramps and canaries (treatment 1 % -> 5 % -> 25 %, control takes the rest)
are plain weight changes and keep every unit already in the treatment there.

Everything here is pure and deterministic: the same inputs give the same table in every process.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NUM_BUCKETS",
    "Allocation",
    "Assigner",
    "allocate",
    "assign",
    "bucket_of",
    "moved_share",
    "reallocate",
    "remove_arm",
    "tv_distance",
]

NUM_BUCKETS = 10_000
"""Default table size: weights are honoured to 0.01 % of traffic."""

_MAX_ARMS = 255  # the table stores one arm index per byte
_FORMAT_VERSION = 1
_DIGEST_SIZE = 8


def _salt_hasher(salt: str) -> hashlib.blake2b:
    """A hasher primed with the length-prefixed salt; copying it is cheaper than rehashing.

    The length prefix keeps (salt "a:", unit "b") and (salt "a", unit ":b") apart.
    """
    raw = salt.encode()
    return hashlib.blake2b(struct.pack(">I", len(raw)) + raw, digest_size=_DIGEST_SIZE)


def bucket_of(unit_id: str, salt: str, num_buckets: int = NUM_BUCKETS) -> int:
    """The bucket of ``unit_id`` in the experiment with ``salt``, the same in every process."""
    hasher = _salt_hasher(salt)
    hasher.update(unit_id.encode())
    return int.from_bytes(hasher.digest(), "little") % num_buckets


def _normalised(weights: Sequence[float], num_arms: int | None = None) -> tuple[float, ...]:
    """Checked weights scaled to sum to 1; raises ValueError saying what to fix."""
    given = list(weights)
    if not all(isinstance(w, numbers.Real) for w in given):
        raise ValueError(f"weights must be numbers, got {given!r}")
    values = [float(w) for w in given]
    if num_arms is not None and len(values) != num_arms:
        raise ValueError(f"expected {num_arms} weights, one per arm, got {len(values)}")
    if not values:
        raise ValueError("weights must name at least one arm")
    if len(values) > _MAX_ARMS:
        raise ValueError(f"at most {_MAX_ARMS} arms are supported, got {len(values)}")
    for arm, w in enumerate(values):
        if not math.isfinite(w):
            raise ValueError(f"weight of arm {arm} must be a finite number, got {w}")
        if w < 0:
            raise ValueError(f"weight of arm {arm} must not be negative, got {w}")
    total = math.fsum(values)
    if total <= 0:
        raise ValueError("at least one weight must be positive; all weights are zero")
    return tuple(w / total for w in values)


def _target_counts(
    weights: tuple[float, ...], num_buckets: int, current: Sequence[int] | None = None
) -> list[int]:
    """Bucket counts within one bucket of ``weights * num_buckets``, summing to ``num_buckets``.

    Largest remainder rounding; among equal remainders (equal weights) the leftover buckets go
    first to arms already holding more than their floor, so fewer buckets move. Shares are rounded
    to 9 decimals so float noise (0.3 * 10_000 = 3000.0000000000005) cannot tip the rounding.
    """
    shares = [round(w * num_buckets, 9) for w in weights]
    counts = [math.floor(s) for s in shares]
    remainders = [round(s - c, 9) for s, c in zip(shares, counts, strict=True)]
    held = current if current is not None else [0] * len(weights)
    order = sorted(
        range(len(weights)),
        key=lambda arm: (-remainders[arm], held[arm] <= counts[arm], arm),
    )
    for arm in order[: num_buckets - sum(counts)]:
        counts[arm] += 1
    return counts


@dataclass(frozen=True)
class Allocation:
    """Which arm each bucket serves, plus the normalised weights it was built for.

    Keep it with the experiment (``to_json`` / ``from_json``) and derive the next one with
    :func:`reallocate`: the table remembers history, which is what lets a weight change move only
    the units that must move.
    """

    weights: tuple[float, ...]
    table: bytes

    def __post_init__(self) -> None:
        if not self.table:
            raise ValueError("an allocation needs at least one bucket")
        weights = tuple(self.weights)
        _normalised(weights)
        if abs(math.fsum(weights) - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1, got {weights}; allocate() normalises them")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "table", bytes(self.table))
        top = max(self.table)
        if top >= len(weights):
            raise ValueError(f"bucket table names arm {top} but only {len(weights)} have weights")

    @property
    def num_arms(self) -> int:
        return len(self.weights)

    @property
    def num_buckets(self) -> int:
        return len(self.table)

    def counts(self) -> list[int]:
        """Buckets held by each arm."""
        return [self.table.count(arm) for arm in range(self.num_arms)]

    def to_json(self) -> str:
        """Compact JSON for the experiment row: weights plus the table as [arm, run length] runs."""
        runs: list[list[int]] = []
        for arm in self.table:
            if runs and runs[-1][0] == arm:
                runs[-1][1] += 1
            else:
                runs.append([arm, 1])
        doc = {"v": _FORMAT_VERSION, "weights": list(self.weights), "runs": runs}
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Allocation:
        """Inverse of :meth:`to_json`; a malformed document raises ValueError."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not an allocation document: {exc}") from exc
        return cls.from_doc(doc)

    @classmethod
    def from_doc(cls, doc: Any) -> Allocation:
        """The allocation of :meth:`to_json`'s document parsed (as an experiment's API view
        shows it); a malformed one raises ValueError."""
        try:
            if doc["v"] != _FORMAT_VERSION:
                raise ValueError(f"unsupported allocation format version {doc['v']!r}")
            table = bytearray()
            for arm, length in doc["runs"]:
                valid = isinstance(arm, int) and isinstance(length, int)
                if not valid or not 0 <= arm < _MAX_ARMS or length <= 0:
                    raise ValueError(f"bad run [{arm!r}, {length!r}]")
                table += bytes([arm]) * length
            return cls(tuple(doc["weights"]), bytes(table))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an allocation document: {exc}") from exc


def allocate(weights: Sequence[float], num_buckets: int = NUM_BUCKETS) -> Allocation:
    """A first allocation: each arm gets one contiguous run of buckets in arm order."""
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be at least 1, got {num_buckets}")
    normalised = _normalised(weights)
    counts = _target_counts(normalised, num_buckets)
    table = b"".join(bytes([arm]) * count for arm, count in enumerate(counts))
    return Allocation(normalised, table)


def reallocate(
    allocation: Allocation, new_weights: Sequence[float], home: Allocation | None = None
) -> Allocation:
    """The allocation for ``new_weights`` that moves the fewest buckets from ``allocation``.

    ``new_weights`` has one weight per existing arm, followed by any new arms (adding an arm is
    weight 0 -> w). Shrinking arms give up their highest-numbered buckets; growing arms take the
    freed buckets lowest-numbered first, in arm order, which keeps runs long and the JSON small.
    No bucket moves between two shrinking or two growing arms.

    ``home`` (the experiment's first allocation) says whose each bucket was: a shrinking arm
    gives back first the buckets whose home arm is growing, then its own, and keeps other
    arms' until they grow; a growing arm takes its own home buckets back first. Without it, two
    arms paused and resumed in reverse order swapped every unit between them (control gave
    back its highest-numbered buckets, which were the other arm's).
    """
    if len(new_weights) < allocation.num_arms:
        raise ValueError(
            f"expected at least {allocation.num_arms} weights, one per existing arm, "
            f"got {len(new_weights)}; set an arm's weight to 0 or use remove_arm to drop it"
        )
    if home is not None and home.num_buckets != allocation.num_buckets:
        raise ValueError(f"bucket counts differ: {home.num_buckets} vs {allocation.num_buckets}")
    weights = _normalised(new_weights)
    held = allocation.counts() + [0] * (len(weights) - allocation.num_arms)
    target = _target_counts(weights, allocation.num_buckets, held)
    table = bytearray(allocation.table)
    need = [max(0, t - h) for h, t in zip(held, target, strict=True)]
    freed = _freed(table, [max(0, h - t) for h, t in zip(held, target, strict=True)],
                   need, home.table if home is not None else None)
    left = []
    for bucket in freed:  # a growing arm takes its own home buckets back first
        owner = home.table[bucket] if home is not None else None
        if owner is not None and owner < len(need) and need[owner]:
            table[bucket] = owner
            need[owner] -= 1
        else:
            left.append(bucket)
    taken = iter(left)
    for arm, count in enumerate(need):
        for _ in range(count):
            table[next(taken)] = arm
    return Allocation(weights, bytes(table))


def _freed(table: bytearray, give: list[int], need: list[int],
           home: bytes | None) -> list[int]:
    """The buckets the shrinking arms give up (`give` each), lowest-numbered first: another
    arm's home bucket that arm wants back, then the arm's own, then other arms' (kept for
    their home arm, as a paused arm's are while control holds them); highest-numbered first
    within each."""
    def rank(bucket: int) -> tuple[int, int]:
        if home is None:
            return 0, -bucket
        arm, owner = table[bucket], home[bucket]
        if owner != arm and owner < len(need) and need[owner]:
            return 0, -bucket
        return (1 if owner == arm else 2), -bucket

    freed: list[int] = []
    for arm, count in enumerate(give):
        if count:
            mine = sorted((b for b in range(len(table)) if table[b] == arm), key=rank)
            freed += mine[:count]
    return sorted(freed)


def remove_arm(
    allocation: Allocation, arm: int, weights: Sequence[float] | None = None
) -> Allocation:
    """Drop ``arm``: only its units move, and arms after it shift down one index.

    ``weights`` gives the remaining arms' new weights; by default they keep their proportions.
    """
    if not 0 <= arm < allocation.num_arms:
        raise ValueError(f"arm {arm} does not exist; the allocation has {allocation.num_arms}")
    if allocation.num_arms == 1:
        raise ValueError("cannot remove the only arm")
    rest = list(allocation.weights[:arm] + allocation.weights[arm + 1 :])
    if weights is not None:
        rest = list(_normalised(weights, allocation.num_arms - 1))
    emptied = reallocate(allocation, rest[:arm] + [0.0] + rest[arm:])
    shift = bytes(a - (a > arm) for a in range(allocation.num_arms))
    left = emptied.weights[:arm] + emptied.weights[arm + 1 :]
    return Allocation(left, emptied.table.translate(shift.ljust(256, b"\0")))


def tv_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Total-variation distance between two weight vectors (missing arms count as 0)."""
    a, b = _normalised(p), _normalised(q)
    size = max(len(a), len(b))
    a, b = a + (0.0,) * (size - len(a)), b + (0.0,) * (size - len(b))
    return math.fsum(abs(x - y) for x, y in zip(a, b, strict=True)) / 2


def moved_share(old: Allocation, new: Allocation) -> float:
    """Share of buckets, and so of traffic, whose arm differs between two allocations."""
    if old.num_buckets != new.num_buckets:
        raise ValueError(f"bucket counts differ: {old.num_buckets} vs {new.num_buckets}")
    return sum(a != b for a, b in zip(old.table, new.table, strict=True)) / old.num_buckets


class Assigner:
    """One experiment's assignment, precomputed for the request hot path.

    Built once per experiment (and rebuilt when its allocation changes); ``assign`` is one hash
    and one byte lookup.
    """

    __slots__ = ("allocation", "control", "salt", "_copy", "_table", "_num_buckets")

    def __init__(self, allocation: Allocation, salt: str, control: int = 0) -> None:
        if not 0 <= control < allocation.num_arms:
            raise ValueError(f"control arm {control} does not exist in {allocation.num_arms} arms")
        self.allocation = allocation
        self.salt = salt
        self.control = control
        self._copy = _salt_hasher(salt).copy
        self._table = allocation.table
        self._num_buckets = allocation.num_buckets

    def assign(self, unit_id: str, force: int | None = None, killed: bool = False) -> int:
        """The arm index for ``unit_id``.

        ``force`` (a QA override) wins over everything; ``killed`` (the kill switch) sends all
        other traffic to the control arm.
        """
        if force is not None:
            return self._check_arm(force)
        if killed:
            return self.control
        hasher = self._copy()
        hasher.update(unit_id.encode())
        return self._table[int.from_bytes(hasher.digest(), "little") % self._num_buckets]

    def _check_arm(self, arm: int) -> int:
        if not 0 <= arm < self.allocation.num_arms:
            raise ValueError(f"forced arm {arm} does not exist in {self.allocation.num_arms} arms")
        return arm


def assign(
    allocation: Allocation,
    unit_id: str,
    salt: str,
    force: int | None = None,
    killed: bool = False,
    control: int = 0,
) -> int:
    """One-off form of :meth:`Assigner.assign`; build an :class:`Assigner` for repeated calls."""
    return Assigner(allocation, salt, control).assign(unit_id, force, killed)
