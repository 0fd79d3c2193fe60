"""What a page of the dashboard declares: where it lives, who may see it, how it is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dash import Dash
from dash.development.base_component import Component


@dataclass(frozen=True)
class Page:
    """A page: ``path`` under ``/dashboard/`` (``""`` is the home page), the ``roles`` that may
    see it, its ``layout`` (built per visit) and ``register``, which adds its callbacks to one
    Dash app.

    Pages are declared here rather than with ``dash.register_page``/``dash.callback``: those
    fill process-wide registries that the first Dash app consumes, while abvoc builds one app
    per ``create_app`` call (tests build many in one process).
    """

    path: str
    title: str
    roles: frozenset[str]
    layout: Callable[[], Component]
    register: Callable[[Dash], None]
