"""Core's own navigation, contributed through the same nav_items hook plugins use."""
from flask import url_for

from core.hookspecs import hookimpl
from core.slots import NavItem


@hookimpl
def nav_items(clinic, user):
    items = [NavItem("Today", url_for("dashboard.index"), order=0),
             NavItem("Patients", url_for("patients.index"), order=10)]
    if user.role.value in ("admin", "manager"):
        # Plugins, Jobs and the calendar settings are reached from the Settings page's own menu: the top menu stays on one line
        items.append(NavItem("Settings", url_for("settings.clinic"), order=800, roles=("admin", "manager")))
    return items
