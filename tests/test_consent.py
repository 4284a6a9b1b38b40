"""Consent plugin: signing, immutability, integrity, access, the treatment gate and its hooks."""
from __future__ import annotations

import io
import re
import sys
import types

import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlmodel import select

from core.hookspecs import hookimpl
from core.hooks import relay
from core.models import (AuditEvent, Clinic, ImmutableRecordError, Modality, Patient, PluginState, TreatmentSession, User, VitalPhase, VitalSign, utcnow)
from core.slots import Blocker, LetterSection, Panel, PortalItem
from plugins.consent import documents, service
from plugins.consent.models import (Acknowledgement, ConsentAttestation, ConsentTemplate, ContraindicationItem, Screening,
                                    SignedConsent)
from tests.conftest import BUILTIN
from tests.support import login, post, unlock_tablet

# -- a tiny spy plugin: proves document_issued reaches plugins after the commit ----------------
spy = types.ModuleType("consent_spy")
spy.issued = []
spy.__file__ = __file__  # core looks for migrations next to a plugin (there are none)


@hookimpl
def _document_issued(clinic, document):
    spy.issued.append((clinic.id, type(document).__name__, document.id))


_document_issued.__name__ = "document_issued"
spy.document_issued = _document_issued
sys.modules["consent_spy"] = spy


def fresh(db) -> None:
    """End the test's read transaction, so the next read sees what the requests committed."""
    db.rollback()


def _clinic(db, slug="stillwater") -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == slug)).one()


def _unsigned_patient(db, clinic) -> tuple[Patient, TreatmentSession]:
    """A new IV ketamine patient on today's schedule, screened (all no) but with nothing signed yet (the
    demo's treated patients have signed everything)."""
    from plugins.consent.screening import record_screening

    from datetime import date

    from core.db import new_session
    from core.models import Provider, utcnow

    with new_session(db.get_bind()) as s:
        provider = s.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
        patient = Patient(clinic_id=clinic.id, mrn=f"NEW{utcnow():%H%M%S%f}"[:20], legal_first_name="Newt",
                          legal_last_name="Intakeson", dob=date(1988, 4, 2), created_at=utcnow())
        s.add(patient)
        s.flush()
        t = TreatmentSession(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id,
                             modality=Modality.iv_ketamine, scheduled_at=utcnow())
        s.add(t)
        record_screening(s, clinic, patient, service.active_items(s, clinic), set(), answered_by="patient",
                         channel="tablet", user_id=None)
        s.commit()
        ids = patient.id, t.id
    fresh(db)
    return db.get(Patient, ids[0]), db.get(TreatmentSession, ids[1])


def _form(html: str) -> dict:
    return {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)
            for name in ("template_id", "submission_token")}


def _sign_data(html: str, name: str, **extra) -> dict:
    count = len(re.findall(r'name="ack_\d+"', html))
    return {**_form(html), "signer_name": name, "signer_role": "patient",
            **{f"ack_{i}": "1" for i in range(count)}, **extra}


def _count(db, model, **where):
    fresh(db)
    q = select(model)
    for key, value in where.items():
        q = q.where(getattr(model, key) == value)
    return len(db.exec(q).all())


