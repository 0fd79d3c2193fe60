"""The dashboard's pages, in navigation order. Another page is a module here with a ``PAGE``,
added to :data:`PAGES` (the annotation page for annotators comes with the relabeling work)."""

from dashboards.pages import (
    divergence,
    experiments,
    inspector,
    operations,
    relabeling,
    reports,
    voc,
)
from dashboards.pages._page import Page

PAGES: tuple[Page, ...] = (experiments.PAGE, divergence.PAGE, voc.PAGE, inspector.PAGE,
                           operations.PAGE, relabeling.PAGE, reports.PAGE)

__all__ = ["PAGES", "Page"]
