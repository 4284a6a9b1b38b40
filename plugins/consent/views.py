"""Consent pages: the signing tablet, the portal, screening, clinician acknowledgements and the
manager's template, screening-list and settings editors.

Every object is looked up by id *and* clinic (and patient where it has one); anything else is a
404 with a denied-access audit row. Bad input re-renders the form with 422 and writes nothing.
"""
from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

from flask import Blueprint, abort, flash, g, redirect, render_template, request, send_from_directory, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from core import audit
from core.auth import clinic_row_or_404, current_patient, patient_only, public, staff
from core.db import get_session
from core.models import MODALITY_LABELS, Modality, Patient, TreatmentSession, VitalPhase, VitalSign, utcnow
from core.pdf import pdf_response
from core.validators import clean_text
from core.web import after_commit
from plugins.consent import service
from plugins.consent.models import (Acknowledgement, ConsentRevocation, ConsentTemplate, ContraindicationItem,
                                    Screening, SignedConsent)

bp = Blueprint("consent", __name__, url_prefix="/consent", template_folder="templates")
STATIC = Path(__file__).resolve().parent / "static"

TOKEN = re.compile(r"^[0-9a-f]{32}$")
PNG_PREFIX = "data:image/png;base64,"
MAX_SIGNATURE_BYTES = 200_000
MANAGERS = ("manager", "admin")


# -- lookups, always scoped by clinic and owner ------------------------------------------------

def _deny(object_type: str, object_id, patient_id: int | None = None):
    audit.record_denied("consent.access", object_type=object_type, object_id=object_id, patient_id=patient_id)
    abort(404)


def _patient(patient_id: int) -> Patient:
    return clinic_row_or_404(Patient, patient_id, object_type="patient", action="consent.access")


def _consent(patient: Patient, consent_id: int) -> SignedConsent:
    record = get_session().exec(select(SignedConsent).where(
        SignedConsent.id == consent_id, SignedConsent.patient_id == patient.id,
        SignedConsent.clinic_id == g.clinic.id)).first()
    if record is None:
        _deny("consent", consent_id, patient.id)
    return record


