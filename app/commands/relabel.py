"""`abvoc relabel ...`: queue figures, agreement, enqueue rules, dataset export, Label Studio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app.cli import (
    EXPERIMENT_ID,
    Context,
    Folder,
    QueueName,
    check_out_folder,
    emit,
    json_error,
    json_option,
    open_db,
    pass_ctx,
)


@click.group()
def relabel() -> None:
    """The relabeling queues: figures, rules, dataset snapshots, Label Studio interchange."""


@relabel.command()
@json_option
@pass_ctx
def queues(ctx: Context, as_json: bool) -> None:
    """Items per queue and status, and the agreement between annotators."""
    from feedback.agreement import agreement
    from feedback.annotation import queue_figures

    with open_db(ctx) as db:
        out: dict[str, Any] = {**queue_figures(db), "agreement": agreement(db)}
    lines = [f"{q['queue']:<22} {q['items']:>7} items  open {q['open']}  leased {q['leased']}  "
             f"review {q['review']}  done {q['done']}  flagged {q['flagged']}"
             + (f"  without input {n} (never offered)" if (n := q["without_input"]) else "")
             for q in out["queues"]]
    a = out["agreement"]
    lines.append(f"agreement: {a['items_with_two_labels']} items with two labels, exact "
                 f"{_share(a['exact_agreement'])}, kappa {_share(a['kappa'])}")
    emit(out, as_json, "\n".join(lines))


def _share(value: float | None) -> str:
    """A share or a kappa as people read it (0.705, not 0.7049180327868853); none yet: n/a."""
    return "n/a" if value is None else f"{value:.3f}"


@relabel.command()
@click.option("--experiment", "experiment_id", type=EXPERIMENT_ID, default=None)
@click.option("--candidate", default=None)
@click.option("--set", "body", default=None, metavar="JSON",
              help='Change rules, e.g. \'{"audit_rate": 0.02, "quotas": {"training": 500}}\'.')
@json_option
@pass_ctx
def rules(ctx: Context, experiment_id: int | None, candidate: str | None, body: str | None,
          as_json: bool) -> None:
    """Show (or --set) the enqueue rules of an experiment, a candidate, or the default."""
    from core.errors import AbvocError
    from feedback import relabel_rules

    with open_db(ctx) as db:
        if body is None:
            out = relabel_rules.effective(db, experiment_id, candidate)
        else:
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise AbvocError(f"--set cannot be read as JSON: {json_error(exc)}") from None
            out = relabel_rules.put(db, parsed, experiment_id, candidate)
    emit(out, as_json, _rules_text(out))


def _rules_text(out: dict[str, Any]) -> str:
    """The rules for people: one `name: value` line each (--json gives the document)."""
    lines = [f"rules of {out.get('scope', '?')} (from {out.get('from', '?')}):"]
    here = set(out.get("set_here") or ())
    for name, value in sorted((out.get("rules") or {}).items()):
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        lines.append(f"{'*' if name in here else ' '} {name}: {value}")
    if here:
        rest = "the built-in values" if out.get("scope") == "default" else "the default"
        lines.append(f"(* set for this scope; the others follow {rest})")
    return "\n".join(lines)


@relabel.command()
@click.argument("name")
@click.option("--out", "out_dir", type=Folder(), default=None,
              help="Folder of datasets (default: <data dir>/datasets).")
@click.option("--queue", "queue_names", type=QueueName(), multiple=True,
              help="Only these queues (default: every queue).")
@click.option("--candidate", default=None, metavar="NAME",
              help="Only this candidate's items: a dataset its offline test reads whole "
                   "(default: every candidate).")
@json_option
@pass_ctx
def export(ctx: Context, name: str, out_dir: Path | None, queue_names: tuple[str, ...],
           candidate: str | None, as_json: bool) -> None:
    """Write the next version of dataset NAME from the verified labels: manifest.jsonl (the
    `abvoc offline-test CANDIDATE --dataset` format) and files/, with a content hash; stage
    queues' symbol crops (symbol_labels.tsv, crops/) and relation samples (relations.jsonl)."""
    from feedback.export import export_snapshot

    folder = out_dir or ctx.settings.data_dir / "datasets"
    with open_db(ctx) as db:
        check_out_folder(folder)
        out = export_snapshot(db, folder, name, list(queue_names) or None, candidate)
    state = "unchanged, still" if out["unchanged"] else "wrote"
    stage = (f" (+ {out['crops']} symbol crops, {out['relation_samples']} relation samples)"
             if out.get("crops") or out.get("relation_samples") else "")
    warning = f"\nwarning: {out['warning']}" if out.get("warning") else ""
    warning += f"\nwarning: {c} conflicting inputs left out" if (c := out.get("conflicts")) else ""
    emit(out, as_json, f"{state} {name} v{out['version']}: {out['examples']} examples{stage}, "
         f"content {out['content_hash'][:16]}, in {out['path']}{warning}")


@relabel.command("ls-export")
@click.argument("folder", type=Folder())
@click.option("--queue", "queue_names", type=QueueName(), multiple=True,
              help="Only these queues (default: every queue).")
@json_option
@pass_ctx
def ls_export(ctx: Context, folder: Path, queue_names: tuple[str, ...], as_json: bool) -> None:
    """Write Label Studio tasks (tasks.json and files/) into FOLDER."""
    from feedback.label_studio import export_tasks

    with open_db(ctx) as db:
        check_out_folder(folder, "FOLDER")
        out = export_tasks(db, folder, list(queue_names) or None)
    blind = (f"; {out['without_input']} item(s) still to label left out: their input is no "
             "longer kept" if out["without_input"] else "")
    emit(out, as_json, f"wrote {out['tasks']} tasks to {out['path']}{blind}")


@relabel.command("ls-import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tasks", "tasks_file", default="tasks.json", show_default=True,
              help="The tasks file, inside FOLDER.")
@click.option("--queue", type=QueueName(), default="training", show_default=True,
              help="Queue of new items (tasks without abvoc_item_id; not offline-test).")
@click.option("--candidate", default=None, help="Output type of new items' labels.")
@json_option
@pass_ctx
def ls_import(ctx: Context, folder: Path, tasks_file: str, queue: str, candidate: str | None,
              as_json: bool) -> None:
    """Read Label Studio annotations from FOLDER as labels (paths confined to FOLDER)."""
    from evaluation.relabel_enqueue import route_label
    from feedback.label_studio import import_tasks, summary

    with open_db(ctx) as db:
        out = import_tasks(db, folder, tasks_file, queue=queue, candidate=candidate,
                           on_done=route_label)
    emit(out, as_json, summary(out))


COMMANDS = [relabel]
