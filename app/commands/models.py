"""Commands for candidate pipelines: train them, test them offline, register a team's bundle,
list, show and retire them."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli import emit, json_option, open_db, pass_ctx


@click.command("train")
@click.argument("candidates", nargs=-1)
@click.option("--all", "train_all", is_flag=True, help="Train every known candidate.")
@click.option("--n-train", type=click.IntRange(min=10), default=None,
              help="Training formulas per candidate (default 1500).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Recognizer epochs (default: the candidate's own).")
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset and training seed.")
@json_option
@pass_ctx
def train_cmd(ctx, candidates, train_all, n_train, epochs, seed, as_json) -> None:  # noqa: ANN001
    """Train CANDIDATES (or --all) on the CPU into the model store and register them."""
    from serving.ocr.candidates import DEFAULT_TRAIN, candidate_names
    from serving.ocr.workflow import train_and_register

    names = candidate_names() if train_all else list(candidates)
    if not names:
        raise click.UsageError(f"name a candidate or use --all; known: {candidate_names()}")
    say = None if as_json else click.echo
    out = train_and_register(ctx.settings, names, n_train or DEFAULT_TRAIN, epochs, seed, say)
    human = "\n".join(f"trained {o['name']} v{o['version']}: {o['validation']} -> {o['artifacts']}"
                      for o in out)
    emit(out, as_json, human)


@click.command("offline-test")
@click.argument("candidate")
@click.option("--n", "n_test", type=click.IntRange(min=4), default=None,
              help="Offline test formulas (default 600).")
@click.option("--seed", type=int, default=0, show_default=True, help="Test-set seed.")
@json_option
@pass_ctx
def offline_test_cmd(ctx, candidate, n_test, seed, as_json) -> None:  # noqa: ANN001
    """Evaluate CANDIDATE on the offline test set and store the results in the registry."""
    from serving.ocr.offline import DEFAULT_TEST_SIZE
    from serving.ocr.workflow import format_table, offline_test_and_store

    say = None if as_json else click.echo
    results = offline_test_and_store(ctx.settings, candidate, n_test or DEFAULT_TEST_SIZE, seed,
                                     progress=say)
    emit(results, as_json, format_table(results))


@click.group("candidates")
def candidates_group() -> None:
    """Registered candidate pipelines."""


@candidates_group.command("register")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
@pass_ctx
def register_cmd(ctx, path, as_json) -> None:  # noqa: ANN001
    """Validate the bundle at PATH (a folder or a .tar.gz with candidate.toml) and register it."""
    from serving.bundles import register_bundle
    from serving.registry import Registry

    with open_db(ctx) as db:
        info = register_bundle(Registry(db), ctx.settings.models_dir, path)
    emit(info.to_dict(), as_json,
         f"registered {info.name} v{info.version} ({info.backend}) -> {info.artifacts}")


@candidates_group.command("retire")
@click.argument("name")
@click.option("--version", default=None, help="One version (default: every active version).")
@json_option
@pass_ctx
def retire_cmd(ctx, name, version, as_json) -> None:  # noqa: ANN001
    """Retire candidate NAME: it takes no new experiments; its rows and files are kept."""
    from serving.bundles import retire_candidate
    from serving.registry import Registry

    with open_db(ctx) as db:
        retired = retire_candidate(Registry(db), name, version)
    human = "\n".join(f"retired {c.name} v{c.version}" for c in retired) or \
        f"{name} has no active version{' ' + version if version else ''} to retire"
    emit([c.to_dict() for c in retired], as_json, human)


@candidates_group.command("list")
@click.option("--all", "include_retired", is_flag=True, help="Include retired candidates.")
@json_option
@pass_ctx
def list_cmd(ctx, include_retired, as_json) -> None:  # noqa: ANN001
    """List registered candidates with their headline offline figures."""
    from serving.registry import Registry

    with open_db(ctx) as db:
        items = Registry(db).list(include_retired=include_retired)
    lines = [f"{'name':<22}{'version':>8}{'backend':>12}{'exact':>8}{'p99 ms':>9}  description"]
    for c in items:
        overall = c.offline_results.get("overall", {})
        exact = overall.get("exact_match")
        p99 = overall.get("latency_p99_ms")
        lines.append(f"{c.name:<22}{c.version:>8}{c.backend:>12}"
                     f"{(f'{exact:.3f}' if exact is not None else '-'):>8}"
                     f"{(f'{p99:.1f}' if p99 is not None else '-'):>9}  {c.description}")
    emit([c.to_dict() for c in items], as_json, "\n".join(lines))


@candidates_group.command("show")
@click.argument("name")
@click.option("--version", default=None, help="A version (default: the latest).")
@json_option
@pass_ctx
def show_cmd(ctx, name, version, as_json) -> None:  # noqa: ANN001
    """Show one candidate: pipeline, requirements and offline results by slice."""
    from serving.ocr.workflow import format_table
    from serving.registry import Registry

    with open_db(ctx) as db:
        info = Registry(db).get(name, version)
    lines = [f"{info.name} v{info.version} ({info.backend}): {info.description}",
             f"artifacts: {info.artifacts}",
             "requirements: " + ", ".join(f"{k}={v}" for k, v in info.requirements.items())]
    if info.offline_results:
        lines.append(format_table(info.offline_results))
    else:
        lines.append(f"no offline results yet: run `abvoc offline-test {info.name}`")
    emit(info.to_dict(), as_json, "\n".join(lines))


MODEL_COMMANDS = [train_cmd, offline_test_cmd, candidates_group]
