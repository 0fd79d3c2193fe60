"""Capacity planning: how many instances of each candidate fit on a GPU and what QPS they serve.

The founding example's rule: instances = floor((GPU memory - reserve) / footprint), and
QPS = instances x batch / latency(batch) at the batch size that serves the most requests per
second while its latency stays within the p99 target. Model size therefore moves QPS only in
steps, at the footprints where one instance more or fewer fits: a 10 GB GPU holds one model of
5.1 GB and one of 9 GB alike, so shrinking a 9 GB model to 5.1 GB gains nothing, and the next
step is at 5 GB. Each row says where that next step is.

The planning math (:func:`plan_capacity`) is pure. Profiles come from the registry's offline
results (``latency_by_batch`` {batch: ms}, ``model_size_bytes``), from a JSON file, or from
:func:`measure_latency_by_batch` run against a loaded backend. QPS assumes instances do not slow
each other down; on one GPU they share compute, so read it as an upper bound.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import AbvocError
from core.text import shown

if TYPE_CHECKING:  # torch loads only when a module is measured, so `abvoc --help` stays light
    import torch

__all__ = [
    "CandidateProfile",
    "CapacityRow",
    "best_batch",
    "check_plan",
    "format_size",
    "format_table",
    "instances_that_fit",
    "load_profiles",
    "measure_latency_by_batch",
    "module_size_bytes",
    "parse_size",
    "plan_capacity",
    "profile_from_record",
]

_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9,
          "GB": 10**9, "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
          "TIB": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")

MAX_PROFILE_NUMBER = 2**53  # the largest size (bytes), footprint and batch size planned with:
# beyond, QPS overflows to Infinity, which a JSON answer cannot carry


class CapacityError(AbvocError):
    """A size, profile or target that cannot be planned with; the message says what to fix."""

    status = 400


def parse_size(text: str | int | float) -> int:
    """Bytes from "10GB", "512MiB", "1.5 GB" or a plain number (decimal GB, binary GiB)."""
    if isinstance(text, bool):
        raise CapacityError(f"size {text!r} is not a size")
    if isinstance(text, int | float):
        if not 0 <= text <= MAX_PROFILE_NUMBER:  # before isfinite: a 400-digit int overflows it
            raise CapacityError(f"size {shown(text)} must be a finite number of bytes from 0 "
                                "to 2^53")
        return int(text)
    match = SIZE.match(str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise CapacityError(f"size {text!r} is not understood; write a number with a unit such "
                            "as 10GB, 512MiB, 1.5GiB or 800MB")
    size = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(size):  # the caller bounds it (a GPU's memory, a footprint)
        raise CapacityError(f"size {shown(text)} is out of range: give a size such as 10GB")
    return int(size)


def format_size(n: int) -> str:
    """Decimal units, as GPU vendors state memory ("10.00 GB")."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


MIN_LATENCY_MS = 1e-6  # the shortest batch latency a profile holds (below, QPS overflows too)


@dataclass(frozen=True)
class CandidateProfile:
    """What planning needs to know about one candidate, measured offline."""

    name: str
    footprint_bytes: int
    """GPU memory one serving instance holds: weights, activations at its batch size, workspace."""
    latency_ms_by_batch: Mapping[int, float]
    """Time to serve one batch of each size, in ms (p99 where measured)."""
    model_size_bytes: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.footprint_bytes <= MAX_PROFILE_NUMBER:
            got = shown(str(self.footprint_bytes), form=str)
            raise CapacityError(f"candidate {self.name!r}: footprint must be positive and at "
                                f"most 2^53 bytes, got {got}")
        if not self.latency_ms_by_batch:
            raise CapacityError(f"candidate {self.name!r} has no latency by batch size")
        for batch, ms in self.latency_ms_by_batch.items():
            if not 1 <= int(batch) <= MAX_PROFILE_NUMBER:
                raise CapacityError(f"candidate {self.name!r}: batch size "
                                    f"{shown(str(batch), form=str)} must be a whole number "
                                    "of at least 1 and at most 2^53")
            if not ms >= MIN_LATENCY_MS or not math.isfinite(ms):
                raise CapacityError(
                    f"candidate {self.name!r}: latency at batch {batch} must be a finite "
                    f"number of ms of at least {MIN_LATENCY_MS} (a nanosecond), got {ms!r}"
                )


