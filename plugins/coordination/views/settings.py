"""The clinic's letter settings: permission rule, induction length and its own wording per kind."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from core.auth import staff
from core.db import get_session
from core.plugin_state import save_settings, settings_for
from core.validators import clean_text
from plugins.coordination import compose, wording
from plugins.coordination.views import SETTINGS, bp


@bp.route("/settings", methods=["GET", "POST"])
@staff(*SETTINGS)
def settings():
    session = get_session()
    values = settings_for(session, g.clinic, "coordination")
    shipped = compose.shipped_kinds()
    if request.method == "GET":
        return render_template("coordination/settings.html", values=values, kinds=compose.kinds(values),
                               shipped=shipped, error="")
    try:
        induction = int(request.form.get("induction_sessions", ""))
        esketamine = int(request.form.get("esketamine_induction_sessions", "").strip()
                         or values.get("esketamine_induction_sessions") or wording.ESKETAMINE_INDUCTION)
        if not (1 <= induction <= 30 and 1 <= esketamine <= 30):
            raise ValueError
    except ValueError:
        return render_template("coordination/settings.html", values=values, kinds=compose.kinds(values),
                               shipped=shipped, error="Sessions in an induction series: a whole number from 1 to 30."), 422
    overrides = {}
    for kind, spec in shipped.items():
        texts = {part: clean_text(request.form.get(f"{kind}.{part}", ""))[:compose.FIELD_LIMIT]
                 for part in wording.EDITABLE}
        texts = {part: text for part, text in texts.items() if text and text != spec.get(part, "")}
        if texts:
            overrides[kind] = texts
    save_settings(session, g.clinic, "coordination", {
        "require_patient_permission": request.form.get("require_patient_permission") == "1",
        "induction_sessions": induction, "esketamine_induction_sessions": esketamine, "letter_overrides": overrides})
    flash("Letter settings saved.")
    return redirect(url_for("coordination.settings"))
