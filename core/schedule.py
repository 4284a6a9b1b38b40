"""Sessions read once per transaction: the clinic's day, and the outline of one patient's course.

The dashboard lists the day and plugin widgets (the consent gate's "blocked today") look at the
same sessions; the chart and its panels (consent, REMS) ask which modalities a patient is on:
each shares one query, kept in core.db.memo: any write in the transaction, flushed or not,
makes the answers stale and they are read again.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.db import memo
from core.models import Clinic, Patient, Provider, TreatmentSession, utcnow


def today_bounds(clinic: Clinic) -> tuple[datetime, datetime, date]:
    """Midnight to midnight in the clinic's zone, as UTC bounds, plus the local date."""
    zone = ZoneInfo(clinic.timezone)
    local_day = utcnow().astimezone(zone).date()
    start = datetime.combine(local_day, time(0), tzinfo=zone)
    return start, datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=zone), local_day


def todays_sessions(session: Session, clinic: Clinic) -> list[tuple[TreatmentSession, Patient, Provider | None]]:
    """(session, patient, provider) for every session of the clinic's day, in schedule order."""
    day = memo(session, "todays_sessions")
    if clinic.id not in day:
        start, end, _day = today_bounds(clinic)
        day[clinic.id] = [tuple(row) for row in session.exec(
            select(TreatmentSession, Patient, Provider)
            .join(Patient, Patient.id == TreatmentSession.patient_id)
            .outerjoin(Provider, (Provider.id == TreatmentSession.provider_id) & (Provider.clinic_id == clinic.id))
            .where(TreatmentSession.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                   TreatmentSession.scheduled_at >= start, TreatmentSession.scheduled_at < end)
            .order_by(TreatmentSession.scheduled_at, TreatmentSession.id)).all()]
    return day[clinic.id]


def patient_course(session: Session, clinic: Clinic, patient_id: int) -> list:
    """(id, modality, status, scheduled_at) of every session of the patient, newest first: a few
    small columns, so even a years-long maintenance history is cheap."""
    courses = memo(session, "patient_course")
    if (clinic.id, patient_id) not in courses:
        courses[clinic.id, patient_id] = list(session.exec(
            select(TreatmentSession.id, TreatmentSession.modality, TreatmentSession.status,
                   TreatmentSession.scheduled_at)
            .where(TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient_id)
            .order_by(TreatmentSession.scheduled_at.desc(), TreatmentSession.id.desc())).all())
    return courses[clinic.id, patient_id]
