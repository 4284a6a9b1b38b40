"""Consent pages for signing: the patient's consents at a glance, the signing tablet, the portal,
downloads and withdrawals. Bad input re-renders the form with 422 and writes nothing."""
from __future__ import annotations

import uuid
from pathlib import Path

from flask import abort, flash, g, redirect, render_template, request, send_from_directory, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import audit, tablet
from core.auth import current_patient, patient_only, public, staff
from core.db import get_session
from core.models import Patient, utcnow
from core.pdf import pdf_response
from core.validators import clean_text
from plugins.consent import documents, service, status
from plugins.consent.models import Acknowledgement, ConsentRevocation, SignedConsent
from plugins.consent.views.base import bp, deny, patient_or_404, template_or_404
from plugins.consent.views.forms import RevokeForm, sign_form

STATIC = Path(__file__).resolve().parents[1] / "static"


def consent_or_404(patient: Patient, consent_id: int) -> SignedConsent:
    record = get_session().exec(select(SignedConsent).where(
        SignedConsent.id == consent_id, SignedConsent.patient_id == patient.id,
        SignedConsent.clinic_id == g.clinic.id)).first()
    if record is None:
        deny("consent", consent_id, patient.id)
    return record


@bp.get("/static/<name>")
@public
def asset(name: str):
    """The signature pad's script and the consent pages' styles (served here so the route is declared)."""
    if name not in ("signature.js", "consent.css"):
        abort(404)
    return send_from_directory(STATIC, name, max_age=3600)


# -- staff: a patient's consents at a glance ---------------------------------------------------

@bp.get("/patients/<int:patient_id>")
@staff()
def patient(patient_id: int):
    p = patient_or_404(patient_id)
    db = get_session()
    st = status.status_for(db, g.clinic, [p.id])[p.id]
    records = db.exec(status.consents_query(SignedConsent.supersedes_id, SignedConsent.channel,
                                            SignedConsent.staff_name).where(
        SignedConsent.clinic_id == g.clinic.id, SignedConsent.patient_id == p.id)
        .order_by(SignedConsent.signed_at.desc(), SignedConsent.id.desc())).all()
    revoked = {r.consent_id: r for r in db.exec(select(ConsentRevocation).where(
        ConsentRevocation.clinic_id == g.clinic.id, ConsentRevocation.patient_id == p.id)).all()}
    acks = [] if current_user.role.value == "front_desk" else db.exec(select(Acknowledgement).where(
        Acknowledgement.clinic_id == g.clinic.id, Acknowledgement.patient_id == p.id)
        .order_by(Acknowledgement.signed_at.desc())).all()
    audit.record("consent.view", object_type="patient", object_id=p.id, patient_id=p.id)
    return render_template("consent/patient.html", patient=p, st=st, records=records, revoked=revoked, acks=acks,
                           viewer=current_user, complete=status.complete,
                           chart_url=service.link_to("patients.chart", patient_id=p.id),
                           reviewer=current_user.role.value in service.REVIEWERS)


# -- signing ---------------------------------------------------------------------------------

def _same_name(a: str, b: str) -> bool:
    norm = lambda s: " ".join(clean_text(s).casefold().split())  # noqa: E731
    return norm(a) == norm(b)


def _sign(p: Patient, kind: str, *, channel: str):
    """GET shows the consent; POST signs it. Shared by the tablet and the portal."""
    db = get_session()
    template = template_or_404(kind)
    on_tablet = channel == "tablet"
    action = (url_for("consent.tablet_sign", patient_id=p.id, kind=kind) if on_tablet
              else url_for("consent.portal_sign", kind=kind))

    form = sign_form(template, on_tablet=on_tablet, legal_name=p.legal_name, same_name=_same_name)

    def page(status=200, errors=None, values=None, conflict=""):
        return render_template("consent/sign.html", patient=p, template=template,
                               body=service.markdown(template.body, under=1),
                               token=uuid.uuid4().hex if status != 422 else form.submission_token.data,
                               errors=errors or {}, values=values or {}, conflict=conflict, on_tablet=on_tablet,
                               action=action), status

    if request.method == "GET":
        audit.record("consent.opened", object_type="consent_template", object_id=template.id, patient_id=p.id)
        return page()

    token = form.submission_token.data
    if not form.token_ok:
        return page(422, {"form": "This form is incomplete. Please read the consent again and sign."})
    existing = db.exec(select(SignedConsent.id, SignedConsent.patient_id).where(
        SignedConsent.clinic_id == g.clinic.id, SignedConsent.submission_token == token)).first()
    if existing is not None:
        if existing.patient_id != p.id:
            deny("consent", existing.id, p.id)
        flash("This consent was already signed; it was saved once.")
        return redirect(_done_url(p, existing.id, on_tablet))
    if form.template_id.data != str(template.id):
        return page(409, conflict=f"This consent was updated after the page was opened. Please read the current "
                                  f"version ({template.version}) and sign it; nothing was saved.")
    if not form.validate():
        return page(422, form.messages, form.shown)

    role, png = form.role, form.png
    previous = status.latest_consents(db, g.clinic, [p.id]).get((p.id, kind))
    signer = documents.Signer(
        name=form.signer_name.data, role=role, authority=form.authority.data if role == "representative" else "",
        method="witnessed_verbal" if form.witnessed_verbal else "drawn" if png else "typed", signature_png=png,
        channel=channel, ip=request.remote_addr or "", user_agent=request.user_agent.string or "",
        staff_user_id=current_user.id if on_tablet else None, staff_name=current_user.name if on_tablet else "")
    savepoint = db.begin_nested()
    try:
        record = documents.sign(db, g.clinic, p, template, signer, token,
                              supersedes_id=previous.id if previous is not None else None)
        savepoint.commit()
    except IntegrityError:  # the same form submitted twice at once: the other request won
        savepoint.rollback()
        existing = db.exec(select(SignedConsent.id).where(SignedConsent.clinic_id == g.clinic.id,
                                                          SignedConsent.submission_token == token,
                                                          SignedConsent.patient_id == p.id)).first()
        if existing is None:
            raise
        return redirect(_done_url(p, existing, on_tablet))
    audit.record("consent.signed", object_type="consent", object_id=record.id, patient_id=p.id,
                 detail=f"{kind} v{template.version} {channel} {signer.method}")
    flash(f"Signed: {template.title}. Thank you." + ("" if on_tablet else
          " Your clinician countersigns it next; your copy appears here once they have."))
    return redirect(_done_url(p, record.id, on_tablet))


