"""After signing: download, record sending, the patient's permissions and due letters."""
from __future__ import annotations

import hashlib

from flask import abort, flash, g, redirect, url_for
from flask_login import current_user
from sqlmodel import select

from core import audit
from core.auth import staff
from core.db import get_session
from core.models import Medication
from core.pdf import pdf_response
from core.validators import parse_date
from plugins.coordination import compose, letters
from plugins.coordination.models import CoordinationDue, CoordinationPermission
from plugins.coordination.views import READ, SEND, WRITE, _denied, _document, _letter, _patient, _settings, bp
from plugins.coordination.views.drafts import _letter_page
from plugins.coordination.views.forms import PermissionForm, SentForm, posted
from plugins.coordination.views.lists import _patient_page


@bp.get("/letters/<int:letter_id>/pdf")
@staff(*READ)
def download(letter_id: int):
    letter = _letter(letter_id)
    if letter.document_id is None:
        abort(404)
    doc = _document(letter)
    if hashlib.sha256(doc.pdf).hexdigest() != doc.sha256:
        audit.record_denied("coordination.integrity_failed", object_type="coordination_document", object_id=doc.id,
                            patient_id=doc.patient_id)
        abort(409, "This letter's stored file does not match its signature hash, so it will not be handed out. "
                   "Tell your administrator.")
    audit.record("coordination.letter_downloaded", object_type="coordination_document", object_id=doc.id,
                 patient_id=doc.patient_id)
    return pdf_response(doc.pdf, f"letter-{doc.id}-{doc.kind}.pdf")


@bp.post("/letters/<int:letter_id>/sent")
@staff(*SEND)
def mark_sent(letter_id: int):
    letter = _letter(letter_id)
    if letter.document_id is None:
        return _letter_page(letter, error="Sign the letter before sending it.", status=422)
    doc = _document(letter)
    form = SentForm()
    try:
        sent_on = parse_date(form.sent_on.data, field="Date sent")
        letters.record_disclosure(get_session(), g.clinic, doc, method=form.method.data,
                                  sent_on=sent_on, user=current_user, settings=_settings())
    except ValueError as problem:
        return _letter_page(letter, error=str(problem), status=422)
    flash(f"Recorded as sent by {letters.METHODS[form.method.data].lower()}.")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


@bp.post("/patients/<int:patient_id>/permissions")
@staff(*SEND)
def add_permission(patient_id: int):
    patient = _patient(patient_id)
    session = get_session()
    team = {c.id for _m, c in letters.care_team(session, g.clinic, patient.id)}
    form = PermissionForm(team=team, today=compose.clinic_today(g.clinic))
    if not form.validate():
        return _patient_page(patient, errors=form.messages, form=posted(form), status=422)
    row = CoordinationPermission(
        clinic_id=g.clinic.id, patient_id=patient.id, recipient_id=form.recipient, granted_on=form.granted,
        expires_on=form.expires, covers_psychotherapy_notes=form.covers_psychotherapy_notes.data,
        covers_part2=form.covers_part2.data, recorded_by_id=current_user.id,
        recorded_at=letters.utcnow())
    session.add(row)
    session.flush()
    audit.record("coordination.permission_recorded", object_type="coordination_permission", object_id=row.id,
                 patient_id=patient.id)
    flash("Permission recorded.")
    return redirect(url_for("coordination.patient", patient_id=patient.id))


@bp.post("/permissions/<int:permission_id>/revoke")
@staff(*SEND)
def revoke_permission(permission_id: int):
    session = get_session()
    row = session.exec(select(CoordinationPermission).where(
        CoordinationPermission.id == permission_id, CoordinationPermission.clinic_id == g.clinic.id)).first()
    if row is None:
        _denied("coordination_permission", permission_id)
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by_id = letters.utcnow(), current_user.id
        session.add(row)
        audit.record("coordination.permission_revoked", object_type="coordination_permission", object_id=row.id,
                     patient_id=row.patient_id)
        flash("Permission revoked.")
    return redirect(url_for("coordination.patient", patient_id=row.patient_id))


@bp.post("/due/<int:due_id>/dismiss")
@staff(*WRITE)
def dismiss_due(due_id: int):
    session = get_session()
    due = session.exec(select(CoordinationDue).where(CoordinationDue.id == due_id,
                                                     CoordinationDue.clinic_id == g.clinic.id)).first()
    if due is None:
        _denied("coordination_due", due_id)
    if due.resolved_at is None:
        due.resolved_at, due.resolution, due.resolved_by_id = letters.utcnow(), "dismissed", current_user.id
        session.add(due)
        audit.record("coordination.due_dismissed", object_type="coordination_due", object_id=due.id,
                     patient_id=due.patient_id)
    flash("Dismissed.")
    return redirect(url_for("coordination.index"))


@bp.post("/medications/<int:medication_id>/dismiss")
@staff(*WRITE)
def dismiss_concern(medication_id: int):
    session = get_session()
    med = session.exec(select(Medication).where(Medication.id == medication_id,
                                                Medication.clinic_id == g.clinic.id)).first()
    if med is None:
        _denied("medication", medication_id)
    already = session.exec(select(CoordinationDue.id).where(
        CoordinationDue.clinic_id == g.clinic.id, CoordinationDue.patient_id == med.patient_id,
        CoordinationDue.kind == letters.CONCERN, CoordinationDue.key == f"med:{med.id}")).first()
    if already is None:
        letters.dismiss_concern(session, g.clinic, med, current_user)
        audit.record("coordination.concern_dismissed", object_type="medication", object_id=med.id,
                     patient_id=med.patient_id)
    flash("Medication concern dismissed.")
    return redirect(url_for("coordination.index"))