def _template(kind: str) -> ConsentTemplate:
    template = service.current_templates(get_session(), g.clinic).get(kind)
    if template is None:
        abort(404)
    return template


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
    p = _patient(patient_id)
    db = get_session()
    st = service.status_for(db, g.clinic, [p.id])[p.id]
    records = db.exec(select(*service.CONSENT_COLUMNS, SignedConsent.supersedes_id, SignedConsent.channel,
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
                           viewer=current_user,
                           chart_url=service.link_to("patients.chart", patient_id=p.id),
                           can_ack=current_user.role.value == "clinician")


# -- signing ---------------------------------------------------------------------------------

def _signature(raw: str) -> tuple[bytes | None, str | None]:
    """The drawn signature as PNG bytes, or an error; empty means "typed name only"."""
    if not raw:
        return None, None
    if not raw.startswith(PNG_PREFIX) or len(raw) > MAX_SIGNATURE_BYTES * 4 // 3 + 64:
        return None, "The drawn signature could not be read. Clear it and sign again, or leave it empty."
    try:
        data = base64.b64decode(raw[len(PNG_PREFIX):], validate=True)
    except ValueError:
        return None, "The drawn signature could not be read. Clear it and sign again, or leave it empty."
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None, "The drawn signature could not be read. Clear it and sign again, or leave it empty."
    return data, None


def _same_name(a: str, b: str) -> bool:
    norm = lambda s: " ".join(clean_text(s).casefold().split())  # noqa: E731
    return norm(a) == norm(b)


def _sign(p: Patient, kind: str, *, channel: str):
    """GET shows the consent; POST signs it. Shared by the tablet and the portal."""
    db = get_session()
    template = _template(kind)
    on_tablet = channel == "tablet"
    action = (url_for("consent.tablet_sign", patient_id=p.id, kind=kind) if on_tablet
              else url_for("consent.portal_sign", kind=kind))

    def page(status=200, errors=None, values=None, conflict=""):
        return render_template("consent/sign.html", patient=p, template=template, body=service.markdown(template.body),
                               token=uuid.uuid4().hex if status != 422 else request.form.get("submission_token", ""),
                               errors=errors or {}, values=values or {}, conflict=conflict, on_tablet=on_tablet,
                               action=action), status

    if request.method == "GET":
        audit.record("consent.opened", object_type="consent_template", object_id=template.id, patient_id=p.id)
        return page()

    form = request.form
    token = form.get("submission_token", "")
    if not TOKEN.match(token):
        return page(422, {"form": "This form is incomplete. Please read the consent again and sign."})
    existing = db.exec(select(SignedConsent.id, SignedConsent.patient_id).where(
        SignedConsent.clinic_id == g.clinic.id, SignedConsent.submission_token == token)).first()
    if existing is not None:
        if existing.patient_id != p.id:
            _deny("consent", existing.id, p.id)
        flash("This consent was already signed; it was saved once.")
        return redirect(_done_url(p, existing.id, on_tablet))
    if form.get("template_id", "") != str(template.id):
        return page(409, conflict=f"This consent was updated after the page was opened. Please read the current "
                                  f"version ({template.version}) and sign it; nothing was saved.")
    values = {k: clean_text(form.get(k, "")) for k in ("signer_name", "signer_role", "authority")}
    values["verbal"] = on_tablet and form.get("verbal") == "1"
    errors: dict[str, str] = {}
    role = values["signer_role"] or "patient"
    if role not in ("patient", "representative"):
        errors["signer_role"] = "Choose who is signing."
    name = values["signer_name"]
    if not name:
        errors["signer_name"] = "Type your full name to sign."
    elif len(name) > 200:
        errors["signer_name"] = "Use at most 200 characters."
    elif role == "patient" and not _same_name(name, p.legal_name):
        errors["signer_name"] = "Type the patient's full legal name as it appears on the record."
    if role == "representative" and not values["authority"]:
        errors["authority"] = "Say what authority the representative has (for example: legal guardian, health care power of attorney)."
    elif len(values["authority"]) > 200:
        errors["authority"] = "Use at most 200 characters."
    ticked = [form.get(f"ack_{i}") == "1" for i in range(len(template.acknowledgements))]
    if not all(ticked):
        errors["acks"] = "Tick every box to confirm you have read and agree to each statement."
    values["ticked"] = ticked
    png, problem = _signature(form.get("signature_png", ""))
    if problem:
        errors["signature"] = problem
    if errors:
        return page(422, errors, values)

    previous = service.latest_consents(db, g.clinic, [p.id]).get((p.id, kind))
    signer = service.Signer(
        name=name, role=role, authority=values["authority"] if role == "representative" else "",
        method="witnessed_verbal" if values["verbal"] else "drawn" if png else "typed", signature_png=png,
        channel=channel, ip=request.remote_addr or "", user_agent=request.user_agent.string or "",
        staff_user_id=current_user.id if on_tablet else None, staff_name=current_user.name if on_tablet else "")
    savepoint = db.begin_nested()
    try:
        record = service.sign(db, g.clinic, p, template, signer, token,
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
    after_commit("document_issued", clinic=g.clinic, document=record)
    flash(f"Signed: {template.title}. Thank you.")
    return redirect(_done_url(p, record.id, on_tablet))


def _done_url(p: Patient, consent_id: int, on_tablet: bool) -> str:
    return url_for("consent.signed", patient_id=p.id, consent_id=consent_id) if on_tablet else url_for("portal.home")


@bp.route("/patients/<int:patient_id>/sign/<kind>", methods=["GET", "POST"])
@staff()
def tablet_sign(patient_id: int, kind: str):
    """The page staff hand to the patient on a tablet; staff present is the signed-in user."""
    return _sign(_patient(patient_id), kind, channel="tablet")


@bp.get("/patients/<int:patient_id>/signed/<int:consent_id>")
@staff()
def signed(patient_id: int, consent_id: int):
    p = _patient(patient_id)
    record = _consent(p, consent_id)
    db = get_session()
    st = service.status_for(db, g.clinic, [p.id])[p.id]
    modality = service.modality_of(db, g.clinic, p.id)
    required = service.required_kinds(service.settings(db, g.clinic), modality) if modality else []
    audit.record("consent.view", object_type="consent", object_id=record.id, patient_id=p.id)
    return render_template("consent/signed.html", patient=p, record=record,
                           todo=[st.consents[k] for k in required if st.consents[k].status != "valid"])


@bp.get("/patients/<int:patient_id>/consents/<int:consent_id>.pdf")
@staff()
def staff_pdf(patient_id: int, consent_id: int):
    p = _patient(patient_id)
    return _download(p, _consent(p, consent_id))


def _download(p: Patient, record: SignedConsent):
    """The stored bytes, never re-rendered; refused (and audited) if they no longer match."""
    if not service.integrity_ok(record):
        audit.record_denied("consent.integrity_failed", object_type="consent", object_id=record.id,
                            patient_id=p.id, outcome="integrity_error")
        abort(409, "This signed document failed its integrity check and cannot be downloaded. "
                   "The event was logged; please contact the clinic's administrator.")
    audit.record("consent.downloaded", object_type="consent", object_id=record.id, patient_id=p.id)
    return pdf_response(record.pdf, f"consent-{record.kind}-v{record.version}-{record.id}.pdf")


@bp.post("/patients/<int:patient_id>/consents/<int:consent_id>/revoke")
@staff("clinician", "manager", "admin")
def revoke(patient_id: int, consent_id: int):
    """Withdrawal is a new linked record; the signed consent itself never changes."""
    p = _patient(patient_id)
    record = _consent(p, consent_id)
    db = get_session()
    reason = clean_text(request.form.get("reason"))
    if not reason or len(reason) > 500:
        flash("Give a reason for the withdrawal (up to 500 characters); nothing was changed.")
        return redirect(url_for("consent.patient", patient_id=p.id)), 303
    if db.exec(select(ConsentRevocation.id).where(ConsentRevocation.consent_id == record.id)).first() is not None:
        abort(409, "This consent was already withdrawn.")
    db.add(ConsentRevocation(clinic_id=g.clinic.id, patient_id=p.id, consent_id=record.id, reason=reason,
                             by_user_id=current_user.id, at=utcnow()))
    audit.record("consent.revoked", object_type="consent", object_id=record.id, patient_id=p.id)
    flash("The consent was recorded as withdrawn. Treatment that needs it is blocked until a new one is signed.")
    return redirect(url_for("consent.patient", patient_id=p.id))


# -- screening --------------------------------------------------------------------------------

def _screen(p: Patient, *, channel: str):
    db = get_session()
    items = service.active_items(db, g.clinic)
    on_portal = channel == "portal"
    action = url_for("consent.portal_screening") if on_portal else url_for("consent.screening", patient_id=p.id)
    if request.method == "GET":
        return render_template("consent/screening.html", patient=p, items=items, errors={}, values={},
                               action=action, on_portal=on_portal)
    answers = {i.code: request.form.get(f"item_{i.code}", "") for i in items}
    errors = {code: "Answer yes or no." for code, a in answers.items() if a not in ("yes", "no")}
    answered_by = "patient" if on_portal else request.form.get("answered_by", "patient")
    if answered_by not in ("patient", "staff"):
        errors["answered_by"] = "Say who answered."
    if errors:
        return render_template("consent/screening.html", patient=p, items=items, errors=errors,
                               values={**answers, "answered_by": answered_by}, action=action,
                               on_portal=on_portal), 422
    screening = service.record_screening(db, g.clinic, p, items, {c for c, a in answers.items() if a == "yes"},
                                         answered_by=answered_by, channel=channel, user_id=current_user.id,
                                         ip=request.remote_addr or "")
    audit.record("consent.screening_recorded", object_type="screening", object_id=screening.id, patient_id=p.id)
    flash("Screening saved. Thank you.")
    return redirect(url_for("portal.home") if on_portal else url_for("consent.patient", patient_id=p.id))


@bp.route("/patients/<int:patient_id>/screening", methods=["GET", "POST"])
@staff()
def screening(patient_id: int):
    return _screen(_patient(patient_id), channel="tablet")


# -- clinician acknowledgements ---------------------------------------------------------------

def _ack_form(p: Patient, *, title: str, label: str, context: str, action: str, on_save, back: str):
    if request.method == "GET":
        return render_template("consent/acknowledge.html", patient=p, title=title, label=label, context=context,
                               action=action, errors={}, values={}, back=back)
    rationale = clean_text(request.form.get("rationale"))
    errors = {}
    if len(rationale) < 15:
        errors["rationale"] = "Write the clinical rationale for proceeding (at least 15 characters)."
    elif len(rationale) > 2000:
        errors["rationale"] = "Use at most 2000 characters."
    if request.form.get("attest") != "1":
        errors["attest"] = "Confirm that you have weighed this risk and take responsibility for proceeding."
    if errors:
        return render_template("consent/acknowledge.html", patient=p, title=title, label=label, context=context,
                               action=action, errors=errors, values={"rationale": rationale}, back=back), 422
    ack = on_save(rationale)
    audit.record("consent.acknowledged", object_type="acknowledgement", object_id=ack.id, patient_id=p.id,
                 detail=ack.item_code)
    after_commit("document_issued", clinic=g.clinic, document=ack)
    flash("Acknowledgement signed.")
    return redirect(back)


@bp.route("/patients/<int:patient_id>/screenings/<int:screening_id>/acknowledge/<code>", methods=["GET", "POST"])
@staff("clinician")
def acknowledge(patient_id: int, screening_id: int, code: str):
    p = _patient(patient_id)
    db = get_session()
    s = db.exec(select(Screening).where(Screening.id == screening_id, Screening.patient_id == p.id,
                                        Screening.clinic_id == g.clinic.id)).first()
    if s is None:
        _deny("screening", screening_id, p.id)
    answer = next((a for a in s.answers if a["code"] == code and a.get("yes")), None)
    if answer is None:
        abort(404)
    if answer["severity"] != "relative":
        abort(409, "An absolute contraindication cannot be acknowledged: treatment stays blocked for the modalities "
                   "it applies to. If the answer was wrong, record a new screening.")
    done = db.exec(select(Acknowledgement.id).where(Acknowledgement.screening_id == s.id,
                                                    Acknowledgement.item_code == code)).first()
    if done is not None:
        flash("This contraindication was already acknowledged.")
        return redirect(url_for("consent.patient", patient_id=p.id))
    return _ack_form(p, title="Acknowledge a relative contraindication", label=answer["label"],
                     context=f"Reported in the screening of {s.answered_at:%Y-%m-%d} (by the {s.answered_by}).",
                     action=url_for("consent.acknowledge", patient_id=p.id, screening_id=s.id, code=code),
                     back=url_for("consent.patient", patient_id=p.id),
                     on_save=lambda rationale: service.acknowledge(
                         db, g.clinic, p.id, code=code, label=answer["label"], rationale=rationale,
                         clinician=current_user, screening_id=s.id, ip=request.remote_addr or ""))


@bp.route("/sessions/<int:treatment_id>/blood-pressure", methods=["GET", "POST"])
@staff("clinician")
def acknowledge_bp(treatment_id: int):
    db = get_session()
    t = db.exec(select(TreatmentSession).where(TreatmentSession.id == treatment_id,
                                               TreatmentSession.clinic_id == g.clinic.id)).first()
    if t is None:
        _deny("treatment_session", treatment_id)
    p = _patient(t.patient_id)
    vital = db.exec(select(VitalSign).where(VitalSign.treatment_id == t.id, VitalSign.clinic_id == g.clinic.id,
                                            VitalSign.phase == VitalPhase.baseline)
                    .order_by(VitalSign.taken_at.desc(), VitalSign.id.desc())).first()
    values = service.settings(db, g.clinic)
    sys_max, dia_max = int(values["bp_systolic_max"]), int(values["bp_diastolic_max"])
    if vital is None or (vital.systolic <= sys_max and vital.diastolic <= dia_max):
        abort(409, "There is no blood pressure above the clinic's threshold to acknowledge for this session.")
    back = service.link_to("sessions.detail", session_id=t.id) or url_for("consent.patient", patient_id=p.id)
    label = f"Blood pressure {vital.systolic}/{vital.diastolic} at check-in (threshold {sys_max}/{dia_max})"
    return _ack_form(p, title="Acknowledge a high blood pressure", label=label,
                     context=f"{MODALITY_LABELS[t.modality]} session.", action=url_for("consent.acknowledge_bp",
                                                                                     treatment_id=t.id),
                     back=back, on_save=lambda rationale: service.acknowledge(
                         db, g.clinic, p.id, code=service.BP_CODE, label=label, rationale=rationale,
                         clinician=current_user, treatment_id=t.id, ip=request.remote_addr or ""))


# -- portal -------------------------------------------------------------------------------------

@bp.route("/portal/sign/<kind>", methods=["GET", "POST"])
@patient_only
def portal_sign(kind: str):
    return _sign(current_patient(), kind, channel="portal")


@bp.get("/portal/consents/<int:consent_id>.pdf")
@patient_only
def portal_pdf(consent_id: int):
    p = current_patient()
    return _download(p, _consent(p, consent_id))


@bp.route("/portal/screening", methods=["GET", "POST"])
@patient_only
def portal_screening():
    return _screen(current_patient(), channel="portal")


# -- manager: templates, screening list, settings ----------------------------------------------

@bp.get("/templates")
@staff(*MANAGERS)
def templates():
    db = get_session()
    current = service.current_templates(db, g.clinic)
    counts = dict(db.exec(select(SignedConsent.template_id, func.count()).where(
        SignedConsent.clinic_id == g.clinic.id).group_by(SignedConsent.template_id)).all())
    return render_template("consent/templates.html", current=current, kinds=service.KINDS, counts=counts)


@bp.route("/templates/<kind>", methods=["GET", "POST"])
@staff(*MANAGERS)
def template_edit(kind: str):
    """Saving makes a new version; signed copies keep the text they were signed with."""
    db = get_session()
    current = _template(kind)
    history = db.exec(select(ConsentTemplate).where(ConsentTemplate.clinic_id == g.clinic.id,
                                                    ConsentTemplate.kind == kind)
                      .order_by(ConsentTemplate.version.desc())).all()

    def page(status=200, errors=None, values=None, conflict=""):
        shown = values or {"title": current.title, "body": current.body,
                           "acknowledgements": "\n".join(current.acknowledgements), "change_note": ""}
        return render_template("consent/template_edit.html", current=current, history=history, values=shown,
                               errors=errors or {}, conflict=conflict,
                               preview=service.markdown(shown["body"])), status

    if request.method == "GET":
        return page()
    values = {k: clean_text(request.form.get(k, "")).replace("\r\n", "\n") for k in
              ("title", "body", "acknowledgements", "change_note")}
    if request.form.get("base_version") != str(current.version):
        return page(409, values=values, conflict=f"Someone saved version {current.version} while you were editing. "
                                                 "Compare with the current text below; nothing was saved.")
    acks = [line.strip() for line in values["acknowledgements"].split("\n") if line.strip()]
    errors = {}
    if not 3 <= len(values["title"]) <= 200:
        errors["title"] = "Give a title of 3 to 200 characters."
    if not 20 <= len(values["body"]) <= 50_000:
        errors["body"] = "The consent text must be between 20 and 50,000 characters."
    if not acks or len(acks) > 20 or any(len(a) > 500 for a in acks):
        errors["acknowledgements"] = "Give 1 to 20 statements to tick, one per line, each up to 500 characters."
    if len(values["change_note"]) > 300:
        errors["change_note"] = "Use at most 300 characters."
    if errors:
        return page(422, errors, values)
    if (values["title"], values["body"], acks) == (current.title, current.body.strip(), current.acknowledgements):
        flash("No changes: the current version stays.")
        return redirect(url_for("consent.templates"))
    new = ConsentTemplate(clinic_id=g.clinic.id, kind=kind, version=current.version + 1, title=values["title"],
                          body=values["body"], acknowledgements=acks, change_note=values["change_note"],
                          created_by_id=current_user.id, created_at=utcnow())
    db.add(new)
    db.flush()
    audit.record("consent.template_versioned", object_type="consent_template", object_id=new.id,
                 detail=f"{kind} v{new.version}")
    flash(f"Saved as version {new.version}. Patients must sign it again before their next treatment.")
    return redirect(url_for("consent.templates"))


def _item_values(form) -> tuple[dict, dict]:
    values = {"label": clean_text(form.get("label")), "severity": form.get("severity", ""),
              "modalities": [m for m in service.MODALITIES if form.get(f"modality_{m}") == "1"],
              "active": form.get("active") == "1"}
    errors = {}
    if not 3 <= len(values["label"]) <= 300:
        errors["label"] = "Give the question a label of 3 to 300 characters."
    if values["severity"] not in ("absolute", "relative"):
        errors["severity"] = "Choose absolute or relative."
    if not values["modalities"]:
        errors["modalities"] = "Choose at least one modality it applies to."
    return values, errors


def _items_page(status=200, errors=None, values=None, editing=None):
    items = get_session().exec(select(ContraindicationItem).where(ContraindicationItem.clinic_id == g.clinic.id)
                               .order_by(ContraindicationItem.position, ContraindicationItem.id)).all()
    return render_template("consent/contraindications.html", items=items, errors=errors or {}, values=values or {},
                           editing=editing, modalities=[(m.value, m.label) for m in Modality]), status


@bp.route("/contraindications", methods=["GET", "POST"])
@staff(*MANAGERS)
def contraindications():
    db = get_session()
    service.ensure_clinic_data(db, g.clinic)
    if request.method == "GET":
        return _items_page()
    values, errors = _item_values(request.form)
    if errors:
        return _items_page(422, errors, values, editing="new")
    position = db.exec(select(func.max(ContraindicationItem.position)).where(
        ContraindicationItem.clinic_id == g.clinic.id)).one() or 0
    db.add(ContraindicationItem(clinic_id=g.clinic.id, code=f"custom_{uuid.uuid4().hex[:10]}", position=position + 1,
                                label=values["label"], severity=values["severity"], modalities=values["modalities"],
                                active=True))
    audit.record("consent.screening_list_changed", object_type="clinic", object_id=g.clinic.id, detail="added")
    flash("Question added. It is asked in every new screening.")
    return redirect(url_for("consent.contraindications"))


@bp.post("/contraindications/<int:item_id>")
@staff(*MANAGERS)
def contraindication_edit(item_id: int):
    db = get_session()
    item = db.exec(select(ContraindicationItem).where(ContraindicationItem.id == item_id,
                                                      ContraindicationItem.clinic_id == g.clinic.id)).first()
    if item is None:
        _deny("contraindication", item_id)
    values, errors = _item_values(request.form)
    if errors:
        return _items_page(422, errors, values, editing=item.id)
    for key, value in values.items():
        setattr(item, key, value)
    db.add(item)
    audit.record("consent.screening_list_changed", object_type="contraindication", object_id=item.id, detail="edited")
    flash("Saved. Earlier screenings keep the questions as they were asked.")
    return redirect(url_for("consent.contraindications"))


LIMITS = {"validity_days": (1, 3650), "screening_validity_days": (1, 3650), "bp_systolic_max": (100, 240),
          "bp_diastolic_max": (60, 140)}


@bp.route("/settings", methods=["GET", "POST"])
@staff(*MANAGERS)
def settings():
    from core.plugin_state import save_settings

    db = get_session()
    values = service.settings(db, g.clinic)
    modalities = [(m.value, m.label) for m in Modality]
    if request.method == "GET":
        return render_template("consent/settings.html", values=values, errors={}, modalities=modalities,
                               kinds=service.KINDS, limits=LIMITS)
    new, errors = {}, {}
    for m, _label in modalities:
        new[f"required_{m}"] = [k for k in service.KINDS if request.form.get(f"required_{m}_{k}") == "1"]
    for key, (low, high) in LIMITS.items():
        raw = request.form.get(key, "").strip()
        if not raw.isdigit() or not low <= int(raw) <= high:
            errors[key] = f"Enter a whole number from {low} to {high}."
            new[key] = raw
        else:
            new[key] = int(raw)
    if errors:
        return render_template("consent/settings.html", values={**values, **new}, errors=errors,
                               modalities=modalities, kinds=service.KINDS, limits=LIMITS), 422
    save_settings(db, g.clinic, service.PLUGIN, new)
    flash("Consent settings saved.")
    return redirect(url_for("consent.settings"))
