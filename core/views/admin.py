"""Administration: which plugins each clinic runs.

Switching a safety gate (a plugin answering treatment_blockers) off goes through a confirmation
page that names what stops being checked and asks for a reason; other plugins toggle in one click.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from core.auth import clinics_of, staff
from core.db import get_session
from core.form_fields import CheckField, GliaForm, Posted, Ticked
from core.models import Clinic
from core.plugin_state import (REASON_MAX, UnknownPlugin, clean_reason, gates_off_by_clinic, is_gate, is_on,
                               reason_problem, set_enabled, states)

bp = Blueprint("admin", __name__, url_prefix="/admin")


class ToggleForm(GliaForm):
    """Switch a plugin on or off; switching a safety gate off also needs a reason and a tick."""

    enabled = CheckField("Enabled")
    reason = Posted("Reason", max_len=REASON_MAX + 1)  # control characters become spaces (clean_reason), then checked
    confirm = Ticked("Sessions will start without these checks",
                     "Tick the box to confirm that sessions will start without these checks.")


def _clinic(clinic_id: int) -> Clinic:
    """One of the clinics the admin administers, or 404."""
    clinic = next((c for c in clinics_of(current_user) if c.id == clinic_id), None)
    if clinic is None:
        abort(404)
    return clinic


@bp.get("/plugins")
@staff("admin")
def plugins():
    ext = current_app.extensions["glia"]
    clinics = clinics_of(current_user)
    db = get_session()
    state = states(db, [c.id for c in clinics])
    enabled = {(c.id, name): is_on(state.get((c.id, name)), info) for c in clinics for name, info in ext.plugins.items()}
    gates = {name for name in ext.plugins if is_gate(ext.plugins, name)}
    return render_template("admin/plugins.html", plugins=ext.plugins, blocked=ext.blocked, clinics=clinics,
                           enabled=enabled, gates=gates, gates_off=gates_off_by_clinic(db, [c.id for c in clinics]))


def _confirm_page(name: str, clinic: Clinic, *, status: int = 200, values=None, errors=None):
    info = current_app.extensions["glia"].plugins[name]
    return render_template("admin/disable_gate.html", name=name, info=info, clinic=clinic,
                           values=values or {}, errors=errors or {}, reason_max=REASON_MAX), status


@bp.get("/plugins/<name>/<int:clinic_id>/disable")
@staff("admin")
def confirm_disable(name: str, clinic_id: int):
    """The confirmation page for switching a safety gate off; changes nothing."""
    clinic = _clinic(clinic_id)
    if not is_gate(current_app.extensions["glia"].plugins, name):
        abort(404)
    return _confirm_page(name, clinic)


@bp.post("/plugins/<name>/<int:clinic_id>")
@staff("admin")
def toggle_plugin(name: str, clinic_id: int):
    clinic = _clinic(clinic_id)
    plugins = current_app.extensions["glia"].plugins
    form = ToggleForm()
    want = form.enabled.data
    reason = ""
    if not want and is_gate(plugins, name):
        ok = form.validate()
        reason = clean_reason(form.reason.data)
        if problem := reason_problem(reason):
            form.refuse("reason", problem)
            ok = False
        if not ok:
            return _confirm_page(name, clinic, status=422, values=form.values, errors=form.messages)
    try:
        set_enabled(get_session(), clinic, name, want, plugins=plugins, reason=reason)
    except UnknownPlugin:
        abort(404)
    flash(f"{name} {'enabled' if want else 'disabled'} for {clinic.name}."
          + (" Every session page there now says this safety gate is off." if reason else ""))
    return redirect(url_for("admin.plugins"))
