"""Commands for candidate pipelines: train them, test them offline (built-in test set or a
team's own dataset), import offline results, register a team's bundle, list, show and retire."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.cli import (
    EPOCHS,
    SEED,
    VERSION,
    bundle_code_prints_to_stderr,
    check_store,
    columns,
    emit,
    json_option,
    open_db,
    pass_ctx,
    progress_to,
)
from core.text import quoted_names

MAX_FORMULAS = 100_000
"""The most formulas `--n-train` and `--n` generate: each is held in memory, about a
millisecond and 4 KB, so a mistyped 10^10 ran on for hours towards running out of memory."""


@click.command("train")
@click.argument("candidates", nargs=-1)
@click.option("--all", "train_all", is_flag=True, help="Train every known candidate.")
@click.option("--n-train", type=click.IntRange(min=10, max=MAX_FORMULAS), default=None,
              help="Training formulas per candidate (default 1500).")
@click.option("--epochs", type=EPOCHS, default=None,
              help="Recognizer epochs (default: the candidate's own).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Dataset and training seed.")
@json_option
@pass_ctx
def train_cmd(ctx, candidates, train_all, n_train, epochs, seed, as_json) -> None:  # noqa: ANN001
    """Train CANDIDATES (or --all) on the CPU into the model store and register them. A mobile
    candidate (ocr-mobile-int8) quantizes its trained float base to int8, a one-graph candidate
    (ocr-onegraph) exports it as one ONNX graph; the base is trained first when the store has
    none."""
    from workloads.ocr.candidates import DEFAULT_TRAIN, candidate_names
    from workloads.ocr.mobile import mobile_names
    from workloads.ocr.onegraph import ONEGRAPH
    from workloads.ocr.workflow import train_and_register

    known = [*candidate_names(), *mobile_names(), *ONEGRAPH]
    if train_all and candidates:  # --all with names trained everything, the names unread
        raise click.UsageError(f"give candidate names or --all, not both (got --all and "
                               f"{quoted_names(candidates)})")
    names = known if train_all else list(candidates)
    if not names:
        raise click.UsageError(f"name a candidate or use --all; known: {quoted_names(known)}")
    check_store(ctx)
    say = progress_to(as_json)
    out = train_and_register(ctx.settings, names, n_train or DEFAULT_TRAIN, epochs, seed, say)
    emit(out, as_json, "\n".join(_trained_line(o) for o in out))


def _trained_line(made: dict) -> str:
    """One trained candidate: its validation figures (an int8 candidate's beside its float
    base's), where it went, and what registering it did when it was not new."""
    from workloads.ocr.bundle import registration_note

    line = f"trained {made['name']} v{made['version']}: validation {_figures(made['validation'])}"
    if "float_validation" in made:
        line += f" (float base: {_figures(made['float_validation'])})"
    line += f" -> {made['artifacts']}"
    note = registration_note(made["name"], made["version"],
                             made.get("registration", "registered"))
    return f"{line}\n  {note}" if note else line


def _figures(scores: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items())) or "none"


@click.command("offline-test")
@click.argument("candidate")
@click.option("--dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A bundle candidate's own labeled test set: a JSONL manifest, "
                                 "one {inputs, label, slice} a line.")
@click.option("--version", type=VERSION, default=None,
              help="A version (default: the latest active one).")
@click.option("--no-store", is_flag=True, help="With --dataset: print the results without "
              "storing them (the stored ones, which the divergence reads, stay).")
@click.option("--n", "n_test", type=click.IntRange(min=4, max=MAX_FORMULAS), default=None,
              help="Built-in candidates: offline test formulas (default 600).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Built-in candidates: test-set seed.")
@json_option
@pass_ctx
def offline_test_cmd(ctx, candidate, dataset, version, no_store, n_test, seed,  # noqa: ANN001
                     as_json) -> None:
    """Evaluate CANDIDATE offline and store the results by slice in the registry: a bundle on
    --dataset, or a built-in OCR candidate on its generated offline test set."""
    if dataset is not None:
        seed_given = click.get_current_context().get_parameter_source("seed") \
            != click.core.ParameterSource.DEFAULT
        if n_test is not None or seed_given:
            raise click.UsageError(f"{'--n' if n_test is not None else '--seed'} is for the "
                                   "built-in test set; --dataset sets the examples")
        from serving.bundles.offline import offline_test
        from serving.registry import Registry

        with open_db(ctx) as db, bundle_code_prints_to_stderr():
            results = offline_test(Registry(db), candidate, dataset, version,
                                   progress=ProgressLine(f"{candidate} on {dataset.name}"),
                                   store=not no_store)
    else:
        if no_store:
            raise click.UsageError("--no-store goes with --dataset")
        if version is not None:
            raise click.UsageError("--version goes with --dataset: the built-in OCR test runs "
                                   "the candidate's latest active version")
        from workloads.ocr.offline import DEFAULT_TEST_SIZE
        from workloads.ocr.workflow import offline_test_and_store

        say = progress_to(as_json)
        results = offline_test_and_store(ctx.settings, candidate, n_test or DEFAULT_TEST_SIZE,
                                         seed, progress=say)
    emit_with_checks(ctx, candidate, version, results, as_json)


