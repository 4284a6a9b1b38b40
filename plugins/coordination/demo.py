"""Demo letters: a sent treatment-start and progress letter, a due progress letter, a medication concern.

Runs inside ``glia demo`` and every test template database, outside any request: it renders
with the app's Jinja environment and the PDF hook directly, and asks the other plugins for their
letter sections with the seed's own session bound (core.db.bound), so a demo letter is what a
clinician would sign: same wording rules, same sections, refused if a section fails.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func
from sqlmodel import Session, select

from core.db import bound
from core.hooks import ordered, relay
from core.models import (CareTeamMember, Clinic, ClinicianKind, Medication, OutsideClinician, Patient, Provider,
                         SessionStatus, TreatmentSession, User)
from core.pdf import STATIC_DIR
from core.slots import LetterSection
from plugins.coordination import compose, letters, wording
from plugins.coordination.models import CoordinationDue

PDF_TEMPLATE = "coordination/letter_pdf.html"


def _render(ctx: dict) -> bytes:
    html = current_app.jinja_env.get_template(PDF_TEMPLATE).render(**ctx)
    return current_app.extensions["glia"].pm.hook.render_pdf(html=html, base_url=str(STATIC_DIR))


def _candidates(session: Session, clinic: Clinic, settings: dict) -> list[int]:
    """Patients with a psychiatrist on the care team and a complete induction series (of their modality), oldest first."""
    done = (select(TreatmentSession.patient_id, func.count().label("n")).where(
        TreatmentSession.clinic_id == clinic.id, TreatmentSession.status == SessionStatus.discharged)
        .group_by(TreatmentSession.patient_id).subquery())
    rows = session.exec(select(Patient.id, done.c.n).join(done, done.c.patient_id == Patient.id).join(
        CareTeamMember, CareTeamMember.patient_id == Patient.id).where(
        Patient.clinic_id == clinic.id, CareTeamMember.role == ClinicianKind.psychiatrist)
        .order_by(Patient.id)).all()
    return [pid for pid, n in rows
            if n >= wording.induction_size(settings, compose.current_modality(session, clinic, pid))]


def _sections(session, clinic, patient, recipient_id):
    with bound(session):
        items, errors = relay(clinic).collect("letter_sections", expect=LetterSection, clinic=clinic, patient=patient,
                                              recipient=session.get(OutsideClinician, recipient_id))
    return ordered(items), errors


def _letter(session, clinic, signer, patient, recipient_id, kind, settings, *, fields=None, sent_by=None):
    letter = letters.create_draft(session, clinic, patient, kind=kind, recipient_id=recipient_id, user=signer,
                                  settings=settings)
    letter.fields = {**letter.fields, **(fields or {})}
    sections, errors = _sections(session, clinic, patient, recipient_id)
    doc = letters.sign(session, clinic, letter, signer, settings=settings, extra_sections=sections, render=_render,
                       section_errors=errors)
    if sent_by:
        letters.record_disclosure(session, clinic, doc, method=sent_by, sent_on=compose.clinic_today(clinic),
                                  user=signer, settings=settings)
    return doc


def seed(session: Session, clinic: Clinic) -> None:
    settings = {"induction_sessions": 6, "esketamine_induction_sessions": 8, "require_patient_permission": False,
                "letter_overrides": {}}
    signer = session.exec(select(User).join(Provider, Provider.user_id == User.id).where(
        Provider.clinic_id == clinic.id, Provider.active.is_(True)).order_by(Provider.id)).first()
    ids = _candidates(session, clinic, settings)
    if signer is None or len(ids) < 3:
        return
    sent, due, concern = (session.get(Patient, i) for i in ids[:3])
    today = compose.clinic_today(clinic)
    review = (today + timedelta(weeks=4)).isoformat()

    psychiatrist = letters.psychiatrist_of(session, clinic, sent.id)
    _letter(session, clinic, signer, sent, psychiatrist, "treatment_start", settings, sent_by="secure_email")
    _letter(session, clinic, signer, sent, psychiatrist, "progress", settings, sent_by="fax",
            fields={"crisis_plan": "Patient has the clinic's after-hours line and 988; safety plan reviewed.",
                    "next_review": review})

    session.add(CoordinationDue(clinic_id=clinic.id, patient_id=due.id, kind=letters.PROGRESS,
                                key=letters.INDUCTION_KEY, recipient_id=letters.psychiatrist_of(session, clinic, due.id),
                                created_at=letters.utcnow()))

    doc = _letter(session, clinic, signer, concern, letters.psychiatrist_of(session, clinic, concern.id),
                  "treatment_start", settings, sent_by="fax")
    session.add(Medication(clinic_id=clinic.id, patient_id=concern.id, name="Alprazolam", drug_class="benzodiazepine",
                           dose="0.5 mg", frequency="twice daily", start_date=today,
                           prescriber="Dr. Morgan Mindful (demo)", created_at=doc.signed_at + timedelta(minutes=5)))
    session.flush()
