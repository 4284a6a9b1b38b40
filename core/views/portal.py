"""The patient portal: a patient sees only their own items."""
from __future__ import annotations

from flask import Blueprint, g, render_template
from sqlmodel import select

from core import audit, hooks
from core.auth import current_patient, patient_only
from core.db import get_session
from core.models import SessionStatus, TreatmentSession, utcnow
from core.slots import PortalItem

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("/")
@patient_only
def home():
    patient = current_patient()
    items, errors = hooks.relay(g.clinic).collect("portal_items", expect=PortalItem, clinic=g.clinic, patient=patient)
    next_visit = get_session().exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == g.clinic.id, TreatmentSession.patient_id == patient.id,
        TreatmentSession.status.in_([SessionStatus.scheduled, SessionStatus.checked_in]),
        TreatmentSession.scheduled_at >= utcnow()).order_by(TreatmentSession.scheduled_at)).first()
    audit.record("portal.view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("portal/home.html", patient=patient, items=hooks.ordered(items), plugin_errors=errors,
                           next_visit=next_visit)