def emit_with_checks(ctx, candidate: str, version: str | None, results: dict,  # noqa: ANN001
                     as_json: bool) -> None:
    """The version tested and its offline results, then each requirement the test holds (size
    limit, accuracy floor) with its limit, the measured figure and pass or fail; exit status 1
    when one fails. The requirements are the tested version's (the results name it), not
    those of a version registered while the test ran."""
    from serving.registry import Registry, offline_checks

    with open_db(ctx) as db:
        info = Registry(db).get(candidate, results.get("version", version))
    checks = offline_checks(info.requirements, results)
    lines = [f"offline test of {info.name} v{info.version}", format_offline(results)]
    for c in checks:
        shown = "not measured" if c["measured"] is None else f"{c['measured']:g}"
        bound = "<=" if c["requirement"] == "model_size_mb" else ">="
        verdict = {True: "PASS", False: "FAIL", None: "NOT CHECKED"}[c["passed"]]
        lines.append(f"requirement {c['requirement']} {bound} {c['limit']:g}: {shown} {verdict}")
    emit({**results, "version": info.version, "requirement_checks": checks}, as_json,
         "\n".join(lines))
    if any(c["passed"] is False for c in checks):
        # Printed in full first; the status is what a release script checks.
        click.get_current_context().exit(1)


class ProgressLine:
    """Progress on stderr: on a terminal a one-line bar redrawn about fifty times in all;
    elsewhere (a log file, a pipe) a plain line at every tenth, so a log holds no redraws."""

    WIDTH = 30

    def __init__(self, label: str) -> None:
        self.label = label
        self.redraw = sys.stderr.isatty()
        self.shown = 0  # tenths printed so far, off a terminal

    def __call__(self, done: int, total: int) -> None:
        if not self.redraw:
            tenth = 10 * done // max(total, 1)
            if tenth > self.shown:
                self.shown = tenth
                percent = 100 * done // max(total, 1)
                click.echo(f"{self.label}: {done}/{total} ({percent}%)", err=True)
            return
        if done != total and done % max(total // 50, 1):
            return
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        click.echo(f"\r{self.label} [{bar}] {done}/{total}", err=True, nl=done == total)


METRIC_COLUMNS = {
    "label": [("accuracy", "accuracy", "{:.3f}")],
    "text": [("exact_match", "exact", "{:.3f}"), ("token_edit_distance", "TED", "{:.3f}")],
    "latex": [("exact_match", "exact", "{:.3f}"), ("token_edit_distance", "TED", "{:.3f}")],
    "number": [("mae", "MAE", "{:.4g}"), ("rmse", "RMSE", "{:.4g}")],
    "json": [("exact_match", "exact", "{:.3f}")],
}

EXTRACTION = "formula-extraction"
EXTRACTION_HEADLINE = ("map", "mAP", "{:.3f}")
"""Page extraction candidates store boxes' figures (no output_type): their headline is COCO mAP."""


def format_offline(results: dict) -> str:
    """A bundle candidate's offline results as a table: overall, then one row per slice."""
    kind = results.get("output_type")
    if results.get("task") == EXTRACTION:
        from workloads.ocr.pages.offline import format_pages_table

        return format_pages_table(results)
    if kind not in METRIC_COLUMNS:  # the built-in OCR test's own figures
        from workloads.ocr.workflow import format_table

        return format_table(results)
    cols = [*METRIC_COLUMNS[kind], ("latency_p50_ms", "p50 ms", "{:.2f}"),
            ("latency_p99_ms", "p99 ms", "{:.2f}")]
    lines = [f"{'slice':<24}{'n':>6}" + "".join(f"{label:>10}" for _, label, _ in cols)]
    for name, row in [("overall", results["overall"]), *results.get("slices", {}).items()]:
        cells = "".join(f"{(fmt.format(row[k]) if row.get(k) is not None else '-'):>10}"
                        for k, _, fmt in cols)
        lines.append(f"{name:<24}{row['n']:>6}{cells}")
    if results.get("label_shares"):
        lines.append("label shares: " + _shares_line(results["label_shares"]))
    failed = results["overall"].get("failed")
    if failed:
        first = results.get("failures", [])[:3]  # imported results carry none
        lines.append(f"failed: {failed} of {results['overall']['n']} examples got no answer "
                     "(counted wrong in accuracy and exact match, as online)"
                     + (f"; first: {'; '.join(first)}" if first else ""))
    source = results.get("test_set", {})
    if source:
        lines.append(f"test set ({source.get('source')}): {source.get('path')}")
    return "\n".join(lines)


def _shares_line(shares: dict[str, float], most: int = 20) -> str:
    """The largest shares (a label list may hold thousands of classes, most at 0)."""
    shown = sorted(((-v, k) for k, v in shares.items() if v > 0))
    line = ", ".join(f"{k} {-v:.3f}" for v, k in shown[:most])
    zero = len(shares) - len(shown)
    more = max(len(shown) - most, 0)
    tail = [f"{more} more class{'es' if more != 1 else ''}"] if more else []
    if zero:
        tail.append(f"{zero} class{'es' if zero != 1 else ''} at 0")
    return line + (f" (and {', '.join(tail)})" if tail else "")


@click.group("candidates")
def candidates_group() -> None:
    """Registered candidate pipelines."""


@candidates_group.command("register")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--check-remote/--no-check-remote", default=True, show_default=True,
              help="For a [remote] candidate: ask its server whether it serves the model ready "
                   "(and declares the same inputs) before registering.")
