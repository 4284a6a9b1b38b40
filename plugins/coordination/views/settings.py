"""The clinic's letter settings: permission rule, induction length and its own wording per kind."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from core.auth import staff
from core.db import get_session
from core.plugin_state import save_settings, settings_for
from plugins.coordination import compose, wording
from plugins.coordination.views import SETTINGS, bp
from plugins.coordination.views.forms import settings_form


@bp.route("/settings", methods=["GET", "POST"])
@staff(*SETTINGS)
def settings():
    session = get_session()
    values = settings_for(session, g.clinic, "coordination")
    shipped = compose.shipped_kinds()
    if request.method == "GET":
        return render_template("coordination/settings.html", values=values, kinds=compose.kinds(values),
                               shipped=shipped, error="")
    form = settings_form(shipped)
    try:
        induction = int(form.induction_sessions.data)
        esketamine = int(form.esketamine_induction_sessions.data
                         or values.get("esketamine_induction_sessions") or wording.ESKETAMINE_INDUCTION)
        if not (1 <= induction <= 30 and 1 <= esketamine <= 30):
            raise ValueError
    except ValueError:
        return render_template("coordination/settings.html", values=values, kinds=compose.kinds(values),
                               shipped=shipped, error="Sessions in an induction series: a whole number from 1 to 30."), 422
    save_settings(session, g.clinic, "coordination", {
        "require_patient_permission": form.require_patient_permission.data,
        "induction_sessions": induction, "esketamine_induction_sessions": esketamine,
        "letter_overrides": form.wording()})
    flash("Letter settings saved.")
    return redirect(url_for("coordination.settings"))
