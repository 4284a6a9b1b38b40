"""The Letters pages: compose, preview, sign, download, send, permissions, due letters, settings.

Only clinical roles see letters; front desk gets 403 from the route declarations. Every
object is looked up by id AND the current clinic; a miss is a 404 with a denied-access audit row.
"""
from __future__ import annotations

import hashlib
from datetime import date

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlmodel import select
from werkzeug.routing import BuildError

from core import audit, hooks
from core.auth import clinic_row_or_404, staff
from core.db import get_session
from core.models import Medication, OutsideClinician, Patient, User
from core.pdf import pdf_response, render_pdf_template
from core.plugin_state import save_settings, settings_for
from core.slots import LetterSection
from core.validators import clean_text, parse_date
from core.web import after_commit
from plugins.coordination import compose, letters
from plugins.coordination.models import (CoordinationDisclosure, CoordinationDocument, CoordinationDue,
                                         CoordinationLetter, CoordinationPermission)

bp = Blueprint("coordination", __name__, url_prefix="/coordination", template_folder="templates")

READ = ("admin", "manager", "clinician")
WRITE = ("clinician",)
SEND = ("manager", "clinician")
SETTINGS = ("admin", "manager")
PDF_TEMPLATE = "coordination/letter_pdf.html"


def _settings() -> dict:
    return settings_for(get_session(), g.clinic, "coordination")


def _denied(object_type: str, object_id) -> None:
    audit.record_denied("coordination.not_found", object_type=object_type, object_id=object_id)
    abort(404)


def _patient(patient_id: int) -> Patient:
    return clinic_row_or_404(Patient, patient_id, object_type="patient", action="coordination.not_found")


def _letter(letter_id: int, *, lock: bool = False) -> CoordinationLetter:
    stmt = select(CoordinationLetter).where(CoordinationLetter.id == letter_id, CoordinationLetter.clinic_id == g.clinic.id)
    letter = get_session().exec(stmt.with_for_update() if lock else stmt).first()
    if letter is None:
        _denied("coordination_letter", letter_id)
    return letter


def _document(letter: CoordinationLetter) -> CoordinationDocument:
    doc = get_session().exec(select(CoordinationDocument).where(
        CoordinationDocument.id == letter.document_id, CoordinationDocument.clinic_id == g.clinic.id)).first()
    if doc is None:
        abort(404)
    return doc


def chart_url(patient_id: int) -> str:
    """The core chart when the clinic UI provides it, else this plugin's page for the patient."""
    try:
        return url_for("patients.chart", patient_id=patient_id)
    except BuildError:
        return url_for("coordination.patient", patient_id=patient_id)


@bp.app_context_processor
def _helpers():
    return {"coordination_chart_url": chart_url}


def _extra_sections(patient: Patient, recipient: OutsideClinician) -> tuple[list, list]:
    items, errors = hooks.relay(g.clinic).collect("letter_sections", expect=LetterSection, clinic=g.clinic,
                                                  patient=patient, recipient=recipient)
    return hooks.ordered(items), errors


