"""Outcome pages: a patient's report (preview, sign, download) and the clinic's outcome figures.

Clinical roles only: the report holds diagnoses, doses and scores. Signing also needs a provider
record (the payer reads the signer's NPI); a manager without one may preview but not sign.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit
from core.auth import clinic_row_or_404, staff
from core.db import get_session
from core.models import Patient, User
from core.outcomes import clinic as clinic_figures
from core.outcomes.forms import SignForm
from core.outcomes.measures import BASELINE_WINDOW, INDUCTION_SESSIONS
from core.outcomes.models import OutcomeReport
from core.outcomes.report import PURPOSES, ReportProblem, compose, sign, signer_provider

bp = Blueprint("outcomes", __name__)
CLINICAL = ("admin", "manager", "clinician")


def _page(patient: Patient, form: SignForm, status: int = 200, problem: str = ""):
    db = get_session()
    reports = db.exec(select(OutcomeReport.id, OutcomeReport.purpose, OutcomeReport.signed_at, OutcomeReport.summary,
                             User.name).join(User, User.id == OutcomeReport.signed_by_id)
                      .where(OutcomeReport.clinic_id == g.clinic.id, OutcomeReport.patient_id == patient.id)
                      .order_by(OutcomeReport.signed_at.desc())).all()
    return render_template("outcomes/report.html", clinic=g.clinic, **compose(db, g.clinic, patient), form=form,
                           purposes=PURPOSES, reports=reports, problem=problem,
                           can_sign=signer_provider(db, g.clinic, current_user) is not None,
                           signer=None, purpose="", statement=""), status


@bp.get("/patients/<int:patient_id>/outcomes")
@staff(*CLINICAL)
def report(patient_id: int):
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="patient.access")
    audit.record("outcome_report.preview", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return _page(patient, SignForm(formdata=None, purpose="re_authorization"))


@bp.post("/patients/<int:patient_id>/outcomes")
@staff(*CLINICAL)
def sign_report(patient_id: int):
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="patient.access")
    form = SignForm()
    if not form.validate():
        return _page(patient, form, 422)
    try:
        signed = sign(get_session(), g.clinic, patient, current_user, purpose=form.purpose.data,
                      statement=form.statement.data or "")
    except ReportProblem as problem:
        return _page(patient, form, 422, problem=str(problem))
    flash("Outcome report signed. It is kept exactly as signed.")
    return redirect(url_for("outcomes.report", patient_id=patient.id, _anchor=f"report-{signed.id}"))


@bp.get("/outcomes/reports/<int:report_id>.pdf")
@staff(*CLINICAL)
def download(report_id: int):
    doc = clinic_row_or_404(OutcomeReport, report_id, object_type="outcome_report", action="outcome_report.access")
    audit.record("outcome_report.download", object_type="outcome_report", object_id=doc.id, patient_id=doc.patient_id)
    return doc.pdf, 200, {"Content-Type": "application/pdf", "Cache-Control": "no-store",
                          "Content-Disposition": f'inline; filename="outcome-report-{doc.id}.pdf"'}


@bp.get("/outcomes")
@staff(*CLINICAL)
def clinic_page():
    figures = clinic_figures.figures(get_session(), g.clinic.id)
    audit.record("outcomes.clinic_view", object_type="clinic", object_id=g.clinic.id)
    return render_template("outcomes/clinic.html", figures=figures, window_days=BASELINE_WINDOW.days,
                           induction=INDUCTION_SESSIONS)
