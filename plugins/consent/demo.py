"""Demo rows: the first patients on today's schedule (and the portal patient) have signed
consents and a screening; one of them is blocked by a missing consent, one has an acknowledged
relative contraindication; everyone else has a screening only, so the day shows work to do.

Runs inside ``glia demo`` and every test's template database, so it must be quick: each signed
PDF costs about a quarter of a second of WeasyPrint layout, hence the small signed set. PDFs go
through the plugin manager directly (the request-scoped relay would open a second database
session while this one holds SQLite's write lock).
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlmodel import select

from core.models import Patient, Role, SessionStatus, TreatmentSession, User, utcnow
from core.pdf import STATIC_DIR
from plugins.consent import service
from plugins.consent.screening import record_screening

SIGNED_PATIENTS = 4  # per clinic, including the portal patient and the blocked one


def seed(session, clinic) -> None:
    from plugins.consent import DEFAULT_REQUIRED

    ext = current_app.extensions["glia"]

    def pdf_from_html(html: str) -> bytes:
        return ext.pm.hook.render_pdf(html=html, base_url=str(STATIC_DIR))

    service.ensure_clinic_data(session, clinic)
    templates = service.current_templates(session, clinic)
    items = service.active_items(session, clinic)
    clinician = session.exec(select(User).where(User.role == Role.clinician, User.email.like(
        "clinician@%" if clinic.slug == "stillwater" else f"{clinic.slug}.clinician@%"))).first()
    staff = session.exec(select(User).where(User.role == Role.front_desk, User.email.like(
        "frontdesk@%" if clinic.slug == "stillwater" else f"{clinic.slug}.frontdesk@%"))).first()

    now = utcnow()
    today = session.exec(select(TreatmentSession).where(
        TreatmentSession.clinic_id == clinic.id,
        TreatmentSession.status.in_([SessionStatus.scheduled, SessionStatus.checked_in]))
        .order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all()
    patients = {p.id: p for p in session.exec(select(Patient).where(Patient.clinic_id == clinic.id)).all()}
    seen: list[int] = []
    modality = {}
    for t in today:
        if t.patient_id not in seen:
            seen.append(t.patient_id)
            modality[t.patient_id] = t.modality.value
    portal = [p.id for p in patients.values() if p.user_id is not None]
    order = portal + [pid for pid in seen if pid not in portal]
    blocked = next((pid for pid in seen if pid not in portal), None)  # missing financial consent
    acked = next((pid for pid in seen if pid not in portal and pid != blocked), None)
    signers = set(order[:SIGNED_PATIENTS])
    for index, pid in enumerate(order + [p for p in patients if p not in order]):
        patient = patients[pid]
        kinds = DEFAULT_REQUIRED.get(modality.get(pid, ""), list(DEFAULT_REQUIRED["iv_ketamine"]))
        signed_at = now - timedelta(days=20 + index)
        for k, kind in enumerate(kinds if pid in signers else []):
            if pid == blocked and kind == "financial":
                continue
            service.sign(session, clinic, patient, templates[kind],
                         service.Signer(name=patient.legal_name, method="typed", channel="tablet", ip="127.0.0.1",
                                        user_agent="demo seed", staff_user_id=staff.id if staff else None,
                                        staff_name=staff.name if staff else ""),
                         token=f"demo-{clinic.id}-{pid}-{kind}", pdf_from_html=pdf_from_html,
                         at=signed_at + timedelta(minutes=k))
        yes = {"uncontrolled_hypertension"} if pid == acked else set()
        screening = record_screening(session, clinic, patient, items, yes, answered_by="patient",
                                             channel="tablet", user_id=None, ip="127.0.0.1", at=signed_at)
        if pid == acked and clinician is not None:
            label = next(i.label for i in items if i.code == "uncontrolled_hypertension")
            service.acknowledge(session, clinic, pid, code="uncontrolled_hypertension", label=label,
                                rationale="Home readings controlled on lisinopril for 3 months; BP rechecked "
                                          "before and 40 minutes after every dose.",
                                clinician=clinician, screening_id=screening.id, ip="127.0.0.1",
                                at=signed_at + timedelta(hours=1))