def _people(ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(get_session().exec(select(User.id, User.name).where(User.id.in_(ids))).all())


# -- lists ----------------------------------------------------------------------------------


@bp.get("/")
@staff(*READ)
def index():
    session = get_session()
    due = letters.due_letters(session, g.clinic)
    recent = session.exec(select(CoordinationLetter, Patient, OutsideClinician)
                          .join(Patient, Patient.id == CoordinationLetter.patient_id)
                          .join(OutsideClinician, OutsideClinician.id == CoordinationLetter.recipient_id)
                          .where(CoordinationLetter.clinic_id == g.clinic.id)
                          .order_by(CoordinationLetter.updated_at.desc()).limit(50)).all()
    sent = _sent_by_document([l.document_id for l, _p, _r in recent if l.document_id])
    audit.record("coordination.list", object_type="coordination_letter", detail=f"{len(recent)} letters")
    return render_template("coordination/index.html", due=due, recent=recent, sent=sent,
                           kinds=compose.kinds(_settings()), recipients=_recipient_names(due))


def _recipient_names(due) -> dict[int, str]:
    ids = {d.recipient_id for d in due if d.recipient_id}
    if not ids:
        return {}
    return dict(get_session().exec(select(OutsideClinician.id, OutsideClinician.name).where(
        OutsideClinician.clinic_id == g.clinic.id, OutsideClinician.id.in_(ids))).all())


def _sent_by_document(doc_ids) -> dict[int, list[CoordinationDisclosure]]:
    out: dict[int, list[CoordinationDisclosure]] = {}
    if doc_ids:
        for d in get_session().exec(select(CoordinationDisclosure).where(
                CoordinationDisclosure.clinic_id == g.clinic.id, CoordinationDisclosure.document_id.in_(doc_ids))
                .order_by(CoordinationDisclosure.sent_on, CoordinationDisclosure.id)).all():
            out.setdefault(d.document_id, []).append(d)
    return out


def _patient_page(patient: Patient, *, error: str = "", form: dict | None = None, status: int = 200):
    session = get_session()
    team = letters.care_team(session, g.clinic, patient.id)
    rows = session.exec(select(CoordinationLetter).where(
        CoordinationLetter.clinic_id == g.clinic.id, CoordinationLetter.patient_id == patient.id)
        .order_by(CoordinationLetter.created_at.desc())).all()
    permissions = session.exec(select(CoordinationPermission).where(
        CoordinationPermission.clinic_id == g.clinic.id, CoordinationPermission.patient_id == patient.id)
        .order_by(CoordinationPermission.recorded_at.desc())).all()
    disclosures = session.exec(select(CoordinationDisclosure).where(
        CoordinationDisclosure.clinic_id == g.clinic.id, CoordinationDisclosure.patient_id == patient.id)
        .order_by(CoordinationDisclosure.sent_on.desc(), CoordinationDisclosure.id.desc())).all()
    names = {c.id: c.name for _m, c in team}
    missing = {r.recipient_id for r in rows} | {p.recipient_id for p in permissions} | {d.recipient_id for d in disclosures}
    missing -= set(names)
    if missing:
        names.update(dict(session.exec(select(OutsideClinician.id, OutsideClinician.name).where(
            OutsideClinician.clinic_id == g.clinic.id, OutsideClinician.id.in_(missing))).all()))
    audit.record("coordination.patient_letters", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_template("coordination/patient.html", patient=patient, team=team, letters=rows,
                           permissions=permissions, disclosures=disclosures, names=names,
                           users=_people([d.user_id for d in disclosures]),
                           due=letters.due_letters(session, g.clinic, [patient.id]),
                           kinds=compose.kinds(_settings()), methods=letters.METHODS, today=compose.clinic_today(g.clinic),
                           error=error, form=form or {}, settings=_settings()), status


@bp.get("/patients/<int:patient_id>")
@staff(*READ)
def patient(patient_id: int):
    return _patient_page(_patient(patient_id))


def panel_html(clinic, patient) -> Markup:
    """The chart panel: letters sent and due for one patient (called from the chart hook)."""
    session = get_session()
    rows = session.exec(select(CoordinationLetter).where(
        CoordinationLetter.clinic_id == clinic.id, CoordinationLetter.patient_id == patient.id)
        .order_by(CoordinationLetter.created_at.desc()).limit(10)).all()
    sent = _sent_by_document([r.document_id for r in rows if r.document_id])
    return Markup(render_template("coordination/panel.html", patient=patient, letters=rows, sent=sent,
                                  due=letters.due_letters(session, clinic, [patient.id]),
                                  kinds=compose.kinds(settings_for(session, clinic, "coordination"))))


# -- compose --------------------------------------------------------------------------------


@bp.post("/patients/<int:patient_id>/letters")
@staff(*WRITE)
def create(patient_id: int):
    patient = _patient(patient_id)
    kind = request.form.get("kind", "")
    recipient_id = request.form.get("recipient_id", type=int)
    try:
        letter = letters.create_draft(get_session(), g.clinic, patient, kind=kind, recipient_id=recipient_id,
                                      user=current_user, settings=_settings())
    except letters.LetterProblem as problem:
        return _patient_page(patient, error=str(problem), form=request.form, status=422)
    audit.record("coordination.letter_created", object_type="coordination_letter", object_id=letter.id,
                 patient_id=patient.id, detail=f"kind={kind}")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


def _letter_page(letter: CoordinationLetter, *, error: str = "", fields: dict | None = None, status: int = 200):
    session = get_session()
    patient = _patient(letter.patient_id)
    recipient = session.get(OutsideClinician, letter.recipient_id)
    doc = _document(letter) if letter.document_id else None
    today = compose.clinic_today(g.clinic)
    permissions = compose.active_permissions(session, g.clinic, patient.id, recipient.id, today)
    sent = _sent_by_document([doc.id]).get(doc.id, []) if doc else []
    settings = _settings()
    return render_template(
        "coordination/letter.html", letter=letter, patient=patient, recipient=recipient, doc=doc, sent=sent,
        fields={**letter.fields, **(fields or {})}, spec=compose.kinds(settings)[letter.kind], error=error,
        can_psychotherapy=any(p.covers_psychotherapy_notes for p in permissions),
        can_part2=any(p.covers_part2 for p in permissions),
        permission_needed=bool(settings.get("require_patient_permission")) and not permissions,
        methods=letters.METHODS, today=today, users=_people([d.user_id for d in sent])), status


@bp.get("/letters/<int:letter_id>")
@staff(*READ)
def letter(letter_id: int):
    letter = _letter(letter_id)
    audit.record("coordination.letter_viewed", object_type="coordination_letter", object_id=letter.id,
                 patient_id=letter.patient_id)
    return _letter_page(letter)


@bp.post("/letters/<int:letter_id>")
@staff(*WRITE)
def save(letter_id: int):
    letter = _letter(letter_id, lock=True)
    if letter.status != "draft":
        audit.record_denied("coordination.edit_signed", object_type="coordination_letter", object_id=letter.id,
                            patient_id=letter.patient_id)
        abort(409, "This letter is signed and can no longer be changed. Write a new letter instead.")
    if request.form.get("version", type=int) != letter.version:
        abort(409, "Someone else changed this letter since you opened it. Reload it and make your changes again.")
    fields = {name: clean_text(request.form.get(name, "")) for name in compose.FREE_TEXT}
    fields["next_review"] = request.form.get("next_review", "").strip()
    too_long = [n for n, v in fields.items() if len(v) > compose.FIELD_LIMIT]
    error = f"Keep each part under {compose.FIELD_LIMIT} characters." if too_long else ""
    if fields["next_review"] and not error:
        try:
            if parse_date(fields["next_review"], field="Next review") < compose.clinic_today(g.clinic):
                error = "The next review date cannot be in the past."
        except ValueError as problem:
            error = str(problem)
    if error:
        return _letter_page(letter, error=error, fields=fields, status=422)
    letter.fields = fields
    letter.include_psychotherapy_notes = request.form.get("include_psychotherapy_notes") == "1"
    letter.include_part2 = request.form.get("include_part2") == "1"
    letter.version += 1
    letter.updated_at = letters.utcnow()
    get_session().add(letter)
    audit.record("coordination.letter_saved", object_type="coordination_letter", object_id=letter.id,
                 patient_id=letter.patient_id)
    if request.form.get("then") == "preview":
        return redirect(url_for("coordination.preview", letter_id=letter.id))
    flash("Draft saved.")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


@bp.get("/letters/<int:letter_id>/preview")
@staff(*READ)
def preview(letter_id: int):
    letter = _letter(letter_id)
    if letter.status != "draft":
        return redirect(url_for("coordination.letter", letter_id=letter.id))
    session = get_session()
    patient = _patient(letter.patient_id)
    recipient = session.get(OutsideClinician, letter.recipient_id)
    sections, errors = _extra_sections(patient, recipient)
    ctx = compose.compose(session, g.clinic, letter, spec=compose.kinds(_settings())[letter.kind],
                          signer=current_user if current_user.role.value in WRITE else None, extra_sections=sections)
    audit.record("coordination.letter_previewed", object_type="coordination_letter", object_id=letter.id,
                 patient_id=letter.patient_id)
    return render_template("coordination/preview.html", plugin_errors=errors, **ctx)


@bp.post("/letters/<int:letter_id>/sign")
@staff(*WRITE)
def sign(letter_id: int):
    letter = _letter(letter_id, lock=True)
    if letter.status != "draft":
        audit.record_denied("coordination.edit_signed", object_type="coordination_letter", object_id=letter.id,
                            patient_id=letter.patient_id)
        abort(409, "This letter is already signed and can no longer be changed.")
    if request.form.get("version", type=int) != letter.version:
        abort(409, "This letter changed since you previewed it. Preview it again before signing.")
    session = get_session()
    patient = _patient(letter.patient_id)
    recipient = session.get(OutsideClinician, letter.recipient_id)
    sections, _errors = _extra_sections(patient, recipient)

    def render(ctx: dict) -> bytes:
        ctx = dict(ctx)
        clinic = ctx.pop("clinic")
        return render_pdf_template(PDF_TEMPLATE, clinic=clinic, **ctx)[1]

    doc = letters.sign(session, g.clinic, letter, current_user, settings=_settings(), extra_sections=sections,
                       render=render)
    after_commit("document_issued", clinic=g.clinic, document=doc)
    flash("Letter signed. Download or print it, then record how it was sent.")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


# -- delivery -------------------------------------------------------------------------------


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
    try:
        sent_on = parse_date(request.form.get("sent_on", ""), field="Date sent")
        letters.record_disclosure(get_session(), g.clinic, doc, method=request.form.get("method", ""),
                                  sent_on=sent_on, user=current_user, settings=_settings())
    except ValueError as problem:
        return _letter_page(letter, error=str(problem), status=422)
    flash(f"Recorded as sent by {letters.METHODS[request.form['method']].lower()}.")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


# -- permissions and due letters ------------------------------------------------------------


@bp.post("/patients/<int:patient_id>/permissions")
@staff(*SEND)
def add_permission(patient_id: int):
    patient = _patient(patient_id)
    session = get_session()
    recipient_id = request.form.get("recipient_id", type=int)
    team = {c.id for _m, c in letters.care_team(session, g.clinic, patient.id)}
    try:
        if recipient_id not in team:
            raise ValueError("Choose a recipient from this patient's care team.")
        granted = parse_date(request.form.get("granted_on", ""), field="Date given")
        if granted > compose.clinic_today(g.clinic):
            raise ValueError("The date the permission was given cannot be in the future.")
        expires = None
        if request.form.get("expires_on", "").strip():
            expires = parse_date(request.form["expires_on"], field="Expires", not_before=granted)
    except ValueError as problem:
        return _patient_page(patient, error=str(problem), form=request.form, status=422)
    row = CoordinationPermission(
        clinic_id=g.clinic.id, patient_id=patient.id, recipient_id=recipient_id, granted_on=granted,
        expires_on=expires, covers_psychotherapy_notes=request.form.get("covers_psychotherapy_notes") == "1",
        covers_part2=request.form.get("covers_part2") == "1", recorded_by_id=current_user.id,
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


# -- settings -------------------------------------------------------------------------------


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
        if not 1 <= induction <= 30:
            raise ValueError
    except ValueError:
        return render_template("coordination/settings.html", values=values, kinds=compose.kinds(values),
                               shipped=shipped, error="Sessions in an induction series: a whole number from 1 to 30."), 422
    overrides = {}
    for kind, spec in shipped.items():
        texts = {part: clean_text(request.form.get(f"{kind}.{part}", ""))[:compose.FIELD_LIMIT]
                 for part in ("opening", "requests", "closing")}
        texts = {part: text for part, text in texts.items() if text and text != spec[part]}
        if texts:
            overrides[kind] = texts
    save_settings(session, g.clinic, "coordination", {
        "require_patient_permission": request.form.get("require_patient_permission") == "1",
        "induction_sessions": induction, "letter_overrides": overrides})
    flash("Letter settings saved.")
    return redirect(url_for("coordination.settings"))
