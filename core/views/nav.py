"""Core's own navigation, contributed through the same nav_items hook plugins use."""
from flask import url_for

from core.hookspecs import hookimpl
from core.slots import NavItem


@hookimpl
def nav_items(clinic, user):
    items = [NavItem("Dashboard", url_for("dashboard.index"), order=0)]
    if user.role.value == "admin":
        items.append(NavItem("Plugins", url_for("admin.plugins"), order=900, roles=("admin",)))
    return items
