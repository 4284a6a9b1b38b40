"""GET /fhir/patients/<id>/bundle.json: the export download, clinical roles only, audited."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, g, request

from core import audit
from core.auth import clinic_row_or_404, staff
from core.db import get_session
from core.models import Patient, utcnow
from plugins.fhir import EXPORT_ROLES
from plugins.fhir.bundle import build

bp = Blueprint("fhir", __name__, url_prefix="/fhir", template_folder=str(Path(__file__).parent / "templates"))


@bp.get("/patients/<int:patient_id>/bundle.json")
@staff(*EXPORT_ROLES)
def bundle(patient_id: int):
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="fhir.not_found")
    result = build(get_session(), g.clinic, patient, base_url=request.host_url, now=utcnow())
    audit.record("fhir.export", object_type="patient", object_id=patient.id, patient_id=patient.id)
    body = result.model_dump_json(exclude_none=True)
    return Response(body, mimetype="application/fhir+json", headers={
        "Content-Disposition": f'attachment; filename="patient-{patient.id}-fhir.json"',
        "Cache-Control": "no-store"})