def _audits(db, action):
    fresh(db)
    return db.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def _seeded_blocked(db, clinic) -> Patient:
    """The demo patient who signed two of three consents (the financial policy is missing)."""
    rows = db.exec(select(SignedConsent.patient_id).where(SignedConsent.clinic_id == clinic.id)).all()
    return db.get(Patient, next(pid for pid in rows if rows.count(pid) == 2))


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_tablet_signing_stores_text_hash_and_pdf_and_fires_document_issued(make_app, db):
    spy.issued.clear()
    app = make_app(plugins=BUILTIN + [("spy", spy)])
    client = app.test_client()
    clinic = _clinic(db)
    patient, _t = _unsigned_patient(db, clinic)
    login(app, client, "frontdesk")
    url = f"/consent/patients/{patient.id}/sign/informed_ketamine"
    page = client.get(url)
    assert page.status_code == 200 and "off-label" in page.text
    # the representative signs: any Unicode name round-trips into the record and the PDF
    rep = "Ψυχή Δοκιμή-Łukasz 李小龍"
    resp = post(app, client, url, _sign_data(page.text, rep, signer_role="representative",
                                             authority="Legal guardian", patient_id="999", signed_at="2001-01-01"))
    assert resp.status_code == 302
    unlock_tablet(app, client)
    fresh(db)
    record = db.exec(select(SignedConsent).where(SignedConsent.patient_id == patient.id)).one()
    assert (record.signer_name, record.signer_role, record.representative_authority) == (rep, "representative",
                                                                                         "Legal guardian")
    assert record.method == "typed" and record.channel == "tablet" and record.staff_name.startswith("Fran")
    assert record.text_sha256 == service.sha256(record.signed_text) and "[x] I understand" in record.signed_text
    assert record.signed_at.year == utcnow().year and record.user_agent
    assert documents.integrity_ok(record) and not record.issued_at_signing
    # nothing is issued until the clinician who explained it attests; the front desk cannot
    assert spy.issued == []
    waiting = client.get(f"/consent/patients/{patient.id}/consents/{record.id}.pdf")
    assert waiting.status_code == 409 and "awaiting a clinician" in waiting.text
    assert "Awaiting clinician attestation" in client.get(f"/consent/patients/{patient.id}/signed/{record.id}").text
    refused = post(app, client, f"/consent/patients/{patient.id}/consents/{record.id}/attest", {"attest": "1"})
    assert refused.status_code == 403 and _count(db, ConsentAttestation, consent_id=record.id) == 0
    clinician = app.test_client()
    login(app, clinician, "clinician")
    assert post(app, clinician, f"/consent/patients/{patient.id}/consents/{record.id}/attest", {}).status_code == 422
    assert post(app, clinician, f"/consent/patients/{patient.id}/consents/{record.id}/attest",
                {"attest": "1"}).status_code == 302
    fresh(db)
    att = db.exec(select(ConsentAttestation).where(ConsentAttestation.consent_id == record.id)).one()
    assert spy.issued == [(clinic.id, "ConsentAttestation", att.id)] and _audits(db, "consent.attested")

    pdf = client.get(f"/consent/patients/{patient.id}/consents/{record.id}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert "attachment" in pdf.headers["Content-Disposition"] and pdf.headers["Cache-Control"] == "no-store"
    assert pdf.data == att.pdf and documents.attestation_ok(att, record)
    words = " ".join(_pdf_text(pdf.data).split())
    assert rep in words and patient.legal_name in words
    assert "Legal guardian" in words and "Abuse and dependence" in words and record.text_sha256 in words
    assert "/s/ Cleo Clinician, MD" in words and "I answered the representative's questions" in words
    assert _audits(db, "consent.signed") and _audits(db, "consent.downloaded")
    overview = client.get(f"/consent/patients/{patient.id}")  # front desk: no clinical details
    assert "shown to clinical staff only" in overview.text and "Clinician acknowledgements" not in overview.text


def test_patient_signs_with_their_own_name_and_a_drawn_signature(app, client, db):
    clinic = _clinic(db)
    patient, _t = _unsigned_patient(db, clinic)
    login(app, client, "clinician")
    url = f"/consent/patients/{patient.id}/sign/treatment_day"
    page = client.get(url)
    png = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
           "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
    wrong = post(app, client, url, _sign_data(page.text, "Somebody Else", signature_png=png))
    assert wrong.status_code == 422 and "full legal name" in wrong.text
    ok = post(app, client, url, _sign_data(page.text, f"  {patient.legal_name.upper()} ", signature_png=png))
    assert ok.status_code == 302
    fresh(db)
    record = db.exec(select(SignedConsent).where(SignedConsent.patient_id == patient.id)).one()
    assert record.method == "drawn" and record.signature_png.startswith(b"\x89PNG")


def test_unsigned_stale_and_double_submissions(app, client, db):
    clinic = _clinic(db)
    patient, _t = _unsigned_patient(db, clinic)
    login(app, client, "clinician")
    url = f"/consent/patients/{patient.id}/sign/financial"
    page = client.get(url)
    assert "Good Faith Estimate" in page.text

    unsigned = post(app, client, url, {**_form(page.text), "signer_name": ""})
    assert unsigned.status_code == 422
    assert "Type your full name" in unsigned.text and "Tick every box" in unsigned.text
    bad_token = post(app, client, url, {**_sign_data(page.text, patient.legal_name), "submission_token": "x"})
    assert bad_token.status_code == 422
    tampered = post(app, client, url, {**_sign_data(page.text, patient.legal_name), "template_id": "1"})
    assert tampered.status_code == 409 and "updated after the page was opened" in tampered.text
    assert _count(db, SignedConsent, patient_id=patient.id) == 0

    data = _sign_data(page.text, patient.legal_name)
    first, second = post(app, client, url, data), post(app, client, url, data)
    assert first.status_code == second.status_code == 302 and first.location == second.location
    assert _count(db, SignedConsent, patient_id=patient.id) == 1

    # a manager publishes version 2: the page the patient still holds is stale now
    stale_page = client.get(url)
    manager = app.test_client()
    login(app, manager, "manager")
    edit = manager.get("/consent/templates/financial")
    body = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', edit.text, re.S).group(1)
    import html as html_lib
    saved = post(app, manager, "/consent/templates/financial", {
        "base_version": "1", "title": "Financial policy and Good Faith Estimate notice",
        "body": html_lib.unescape(body) + "\n\nPayment plans are available on request.",
        "acknowledgements": "I understand the payment policy.\nI know about the Good Faith Estimate.",
        "change_note": "Payment plans"})
    assert saved.status_code == 302
    stale = post(app, client, url, _sign_data(stale_page.text, patient.legal_name))
    assert stale.status_code == 409 and "version (2)" in stale.text
    assert _count(db, SignedConsent, patient_id=patient.id) == 1
    # the gate now reports the consent as outdated, with a link to sign again
    with app.test_request_context():
        t = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient.id,
                                                   TreatmentSession.status.in_(["scheduled", "checked_in"]))).first()
        blockers, _ = relay(clinic).collect("treatment_blockers", expect=Blocker, clinic=clinic, patient=patient,
                                            treatment=t)
    assert any("Financial policy" in b.reason and "version 1" in b.reason
               and b.link == f"/consent/patients/{patient.id}/sign/financial" for b in blockers)


