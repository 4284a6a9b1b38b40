"""The messages of each kind: subject, text body (templates/mail/*.txt) and attachment.

Subjects name the clinic and the kind only. Bodies name the clinic, say when, and link to the portal;
they never carry a name, birth date, diagnosis, medication or dose, since mail crosses servers the
clinic does not control.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app, g, has_request_context, render_template, url_for
from sqlmodel import Session, select

from core.mail import ics, settings
from core.mail.models import MailKind, MailMessage
from core.mail.sending import queue_message
from core.models import Clinic, Patient, TreatmentSession
from core.scheduling.models import Booking
from core.scheduling.patterns import BOOKED_MINUTES

SUBJECTS = {
    MailKind.invitation: "Your patient portal at {clinic}",
    MailKind.confirmation: "Your appointment at {clinic}",
    MailKind.reminder: "Reminder: your appointment tomorrow at {clinic}",
    MailKind.questionnaire: "A questionnaire before your visit to {clinic}",
    MailKind.document: "A document is ready in your {clinic} portal",
    MailKind.cancellation: "Your appointment at {clinic} is cancelled",
}
MOVED = "Your appointment at {clinic} has changed"


LOCAL = "http://127.0.0.1:5000"


def link(endpoint: str, **values) -> str:
    """An absolute link under GLIA_BASE_URL when set (a Host header is the client's to choose), else
    under this request's address, or from a command or the worker the local default."""
    base = settings.base_url()
    if base is None and has_request_context() and "db_reads_only" in g:
        return url_for(endpoint, _external=True, **values)
    with current_app.test_request_context(base_url=base or LOCAL):
        return url_for(endpoint, _external=True, **values)


def when(clinic: Clinic, at: datetime, fmt: str = "%A, %B %d, %Y at %I:%M %p") -> str:
    text = at.astimezone(ZoneInfo(clinic.timezone)).strftime(fmt).replace(" 0", " ")
    return f"{text} ({at.astimezone(ZoneInfo(clinic.timezone)).tzname()})"


def _body(kind: MailKind | str, clinic: Clinic, **values) -> str:
    name = kind.value if isinstance(kind, MailKind) else kind
    return render_template(f"mail/{name}.txt", clinic=clinic, address=ics.clinic_address(clinic), **values)


def _send(db: Session, clinic: Clinic, patient: Patient, kind: MailKind, body: str, subject: str = "",
          **kw) -> MailMessage:
    return queue_message(db, clinic, patient.email, kind, (subject or SUBJECTS[kind]).format(clinic=clinic.name),
                         body, patient_id=patient.id, **kw)


def _minutes(db: Session, sessions: list[TreatmentSession]) -> dict[int, int]:
    booked = dict(db.exec(select(Booking.treatment_id, Booking.minutes)
                          .where(Booking.treatment_id.in_([t.id for t in sessions]))).all())
    return {t.id: booked.get(t.id) or BOOKED_MINUTES[t.modality] for t in sessions}


def _hours(minutes: int) -> str:
    hours = round(minutes / 60 * 2) / 2
    return f"{hours:g} hour" + ("" if hours == 1 else "s")


def invitation(db: Session, clinic: Clinic, patient: Patient, token: str, expires: datetime) -> MailMessage:
    body = _body(MailKind.invitation, clinic, link=link("mail.accept_invitation", token=token),
                 expires=when(clinic, expires))
    return _send(db, clinic, patient, MailKind.invitation, body)


def confirmation(db: Session, clinic: Clinic, patient: Patient, sessions: list[TreatmentSession]) -> MailMessage | None:
    """One message for a booking of one or more sessions, with every session in its .ics."""
    if not patient.email or not sessions:
        return None
    sessions = sorted(sessions, key=lambda t: t.scheduled_at)
    minutes = _minutes(db, sessions)
    body = _body(MailKind.confirmation, clinic, times=[when(clinic, t.scheduled_at) for t in sessions],
                 hours=_hours(max(minutes.values())), link=link("portal.home"))
    attachment = ("appointment.ics" if len(sessions) == 1 else "appointments.ics", "text/calendar",
                  ics.appointments(clinic, [(t, minutes[t.id]) for t in sessions]))
    return _send(db, clinic, patient, MailKind.confirmation, body, attachment=attachment)


def moved(db: Session, clinic: Clinic, patient: Patient, t: TreatmentSession) -> MailMessage:
    """The confirmation of a session's new time: its .ics event keeps the UID, with a higher SEQUENCE."""
    minutes = _minutes(db, [t])[t.id]
    body = _body("moved", clinic, when=when(clinic, t.scheduled_at), hours=_hours(minutes), link=link("portal.home"))
    return _send(db, clinic, patient, MailKind.confirmation, body, subject=MOVED,
                 attachment=("appointment.ics", "text/calendar", ics.appointments(clinic, [(t, minutes)])))


def cancellation(db: Session, clinic: Clinic, patient: Patient, t: TreatmentSession) -> MailMessage:
    """The session is off: a METHOD:CANCEL .ics takes it out of the patient's calendar."""
    minutes = _minutes(db, [t])[t.id]
    body = _body(MailKind.cancellation, clinic, when=when(clinic, t.scheduled_at), link=link("portal.home"))
    attachment = ("cancelled.ics", "text/calendar", ics.appointments(clinic, [(t, minutes)], cancel_for=patient.email))
    return _send(db, clinic, patient, MailKind.cancellation, body, attachment=attachment)


def reminder_key(clinic: Clinic, t: TreatmentSession) -> str:
    """Once per session and day: a session moved to another day is reminded again before its new day."""
    return f"reminder:{t.id}:{t.scheduled_at.astimezone(ZoneInfo(clinic.timezone)).date().isoformat()}"


def reminder(db: Session, clinic: Clinic, patient: Patient, t: TreatmentSession) -> MailMessage:
    body = _body(MailKind.reminder, clinic, when=when(clinic, t.scheduled_at, "%I:%M %p").lstrip("0"),
                 hours=_hours(_minutes(db, [t])[t.id]), link=link("portal.home"))
    return _send(db, clinic, patient, MailKind.reminder, body, dedupe_key=reminder_key(clinic, t))


def questionnaire(db: Session, clinic: Clinic, patient: Patient, t: TreatmentSession) -> MailMessage:
    body = _body(MailKind.questionnaire, clinic, when=when(clinic, t.scheduled_at), link=link("portal.home"))
    return _send(db, clinic, patient, MailKind.questionnaire, body, dedupe_key=f"questionnaire:{t.id}")


def document_ready(db: Session, clinic: Clinic, patient: Patient, what: str) -> MailMessage:
    body = _body(MailKind.document, clinic, what=what, link=link("portal.home"))
    return _send(db, clinic, patient, MailKind.document, body)
