"""Spravato REMS pages: the clinic's monitoring forms, one form's review and downloads, and
a patient's enrollment.

Clinical roles only (the forms carry medications and adverse events); front desk gets 403
from the route declarations. Every id is looked up within the current clinic, a miss is a
404 with a denied-access audit row, and every read or download is audited. File names carry
ids, never names.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit, workflow
from core.auth import clinic_row_or_404, staff
from core.db import get_session
from core.form_fields import GliaForm, Posted, TextField
from core.models import Modality, Patient, SessionStatus, TreatmentSession
from core.pdf import pdf_response
from core.rems import CLINICAL_ROLES, enrollment, monitoring
from core.rems.models import RemsMonitoringForm

bp = Blueprint("rems", __name__, url_prefix="/rems")
SUBMIT_ROLES = ("admin", "manager", "clinician")  # whoever sends the form to the REMS; not front desk


class SubmitForm(GliaForm):
    """Marking a form submitted: the REMS's reference, and the fingerprint of the answers as shown."""

    reference = TextField("REMS confirmation or reference", max_len=100)
    fingerprint = Posted(max_len=200)


def _treatment(treatment_id: int) -> tuple[TreatmentSession, Patient]:
    """A discharged esketamine session of this clinic (the only kind with a form), and its patient."""
    t = clinic_row_or_404(TreatmentSession, treatment_id, object_type="treatment_session", action="rems.access",
                          modality=Modality.esketamine_nasal, status=SessionStatus.discharged)
    return t, clinic_row_or_404(Patient, t.patient_id, object_type="patient", action="rems.access")