def test_signed_records_are_immutable_in_the_orm_and_the_database(app, db, backend):
    record = db.exec(select(SignedConsent)).first()
    record.signer_name = "Someone Else"
    with pytest.raises(ImmutableRecordError):
        db.flush()
    fresh(db)
    for table in ("consent_signed", "consent_attestation", "consent_screening", "consent_acknowledgement",
                  "consent_template"):
        for statement in (f"UPDATE {table} SET clinic_id = clinic_id", f"DELETE FROM {table}"):
            with pytest.raises(Exception, match="append-only"):
                db.execute(text(statement))
            fresh(db)


def test_tampered_pdf_is_refused_and_audited_and_old_copies_stay_byte_identical(app, client, db, backend):
    record = db.exec(select(SignedConsent).order_by(SignedConsent.id)).first()
    att = db.exec(select(ConsentAttestation).where(ConsentAttestation.consent_id == record.id)).one()
    original = att.pdf
    login(app, client, "manager")
    # G10: a new template version never changes what was signed
    edit = client.get(f"/consent/templates/{record.kind}")
    assert edit.status_code == 200
    post(app, client, f"/consent/templates/{record.kind}", {
        "base_version": "1", "title": "Changed title", "body": "## New text\n\nEntirely new consent wording here.",
        "acknowledgements": "I agree.", "change_note": "rewrite"})
    ok = client.get(f"/consent/patients/{record.patient_id}/consents/{record.id}.pdf")
    assert ok.status_code == 200 and ok.data == original

    # G9: flip one byte behind the app's back (the trigger has to go first)
    flipped = bytes([original[0] ^ 1]) + original[1:]
    fresh(db)
    if backend == "sqlite":
        db.execute(text("DROP TRIGGER consent_attestation_no_update"))
    else:
        db.execute(text("ALTER TABLE consent_attestation DISABLE TRIGGER consent_attestation_no_change"))
    db.execute(text("UPDATE consent_attestation SET pdf = :pdf WHERE id = :id"), {"pdf": flipped, "id": att.id})
    db.commit()
    fresh(db)
    bad = client.get(f"/consent/patients/{record.patient_id}/consents/{record.id}.pdf")
    assert bad.status_code == 409 and "integrity check" in bad.text and bad.mimetype != "application/pdf"
    rows = _audits(db, "consent.integrity_failed")
    assert [(r.object_id, r.outcome) for r in rows] == [(str(record.id), "integrity_error")]


