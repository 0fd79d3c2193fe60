"""The weekly report as one self-contained HTML page (plots inline) and as a PDF that headless
Chromium prints from it, so the two always show the same thing."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from core.errors import AbvocError
from dashboards.report import plots
from dashboards.report.template import TEMPLATE

_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
PDF_TIMEOUT_S = 120


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _experiment_plots(e: dict[str, Any]) -> tuple[str, str, str]:
    names = list(e["figures"])
    rates = [e["figures"][v]["correction_rate"] or 0.0 for v in names]
    cis = [e["figures"][v].get("correction_rate_ci") or [None, None] for v in names]
    results = plots.bars(names, rates, "correction rate this week (95% Wilson interval)",
                         low=[c[0] for c in cis], high=[c[1] for c in cis],
                         ylabel="correction rate")
    rows = [r for r in e["divergence_slices"] if r["offline"]["exact_match"] is not None
            or r["online"]["n"]][:12]
    divergence = plots.offline_online(rows, "offline vs online accuracy (online: 95% Wilson)")
    trend = [t for t in e["trends"] if t["metric"] == "correction_rate"]
    trends = plots.grouped([t["variant"] for t in trend],
                           {"previous week": [t["previous"] or 0.0 for t in trend],
                            "this week": [t["current"] or 0.0 for t in trend]},
                           "correction rate, week over week",
                           ylabel="correction rate")
    return results, divergence, trends


def build_plots(data: dict[str, Any]) -> dict[str, Any]:
    """Every plot of the report, keyed as the template reads them."""
    out: dict[str, Any] = {"results": {}, "divergence": {}, "trends": {}}
    for e in data["experiments"]:
        out["results"][e["id"]], out["divergence"][e["id"]], out["trends"][e["id"]] = \
            _experiment_plots(e)
    voc, relabel = data["voc"], data["relabel"]
    out["voc_candidate"] = plots.bars(list(voc["by_candidate"]), list(voc["by_candidate"].values()),
                                      "corrections by candidate", ylabel="corrections")
    out["voc_slice"] = plots.bars(list(voc["by_slice"]), list(voc["by_slice"].values()),
                                  "corrections by slice", ylabel="corrections")
    days = relabel["days"]
    out["relabel"] = plots.grouped([d["day"][5:] for d in days],
                                   {"queued": [d["queued"] for d in days],
                                    "labeled": [d["labeled"] for d in days]},
                                   "relabel items per day", ylabel="items")
    return out


def render_html(data: dict[str, Any]) -> str:
    """The report's HTML for :func:`evaluation.weekly.weekly_data`'s output."""
    return _ENV.from_string(TEMPLATE).render(d=data, plots=build_plots(data), num=_num,
                                             pct=_pct)


def find_chromium() -> str:
    """The browser that prints the PDF: ``ABVOC_CHROMIUM`` or the first one on the PATH."""
    chosen = os.environ.get("ABVOC_CHROMIUM")
    for name in ((chosen,) if chosen else CHROMIUM_CANDIDATES):
        path = shutil.which(name)
        if path:
            return path
    raise AbvocError("no Chromium to print the report's PDF: run scripts/install-browser.sh or "
                     "set ABVOC_CHROMIUM to a Chromium or Chrome binary", status=503)


def html_to_pdf(html_file: Path, pdf_file: Path) -> None:
    """Print ``html_file`` to ``pdf_file`` with headless Chromium (a throw-away profile)."""
    with tempfile.TemporaryDirectory(prefix="abvoc-chromium-") as profile:
        tmp = pdf_file.with_suffix(".pdf.part")
        command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                   "--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                   html_file.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PDF_TIMEOUT_S,
                              check=False)
        if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            raise AbvocError(f"Chromium could not print the report (exit {done.returncode}): "
                             f"{done.stderr.strip()[-300:]}", status=500)
        tmp.replace(pdf_file)
