"""`abvoc capacity`: how many instances of each candidate fit on a GPU, and the QPS they serve."""

from __future__ import annotations

import click

from app.cli import Context, emit, json_option, pass_ctx
from serving.capacity import (
    CandidateProfile,
    CapacityError,
    format_table,
    load_profiles,
    parse_size,
    plan_capacity,
)


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


def registry_profiles(ctx: Context) -> list[CandidateProfile]:
    """Profiles from the registered candidates' offline results."""
    raise CapacityError(
        "no candidate profiles: pass --profiles FILE (JSON: [{name, model_size_bytes, "
        "latency_by_batch: {batch: ms}}])"
    )


@click.command()
@click.option("--gpu-mem", required=True, help="GPU memory, e.g. 10GB, 80GiB, 24GB.")
@click.option(
    "--reserve",
    default="0",
    show_default=True,
    help="Memory kept free for the CUDA context and other processes: a size or a share (10%).",
)
@click.option("--p99-ms", type=float, default=None, help="Latency target a batch must meet (ms).")
@click.option(
    "--profiles",
    "profiles_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON file of candidate profiles instead of the registry's offline results.",
)
@json_option
@pass_ctx
def capacity(
    ctx: Context,
    gpu_mem: str,
    reserve: str,
    p99_ms: float | None,
    profiles_path: str | None,
    as_json: bool,
) -> None:
    """Instances that fit on one GPU and the QPS they serve, per candidate."""
    gpu_bytes = parse_size(gpu_mem)
    reserve_bytes = parse_reserve(reserve, gpu_bytes)
    profiles = load_profiles(profiles_path) if profiles_path else registry_profiles(ctx)
    rows = plan_capacity(profiles, gpu_bytes, reserve_bytes=reserve_bytes, p99_target_ms=p99_ms)
    data = {
        "gpu_mem_bytes": gpu_bytes,
        "reserve_bytes": reserve_bytes,
        "p99_target_ms": p99_ms,
        "rows": [row.to_dict() for row in rows],
    }
    emit(data, as_json, format_table(rows, gpu_bytes, reserve_bytes, p99_ms))


CAPACITY_COMMANDS = [capacity]