def test_other_patients_and_clinics_get_404_with_an_audit_row(app, client, db):
    clinic = _clinic(db)
    records = db.exec(select(SignedConsent).where(SignedConsent.clinic_id == clinic.id)
                      .order_by(SignedConsent.id)).all()
    portal_patient = db.exec(select(Patient).join(User, User.id == Patient.user_id)
                             .where(User.email == "patient@demo.glia.example")).one()
    own = next(r for r in records if r.patient_id == portal_patient.id)
    other = next(r for r in records if r.patient_id != portal_patient.id)
    harbor = db.exec(select(SignedConsent).where(SignedConsent.clinic_id == _clinic(db, "harbor").id)).first()

    login(app, client, "clinician")
    before = len(_audits(db, "consent.access"))
    assert client.get(f"/consent/patients/{own.patient_id}/consents/{other.id}.pdf").status_code == 404
    assert client.get(f"/consent/patients/{harbor.patient_id}/consents/{harbor.id}.pdf").status_code == 404
    assert client.get(f"/consent/patients/{harbor.patient_id}/sign/financial").status_code == 404
    assert len(_audits(db, "consent.access")) == before + 3

    client.post("/logout")
    client = app.test_client()
    login(app, client, "patient")
    assert client.get(f"/consent/portal/consents/{own.id}.pdf").status_code == 200
    denied = client.get(f"/consent/portal/consents/{other.id}.pdf")
    assert denied.status_code == 404 and b"%PDF" not in denied.data
    rows = [r for r in _audits(db, "consent.access") if r.object_id == str(other.id)]
    assert rows and rows[-1].outcome == "denied" and rows[-1].role == "patient"
    # staff pages are not for patients
    assert client.get(f"/consent/patients/{own.patient_id}").status_code == 403