@json_option
@pass_ctx
def register_cmd(ctx, path, check_remote, as_json) -> None:  # noqa: ANN001
    """Validate the bundle at PATH (a folder or a .tar.gz with candidate.toml) and register it."""
    from serving.bundles import register_bundle
    from serving.registry import Registry

    with open_db(ctx) as db, bundle_code_prints_to_stderr():
        info = register_bundle(Registry(db), ctx.settings.models_dir, path,
                               check_remote=check_remote)
    emit(info.to_dict(), as_json,
         f"registered {info.name} v{info.version} ({info.backend}) -> {info.artifacts}")


@candidates_group.command("retire")
@click.argument("name")
@click.option("--version", type=VERSION, default=None,
              help="One version (default: every active version).")
@json_option
@pass_ctx
def retire_cmd(ctx, name, version, as_json) -> None:  # noqa: ANN001
    """Retire candidate NAME: it takes no new experiments; its rows and files are kept."""
    from serving.bundles import retire_candidate, still_served
    from serving.registry import Registry

    with open_db(ctx) as db:
        retired = retire_candidate(Registry(db), name, version)
        served = still_served(Registry(db), retired)
    human = "\n".join(f"retired {c.name} v{c.version}" for c in retired) or \
        f"{name} has no active version{' ' + version if version else ''} to retire"
    human += "".join(f"\nnote: {u['candidate']} v{u['version']} is still served as "
                     f"{u['as']} of experiment {u['experiment_id']} ({u['name']}, "
                     f"{u['status']}) until it stops" for u in served)
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
    rows = []
    for c in items:
        overall = c.offline_results.get("overall", {})
        kind = c.offline_results.get("output_type")
        key, name, form = (EXTRACTION_HEADLINE if c.offline_results.get("task") == EXTRACTION
                           else METRIC_COLUMNS.get(kind, [("exact_match", "exact", "{:.3f}")])[0])
        value, p99 = overall.get(key), overall.get("latency_p99_ms")
        rows.append([c.name, c.version, c.backend,
                     f"{name} {form.format(value)}" if value is not None else "-",
                     f"{p99:.1f}" if p99 is not None else "-",
                     ("(retired) " if c.retired else "") + c.description])
    header = ["name", "version", "backend", "offline", "p99 ms", "description"]
    human = columns(header, rows, right={4}) if rows else "no candidates registered"
    emit([c.to_dict(shares=False) for c in items], as_json, human)


@candidates_group.command("show")
@click.argument("name")
@click.option("--version", type=VERSION, default=None,
              help="A version (default: the latest).")
@json_option
@pass_ctx
def show_cmd(ctx, name, version, as_json) -> None:  # noqa: ANN001
    """Show one candidate: pipeline, requirements and offline results by slice."""
    from serving.registry import Registry

    with open_db(ctx) as db:
        info = Registry(db).get(name, version)
    lines = [f"{info.name} v{info.version} ({info.backend})"
             + (f": {info.description}" if info.description else ""),
             f"artifacts: {info.artifacts}",
             "requirements: " + (", ".join(f"{k}={v}" for k, v in info.requirements.items())
                                 or "none")]
    if info.retired:
        lines.append(f"retired at {info.retired_at.isoformat()}")
    if info.offline_results:
        lines.append(format_offline(info.offline_results))
    else:
        lines.append(f"no offline results yet: run `abvoc offline-test {info.name}` (bundles: "
                     "with --dataset) or import them with `abvoc candidates offline-results`")
    emit(info.to_dict(), as_json, "\n".join(lines))


@candidates_group.command("offline-results")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", type=VERSION, default=None,
              help="A version (default: the latest active one).")
@json_option
@pass_ctx
def offline_results_cmd(ctx, name, file, version, as_json) -> None:  # noqa: ANN001
    """Import offline results computed elsewhere for bundle candidate NAME: a JSON FILE with, per
    slice, n and the output type's metric (label shares for a label output)."""
    from serving.bundles.offline import import_results
    from serving.registry import Registry

    with open_db(ctx) as db:
        results = import_results(Registry(db), name, file, version)
    emit(results, as_json, f"imported offline results for {name}\n" + format_offline(results))


COMMANDS = [train_cmd, offline_test_cmd, candidates_group]
