"""The dashboard's pages, in navigation order. Another page is a module here with a ``PAGE``,
added to :data:`PAGES` (the annotation page for annotators comes with the relabeling work)."""

from dashboards.pages import experiments, reports
from dashboards.pages._page import Page

PAGES: tuple[Page, ...] = (experiments.PAGE, reports.PAGE)

__all__ = ["PAGES", "Page"]