def test_portal_lists_own_tasks_and_copies_and_signs_there(app, client, db):
    clinic = _clinic(db)
    login(app, client, "manager")
    post(app, client, "/consent/templates/treatment_day", {
        "base_version": "1", "title": "Treatment-day agreement", "body": "## Escort\n\nAn adult escort takes you home.",
        "acknowledgements": "An escort takes me home.\nI will not drive until tomorrow.", "change_note": "short"})
    client = app.test_client()
    login(app, client, "patient")
    home = client.get("/portal/")
    assert "Please read and sign: Treatment-day agreement" in home.text
    assert home.text.count("Signed: ") == 3  # its own three signed copies, nobody else's
    page = client.get("/consent/portal/sign/treatment_day")
    assert page.status_code == 200 and "Staff present" not in page.text
    me = db.exec(select(Patient).join(User, User.id == Patient.user_id)
                 .where(User.email == "patient@demo.glia.example")).one()
    resp = post(app, client, "/consent/portal/sign/treatment_day", _sign_data(page.text, me.legal_name))
    assert resp.status_code == 302 and resp.location.endswith("/portal/")
    fresh(db)
    latest = db.exec(select(SignedConsent).where(SignedConsent.patient_id == me.id, SignedConsent.kind == "treatment_day")
                     .order_by(SignedConsent.id.desc())).first()
    assert latest.version == 2 and latest.channel == "portal" and latest.staff_user_id is None
    assert latest.supersedes_id is not None
    home = client.get("/portal/")
    assert "Please read and sign" not in home.text and "your copy appears here once they have" in home.text
    assert f"/consent/portal/consents/{latest.id}.pdf" not in home.text
    assert client.get(f"/consent/portal/consents/{latest.id}.pdf").status_code == 409  # not issued yet

    # it waits in the clinicians' queue on the dashboard, and the gate says why
    staff = app.test_client()
    login(app, staff, "clinician")
    dashboard = staff.get("/")
    queue = dashboard.text.split("Consents awaiting clinician attestation", 1)[1]
    attest_url = f"/consent/patients/{me.id}/consents/{latest.id}/attest"
    assert me.display_name in queue and attest_url in queue
    t = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == me.id,
                                               TreatmentSession.status.in_(["scheduled", "checked_in"]))).first()
    if t is not None:
        assert any("awaiting a clinician's attestation" in b.reason and b.link == attest_url
                   for b in _blockers(app, db, clinic, t))
    form = staff.get(attest_url)
    assert form.status_code == 200 and "I answered the patient&#39;s questions" in form.text
    assert post(app, staff, attest_url, {"attest": "1"}).status_code == 302
    assert post(app, staff, attest_url, {"attest": "1"}).status_code == 302  # a second click issues nothing new
    assert _count(db, ConsentAttestation, consent_id=latest.id) == 1
    assert attest_url not in staff.get("/").text

    home = client.get("/portal/")
    assert home.text.count("Signed: ") == 3 and f"/consent/portal/consents/{latest.id}.pdf" in home.text
    copy = client.get(f"/consent/portal/consents/{latest.id}.pdf")
    assert copy.status_code == 200 and "Clinician's attestation" in _pdf_text(copy.data)
    with app.test_request_context():
        items, errors = relay(clinic).collect("portal_items", expect=PortalItem, clinic=clinic, patient=me)
    assert not errors and all(i.kind == "document" for i in items)


def _blockers(app, db, clinic, t):
    with app.test_request_context():
        fresh(db)
        found, errors = relay(clinic).collect("treatment_blockers", expect=Blocker, clinic=clinic,
                                              patient=db.get(Patient, t.patient_id), treatment=db.get(TreatmentSession, t.id))
    assert not errors
    return found


