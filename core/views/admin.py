"""Administration: which plugins each clinic runs."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from core.auth import clinics_of, staff
from core.db import get_session
from core.plugin_state import UnknownPlugin, set_enabled, states

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/plugins")
@staff("admin")
def plugins():
    ext = current_app.extensions["glia"]
    clinics = clinics_of(current_user)
    state = states(get_session(), [c.id for c in clinics])
    enabled = {(c.id, name): state.get((c.id, name)).enabled if (c.id, name) in state else True
               for c in clinics for name in ext.plugins}
    return render_template("admin/plugins.html", plugins=ext.plugins, blocked=ext.blocked,
                           clinics=clinics, enabled=enabled)


@bp.post("/plugins/<name>/<int:clinic_id>")
@staff("admin")
def toggle_plugin(name: str, clinic_id: int):
    clinic = next((c for c in clinics_of(current_user) if c.id == clinic_id), None)
    if clinic is None:
        abort(404)
    want = request.form.get("enabled") == "1"
    try:
        set_enabled(get_session(), clinic, name, want, plugins=current_app.extensions["glia"].plugins)
    except UnknownPlugin:
        abort(404)
    flash(f"{name} {'enabled' if want else 'disabled'} for {clinic.name}.")
    return redirect(url_for("admin.plugins"))