def _done_url(p: Patient, consent_id: int, on_tablet: bool) -> str:
    return url_for("consent.signed", patient_id=p.id, consent_id=consent_id) if on_tablet else url_for("portal.home")


@bp.route("/patients/<int:patient_id>/sign/<kind>", methods=["GET", "POST"])
@staff()
@tablet.tablet_page
def tablet_sign(patient_id: int, kind: str):
    """The page staff hand to the patient on a tablet; staff present is the signed-in user.
    Opening it locks the device to this patient until staff unlock it (core.tablet)."""
    p = patient_or_404(patient_id)
    tablet.lock(p)  # kept only if the page answers (an unknown consent's 404 rolls it back)
    return _sign(p, kind, channel="tablet")


@bp.get("/patients/<int:patient_id>/signed/<int:consent_id>")
@staff()
@tablet.tablet_page
def signed(patient_id: int, consent_id: int):
    p = patient_or_404(patient_id)
    record = consent_or_404(p, consent_id)
    db = get_session()
    st = status.status_for(db, g.clinic, [p.id])[p.id]
    modality = service.modality_of(db, g.clinic, p.id)
    required = service.required_kinds(service.settings(db, g.clinic), modality) if modality else []
    audit.record("consent.view", object_type="consent", object_id=record.id, patient_id=p.id)
    return render_template("consent/signed.html", patient=p, record=record,
                           att=documents.attestation_of(db, record),
                           can_attest=documents.attester(db, g.clinic, current_user) is not None,
                           statement_preview=_preview(db, record),
                           todo=[st.consents[k] for k in required
                                 if st.consents[k].status != "valid" and k != record.kind])


def _preview(db, record: SignedConsent) -> str:
    provider = documents.attester(db, g.clinic, current_user)
    return documents.statement_for(record, provider) if provider is not None else ""


@bp.get("/patients/<int:patient_id>/consents/<int:consent_id>.pdf")
@staff()
def staff_pdf(patient_id: int, consent_id: int):
    p = patient_or_404(patient_id)
    return _download(p, consent_or_404(p, consent_id))


def _download(p: Patient, record: SignedConsent):
    """The stored bytes, never re-rendered; refused (and audited) if they no longer match."""
    pdf, ok = documents.issued_pdf(record, documents.attestation_of(get_session(), record))
    if ok and pdf is None:
        abort(409, "This consent was signed and is awaiting a clinician's attestation that they explained it. "
                   "Its PDF is issued once the clinician has signed.")
    if not ok:
        audit.record_denied("consent.integrity_failed", object_type="consent", object_id=record.id,
                            patient_id=p.id, outcome="integrity_error")
        abort(409, "This signed document failed its integrity check and cannot be downloaded. "
                   "The event was logged; please contact the clinic's administrator.")
    audit.record("consent.downloaded", object_type="consent", object_id=record.id, patient_id=p.id)
    return pdf_response(pdf, f"consent-{record.kind}-v{record.version}-{record.id}.pdf")


@bp.post("/patients/<int:patient_id>/consents/<int:consent_id>/revoke")
@staff("clinician", "manager", "admin")
def revoke(patient_id: int, consent_id: int):
    """Withdrawal is a new linked record; the signed consent itself never changes."""
    p = patient_or_404(patient_id)
    record = consent_or_404(p, consent_id)
    db = get_session()
    form = RevokeForm()
    if not form.validate():
        flash(form.messages["reason"])
        return redirect(url_for("consent.patient", patient_id=p.id)), 303
    reason = form.reason.data
    if db.exec(select(ConsentRevocation.id).where(ConsentRevocation.consent_id == record.id)).first() is not None:
        abort(409, "This consent was already withdrawn.")
    db.add(ConsentRevocation(clinic_id=g.clinic.id, patient_id=p.id, consent_id=record.id, reason=reason,
                             by_user_id=current_user.id, at=utcnow()))
    audit.record("consent.revoked", object_type="consent", object_id=record.id, patient_id=p.id)
    flash("The consent was recorded as withdrawn. Treatment that needs it is blocked until a new one is signed.")
    return redirect(url_for("consent.patient", patient_id=p.id))

# -- portal -------------------------------------------------------------------------------------

@bp.route("/portal/sign/<kind>", methods=["GET", "POST"])
@patient_only
def portal_sign(kind: str):
    return _sign(current_patient(), kind, channel="portal")


@bp.get("/portal/consents/<int:consent_id>.pdf")
@patient_only
def portal_pdf(consent_id: int):
    p = current_patient()
    return _download(p, consent_or_404(p, consent_id))