def test_screening_and_blood_pressure_gate_the_session_start(app, client, db):
    clinic = _clinic(db)
    patient, t = _unsigned_patient(db, clinic)
    reasons = [b.reason for b in _blockers(app, db, clinic, t)]
    assert sum(r.startswith("Consent:") for r in reasons) == 3  # the three required for IV ketamine

    login(app, client, "clinician")
    for kind in ("informed_ketamine", "treatment_day", "financial"):
        url = f"/consent/patients/{patient.id}/sign/{kind}"
        done = post(app, client, url, _sign_data(client.get(url).text, patient.legal_name))
        assert done.status_code == 302
        unlock_tablet(app, client)
        if kind == "financial":  # signed but not attested: still blocked, and the reason says so
            (waiting,) = _blockers(app, db, clinic, t)
            assert waiting.reason == ("Consent: Financial policy and Good Faith Estimate notice - signed by the "
                                      "patient, awaiting a clinician's attestation that they explained it")
        # the clinician attests at the tablet right after the patient signs
        signed = client.get(done.location)
        assert "Sign the attestation" in signed.text
        consent_id = done.location.rsplit("/", 1)[1]
        assert post(app, client, f"/consent/patients/{patient.id}/consents/{consent_id}/attest",
                    {"attest": "1"}).status_code == 302
    assert _blockers(app, db, clinic, t) == []

    # a relative contraindication needs a clinician's signed rationale
    items = service.default_contraindications()
    answers = {f"item_{i['code']}": "no" for i in items}
    incomplete = post(app, client, f"/consent/patients/{patient.id}/screening", {"item_cardiac": "yes"})
    assert incomplete.status_code == 422 and "Answer yes or no" in incomplete.text
    assert post(app, client, f"/consent/patients/{patient.id}/screening",
                {**answers, "item_psychosis_mania": "yes", "answered_by": "staff"}).status_code == 302
    (blocker,) = _blockers(app, db, clinic, t)
    assert "needs a clinician's acknowledgement" in blocker.reason and "psychosis" in blocker.reason
    assert post(app, client, blocker.link, {"rationale": "short"}).status_code == 422
    assert post(app, client, blocker.link, {"rationale": "Remote single episode in 2009, stable since; "
                                                         "psychiatrist agrees.", "attest": "1"}).status_code == 302
    assert _blockers(app, db, clinic, t) == []
    fresh(db)
    ack = db.exec(select(Acknowledgement).where(Acknowledgement.patient_id == patient.id)).one()
    assert ack.clinician_name.startswith("Dr. Cleo") and len(ack.text_sha256) == 64

    # a baseline BP above the clinic's threshold blocks until acknowledged for that session
    fresh(db)
    db.add(VitalSign(clinic_id=clinic.id, treatment_id=t.id, phase=VitalPhase.baseline, systolic=172, diastolic=96,
                     taken_at=utcnow()))
    db.commit()
    fresh(db)
    (bp,) = _blockers(app, db, clinic, t)
    assert "172/96" in bp.reason and "160/100" in bp.reason
    form = client.get(bp.link)  # the form names the reading it acknowledges
    assert "172/96" in form.text
    vital_id = re.search(r'name="vital_id" value="(\d+)"', form.text).group(1)
    assert post(app, client, bp.link, {"rationale": "Anxious on arrival; repeat 150/92 after 10 minutes.",
                                       "attest": "1", "vital_id": vital_id}).status_code == 302
    assert _blockers(app, db, clinic, t) == []

    # an absolute contraindication cannot be acknowledged away
    assert post(app, client, f"/consent/patients/{patient.id}/screening",
                {**answers, "item_intracerebral_hemorrhage": "yes"}).status_code == 302
    (absolute,) = _blockers(app, db, clinic, t)
    fresh(db)
    assert absolute.reason.startswith("Absolute contraindication")
    screening = db.exec(select(Screening).where(Screening.patient_id == patient.id).order_by(Screening.id.desc())).first()
    item = db.exec(select(ContraindicationItem).where(ContraindicationItem.clinic_id == clinic.id,
                                                      ContraindicationItem.code == "intracerebral_hemorrhage")).one()
    refused = post(app, client, f"/consent/patients/{patient.id}/screenings/{screening.id}/acknowledge/{item.id}",
                   {"rationale": "x" * 30, "attest": "1"})
    assert refused.status_code == 409
    if "sessions.start" in app.view_functions:
        fresh(db)
        version = db.get(TreatmentSession, t.id).version
        start = post(app, client, f"/sessions/{t.id}/start", {"version": str(version)})
        assert start.status_code == 409 and "Absolute contraindication" in start.text


