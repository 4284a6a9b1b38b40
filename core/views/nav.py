"""Core's own navigation, contributed through the same nav_items hook plugins use."""
from flask import current_app, url_for

from core.hookspecs import hookimpl
from core.slots import NavItem


@hookimpl
def nav_items(clinic, user):
    items = [NavItem("Today", url_for("dashboard.index"), order=0),
             NavItem("Patients", url_for("patients.index"), order=10)]
    if user.role.value in ("admin", "manager"):
        items.append(NavItem("Settings", url_for("settings.clinic"), order=800, roles=("admin", "manager")))
        if current_app.config.get("GLIA_REDIS_URL"):
            items.append(NavItem("Jobs", url_for("jobs.index"), order=790, roles=("admin", "manager")))
    if user.role.value == "admin":
        items.append(NavItem("Plugins", url_for("admin.plugins"), order=900, roles=("admin",)))
    return items