def _csv_response(text: str, filename: str):
    resp = current_app.response_class(text, mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _verified(row: RemsMonitoringForm, data: bytes | str, digest: str, kind: str) -> None:
    """A stored file is handed out only while it still matches the hash taken when it was submitted."""
    if monitoring.sha256(data) != digest:
        audit.record_denied("rems.integrity_failed", object_type="rems_monitoring_form", object_id=row.id,
                            patient_id=row.patient_id, detail=kind)
        abort(409, "This form's stored file does not match the hash taken when it was submitted, so it will not "
                   "be handed out. Tell your administrator.")


# -- the clinic's forms -------------------------------------------------------------------------

@bp.get("/")
@staff(*CLINICAL_ROLES)
def index():
    db = get_session()
    due = monitoring.due_forms(db, g.clinic)
    submitted = monitoring.submitted_forms(db, g.clinic)
    audit.record("rems.list", object_type="rems_monitoring_form", detail=f"{len(due)} due, {len(submitted)} submitted shown")
    return render_template("rems/index.html", due=due, overdue=sum(d.overdue for d in due), submitted=submitted,
                           names=enrollment.names_of(db, [s.submitted_by_id for s in submitted]),
                           days={s.treatment_id: monitoring.treatment_date(g.clinic, s.TreatmentSession) for s in submitted},
                           spec=monitoring.SPEC)


@bp.get("/due.csv")
@staff(*CLINICAL_ROLES)
def due_csv():
    """Every form due, one row each, for a REMS upload or a spreadsheet (filled in a fixed number of queries)."""
    db = get_session()
    due = monitoring.due_forms(db, g.clinic)
    values = monitoring.fill(db, g.clinic, [(d.treatment, d.patient) for d in due])
    audit.record("rems.due_csv", object_type="rems_monitoring_form", detail=f"{len(due)} rows")
    return _csv_response(monitoring.csv_text([values[d.treatment.id] for d in due]),
                         f"rems-monitoring-forms-due-clinic-{g.clinic.id}.csv")


# -- one form -----------------------------------------------------------------------------------

def _form_page(t: TreatmentSession, patient: Patient, *, status: int = 200, errors=None, values=None, conflict=""):
    db = get_session()
    row = monitoring.submitted_form(db, g.clinic, t.id)
    answers = monitoring.fill(db, g.clinic, [(t, patient)])[t.id]
    day = monitoring.treatment_date(g.clinic, t)
    due_date = monitoring.due_by(day)
    return render_template("rems/form.html", t=t, patient=patient, row=row, answers=answers, spec=monitoring.SPEC,
                           not_recorded=monitoring.NOT_RECORDED, treatment_day=day, due_date=due_date,
                           overdue=row is None and monitoring.clinic_today(g.clinic) > due_date,
                           fingerprint=monitoring.fingerprint(answers),
                           can_submit=current_user.role.value in SUBMIT_ROLES,
                           names=enrollment.names_of(db, [row.submitted_by_id] if row else []),
                           errors=errors or {}, values=values or {}, conflict=conflict), status


@bp.get("/forms/<int:treatment_id>")
@staff(*CLINICAL_ROLES)
def form(treatment_id: int):
    t, patient = _treatment(treatment_id)
    audit.record("rems.form_view", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
    return _form_page(t, patient)


@bp.get("/forms/<int:treatment_id>.pdf")
@staff(*CLINICAL_ROLES)
def form_pdf(treatment_id: int):
    """The stored PDF once submitted (byte for byte); until then, filled from the record as it stands."""
    t, patient = _treatment(treatment_id)
    row = monitoring.submitted_form(get_session(), g.clinic, t.id)
    if row is not None:
        _verified(row, row.pdf, row.pdf_sha256, "pdf")
        data = row.pdf
    else:
        data = monitoring.pdf(g.clinic, t, monitoring.fill(get_session(), g.clinic, [(t, patient)])[t.id])
    audit.record("rems.form_download", object_type="treatment_session", object_id=t.id, patient_id=patient.id,
                 detail="pdf, submitted copy" if row else "pdf, draft")
    return pdf_response(data, f"rems-monitoring-form-session-{t.id}.pdf")


@bp.get("/forms/<int:treatment_id>.csv")
@staff(*CLINICAL_ROLES)
def form_csv(treatment_id: int):
    t, patient = _treatment(treatment_id)
    row = monitoring.submitted_form(get_session(), g.clinic, t.id)
    if row is not None:
        _verified(row, row.csv, row.csv_sha256, "csv")
        text = row.csv
    else:
        text = monitoring.csv_text([monitoring.fill(get_session(), g.clinic, [(t, patient)])[t.id]])
    audit.record("rems.form_download", object_type="treatment_session", object_id=t.id, patient_id=patient.id,
                 detail="csv, submitted copy" if row else "csv, draft")
    return _csv_response(text, f"rems-monitoring-form-session-{t.id}.csv")


@bp.post("/forms/<int:treatment_id>/submit")
@staff(*SUBMIT_ROLES)
def submit(treatment_id: int):
    """Staff sent the form to the REMS: keep the exact files, and it leaves the due list."""
    t, patient = _treatment(treatment_id)
    db = get_session()
    workflow.lock(db, g.clinic.id, t.id)  # two people marking it at once: the second sees the first's record
    if monitoring.submitted_form(db, g.clinic, t.id) is not None:
        return _form_page(t, patient, status=409, conflict="This form was already marked submitted; nothing changed.")
    form = SubmitForm()
    if not form.validate():
        return _form_page(t, patient, status=422, errors=form.messages, values=form.values)
    try:
        row = monitoring.submit(db, g.clinic, t, patient, current_user, seen=form.fingerprint.data,
                                reference=form.reference.data)
    except monitoring.FormChanged as exc:
        return _form_page(t, patient, status=409, conflict=str(exc))
    audit.record("rems.form_submitted", object_type="rems_monitoring_form", object_id=row.id, patient_id=patient.id,
                 detail=f"treatment {t.id}")
    flash("Marked as submitted to the REMS. The files as submitted are kept with the session.")
    return redirect(url_for("rems.form", treatment_id=t.id))


# -- enrollment ---------------------------------------------------------------------------------

def _enrollment_page(patient: Patient, *, status: int = 200, errors=None, values=None, conflict=""):
    db = get_session()
    history = enrollment.history(db, g.clinic.id, patient.id)
    return render_template("rems/enrollment.html", patient=patient, history=history,
                           current=history[0] if history else None,
                           names=enrollment.names_of(db, [h.recorded_by_id for h in history]),
                           errors=errors or {}, values=values or {}, conflict=conflict), status


@bp.get("/patients/<int:patient_id>")
@staff(*CLINICAL_ROLES)
def patient_enrollment(patient_id: int):
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="rems.access")
    audit.record("rems.enrollment_view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return _enrollment_page(patient)


@bp.post("/patients/<int:patient_id>/enrollment")
@staff(*CLINICAL_ROLES)
def record_enrollment(patient_id: int):
    """Record the patient's REMS enrollment, or correct it with a reason (a new row; the old one stays)."""
    patient = clinic_row_or_404(Patient, patient_id, object_type="patient", action="rems.access")
    db = get_session()
    db.exec(select(Patient.id).where(Patient.id == patient.id).with_for_update())  # one recorder at a time
    current = enrollment.current_enrollments(db, g.clinic.id, [patient.id]).get(patient.id)
    form = enrollment.EnrollmentForm(session=db, clinic_id=g.clinic.id, patient=patient, current=current)
    if not form.validate():
        return _enrollment_page(patient, status=422, errors=form.messages, values=form.values)
    try:
        row = enrollment.record(db, g.clinic.id, patient, form, current=current, user_id=current_user.id)
    except enrollment.Stale as exc:
        return _enrollment_page(patient, status=409, conflict=str(exc))
    audit.record("rems.enrollment_corrected" if current else "rems.enrollment_recorded", object_type="rems_enrollment",
                 object_id=row.id, patient_id=patient.id)
    flash("REMS enrollment corrected; the earlier entry stays in its history." if current else "REMS enrollment recorded.")
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#rems")
