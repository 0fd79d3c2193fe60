"""The dashboard's pages, in navigation order; the first is the home page. Another page is a
module here with a ``PAGE``, added to :data:`PAGES`."""

from dashboards.pages import annotate, experiments
from dashboards.pages._page import Page

PAGES: tuple[Page, ...] = (annotate.PAGE, experiments.PAGE)

__all__ = ["PAGES", "Page"]
