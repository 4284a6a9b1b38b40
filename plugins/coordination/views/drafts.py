"""Writing a letter: start (or reuse) a draft, edit, preview, sign, discard."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_login import current_user

from core import audit
from core.auth import staff
from core.db import get_session
from core.models import OutsideClinician
from core.pdf import render_pdf_template
from core.validators import parse_date
from core.web import after_commit
from plugins.coordination import compose, letters, wording
from plugins.coordination.models import CoordinationLetter
from plugins.coordination.views import (PDF_TEMPLATE, READ, WRITE, _document, _extra_sections, _letter, _patient,
                                        _people, _sent_by_document, _settings, bp)
from plugins.coordination.views.forms import DraftForm, LetterStartForm, SignLetterForm, posted
from plugins.coordination.views.lists import _patient_page


@bp.post("/patients/<int:patient_id>/letters")
@staff(*WRITE)
def create(patient_id: int):
    """Start a letter, or go back to the draft already open for the same purpose."""
    patient = _patient(patient_id)
    form = LetterStartForm()
    kind, recipient_id = form.kind.data, form.recipient
    session = get_session()
    existing = letters.open_draft(session, g.clinic, patient.id, kind=kind, recipient_id=recipient_id or 0)
    if existing is not None:
        flash("A draft of this letter to this recipient is already open: carry on with it here, or discard it "
              "to start again.")
        return redirect(url_for("coordination.letter", letter_id=existing.id))
    try:
        letter = letters.create_draft(session, g.clinic, patient, kind=kind, recipient_id=recipient_id,
                                      user=current_user, settings=_settings())
    except letters.LetterProblem as problem:
        return _patient_page(patient, error=str(problem), form=posted(form), status=422)
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
        prescriber=wording.is_prescriber(recipient.kind),
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
        abort(409, "This letter is signed and can no longer be changed. Write a new letter instead."
              if letter.status == "signed" else "This draft was discarded and can no longer be changed.")
    form = DraftForm()
    if form.seen_version != letter.version:
        abort(409, "Someone else changed this letter since you opened it. Reload it and make your changes again.")
    fields = form.parts
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
    letter.include_psychotherapy_notes = form.include_psychotherapy_notes.data
    letter.include_part2 = form.include_part2.data
    letter.version += 1
    letter.updated_at = letters.utcnow()
    get_session().add(letter)
    audit.record("coordination.letter_saved", object_type="coordination_letter", object_id=letter.id,
                 patient_id=letter.patient_id)
    if form.then.data == "preview":
        return redirect(url_for("coordination.preview", letter_id=letter.id))
    flash("Draft saved.")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


def _composed(letter: CoordinationLetter, signer) -> tuple[dict, list]:
    """The letter's context with every contributed section, and the sections that failed."""
    session = get_session()
    patient = _patient(letter.patient_id)
    recipient = session.get(OutsideClinician, letter.recipient_id)
    sections, errors = _extra_sections(patient, recipient)
    settings = _settings()
    ctx = compose.compose(session, g.clinic, letter, spec=compose.kinds(settings)[letter.kind], settings=settings,
                          signer=signer, extra_sections=sections)
    return ctx, errors


def _preview_page(letter: CoordinationLetter, *, error: str = "", status: int = 200):
    ctx, errors = _composed(letter, current_user if current_user.role.value in WRITE else None)
    problems = [p for p in (letters.section_problem(errors),) if p] + ctx["missing"]
    return render_template("coordination/preview.html", plugin_errors=errors, problems=problems, error=error,
                           **ctx), status


@bp.get("/letters/<int:letter_id>/preview")
@staff(*READ)
def preview(letter_id: int):
    letter = _letter(letter_id)
    if letter.status != "draft":
        return redirect(url_for("coordination.letter", letter_id=letter.id))
    audit.record("coordination.letter_previewed", object_type="coordination_letter", object_id=letter.id,
                 patient_id=letter.patient_id)
    return _preview_page(letter)


@bp.post("/letters/<int:letter_id>/sign")
@staff(*WRITE)
def sign(letter_id: int):
    """Sign the previewed draft; refused (422, nothing written) while any part of it cannot be written."""
    letter = _letter(letter_id, lock=True)
    if letter.status != "draft":
        audit.record_denied("coordination.edit_signed", object_type="coordination_letter", object_id=letter.id,
                            patient_id=letter.patient_id)
        abort(409, "This letter is already signed and can no longer be changed." if letter.status == "signed"
              else "This draft was discarded and can no longer be signed.")
    if SignLetterForm().seen_version != letter.version:
        abort(409, "This letter changed since you previewed it. Preview it again before signing.")
    session = get_session()
    patient = _patient(letter.patient_id)
    recipient = session.get(OutsideClinician, letter.recipient_id)
    sections, errors = _extra_sections(patient, recipient)

    def render(ctx: dict) -> bytes:
        ctx = dict(ctx)
        clinic = ctx.pop("clinic")
        return render_pdf_template(PDF_TEMPLATE, clinic=clinic, **ctx)[1]

    try:
        doc = letters.sign(session, g.clinic, letter, current_user, settings=_settings(), extra_sections=sections,
                           render=render, section_errors=errors)
    except letters.LetterProblem as problem:
        audit.record_denied("coordination.sign_refused", object_type="coordination_letter", object_id=letter.id,
                            patient_id=letter.patient_id)
        return _preview_page(letter, error=str(problem), status=422)
    after_commit("document_issued", clinic=g.clinic, document=doc)
    flash("Letter signed. Download or print it, then record how it was sent.")
    return redirect(url_for("coordination.letter", letter_id=letter.id))


@bp.post("/letters/<int:letter_id>/discard")
@staff(*WRITE)
def discard(letter_id: int):
    """Discard a draft (audited); a signed letter stays as it was signed."""
    letter = _letter(letter_id, lock=True)
    try:
        letters.discard(get_session(), g.clinic, letter, current_user)
    except letters.LetterProblem as problem:
        audit.record_denied("coordination.discard_refused", object_type="coordination_letter", object_id=letter.id,
                            patient_id=letter.patient_id)
        abort(409, str(problem))
    flash("Draft discarded.")
    return redirect(url_for("coordination.patient", patient_id=letter.patient_id))
