"""The day-before reminders and the questionnaire-due message: once per session, whoever asks twice.

Each message carries a dedupe key (``reminder:<session id>``) that the table keeps unique, so running
`glia mail reminders` twice, or on two hosts at once, sends each reminder one time.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.mail import compose
from core.mail.models import MailMessage
from core.models import Clinic, Patient, SessionStatus, TreatmentSession, utcnow


def _once(db: Session, key: str, make) -> MailMessage | None:
    """Make the message unless one with this key exists (or appears meanwhile: the savepoint loses)."""
    if db.exec(select(MailMessage.id).where(MailMessage.dedupe_key == key)).first() is not None:
        return None
    try:
        with db.begin_nested():
            return make()
    except IntegrityError:
        return None


def tomorrow(clinic: Clinic, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Tomorrow in the clinic's zone, as a UTC range."""
    zone = ZoneInfo(clinic.timezone)
    day = (now or utcnow()).astimezone(zone).date() + timedelta(days=1)
    start = datetime.combine(day, time(0), zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), zone)


def send_reminders(db: Session, clinic: Clinic, now: datetime | None = None) -> list[MailMessage]:
    """A reminder for each of tomorrow's scheduled sessions whose patient has an e-mail address."""
    lo, hi = tomorrow(clinic, now)
    rows = db.exec(select(TreatmentSession, Patient).join(Patient, Patient.id == TreatmentSession.patient_id)
                   .where(TreatmentSession.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                          TreatmentSession.status == SessionStatus.scheduled,
                          TreatmentSession.scheduled_at >= lo, TreatmentSession.scheduled_at < hi,
                          Patient.email != "", Patient.archived.is_(False))
                   .order_by(TreatmentSession.scheduled_at)).all()
    made = [_once(db, f"reminder:{t.id}", lambda t=t, p=p: compose.reminder(db, clinic, p, t)) for t, p in rows]
    return [m for m in made if m is not None]


def questionnaire_due(db: Session, patient: Patient, session: TreatmentSession) -> MailMessage | None:
    """Ask the patient to complete the questionnaire before this session (once per session)."""
    if not patient.email or session.patient_id != patient.id:
        return None
    clinic = db.get(Clinic, patient.clinic_id)
    return _once(db, f"questionnaire:{session.id}", lambda: compose.questionnaire(db, clinic, patient, session))
