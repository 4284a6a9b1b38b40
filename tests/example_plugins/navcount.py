"""Counts how often its nav_items hook is called. Beside the built-in plugins, whose panels and
widgets are rendered templates (fragments), a page that recomputed its frame per fragment shows."""
from __future__ import annotations

from core.hookspecs import hookimpl
from core.slots import NavItem

CALLS = {"nav_items": 0}


@hookimpl
def nav_items(clinic, user):
    CALLS["nav_items"] += 1
    return [NavItem("Counted", "/", order=99)]
