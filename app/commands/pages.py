"""Commands for formula extraction from pages: build and register the extraction candidates,
test them offline by slice, and cut scanned pages into a single-formula dataset."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli import (
    EPOCHS,
    SEED,
    VERSION,
    Finite,
    Folder,
    check_out_folder,
    check_store,
    emit,
    json_option,
    pass_ctx,
    progress_to,
)


@click.group("pages")
def pages_group() -> None:
    """Formula extraction: worksheet pages cut into single formulas."""


MAX_PAGES = 2_000
"""The most pages a command generates: each (720x1000 pixels and up) is held in memory, so a
mistyped 10^9 ran on in silence towards running out of memory instead of being refused."""


@pages_group.command("train")
@click.option("--n-train", type=click.IntRange(min=4, max=MAX_PAGES), default=None,
              help="Training pages (default 96).")
@click.option("--n-validation", type=click.IntRange(min=2, max=MAX_PAGES), default=None,
              help="Validation pages for tuning (default 24).")
@click.option("--epochs", type=EPOCHS, default=None,
              help="Map network epochs (default 20).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Dataset and training seed.")
@json_option
@pass_ctx
def train_cmd(ctx, n_train, n_validation, epochs, seed, as_json) -> None:  # noqa: ANN001
    """Tune pages-xycut and train pages-fcn on generated pages, and register both bundles."""
    from workloads.ocr.bundle import registration_note
    from workloads.ocr.pages.bundle import DEFAULTS
    from workloads.ocr.pages.workflow import train_and_register_extractors

    check_store(ctx)
    out = train_and_register_extractors(
        ctx.settings, n_train or DEFAULTS["n_train"], n_validation or DEFAULTS["n_validation"],
        epochs or DEFAULTS["epochs"], seed, progress_to(as_json))
    emit(out, as_json, "\n".join(
        registration_note(o["name"], o["version"], o["registration"])
        or f"registered {o['name']} v{o['version']} -> {o['artifacts']}" for o in out))


@pages_group.command("offline-test")
@click.argument("candidate")
@click.option("--n", "n_pages", type=click.IntRange(min=2, max=MAX_PAGES), default=None,
              help="Offline-test pages (default 48).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Test-set seed.")
@click.option("--ocr", default=None, help="An OCR candidate for the end-to-end figure "
                                          "(e.g. ocr-small-mixed).")
@click.option("--backend", type=click.Choice(["torch", "onnxruntime", "tensorrt"]),
              default=None, help="Run the networks here (default: the bundle's backend).")
@json_option
@pass_ctx
def offline_test_cmd(ctx, candidate, n_pages, seed, ocr, backend,  # noqa: ANN001
                     as_json) -> None:
    """Test extraction CANDIDATE on generated offline-test pages; store the results by slice."""
    from workloads.ocr.pages.offline import DEFAULT_PAGES, format_pages_table
    from workloads.ocr.pages.workflow import offline_test_pages_and_store

    results = offline_test_pages_and_store(ctx.settings, candidate, n_pages or DEFAULT_PAGES,
                                           seed, ocr, backend,
                                           progress_to(as_json))
    emit(results, as_json, format_pages_table(results))


@click.group("dataset")
def dataset_group() -> None:
    """Datasets made from real material."""


@dataset_group.command("split-pages")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=Folder(), required=True,
              help="A new folder for the formula images and manifest.jsonl.")
@click.option("--candidate", default="pages-xycut", show_default=True,
              help="The registered extraction candidate.")
@click.option("--version", type=VERSION, default=None,
              help="Its version (default: the latest active one).")
@click.option("--min-score", type=Finite(0, 1), default=0.0, show_default=True,
              help="Drop boxes scored below this.")
@json_option
@pass_ctx
def split_pages_cmd(ctx, folder, out, candidate, version, min_score,  # noqa: ANN001
                    as_json) -> None:
    """Cut the PNG/JPEG pages in FOLDER into single-formula images with a JSONL manifest,
    unlabeled (each label null): fill the labels in before an offline test reads it."""
    from workloads.ocr.pages.workflow import split_pages_with

    def progress(done: int, total: int, what: str) -> None:
        if not as_json:
            click.echo(f"[{done}/{total}] {what}", err=True)

    check_out_folder(out)
    summary = split_pages_with(ctx.settings, folder, out, candidate, version, min_score,
                               progress)
    skipped = "".join(f"\nskipped {s['file']}: {s['reason']}" for s in summary.skipped)
    emit(summary.as_dict(), as_json,
         f"{summary.formulas} formulas from {summary.pages} pages -> {summary.out}"
         f"/manifest.jsonl (unlabeled: fill in each line's \"label\" before `abvoc "
         f"offline-test CANDIDATE --dataset {summary.out}/manifest.jsonl`){skipped}")


COMMANDS = [pages_group, dataset_group]
