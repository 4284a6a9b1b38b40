"""The day-before reminders and the questionnaire-due message: once per session, whoever asks twice.

Each message carries a dedupe key (``reminder:<session id>:<day>``, ``questionnaire:<session id>``)
that the table keeps unique, so running `glia mail reminders` twice, or on two hosts at once, sends
each one time. The reminder's key holds the day, so a session moved to another day is reminded again.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.mail import compose
from core.mail.models import MailMessage
from core.models import Clinic, Patient, SessionStatus, TreatmentSession, User, utcnow
from core.questionnaires import INSTRUMENT_SETS, UPCOMING, due_questionnaires, policy_of, today_start


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
    made = [_once(db, compose.reminder_key(clinic, t), lambda t=t, p=p: compose.reminder(db, clinic, p, t))
            for t, p in rows]
    return [m for m in made if m is not None]


def send_questionnaires_due(db: Session, clinic: Clinic, now: datetime | None = None) -> list[MailMessage]:
    """"Questionnaire due" to each portal patient whose next session asks for one now, by the clinic's
    QuestionnairePolicy (core.questionnaires decides, as for the portal page); once per session."""
    policy = policy_of(db, clinic)
    if not INSTRUMENT_SETS.get(policy.instruments):
        return []
    lo = today_start(clinic, now)
    hi = datetime.combine(lo.date() + timedelta(days=policy.days_before + 1), time(0), lo.tzinfo)
    rows = db.exec(select(TreatmentSession, Patient).join(Patient, Patient.id == TreatmentSession.patient_id)
                   .join(User, User.id == Patient.user_id)
                   .where(TreatmentSession.clinic_id == clinic.id, Patient.clinic_id == clinic.id,
                          TreatmentSession.status.in_(UPCOMING),
                          TreatmentSession.scheduled_at >= lo, TreatmentSession.scheduled_at < hi,
                          Patient.email != "", Patient.archived.is_(False), User.active.is_(True))
                   .order_by(Patient.id, TreatmentSession.scheduled_at, TreatmentSession.id)).all()
    # the earliest upcoming session falls in this window whenever any does, so it is each list's first
    upcoming: dict[int, tuple[Patient, list[TreatmentSession]]] = {}
    for t, p in rows:
        upcoming.setdefault(p.id, (p, []))[1].append(t)
    made = []
    for patient, sessions in upcoming.values():
        due = due_questionnaires(clinic, patient, db=db, upcoming=sessions, now=now)
        if due:
            made.append(questionnaire_due(db, patient, due[0].treatment))
    return [m for m in made if m is not None]


def questionnaire_due(db: Session, patient: Patient, session: TreatmentSession) -> MailMessage | None:
    """Ask the patient to complete the questionnaire before this session (once per session)."""
    if not patient.email or session.patient_id != patient.id:
        return None
    clinic = db.get(Clinic, patient.clinic_id)
    return _once(db, f"questionnaire:{session.id}", lambda: compose.questionnaire(db, clinic, patient, session))
