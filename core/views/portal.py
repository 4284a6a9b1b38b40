"""The patient portal: a patient sees only their own items."""
from __future__ import annotations

from flask import Blueprint, g, render_template

from core import audit, hooks
from core.auth import current_patient, patient_only
from core.slots import PortalItem

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("/")
@patient_only
def home():
    patient = current_patient()
    items, errors = hooks.relay(g.clinic).collect("portal_items", expect=PortalItem, clinic=g.clinic, patient=patient)
    audit.record("portal.view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("portal/home.html", patient=patient, items=hooks.ordered(items), plugin_errors=errors)
