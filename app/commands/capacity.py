"""`abvoc capacity`: how many instances of each candidate fit on a GPU, and the QPS they serve."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path

import click

from app.cli import Context, Finite, emit, json_option, open_db, pass_ctx
from serving.capacity import (
    SIZE,
    CandidateProfile,
    CapacityError,
    CapacityRow,
    check_plan,
    format_size,
    format_table,
    load_profiles,
    measure_latency_by_batch,
    module_size_bytes,
    parse_size,
    plan_capacity,
    profile_from_record,
)
from serving.registry import BACKENDS

GPU_MEM_MIN = 10**8
"""100 MB: below it no serving instance fits, so a smaller --gpu-mem is a typo."""
GPU_MEM_MAX = 10**13
"""10 TB: far above any one GPU; a larger --gpu-mem is a typo, and float artefacts start."""


def parse_gpu_mem(text: str) -> int:
    """A GPU's memory: a unit is required ("10" would be read as 10 bytes) and the size must
    be one a single GPU can have, so a typo fails here instead of planning nonsense."""
    match = SIZE.match(str(text))
    if match is not None and not match.group(2) and float(match.group(1)) != 0:
        raise CapacityError(
            f"--gpu-mem {text!r} has no unit; write it with one, such as 10GB, 80GiB or 24GB"
        )
    size = parse_size(text)
    if size and not GPU_MEM_MIN <= size <= GPU_MEM_MAX:
        raise CapacityError(
            f"--gpu-mem {text!r} ({format_size(size)}) is not the memory of one GPU; give a size "
            f"from {format_size(GPU_MEM_MIN)} to {format_size(GPU_MEM_MAX)}, such as 10GB"
        )
    return size


def parse_reserve(text: str, gpu_mem_bytes: int) -> int:
    """A reserve as a size ("1GB") or a share of the GPU ("10%")."""
    stripped = text.strip()
    if stripped.endswith("%"):
        try:
            share = float(stripped[:-1])
        except ValueError:
            raise CapacityError(f"reserve {text!r} is not a percentage such as 10%") from None
        if not 0 <= share < 100:
            raise CapacityError(f"reserve {text!r} must be at least 0% and below 100%")
        return int(gpu_mem_bytes * share / 100)
    return parse_size(stripped)


def _named(option: str, parse: Callable[[], int]) -> int:
    """`parse()`, its refusal naming `option` (parse_size's own words name only the size)."""
    try:
        return parse()
    except CapacityError as exc:
        if exc.message.startswith(option):
            raise
        raise CapacityError(f"{option}: {exc.message}") from None


def registry_profiles(
    ctx: Context, backend_name: str | None, measure_batches: tuple[int, ...]
) -> tuple[list[CandidateProfile], dict[str, str], set[str]]:
    """Profiles of the registered candidates (latest version of each), why each candidate
    left out could not be profiled (one bad candidate does not stop the plan of the others),
    and the candidates whose latency was measured here on the CPU.

    A candidate whose offline results lack ``latency_by_batch`` is measured here: its trained
    pipeline is loaded on its backend and timed on generated online-traffic images.
    """
    from serving.backends.base import BackendError
    from serving.registry import Registry

    with open_db(ctx) as db:
        latest = {info.name: info for info in Registry(db).list()}
    if not latest:
        raise CapacityError(f"no candidates are registered: run `abvoc train`, or {PROFILES}")
    profiles, skipped = [], {}
    on_cpu: set[str] = set()
    for name, info in latest.items():
        record = dict(info.offline_results)
        try:
            if not record.get("latency_by_batch"):
                folder = Path(info.artifacts) if info.artifacts else \
                    ctx.settings.models_dir / name
                record.update(measure_candidate(name, folder, backend_name or info.backend,
                                                measure_batches))
            profiles.append(profile_from_record(name, record))
            if record.get("measured_on_cpu"):
                on_cpu.add(name)
        except (CapacityError, BackendError) as exc:  # this candidate only: plan the others
            skipped[name] = exc.message
            click.echo(f"skipped {name}: {exc.message}", err=True)
    if not profiles:
        raise CapacityError(f"no registered candidate could be profiled: {PROFILES}")
    return profiles, skipped, on_cpu


PROFILES = "pass --profiles FILE (JSON: [{name, model_size_bytes, latency_by_batch: {batch: ms}}])"


def measure_candidate(
    name: str, folder: Path, backend_name: str, batch_sizes: tuple[int, ...]
) -> dict[str, object]:
    """Latency by batch of candidate `name`'s trained pipeline in `folder` on a backend, the
    size of its weights, and whether the timing ran on the CPU (a GPU plan must say so)."""
    import torch

    from serving.backends import get_backend
    from workloads.ocr.dataset import ONLINE_MIX, generate
    from workloads.ocr.pipeline import Pipeline

    if not (folder / "candidate.json").exists():
        raise CapacityError(
            f"{name!r} has no latency_by_batch in its offline results and is not a trained "
            f"OCR pipeline abvoc can time ({folder}): {PROFILES}"
        )
    click.echo(f"measuring {name} on {backend_name} ...", err=True)
    try:
        pipe = Pipeline.load(folder)
    except (OSError, ValueError, LookupError, RuntimeError, pickle.UnpicklingError) as exc:
        # A weights file gone or cut short, a spec edited by hand: this candidate is skipped
        # with why, the others planned (a traceback stopped the whole plan).
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CapacityError(f"{name!r}: its trained pipeline in {folder} cannot be loaded "
                            f"({why}); train it again, or {PROFILES}") from None
    if pipe.ships_onnx:
        raise CapacityError(
            f"{name!r} runs its own ONNX Runtime sessions (a quantized or one-graph candidate), "
            f"which no serving backend loads, so abvoc cannot time it here; {PROFILES}"
        )
    networks = pipe.networks()
    backend = get_backend(backend_name)
    backend.load(networks)
    try:
        served = pipe.with_runner(backend)
        images = [s.image for s in generate(max(batch_sizes), ONLINE_MIX, 0, "online")]
        latency = measure_latency_by_batch(
            served.predict, lambda n: images[:n], batch_sizes, repeats=10, warmup=1
        )
    finally:
        backend.unload()
    size = sum(module_size_bytes(module) for module, _ in networks.values())
    device = getattr(backend, "device", None)
    on_cpu = not torch.cuda.is_available() or getattr(device, "type", device) == "cpu"
    return {"latency_by_batch": latency, "model_size_bytes": size, "measured_on_cpu": on_cpu}


@click.command()
@click.option("--gpu-mem", required=True,
              help="GPU memory with a unit, e.g. 10GB, 80GiB, 24GB.")
@click.option(
    "--reserve",
    default="0",
    show_default=True,
    help="Memory kept free for the CUDA context and other processes: a size or a share (10%).",
)
@click.option(
    "--per-instance",
    default="500MB",
    show_default=True,
    help="Memory each instance holds besides its weights (CUDA context, framework pools); "
    "0 counts the weights alone.",
)
@click.option("--p99-ms", type=Finite(0, min_open=True), default=None,
              help="Latency target a batch must meet (ms).")
@click.option(
    "--profiles",
    "profiles_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON file of candidate profiles instead of the registry's offline results.",
)
@click.option(
    "--backend",
    "backend_name",
    type=click.Choice(BACKENDS),  # a typo was each candidate skipped, then "pass --profiles"
    default=None,
    help="Backend to measure unmeasured candidates on (default: each candidate's own).",
)
@json_option
@pass_ctx
def capacity(
    ctx: Context,
    gpu_mem: str,
    reserve: str,
    per_instance: str,
    p99_ms: float | None,
    profiles_path: str | None,
    backend_name: str | None,
    as_json: bool,
) -> None:
    """Instances that fit on one GPU and the QPS they serve, per candidate."""
    gpu_bytes = _named("--gpu-mem", lambda: parse_gpu_mem(gpu_mem))
    reserve_bytes = _named("--reserve", lambda: parse_reserve(reserve, gpu_bytes))
    overhead = _named("--per-instance", lambda: parse_size(per_instance))
    check_plan(gpu_bytes, reserve_bytes, p99_ms, overhead)  # before the slow measurements
    skipped: dict[str, str] = {}
    on_cpu: set[str] = set()
    if profiles_path:
        profiles = load_profiles(profiles_path)
    else:
        profiles, skipped, on_cpu = registry_profiles(ctx, backend_name, (1, 8, 32))
    rows = plan_capacity(
        profiles,
        gpu_bytes,
        reserve_bytes=reserve_bytes,
        p99_target_ms=p99_ms,
        instance_overhead_bytes=overhead,
    )
    rows = [mark_cpu(row) if row.candidate in on_cpu else row for row in rows]
    data = {
        "gpu_mem_bytes": gpu_bytes,
        "reserve_bytes": reserve_bytes,
        "p99_target_ms": p99_ms,
        "instance_overhead_bytes": overhead,
        "rows": [row.to_dict() for row in rows],
        "skipped": skipped,
        "measured_on_cpu": sorted(on_cpu),
    }
    text = format_table(rows, gpu_bytes, reserve_bytes, p99_ms, overhead)
    if on_cpu:
        text += (f"\nlatency of {', '.join(sorted(on_cpu))} was measured on the CPU (no GPU "
                 "here): a GPU serves faster, so read their QPS as a lower bound")
    emit(data, as_json, text)


def mark_cpu(row: CapacityRow) -> CapacityRow:
    """The row with a note that its latency is the CPU's, so nobody reads it as the GPU's."""
    note = "; ".join(filter(None, ["latency measured on the CPU", row.note]))
    return dataclasses.replace(row, note=note)


COMMANDS = [capacity]
