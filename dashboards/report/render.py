"""The weekly report as one self-contained HTML page (plots inline) and as a PDF that headless
Chromium prints from it, so the two always show the same thing."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from core.errors import AbvocError
from dashboards.report import plots
from dashboards.report.labels import TOP, top_with_rest
from dashboards.report.template import TEMPLATE
from dashboards.tables import answer_text, truth_note, verdict_text

_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
PDF_TIMEOUT_S = 120
ALL = "all"
SLICES_PER_CANDIDATE = 4  # beside `all`, in the offline-vs-online charts
CANDIDATES = 10


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}"


def _interval(low: float | None, high: float | None) -> str:
    """An interval's ends, or "no interval" where the comparison has none ("– to –")."""
    if low is None or high is None:
        return "no interval"
    return f"{_num(low)} to {_num(high)}"


def _count(n: int, noun: str) -> str:
    """``1 item``, ``18 items``: the report's counts read as sentences, not ``item(s)``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def number_candidates(slices: list[dict[str, Any]]) -> set[tuple[str, Any]]:
    """The candidate versions of a divergence report that answer numbers: an MAE on any of
    their rows, offline or online. Their rows show MAE, never accuracy (an exact match means
    nothing for numbers), even in a slice with no MAE of its own."""
    return {(r["candidate"], r.get("version")) for r in slices
            if r["offline"].get("mae") is not None or r["online"].get("mae") is not None}


def divergence_rows(slices: list[dict[str, Any]], per_candidate: int = SLICES_PER_CANDIDATE,
                    candidates: int = CANDIDATES) -> tuple[list[dict[str, Any]],
                                                           list[dict[str, Any]]]:
    """The rows the offline-vs-online charts draw: accuracy rows and MAE rows (number
    candidates). Every candidate (up to ``candidates``) gets its ``all`` row and its
    ``per_candidate`` busiest other slices: a thousand one-answer slices of the first candidate
    must not crowd the others out, and a gap on one answer says nothing."""
    by_ref: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for r in slices:
        by_ref.setdefault((r["candidate"], r.get("version")), []).append(r)
    accuracy: list[dict[str, Any]] = []
    mae: list[dict[str, Any]] = []
    numbers = number_candidates(slices)
    for ref, rows in list(by_ref.items())[:candidates]:
        number = ref in numbers
        shown = [r for r in rows if (r["offline"].get("mae") is not None
                                     or r["online"].get("mae") is not None) if number] \
            or [r for r in rows if not number
                and (r["offline"]["exact_match"] is not None or r["online"]["n"])]
        overall = [r for r in shown if r["slice"] == ALL]
        busiest = sorted((r for r in shown if r["slice"] != ALL),
                         key=lambda r: (-(r["online"]["n"] or 0), r["slice"]))[:per_candidate]
        (mae if number else accuracy).extend(overall + busiest)
    return accuracy, mae


def _primary_title(e: dict[str, Any]) -> str:
    return f"primary metric {e['primary_metric']} this week (95% {e['primary_interval']})"


def primary_notes(e: dict[str, Any]) -> list[str]:
    """What the primary chart cannot show by itself: the variants it has no bar for, and why,
    and what a truth-based metric is taken over (an empty chart, or one bar, said nothing)."""
    metric, notes = e["primary_metric"], []
    absent = [v for v, f in e["primary"].items() if f["value"] is None]
    idle = [v for v in absent if not (e["figures"].get(v) or {}).get("predictions")]
    if idle:
        notes.append(f"No bar for {', '.join(idle)}: no predictions this week.")
    if rest := [v for v in absent if v not in idle]:
        notes.append(f"No bar for {', '.join(rest)}: no {metric} this week (it needs "
                     + ("outcomes reported for its units" if metric in e["outcome_metrics"]
                        else "predictions with a known truth: a correction or a label") + ").")
    if note := truth_note({metric}):
        notes.append(note)
    return notes


def _experiment_plots(e: dict[str, Any]) -> tuple[str | None, list[str], str | None]:
    """The experiment's charts: primary metric, offline vs online, week over week; None (an
    empty list) where there is nothing to draw, which the template says in a sentence."""
    metric = e["primary_metric"]
    shown = {v: f for v, f in e["primary"].items() if f["value"] is not None}
    results = plots.bars(list(shown), [f["value"] for f in shown.values()], _primary_title(e),
                         low=[f["low"] for f in shown.values()],
                         high=[f["high"] for f in shown.values()], ylabel=metric) \
        if shown else None
    accuracy, mae = divergence_rows(e["divergence_slices"])
    divergence = [plots.offline_online(accuracy, "offline vs online accuracy, each candidate's "
                                       "busiest slices (online: 95% Wilson)")] \
        if accuracy else []
    if mae:
        divergence.append(plots.offline_online_mae(
            mae, "offline vs online MAE, each candidate's busiest slices (online: 95% interval)"))
    trend = [t for t in e["trends"] if t["metric"] == metric and
             (t["previous"] is not None or t["current"] is not None)]
    trends = plots.grouped([t["variant"] for t in trend],
                           {"previous week": [t["previous"] or 0.0 for t in trend],
                            "this week": [t["current"] or 0.0 for t in trend]},
                           f"{metric}, week over week", ylabel=metric) if trend else None
    return results, divergence, trends


def build_plots(data: dict[str, Any]) -> dict[str, Any]:
    """Every plot of the report, keyed as the template reads them; None for a chart with
    nothing to draw: a page of empty axes saying "no data" told less than one sentence."""
    out: dict[str, Any] = {"results": {}, "divergence": {}, "trends": {}, "notes": {},
                           "stages": {}}
    for e in data["experiments"]:
        out["notes"][e["id"]] = primary_notes(e)
        out["stages"][e["id"]] = plots.stage_shares(
            e["stages"], "wrong answers this week by the stage blamed") \
            if e.get("stages") else None
        out["results"][e["id"]], out["divergence"][e["id"]], out["trends"][e["id"]] = \
            _experiment_plots(e)
    voc, relabel = data["voc"], data["relabel"]
    out["voc_candidate"] = plots.bars(*top_with_rest(voc["by_candidate"], what="candidates"),
                                      "corrections by candidate", ylabel="corrections") \
        if voc["by_candidate"] else None
    out["voc_slice"] = plots.bars(*top_with_rest(voc["by_slice"], what="slices"),
                                  f"corrections by slice (the {TOP} with the most)"
                                  if len(voc["by_slice"]) > TOP else "corrections by slice",
                                  ylabel="corrections") if voc["by_slice"] else None
    days = relabel["days"]
    out["relabel"] = plots.grouped([d["day"][5:] for d in days],
                                   {"queued": [d["queued"] for d in days],
                                    "labeled": [d["labeled"] for d in days]},
                                   "relabel items per day", ylabel="items") \
        if any(d["queued"] or d["labeled"] for d in days) else None
    return out


def _brief(empty: bool) -> Markup:
    """A section's class where it has nothing to show: it then starts no page of its own."""
    return Markup(' class="brief"' if empty else "")


