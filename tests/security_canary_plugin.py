"""A test-only plugin whose routes and hooks fail while holding patient data.

It proves that exception text (which may carry a name or date of birth) never reaches the
logs or the error page, and gives the route tests a plugin route that always exists.
"""
from flask import Blueprint

from core.auth import staff
from core.db import get_session
from core.hookspecs import hookimpl
from core.models import Patient
from core.pdf import html_to_pdf, pdf_response

bp = Blueprint("canary", __name__, url_prefix="/canary")


@bp.get("/ping")
@staff()
def ping():
    return "pong"


@bp.get("/document")
@staff()
def document():
    """A document response, to check headers on PDFs whatever the built-in plugins serve."""
    return pdf_response(html_to_pdf("<p>Test document</p>"), "test.pdf")


@bp.get("/boom/<int:patient_id>")
@staff()
def boom(patient_id):
    patient = get_session().get(Patient, patient_id)
    raise RuntimeError(f"could not draw the chart of {patient.legal_name}, born {patient.dob}")


@bp.get("/duplicate/<int:patient_id>")
@staff()
def duplicate(patient_id):
    """An INSERT that violates the (clinic, MRN) key: its parameters are PHI."""
    session = get_session()
    patient = session.get(Patient, patient_id)
    session.add(Patient(clinic_id=patient.clinic_id, mrn=patient.mrn, legal_first_name=patient.legal_first_name,
                        legal_last_name=patient.legal_last_name, dob=patient.dob))
    session.flush()
    return "unreachable"


@hookimpl
def register_blueprints(app):
    app.register_blueprint(bp)


@hookimpl
def patient_chart_panels(clinic, patient, user):
    raise ValueError(f"panel failed for {patient.legal_name} ({patient.dob})")