def test_hooks_fill_the_chart_dashboard_letters_and_nav(app, client, db):
    clinic = _clinic(db)
    ext = app.extensions["glia"]
    assert {d.kind for d in ext.document_types} >= {"signed_consent", "contraindication_acknowledgement"}
    assert ext.settings["consent"]["bp_systolic_max"].default == 160
    patient = _seeded_blocked(db, clinic)
    clinician = db.exec(select(User).where(User.email == "clinician@demo.glia.example")).one()
    with app.test_request_context():
        panels, errors = relay(clinic).collect("patient_chart_panels", expect=Panel, clinic=clinic, patient=patient,
                                               user=clinician)
        sections, errors2 = relay(clinic).collect("letter_sections", expect=LetterSection, clinic=clinic,
                                                  patient=patient, recipient=None)
    assert not [e for e in errors + errors2 if e.plugin == "consent"]
    panel = next(p for p in panels if p.title == "Consents and screening")
    assert "Not signed" in str(panel.html) and "Sign on tablet" in str(panel.html)
    section = next(s for s in sections if s.title == "Consent and safety screening")
    assert "Contraindication screening: last completed" in str(section.html)

    login(app, client, "clinician")
    dashboard = client.get("/")
    assert "Blocked today: consent and screening" in dashboard.text
    assert "Financial policy and Good Faith Estimate notice - not signed" in dashboard.text
    assert ">Consents<" not in dashboard.text  # template editing is for managers
    overview = client.get(f"/consent/patients/{patient.id}")
    assert overview.status_code == 200 and "In force" in overview.text
    client = app.test_client()
    login(app, client, "manager")
    assert ">Consents<" in client.get("/").text
    for page in ("/consent/templates", "/consent/contraindications", "/consent/settings"):
        assert client.get(page).status_code == 200
    bad = post(app, client, "/consent/settings", {"validity_days": "-3", "bp_systolic_max": "150",
                                                  "bp_diastolic_max": "95", "screening_validity_days": "365"})
    assert bad.status_code == 422 and "whole number from 1 to 3650" in bad.text
    good = post(app, client, "/consent/settings", {"validity_days": "180", "bp_systolic_max": "150",
                                                   "bp_diastolic_max": "95", "screening_validity_days": "365",
                                                   "required_iv_ketamine_informed_ketamine": "1",
                                                   "required_im_ketamine_informed_ketamine_im": "1",
                                                   "required_sublingual_informed_ketamine_oral": "1",
                                                   "required_esketamine_nasal_informed_esketamine": "1"})
    assert good.status_code == 302
    fresh(db)
    saved = db.get(PluginState, (clinic.id, "consent")).settings
    assert saved["bp_systolic_max"] == 150 and saved["required_iv_ketamine"] == ["informed_ketamine"]
    added = post(app, client, "/consent/contraindications", {"label": "Seizure disorder", "severity": "relative",
                                                             "modality_iv_ketamine": "1"})
    assert added.status_code == 302 and "Seizure disorder" in client.get("/consent/contraindications").text


def test_disabled_plugin_hides_routes_and_lifts_the_gate(app, client, db):
    clinic = _clinic(db)
    patient_id = _seeded_blocked(db, clinic).id
    t = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient_id,
                                               TreatmentSession.status.in_(["scheduled", "checked_in"]))).first()
    assert _blockers(app, db, clinic, t)  # the seeded patient missing a consent
    fresh(db)
    db.add(PluginState(clinic_id=clinic.id, plugin="consent", enabled=False, settings={}))
    db.commit()
    fresh(db)
    assert _blockers(app, db, clinic, t) == []
    login(app, client, "manager")
    assert client.get("/consent/templates").status_code == 404
    assert client.get(f"/consent/patients/{patient_id}").status_code == 404
    assert "Blocked today" not in client.get("/").text
    # the other clinic keeps it
    client = app.test_client()
    login(app, client, "harbor.manager")
    assert client.get("/consent/templates").status_code == 200


def test_template_versions_are_rows_and_never_edited(app, db):
    clinic = _clinic(db)
    template = db.exec(select(ConsentTemplate).where(ConsentTemplate.clinic_id == clinic.id)).first()
    template.body = "rewritten"
    with pytest.raises(ImmutableRecordError):
        db.flush()