def render_html(data: dict[str, Any]) -> str:
    """The report's HTML for :func:`evaluation.weekly.weekly_data`'s output."""
    return _ENV.from_string(TEMPLATE).render(d=data, plots=build_plots(data), num=_num,
                                             pct=_pct, count=_count, answer=answer_text,
                                             interval=_interval, verdict=verdict_text,
                                             brief=_brief)


def find_chromium() -> str:
    """The browser that prints the PDF: ``ABVOC_CHROMIUM`` or the first one on the PATH."""
    chosen = os.environ.get("ABVOC_CHROMIUM")
    for name in ((chosen,) if chosen else CHROMIUM_CANDIDATES):
        path = shutil.which(name)
        if path:
            return path
    raise AbvocError("no Chromium to print the report's PDF: run scripts/install-browser.sh or "
                     "set ABVOC_CHROMIUM to a Chromium or Chrome binary", status=503)


def _run_chromium(command: list[str], tmp: Path) -> tuple[int, str]:
    """Chromium's exit status and its stderr. It runs in a process group of its own: one that
    hangs is killed after PDF_TIMEOUT_S with the renderers it started (killing the browser
    alone left them running), and a hang or a binary that cannot run is an AbvocError, not a
    traceback (the CLI printed one; the Reports page's button answered 500)."""
    try:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)
    except OSError as exc:
        raise AbvocError(f"Chromium {command[0]} cannot run ({exc.strerror or exc}): run "
                         "scripts/install-browser.sh or set ABVOC_CHROMIUM to a Chromium or "
                         "Chrome binary", status=503) from None
    with proc:
        try:
            _, stderr = proc.communicate(timeout=PDF_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # the group ended meanwhile
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()  # not communicate: a child outside the group may hold the pipe open
            tmp.unlink(missing_ok=True)
            raise AbvocError(f"Chromium did not print the report within {PDF_TIMEOUT_S} s and "
                             "was stopped", status=500) from None
    return proc.returncode, stderr or ""


def html_to_pdf(html_file: Path, pdf_file: Path) -> None:
    """Print ``html_file`` to ``pdf_file`` with headless Chromium (a throw-away profile)."""
    with tempfile.TemporaryDirectory(prefix="abvoc-chromium-") as profile:
        tmp = pdf_file.with_suffix(f".pdf.{os.getpid()}-{threading.get_ident()}.part")
        command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                   "--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                   html_file.resolve().as_uri()]
        code, stderr = _run_chromium(command, tmp)
        if code != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            raise AbvocError(f"Chromium could not print the report (exit {code}): "
                             f"{' '.join(stderr.split())[-300:]}", status=500)
        tmp.replace(pdf_file)
