"""Demo rows for a well-run clinic: every patient who has been treated, or comes in today, signed the
consents their modality requires (each attested by the clinician who explained it) and answered the
screening a few days before their first session.

Only the patients core's demo holds on purpose stay blocked (core.demo.HELD): one has not signed
the financial policy yet, one reported a history of intracerebral hemorrhage on today's re-screen.
One patient has a relative contraindication a clinician weighed and acknowledged at intake.

PDFs go through the plugin manager directly: the request-scoped relay would open a second
database session while this one holds SQLite's write lock.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlmodel import func, select

from core.demo import ACKNOWLEDGED_RELATIVE, held, mrn
from core.models import Patient, Role, TreatmentSession, User, utcnow
from core.pdf import STATIC_DIR
from plugins.consent import documents, service
from plugins.consent.screening import record_screening

INTAKE_DAYS = 3  # consents and screening are done this many days before the first session


def seed(session, clinic) -> None:
    ext = current_app.extensions["glia"]

    def pdf_from_html(html: str) -> bytes:
        return ext.pm.hook.render_pdf(html=html, base_url=str(STATIC_DIR))

    service.ensure_clinic_data(session, clinic)
    templates = service.current_templates(session, clinic)
    items = service.active_items(session, clinic)
    values = service.settings(session, clinic)
    clinician = _staff(session, clinic, Role.clinician, "clinician")
    provider = documents.attester(session, clinic, clinician)
    desk = _staff(session, clinic, Role.front_desk, "frontdesk")

    # each patient's first session and the modality they are treated with (the latest session's)
    first = dict(session.exec(select(TreatmentSession.patient_id, func.min(TreatmentSession.scheduled_at))
                              .where(TreatmentSession.clinic_id == clinic.id)
                              .group_by(TreatmentSession.patient_id)).all())
    modality = {pid: m.value for pid, m in session.exec(
        select(TreatmentSession.patient_id, TreatmentSession.modality).where(TreatmentSession.clinic_id == clinic.id)
        .order_by(TreatmentSession.scheduled_at)).all()}
    patients = session.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.id.in_(list(first)))
                            .order_by(Patient.id)).all()
    unsigned = held(clinic, "missing_consent")
    rescreened = held(clinic, "absolute_contraindication")
    acked = mrn(clinic, ACKNOWLEDGED_RELATIVE[clinic.slug]) if clinic.slug in ACKNOWLEDGED_RELATIVE else None
    now = utcnow()
    for patient in patients:
        intake = min(first[patient.id], now) - timedelta(days=INTAKE_DAYS)
        for k, kind in enumerate(service.required_kinds(values, modality[patient.id])):
            if patient.mrn == unsigned and kind == "financial":
                continue  # held today: the financial policy is still to be signed
            at = intake + timedelta(minutes=k)
            record = documents.sign(session, clinic, patient, templates[kind],
                                    documents.Signer(name=patient.legal_name, method="typed", channel="tablet",
                                                     ip="127.0.0.1", user_agent="demo seed", staff_user_id=desk.id,
                                                     staff_name=desk.name),
                                    token=f"demo-{clinic.id}-{patient.id}-{kind}", at=at)
            # the clinician who explained it attests at the tablet right after the patient signs
            documents.attest(session, clinic, record, clinician, provider, ip="127.0.0.1", at=at,
                             pdf_from_html=pdf_from_html)
        yes = {"uncontrolled_hypertension"} if patient.mrn == acked else set()
        screening = record_screening(session, clinic, patient, items, yes, answered_by="patient", channel="tablet",
                                     user_id=None, ip="127.0.0.1", at=intake)
        if yes:
            label = next(i.label for i in items if i.code == "uncontrolled_hypertension")
            service.acknowledge(session, clinic, patient.id, code="uncontrolled_hypertension", label=label,
                                rationale="Home readings controlled on lisinopril for 3 months; BP rechecked "
                                          "before and 40 minutes after every dose.",
                                clinician=clinician, screening_id=screening.id, ip="127.0.0.1",
                                at=intake + timedelta(hours=1))
        if patient.mrn == rescreened:  # this morning's re-screen at the desk reports a new absolute item
            morning = datetime.combine(datetime.now(ZoneInfo(clinic.timezone)).date(), time(7, 30),
                                       tzinfo=ZoneInfo(clinic.timezone))
            record_screening(session, clinic, patient, items, {"intracerebral_hemorrhage"}, answered_by="patient",
                             channel="tablet", user_id=None, ip="127.0.0.1", at=min(morning, now))


def _staff(session, clinic, role: Role, local: str) -> User:
    prefix = local if clinic.slug == "stillwater" else f"{clinic.slug}.{local}"
    return session.exec(select(User).where(User.role == role, User.email.like(f"{prefix}@%"))).one()
