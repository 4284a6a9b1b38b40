"""The contraindication screening form, on the staff tablet and in the portal.

A new screening is always recorded; an answer that changes an earlier "yes" to "no" takes effect
only after a clinician reviews it (views.clinician.review).
"""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from core import audit
from core.auth import current_patient, patient_only, staff
from core.db import get_session
from core.models import Patient
from core.tablet import tablet_page
from plugins.consent import service, status
from plugins.consent.screening import record_screening
from plugins.consent.views.base import bp, patient_or_404
from plugins.consent.views.forms import screening_form


def _screen(p: Patient, *, channel: str):
    db = get_session()
    items = service.active_items(db, g.clinic)
    on_portal = channel == "portal"
    action = url_for("consent.portal_screening") if on_portal else url_for("consent.screening", patient_id=p.id)
    if request.method == "GET":
        return render_template("consent/screening.html", patient=p, items=items, errors={}, values={},
                               action=action, on_portal=on_portal)
    form = screening_form(items, on_portal=on_portal)
    if not form.validate():
        return render_template("consent/screening.html", patient=p, items=items, errors=form.messages,
                               values=form.shown, action=action, on_portal=on_portal), 422
    screening = record_screening(db, g.clinic, p, items, {c for c, a in form.answers.items() if a == "yes"},
                                 answered_by=form.who, channel=channel, user_id=current_user.id,
                                 ip=request.remote_addr or "")
    audit.record("consent.screening_recorded", object_type="screening", object_id=screening.id, patient_id=p.id)
    if on_portal:
        flash("Screening saved. Thank you.")
        return redirect(url_for("portal.home"))
    changed = [i for i in status.status_for(db, g.clinic, [p.id])[p.id].to_review
               if i.pending_no.screening_id == screening.id]
    flash("Screening saved." + (f" {len(changed)} earlier yes answer{' was' if len(changed) == 1 else 's were'} "
                                "answered no: a clinician must review the change before it takes effect."
                                if changed else " Thank you."))
    return redirect(url_for("consent.patient", patient_id=p.id))


@bp.route("/patients/<int:patient_id>/screening", methods=["GET", "POST"])
@staff()
@tablet_page  # the patient may answer it on the tablet after signing; it does not lock by itself
def screening(patient_id: int):
    return _screen(patient_or_404(patient_id), channel="tablet")


@bp.route("/portal/screening", methods=["GET", "POST"])
@patient_only
def portal_screening():
    return _screen(current_patient(), channel="portal")
