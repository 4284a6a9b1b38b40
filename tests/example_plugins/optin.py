"""A same-day check that gates treatment, so it starts disabled until an admin enables it."""
from __future__ import annotations

from core.hookspecs import hookimpl
from core.slots import Blocker, NavItem

GLIA_CONTRACT = ">=1.0,<2"
GLIA_DEFAULT_ENABLED = False


@hookimpl
def nav_items(clinic, user):
    return [NavItem("Opt-in check", "/", order=900)]


@hookimpl
def treatment_blockers(clinic, patient, treatment):
    return [Blocker("The opt-in same-day check has not been done.")]
