"""The staff home page."""
from __future__ import annotations

from flask import Blueprint, g, render_template
from flask_login import current_user

from core import hooks
from core.auth import staff
from core.slots import Widget

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@staff()
def index():
    clinic = g.clinic
    widgets, errors = hooks.relay(clinic).collect("dashboard_widgets", expect=Widget, clinic=clinic, user=current_user)
    return render_template("dashboard.html", widgets=hooks.ordered(widgets), plugin_errors=errors)
