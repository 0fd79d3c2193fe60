"""The dashboard's pages, in navigation order; the first (Annotate) is what `/dashboard/` opens.
Another page is a module here with a ``PAGE``, added to :data:`PAGES`."""

from dashboards.pages import (
    annotate,
    divergence,
    experiments,
    inspector,
    operations,
    relabeling,
    reports,
    voc,
)
from dashboards.pages._page import Page

PAGES: tuple[Page, ...] = (annotate.PAGE, experiments.PAGE, divergence.PAGE, voc.PAGE,
                           inspector.PAGE, operations.PAGE, relabeling.PAGE, reports.PAGE)

__all__ = ["PAGES", "Page"]
