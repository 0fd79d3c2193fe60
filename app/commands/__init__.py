"""Every `abvoc` subcommand, by the module that holds it.

A command's module is imported when that command runs (or `--help` lists it), so `abvoc worker`
and `abvoc relay`, which `abvoc up` restarts when they fail, start without loading torch or the
dashboards for commands they never run."""

from __future__ import annotations

import importlib

import click

MODULES = {
    "config": "system", "db": "system", "serve": "system", "worker": "system",
    "relay": "system", "up": "system",
    "train": "models", "offline-test": "models", "candidates": "models",
    "experiment": "experiments", "keys": "experiments",
    "metrics": "metrics",
    "capacity": "capacity",
    "workloads": "workloads", "simulate": "workloads",
    "dashboard": "dashboard", "report": "dashboard",
    "demo": "demo",
    "pages": "pages", "dataset": "pages",
    "relabel": "relabel",
    "events": "events",
}
"""Command name → module under app.commands whose ``COMMANDS`` list holds it."""


def load(name: str) -> click.Command | None:
    """The command called `name`, its module imported now; None for an unknown name."""
    if name not in MODULES:
        return None
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    return next(c for c in module.COMMANDS if c.name == name)