@dataclass(frozen=True)
class CapacityRow:
    """One candidate's plan; `note` says why QPS is zero or what limits it."""

    candidate: str
    footprint_bytes: int
    instances: int
    batch_size: int | None
    latency_ms: float | None
    qps_per_instance: float
    qps: float
    next_step_bytes: int | None
    """The footprint at or below which one more instance would fit (None if none fits now)."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def instances_that_fit(gpu_mem_bytes: int, footprint_bytes: int, reserve_bytes: int = 0) -> int:
    """floor((GPU memory - reserve) / footprint), never negative."""
    usable = gpu_mem_bytes - reserve_bytes
    if footprint_bytes <= 0:
        raise CapacityError("footprint must be positive")
    return max(usable, 0) // footprint_bytes


def best_batch(
    latency_ms_by_batch: Mapping[int, float], p99_target_ms: float | None = None
) -> tuple[int, float] | None:
    """The batch size with the highest items/s whose latency meets the target (ties: smaller)."""
    allowed = [
        (int(b), float(ms))
        for b, ms in latency_ms_by_batch.items()
        if p99_target_ms is None or ms <= p99_target_ms
    ]
    if not allowed:
        return None
    return max(sorted(allowed), key=lambda bm: bm[0] / bm[1])


def check_plan(gpu_mem_bytes: int, reserve_bytes: int = 0, p99_target_ms: float | None = None,
               instance_overhead_bytes: int = 0) -> None:
    """Refuse a GPU, reserve, target or overhead no plan can use; `abvoc capacity` calls it
    before measuring anything, so a typo fails at once rather than after the slow part."""
    if gpu_mem_bytes <= 0:
        raise CapacityError("GPU memory must be positive")
    if not 0 <= reserve_bytes < gpu_mem_bytes:
        raise CapacityError(
            f"reserve {format_size(reserve_bytes)} must be at least 0 and less than the GPU's "
            f"{format_size(gpu_mem_bytes)}"
        )
    if p99_target_ms is not None and not (p99_target_ms > 0 and math.isfinite(p99_target_ms)):
        raise CapacityError(f"p99 target must be a positive number of ms, got {p99_target_ms}")
    if instance_overhead_bytes < 0:
        raise CapacityError("the per-instance overhead must be zero or positive")
    if instance_overhead_bytes >= gpu_mem_bytes - reserve_bytes:  # no instance could ever fit
        raise CapacityError(f"the per-instance overhead {format_size(instance_overhead_bytes)} "
                            "(--per-instance) must be less than the GPU memory left after the "
                            f"reserve, {format_size(gpu_mem_bytes - reserve_bytes)}")


def plan_capacity(
    profiles: Iterable[CandidateProfile],
    gpu_mem_bytes: int,
    *,
    reserve_bytes: int = 0,
    p99_target_ms: float | None = None,
    instance_overhead_bytes: int = 0,
) -> list[CapacityRow]:
    """One row per candidate, in the order given; pure, no measurement and no I/O.

    ``instance_overhead_bytes`` is added to every footprint: what each serving process holds
    besides its model (CUDA context, allocator pools), when the profiles count weights only.
    """
    check_plan(gpu_mem_bytes, reserve_bytes, p99_target_ms, instance_overhead_bytes)
    usable = gpu_mem_bytes - reserve_bytes
    rows = []
    for profile in profiles:
        footprint = profile.footprint_bytes + instance_overhead_bytes
        instances = instances_that_fit(gpu_mem_bytes, footprint, reserve_bytes)
        next_step = usable // (instances + 1) if instances else None
        chosen = best_batch(profile.latency_ms_by_batch, p99_target_ms)
        note = ""
        if instances == 0:
            note = f"does not fit: needs {format_size(footprint)}, {format_size(usable)} usable"
        elif chosen is None:
            fastest = min(profile.latency_ms_by_batch.values())
            note = f"no batch size meets the {p99_target_ms:g} ms target (fastest {fastest:g} ms)"
        if chosen is None:
            rows.append(
                CapacityRow(
                    candidate=profile.name,
                    footprint_bytes=footprint,
                    instances=instances,
                    batch_size=None,
                    latency_ms=None,
                    qps_per_instance=0.0,
                    qps=0.0,
                    next_step_bytes=next_step,
                    note=note,
                )
            )
            continue
        batch, latency = chosen
        per_instance = batch * 1000.0 / latency
        largest = max(int(b) for b in profile.latency_ms_by_batch)
        if not note and batch == largest:
            note = "largest batch measured; a larger one may serve more"
        rows.append(
            CapacityRow(
                candidate=profile.name,
                footprint_bytes=footprint,
                instances=instances,
                batch_size=batch,
                latency_ms=latency,
                qps_per_instance=per_instance,
                qps=instances * per_instance,
                next_step_bytes=next_step,
                note=note,
            )
        )
    return rows


def format_table(
    rows: Sequence[CapacityRow],
    gpu_mem_bytes: int,
    reserve_bytes: int = 0,
    p99_target_ms: float | None = None,
    instance_overhead_bytes: int = 0,
) -> str:
    """The plan as a fixed-width text table with a one-line header saying what was assumed."""
    target = f", p99 target {p99_target_ms:g} ms" if p99_target_ms else ""
    overhead = (
        f", {format_size(instance_overhead_bytes)} per instance on top of the model"
        if instance_overhead_bytes
        else ""
    )
    lines = [
        f"GPU memory {format_size(gpu_mem_bytes)}, reserve {format_size(reserve_bytes)}"
        f"{overhead}{target}",
    ]
    header = (
        "candidate",
        "footprint",
        "instances",
        "batch",
        "latency ms",
        "QPS/inst",
        "QPS",
        "+1 instance at",
        "note",
    )
    body = [
        (
            row.candidate,
            format_size(row.footprint_bytes),
            str(row.instances),
            "-" if row.batch_size is None else str(row.batch_size),
            "-" if row.latency_ms is None else f"{row.latency_ms:.2f}",
            f"{row.qps_per_instance:,.0f}",
            f"{row.qps:,.0f}",
            "-" if row.next_step_bytes is None else f"<= {format_size(row.next_step_bytes)}",
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6}
    for r in [header, *body]:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(r)
        ]
        lines.append("  ".join(cells).rstrip())
    if not body:
        lines.append("(no candidates)")
    return "\n".join(lines)


def profile_from_record(name: str, record: Mapping[str, Any]) -> CandidateProfile:
    """A profile from a registry candidate's offline results or a profiles-file entry.

    Reads ``latency_by_batch`` {batch: ms} and ``footprint_bytes`` (or ``memory_footprint_bytes``),
    falling back to ``model_size_bytes`` (or ``model.size_bytes``, as the offline test stores it)
    when no footprint was measured. Sizes may be numbers or strings such as "5.5GB".
    """
    latency = record.get("latency_by_batch") or record.get("latency_ms_by_batch")
    if not isinstance(latency, Mapping) or not latency:
        raise CapacityError(
            f"candidate {name!r} has no latency_by_batch {{batch: ms}} in its offline results; "
            "run its offline test or benchmark first"
        )
    try:
        by_batch = {int(b): float(ms) for b, ms in latency.items()}
    except (TypeError, ValueError, OverflowError) as exc:  # Overflow: a 400-digit latency
        raise CapacityError(f"candidate {name!r}: latency_by_batch is malformed ({exc}); give "
                            "{batch size: ms}") from None
    size = record.get("model_size_bytes")
    if size is None and isinstance(record.get("model"), Mapping):  # `abvoc offline-test` output
        size = record["model"].get("size_bytes")
    footprint = record.get("footprint_bytes", record.get("memory_footprint_bytes", size))
    if footprint is None:
        raise CapacityError(f"candidate {name!r} has neither footprint_bytes nor model_size_bytes")
    try:
        footprint_bytes = parse_size(footprint)
        size_bytes = None if size is None else parse_size(size)
    except CapacityError as exc:  # which record's size, in a file of many
        raise CapacityError(f"candidate {name!r}: {exc.message}") from None
    return CandidateProfile(
        name=name,
        footprint_bytes=footprint_bytes,
        latency_ms_by_batch=by_batch,
        model_size_bytes=size_bytes,
    )


def load_profiles(path: str | Path) -> list[CandidateProfile]:
    """Profiles from JSON: a list of records with "name", or an object {name: record}."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, not UTF-8
        raise CapacityError(f"profiles file {str(path)!r} cannot be read: "
                            f"{str(exc)[:200]}") from None
    if isinstance(data, Mapping) and isinstance(data.get("candidates"), list):
        data = data["candidates"]
    if isinstance(data, Mapping):
        odd = next((name for name, rec in data.items() if not isinstance(rec, Mapping)), None)
        if odd is not None:
            raise CapacityError(f"profiles file {str(path)!r}: the record of {str(odd)[:100]!r} "
                                "must be an object (with latency_by_batch and footprint_bytes); "
                                "as a list, each record names itself with \"name\"")
        return [profile_from_record(str(name), rec) for name, rec in data.items()]
    if isinstance(data, list) and all(isinstance(r, Mapping) and "name" in r for r in data):
        return [profile_from_record(str(r["name"]), r) for r in data]
    raise CapacityError(
        f"profiles file {str(path)!r} must hold a list of records with a name, or {{name: record}}"
    )


def module_size_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's parameters and buffers: the weights an instance must hold."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_latency_by_batch(
    run: Callable[[Any], Any],
    make_batch: Callable[[int], Any],
    batch_sizes: Sequence[int] = (1, 8, 32),
    *,
    repeats: int = 20,
    warmup: int = 3,
    quantile: float = 0.99,
) -> dict[int, float]:
    """ms per batch at each size (the `quantile` of `repeats` timed calls), for planning.

    `make_batch(size)` builds the input (a numpy batch for a network, a list of images for a
    whole pipeline); `run` serves it.
    """
    out = {}
    for size in batch_sizes:
        batch = make_batch(size)
        for _ in range(warmup):
            run(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(batch)
            times.append((time.perf_counter() - start) * 1000.0)
        out[int(size)] = float(np.quantile(times, quantile))
    return out
